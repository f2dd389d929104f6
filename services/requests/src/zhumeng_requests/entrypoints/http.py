"""HTTP API of the requests service."""
# No `from __future__ import annotations` here: FastAPI resolves the handlers' local
# Annotated dependencies at definition time.

import base64
import binascii
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from zhumeng_kit.auth import Principal, require_roles
from zhumeng_kit.pii import mask_email, mask_phone
from zhumeng_kit.problems import Problem

from ..app.ports import Doc
from ..app.use_cases import RequestService
from ..domain.lifecycle import LIVE
from ..domain.model import NewRequest, RatingIn, Status

CurrentPrincipal = Callable[[Request], Coroutine[Any, Any, Principal]]


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "Bad request"


def encode_cursor(last_id: str | None) -> str | None:
    return base64.urlsafe_b64encode(last_id.encode()).decode() if last_id else None


def decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        return base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("the cursor is not one this API gave out") from exc


def present(doc: Doc, who: Principal) -> dict[str, Any]:
    """The API view of a request: contact details in full, and the volunteers' check-in codes
    (which they show to the volunteer on arrival), only for the requester."""
    requester = dict(doc.get("requester") or {})
    is_requester = who.subject == doc.get("requester_id")
    if not is_requester:
        requester["phone"] = mask_phone(requester.get("phone"))
        requester["email"] = mask_email(requester.get("email"))
    out = {
        "id": doc["_id"],
        "status": doc["status"],
        "service_type_id": doc["service_type_id"],
        "place_id": doc["place_id"],
        "township_id": doc["township_id"],
        "window": doc["window"],
        "slots": doc["slots"],
        "language": doc.get("language"),
        "notes": doc.get("notes", ""),
        "requester_id": doc["requester_id"],
        "requester": requester,
        "created_at": doc["created_at"],
        "updated_at": doc["updated_at"],
    }
    assignments = [present_assignment(a, is_requester) for a in doc.get("assignments") or []]
    if assignments:
        out["assignments"] = assignments
        # the latest volunteer who holds a slot (or the latest at all): the single-volunteer
        # view clients of the first version read
        live = [a for a in assignments if a["status"] in LIVE]
        out["assignment"] = (live or assignments)[-1]
    elif doc.get("assignment"):  # a request assigned before assignments were tracked
        out["assignment"] = present_assignment(doc["assignment"], is_requester)
    for optional in ("unmatched", "unfulfilled", "cancelled", "rating", "review", "escalation"):
        if doc.get(optional):
            out[optional] = doc[optional]
    for optional in ("hours_total", "completed_at", "dropoff_place_id", "seats", "cargo_kg"):
        if doc.get(optional) is not None:
            out[optional] = doc[optional]
    return out


def present_assignment(assignment: Doc, is_requester: bool) -> dict[str, Any]:
    out = dict(assignment)
    if not is_requester:
        out.pop("checkin_code", None)
    return out


def router(service: RequestService, current: CurrentPrincipal) -> APIRouter:
    api = APIRouter(prefix="/v1/requests", tags=["requests"])
    Poster = Annotated[Principal, Depends(require_roles(current, "resident", "coordinator"))]
    Anyone = Annotated[Principal, Depends(current)]

    @api.post("", status_code=201)
    async def post_request(
        body: NewRequest,
        who: Poster,
        response: Response,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> dict[str, Any]:
        if not idempotency_key or not 1 <= len(idempotency_key) <= 128:
            raise BadRequest("send an Idempotency-Key header (1 to 128 characters)")
        posted = await service.post(who, body, idempotency_key)
        response.headers["Location"] = f"/v1/requests/{posted.doc['_id']}"
        if posted.replayed:
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
        return present(posted.doc, who)

    @api.get("/{request_id}")
    async def get_request(request_id: str, who: Anyone) -> dict[str, Any]:
        return present(await service.get(who, request_id), who)

    @api.post(
        "/{request_id}/cancel",
        responses={409: {"description": "completed, rated, unfulfilled or already cancelled"}},
    )
    async def cancel_request(request_id: str, who: Anyone) -> dict[str, Any]:
        """Cancel a request: its requester, or a coordinator of its township (admin always).

        Not replayable: a second cancel (also a client's retry after a lost response) is a
        409 `already cancelled` whose `request_status` is `cancelled`; treat it as done.
        """
        return present(await service.cancel(who, request_id), who)

    @api.post(
        "/{request_id}/rating",
        responses={409: {"description": "not completed, or already rated"}},
    )
    async def rate_request(request_id: str, body: RatingIn, who: Anyone) -> dict[str, Any]:
        """The requester rates a completed request, once (1 to 5 stars, an optional comment
        that stays in this service)."""
        return present(await service.rate(who, request_id, body), who)

    @api.get("")
    async def list_requests(
        who: Anyone,
        status: Status | None = None,
        service_type_id: str | None = None,
        township_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        page = await service.list(
            who,
            {
                "status": status.value if status else None,
                "service_type_id": service_type_id,
                "township_id": township_id,
            },
            limit,
            decode_cursor(cursor),
        )
        return {
            "items": [present(d, who) for d in page.items],
            "next_cursor": encode_cursor(page.next_cursor),
        }

    return api

"""Use cases of the requests service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from zhumeng_contracts.events import (
    PlaceRecord,
    RequesterContact,
    RequestPosted,
    RequestUnmatched,
    ServiceTypeRecord,
    VolunteerAssigned,
)
from zhumeng_kit.auth import Principal
from zhumeng_kit.consumer import PermanentError
from zhumeng_kit.ids import new_id
from zhumeng_kit.outbox import new_document, outbox_entry
from zhumeng_kit.problems import Conflict, Forbidden, NotFound, Unprocessable

from ..domain.model import NewRequest, Status, outcome_of
from .ports import Catalog, Doc, Page, RequestRepository

SOURCE = "zhumeng/requests"


@dataclass(frozen=True)
class Posted:
    doc: Doc
    replayed: bool


class RequestService:
    def __init__(self, repo: RequestRepository, catalog: Catalog, on_events: Any = None) -> None:
        self._repo = repo
        self._catalog = catalog
        self._on_events = on_events or (lambda: None)

    async def post(
        self, who: Principal, body: NewRequest, idempotency_key: str, now: datetime | None = None
    ) -> Posted:
        now = now or datetime.now(UTC)
        scoped_key = f"{who.subject}:{idempotency_key}"
        fingerprint = body.fingerprint()
        # The common case is a new key: validate and insert, and only look the key up when
        # the insert says it is taken (or when validation fails: a replay of a request the
        # catalog no longer accepts still returns the original).
        try:
            service_type, place = self._validate(body, now)
        except Unprocessable:
            existing = await self._repo.by_idempotency_key(scoped_key)
            if existing is not None:
                return self._replay(existing, fingerprint)
            raise

        request_id = new_id("req")
        township_id = place.township_id or place.id
        contact = RequesterContact(
            request_id=request_id,
            requester_id=who.subject,
            name=body.requester.name,
            phone=body.requester.phone,
            email=body.requester.email,
            locale=body.requester.locale,
        )
        posted = RequestPosted(
            request_id=request_id,
            service_type_id=service_type.id,
            place_id=place.id,
            township_id=township_id,
            location=place.location,
            window=body.window,
            slots=body.slots,
            language=body.language,
            posted_at=now,
        )
        doc = new_document(
            {
                "_id": request_id,
                "idempotency_key": scoped_key,
                "fingerprint": fingerprint,
                "requester_id": who.subject,
                "requester": body.requester.model_dump(mode="json"),
                "service_type_id": service_type.id,
                "place_id": place.id,
                "township_id": township_id,
                "window": body.window.model_dump(mode="json"),
                "slots": body.slots,
                "language": body.language,
                "notes": body.notes,
                "status": Status.POSTED.value,
                "created_at": now,
                "updated_at": now,
                "applied": [],
            },
            # contact first: by the time matching reacts to the request, notify can reach them
            [outbox_entry(contact, SOURCE), outbox_entry(posted, SOURCE)],
        )
        if not await self._repo.insert(doc):
            raced = await self._repo.by_idempotency_key(scoped_key)
            if raced is None:
                raise Conflict("the idempotency key is in use; retry")
            return self._replay(raced, fingerprint)
        self._on_events()
        return Posted(doc, replayed=False)

    def _validate(self, body: NewRequest, now: datetime) -> tuple[ServiceTypeRecord, PlaceRecord]:
        service_type = self._catalog.service_type(body.service_type_id)
        if service_type is None:
            raise Unprocessable(
                f"unknown service type {body.service_type_id!r}", field="service_type_id"
            )
        place = self._catalog.place(body.place_id)
        if place is None or place.kind == "county":
            raise Unprocessable(f"unknown village or township {body.place_id!r}", field="place_id")
        try:
            body.check_window(now)
        except ValueError as exc:
            raise Unprocessable(str(exc), field="window") from exc
        return service_type, place

    @staticmethod
    def _replay(existing: Doc, fingerprint: str) -> Posted:
        if existing["fingerprint"] != fingerprint:
            raise Conflict("this Idempotency-Key was used with a different request body")
        return Posted(existing, replayed=True)

    async def get(self, who: Principal, request_id: str) -> Doc:
        doc = await self._repo.get(request_id)
        if doc is None or not can_see(who, doc):
            raise NotFound(f"no request {request_id!r}")
        return doc

    async def list(
        self, who: Principal, filters: dict[str, str | None], limit: int, cursor: str | None
    ) -> Page:
        query: Doc = {k: v for k, v in filters.items() if v}
        if not who.is_staff:
            query["requester_id"] = who.subject
        elif who.township and not who.has("admin"):
            if query.get("township_id", who.township) != who.township:
                raise Forbidden("a township coordinator sees only their township")
            query["township_id"] = who.township
        return await self._repo.list(query, limit, cursor)

    async def on_outcome(self, event_id: str, event: VolunteerAssigned | RequestUnmatched) -> None:
        """Idempotent: the same event applied twice changes nothing."""
        change = outcome_of(event)
        change["updated_at"] = datetime.now(UTC)
        if await self._repo.apply_outcome(event.request_id, event_id, change):
            return
        if not await self._repo.exists(event.request_id):
            raise PermanentError(f"outcome for unknown request {event.request_id}")


def can_see(who: Principal, doc: Doc) -> bool:
    if who.has("admin"):
        return True
    if who.has("coordinator"):
        return who.township is None or who.township == doc.get("township_id")
    return bool(doc.get("requester_id") == who.subject)

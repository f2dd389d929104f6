"""HTTP API of the lifecycle after a decision: a volunteer's assignments, check-in with the
requester's code, check-out, a coordinator's no-show report, and the hours ledger."""
# No `from __future__ import annotations` here: FastAPI resolves the handlers' local
# Annotated dependencies at definition time.

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from zhumeng_kit.auth import Principal, require_roles
from zhumeng_kit.problems import Forbidden

from ..adapters.mongo_stores import MongoDecisionStore
from ..app.hours import credits_of, to_csv, totals
from ..app.lifecycle_service import LifecycleService, decode
from ..domain.index import VolunteerIndex
from ..domain.lifecycle import Match

CurrentPrincipal = Callable[[Request], Coroutine[Any, Any, Principal]]


class AssignBody(BaseModel):
    volunteer_id: str = Field(min_length=1, max_length=64)


class CheckInBody(BaseModel):
    code: str = Field(pattern=r"^[0-9]{6}$", description="the code the requester shows")


def view(match: Match, who: Principal) -> dict[str, Any]:
    """A match as the API shows it: check-in codes never (the requester has theirs)."""
    return {
        "request_id": match.request_id,
        "service_type_id": match.service_type_id,
        "state": match.state.value,
        "slots": match.slots,
        "slot_roles": list(match.slot_roles),  # role of slot 1, 2, ... (team requests)
        "mode": match.mode,
        "window": match.window.model_dump(mode="json"),
        "review": match.review or None,
        "escalation": {
            "step": match.escalation_step,
            "level": match.escalation_level,
            "radius_factor": match.radius_factor,
        },
        "assignments": [
            {
                "assignment_id": a.assignment_id,
                "volunteer_id": a.volunteer_id,
                "slot": a.slot,
                "role": a.role,
                "status": a.status,
                "checked_in_at": a.checked_in_at,
                "checked_out_at": a.checked_out_at,
                "hours": a.hours,
            }
            for a in match.assignments
            if who.is_staff or a.volunteer_id == who.subject
        ],
    }


def lifecycle_router(
    service: LifecycleService,
    decisions: MongoDecisionStore,
    index: VolunteerIndex,
    current: CurrentPrincipal,
) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["lifecycle"])
    Volunteer = Annotated[Principal, Depends(require_roles(current, "volunteer"))]
    Staff = Annotated[Principal, Depends(require_roles(current, "coordinator"))]
    Anyone = Annotated[Principal, Depends(current)]
    base = "/matches/{request_id}/assignments/{assignment_id}"

    @api.get("/assignments")
    async def my_assignments(
        who: Anyone,
        volunteer_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        """A volunteer's assignments (staff may ask for anyone's)."""
        target = volunteer_id or who.subject
        if target != who.subject and not who.is_staff:
            raise Forbidden("you may list only your own assignments")
        docs = await decisions.of_volunteer(target, limit)
        items = [view(decode(d["lifecycle"]), who) for d in docs]
        return {"items": items}

    @api.get("/offers")
    async def my_offers(who: Volunteer) -> dict[str, Any]:
        """The volunteer's open offers, each with the time it expires."""
        docs = await decisions.with_open_offer_for(who.subject)
        items = []
        for doc in docs:
            match = decode(doc["lifecycle"])
            for offer in match.open_offers:
                if offer.volunteer_id == who.subject:
                    items.append(
                        {
                            "request_id": match.request_id,
                            "offer_id": offer.offer_id,
                            "service_type_id": match.service_type_id,
                            "window": match.window.model_dump(mode="json"),
                            "slot": offer.slot,
                            "expires_at": offer.expires_at,
                        }
                    )
        return {"items": items}

    @api.post("/matches/{request_id}/offers/{offer_id}/accept")
    async def accept(request_id: str, offer_id: str, who: Volunteer) -> dict[str, Any]:
        return view(await service.accept_offer(who, request_id, offer_id), who)

    @api.post("/matches/{request_id}/offers/{offer_id}/decline")
    async def decline(request_id: str, offer_id: str, who: Volunteer) -> dict[str, Any]:
        return view(await service.decline_offer(who, request_id, offer_id), who)

    @api.get("/claims")
    async def my_claims(who: Volunteer) -> dict[str, Any]:
        """Open requests the volunteer is invited to claim."""
        docs = await decisions.invited(who.subject)
        items = [view(m, who) for m in (decode(d["lifecycle"]) for d in docs) if m.free_slots]
        return {"items": items}

    @api.post("/matches/{request_id}/claim")
    async def claim(request_id: str, who: Volunteer) -> dict[str, Any]:
        return view(await service.claim(who, request_id), who)

    @api.post("/matches/{request_id}/assign")
    async def assign(request_id: str, body: AssignBody, who: Staff) -> dict[str, Any]:
        match = await service.assign_by_coordinator(who, request_id, body.volunteer_id)
        return view(match, who)

    @api.post(f"{base}/check-in")
    async def check_in(
        request_id: str, assignment_id: str, body: CheckInBody, who: Volunteer
    ) -> dict[str, Any]:
        return view(await service.check_in(who, request_id, assignment_id, body.code), who)

    @api.post(f"{base}/check-out")
    async def check_out(request_id: str, assignment_id: str, who: Volunteer) -> dict[str, Any]:
        return view(await service.check_out(who, request_id, assignment_id), who)

    @api.post(f"{base}/no-show")
    async def no_show(request_id: str, assignment_id: str, who: Staff) -> dict[str, Any]:
        return view(await service.report_no_show(who, request_id, assignment_id), who)

    @api.get("/hours", response_model=None)
    async def hours(
        who: Anyone,
        by: Literal["volunteer", "team", "township", "service_type"] = "volunteer",
        format: Literal["json", "csv"] = "json",
    ) -> dict[str, Any] | PlainTextResponse:
        """Hours credited by completed assignments: totals, or every credit as CSV. Staff see
        everyone's; a volunteer only their own."""
        credits = credits_of(await decisions.with_completed_work())
        if not who.is_staff:
            credits = [c for c in credits if c.volunteer_id == who.subject]
        if format == "csv":
            return PlainTextResponse(
                to_csv(credits),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": 'attachment; filename="zhumeng-hours.csv"'},
            )
        return {"by": by, "totals": totals(credits, by, index)}

    return api

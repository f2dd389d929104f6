"""HTTP API of team requests: a team's lead claims open slots for named members."""
# No `from __future__ import annotations` here: FastAPI resolves the handlers' local
# Annotated dependencies at definition time.

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from zhumeng_kit.auth import Principal, require_roles
from zhumeng_kit.problems import Forbidden

from ..adapters.batch_store import PendingDecisions
from ..adapters.match_codec import decode
from ..app.team_claims import TeamClaims
from ..domain.teams import MAX_MEMBERS_PER_CLAIM
from .lifecycle_http import view

CurrentPrincipal = Callable[[Request], Coroutine[Any, Any, Principal]]
MemberId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class TeamClaimBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team_id: str = Field(min_length=1, max_length=64)
    member_ids: list[MemberId] = Field(min_length=1, max_length=MAX_MEMBERS_PER_CLAIM)
    # optional: member -> role slug, pinning members to roles of a request with slot roles;
    # without it matching fits each member to a free slot of a role they qualify for
    roles: dict[MemberId, str] | None = None


def teams_router(
    claims: TeamClaims, pending: PendingDecisions, current: CurrentPrincipal
) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["teams"])
    Lead = Annotated[Principal, Depends(require_roles(current, "volunteer", "team_lead"))]

    @api.post("/matches/{request_id}/team-claims")
    async def claim(request_id: str, body: TeamClaimBody, who: Lead) -> dict[str, Any]:
        """The team's lead takes one open slot per named member, all or none (409 when fewer
        slots are open; 403 for anyone but the lead; 422 with each ineligible member)."""
        match = await claims.claim(who, request_id, body.team_id, body.member_ids, body.roles)
        shown = view(match, who)
        # the lead sees the slots of the team's members (not their check-in codes)
        shown["team"] = [
            {
                "assignment_id": a.assignment_id,
                "volunteer_id": a.volunteer_id,
                "slot": a.slot,
                "role": a.role,
            }
            for a in match.live_assignments
            if a.team_id == body.team_id
        ]
        return shown

    @api.get("/teams/{team_id}/open-requests")
    async def open_requests(
        team_id: str, who: Lead, limit: Annotated[int, Query(ge=1, le=200)] = 50
    ) -> dict[str, Any]:
        """Requests open to this team's claim (in the team's township, when it has one)."""
        team = claims.team(team_id)
        if team.lead_volunteer_id != who.subject and not who.is_staff:
            raise Forbidden(f"only the lead of team {team_id} sees its open requests")
        docs = await pending.open_to_teams(team.township_id, limit)
        items = []
        for doc in docs:
            match = decode(doc["lifecycle"])
            if match.free_slots:
                items.append(
                    {
                        "request_id": match.request_id,
                        "service_type_id": match.service_type_id,
                        "window": match.window.model_dump(mode="json"),
                        "slots": match.slots,
                        "open_slots": len(match.free_slots),
                        "township_id": doc.get("township_id"),
                    }
                )
        return {"items": items}

    @api.get("/teams/mine")
    async def my_teams(who: Lead) -> dict[str, Any]:
        """The teams this volunteer leads."""
        return {"items": [t.model_dump(mode="json") for t in claims.led_by(who.subject)]}

    return api

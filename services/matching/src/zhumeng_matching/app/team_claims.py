"""Team requests (DESIGN §6): a request with N slots, filled by individuals who claim, or by a
team whose lead claims k slots for k named members.

A team claim is atomic: every member's capacity is taken with the guarded update of ADR 0006,
then all k slots are written with one compare-and-set on the request's document — the same
document individual claims race on — so there are never more winners than slots. If the
slots are gone, or one member has no capacity left, the claim fails as a whole and only the
capacity this claim took is given back (ADR 0010).

Slot roles (a clinic's barbers, audiologist and dentist): individuals are invited per role
(the best `claim_invites` of each role), an individual's claim takes a slot of a role they
qualify for, and a team's members are fitted to free slots of roles they qualify for (or
the role the lead names for each) inside the same compare-and-set (`domain.teams.fit`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord, TeamRecord, VolunteerRecord
from zhumeng_kit.auth import Principal
from zhumeng_kit.problems import Forbidden, NotFound, Unprocessable
from zhumeng_kit.views import View

from ..domain import lifecycle as lc
from ..domain.index import VolunteerIndex
from ..domain.teams import (
    TeamClaimError,
    check_lead,
    plan_claim,
    role_service,
    roles_by_slot,
)
from .lifecycle_service import LifecycleService
from .ports import DecisionStore, LoadStore

TEAM_STATE = "team_claiming"  # the decision state while slots are open to teams


class TeamClaims:
    def __init__(
        self,
        teams: View[TeamRecord],
        index: VolunteerIndex,
        service_types: View[ServiceTypeRecord],
        loads: LoadStore,
        decisions: DecisionStore,
        lifecycle: LifecycleService,
    ) -> None:
        self._teams = teams
        self._index = index
        self._service_types = service_types
        self._loads = loads
        self._decisions = decisions
        self._lifecycle = lifecycle

    # ---- the matcher's hook for team-mode requests --------------------------------------------

    state = TEAM_STATE

    def takes(self, request: RequestPosted) -> bool:
        return True

    async def opened(self, request: RequestPosted) -> None:
        """Invite the best individuals to claim, like open claim; unlike it, a request nobody
        can take alone stays open for teams (escalation watches its deadline)."""
        service = self._service_types.get(request.service_type_id)
        if service is None:
            return
        invited = self._invitees(request, service)
        if not invited:
            return
        now = datetime.now(UTC)
        roles = roles_by_slot(service)

        def invite(match: lc.Match) -> lc.Result:
            if match.invited or match.state in lc.FINAL:
                return match, []  # invited before (a redelivery)
            return lc.open_claim(lc.with_roles(match, roles), invited, now)

        await self._lifecycle.apply(request.request_id, invite)

    def _invitees(self, request: RequestPosted, service: ServiceTypeRecord) -> list[str]:
        """The best `claim_invites` eligible volunteers — of each role, for a service type
        with slot roles (so every role with somebody eligible gets invitations)."""
        loads = self._loads.cached()
        needs = [role_service(service, r) for r in service.slot_roles] or [service]
        invited: list[str] = []
        for need in needs:
            best = self._index.best(request, need, loads, service.claim_invites)
            invited += [c.volunteer.id for c in best.candidates if c.volunteer.id not in invited]
        return invited

    # ---- the lead's claim ----------------------------------------------------------------------

    def team(self, team_id: str) -> TeamRecord:
        team = self._teams.get(team_id)
        if team is None:
            raise NotFound(f"no team {team_id!r}")
        return team

    def led_by(self, volunteer_id: str) -> list[TeamRecord]:
        return [t for t in self._teams.items.values() if t.lead_volunteer_id == volunteer_id]

    async def claim(
        self,
        who: Principal,
        request_id: str,
        team_id: str,
        member_ids: list[str],
        roles: dict[str, str] | None = None,
    ) -> lc.Match:
        """`roles` (member -> role slug) pins members to roles; otherwise each member may take
        a slot of any role they qualify for, the slots fitted when the claim is written."""
        team = self.team(team_id)
        try:
            check_lead(team, who.subject)
        except TeamClaimError as exc:
            raise Forbidden(str(exc), code=exc.code) from exc
        doc = await self._decisions.get(request_id)
        if doc is None or "posted" not in doc or "lifecycle" not in doc:
            raise NotFound(f"no open request {request_id!r}")
        request = RequestPosted.model_validate(doc["posted"])
        service = self._service_types.get(request.service_type_id)
        if service is None:
            raise NotFound(f"no open request {request_id!r}")
        members: dict[str, VolunteerRecord] = {}
        for mid in member_ids:
            vol = self._index.get(mid)
            if vol is not None:
                members[mid] = vol
        try:
            plan = plan_claim(
                team,
                who.subject,
                member_ids,
                request,
                service,
                members,
                self._loads.cached(),
                roles,
            )
        except TeamClaimError as exc:
            raise Unprocessable(str(exc), code=exc.code, reasons=exc.reasons) from exc
        now = datetime.now(UTC)
        holds = [(c.volunteer.id, c.volunteer.capacity) for c in plan.members]
        pinned = roles_by_slot(service)

        def transition(m: lc.Match) -> lc.Result:
            m = lc.with_roles(m, pinned)
            return lc.claim_for_team(m, team.id, who.subject, plan.members, now, plan.allowed)

        return await self._lifecycle.apply_holding(request_id, holds, transition)

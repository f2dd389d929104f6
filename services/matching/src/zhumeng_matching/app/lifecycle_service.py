"""Commands on a match after the decision: check-in, check-out, no-show, cancellation.

Each command reads the decision document, applies a pure transition (`domain.lifecycle`) and
writes the new match with its events in one compare-and-set on the document's version; a
lost race re-reads and re-applies, so concurrent commands on one request serialise. Capacity
is given back by `release_capacity`, which consumes matching's own `AssignmentCancelled` and
`AssignmentCompleted` events: at least once, and idempotent (a guarded update).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    Event,
    RequestCancelled,
    RequestPosted,
    ServiceTypeRecord,
)
from zhumeng_kit.auth import Principal
from zhumeng_kit.outbox import outbox_entry
from zhumeng_kit.problems import Conflict, Forbidden, NotFound, Unprocessable
from zhumeng_kit.views import View

from ..adapters.match_codec import decode as decode_base
from ..adapters.match_codec import encode as encode_base
from ..domain import lifecycle as lc
from ..domain import teams
from ..domain.escalation import widened_candidates
from ..domain.geo import haversine_km
from ..domain.index import VolunteerIndex
from ..domain.policy import Candidate, Load
from .ports import DecisionStore, LoadStore, Reservation, Timers

SOURCE = "zhumeng/matching"
MAX_RACES = 20
OFFER_TIMER = "offer-expiry"
COOL_OFF = timedelta(hours=6)  # a decliner is not offered the same request again for this long
Transition = Callable[[lc.Match], lc.Result]
LOCAL = ZoneInfo("Asia/Shanghai")  # the day of the daily offer cap


class LifecycleService:
    def __init__(
        self,
        decisions: DecisionStore,
        loads: LoadStore,
        index: VolunteerIndex,
        service_types: View[ServiceTypeRecord],
        on_events: Callable[[], None] = lambda: None,
        timers: Timers | None = None,
    ) -> None:
        self._decisions = decisions
        self._loads = loads
        self._index = index
        self._service_types = service_types
        self._on_events = on_events
        self._timers = timers
        # climbs one wider_radius rung now (the escalation service, set by bootstrap)
        self.widen: Callable[[str], Awaitable[lc.Match | None]] | None = None
        # offers and invitations a volunteer may get per day (set by bootstrap)
        self.offer_cap: OfferCap | None = None

    # ---- auto-offer cascade ----------------------------------------------------------------

    async def offer_next(self, request_id: str) -> lc.Match | None:
        """Offer every free slot to the next best eligible volunteer not offered yet. With
        nobody left and nobody assigned, the request ends unfulfilled."""
        doc = await self._decisions.get(request_id)
        if doc is None or "lifecycle" not in doc or "posted" not in doc:
            return None
        match = decode(doc["lifecycle"])
        if match.state in lc.NOT_MATCHING or not match.free_slots:
            return match
        request = RequestPosted.model_validate(doc["posted"])
        service = self._service_types.get(request.service_type_id)
        if service is None:
            return match
        now = datetime.now(UTC)
        ttl = timedelta(minutes=service.offer_ttl_min)
        tried = {o.volunteer_id for o in match.offers} | {a.volunteer_id for a in match.assignments}
        fresh = self._candidates(request, service, tried, len(match.free_slots), match)
        if not fresh and not match.open_offers and not match.live_assignments:
            match, fresh = await self._widened(request, service, tried, match)
        fresh = await self._within_cap(fresh, len(match.free_slots))
        if not fresh and not match.open_offers and not match.live_assignments:
            return await self._apply(request_id, _give_up(now))
        if fresh and self._timers is not None:
            # armed before the offer is written: a crash in between leaves a timer that finds
            # nothing to expire, never an offer that does not expire
            await self._timers.schedule(
                OFFER_TIMER,
                f"{request_id}:{len(match.offers)}",
                now + ttl,
                {"request_id": request_id},
            )
        return await self._apply(request_id, _offer_free_slots(fresh, now, ttl))

    async def accept_offer(self, who: Principal, request_id: str, offer_id: str) -> lc.Match:
        vol = self._index.get(who.subject)
        doc = await self._decisions.get(request_id)
        if vol is None or doc is None or "posted" not in doc:
            raise NotFound(f"no offer {offer_id!r} for you")
        request = RequestPosted.model_validate(doc["posted"])
        d = haversine_km(request.location.lat, request.location.lon, vol.home.lat, vol.home.lon)
        # scored with the volunteer's history; its record carries the effective capacity (a
        # newcomer's is 1), which the guarded reservation enforces
        candidate = self._index.candidate(vol, request, self._loads.cached().get(vol.id, Load()), d)
        now = datetime.now(UTC)
        match = await self._with_capacity(
            vol.id,
            candidate.volunteer.capacity,
            request_id,
            lambda m: lc.accept_offer(m, offer_id, vol.id, candidate, now),
        )
        await self.offer_next(request_id)  # slots still free get their offers
        return match

    async def decline_offer(self, who: Principal, request_id: str, offer_id: str) -> lc.Match:
        now = datetime.now(UTC)
        match = await self._apply(
            request_id, lambda m: lc.decline_offer(m, offer_id, who.subject, now, COOL_OFF)
        )
        return await self.offer_next(request_id) or match

    # ---- open claim (抢单) and coordinator assignment -----------------------------------------

    async def invite(self, request_id: str) -> lc.Match | None:
        """Invite the best eligible volunteers (the service type's `claim_invites`) to claim."""
        doc = await self._decisions.get(request_id)
        if doc is None or "lifecycle" not in doc or "posted" not in doc:
            return None
        match = decode(doc["lifecycle"])
        if match.invited or match.state in lc.NOT_MATCHING:
            return match  # invited already
        request = RequestPosted.model_validate(doc["posted"])
        service = self._service_types.get(request.service_type_id)
        if service is None:
            return match
        best = self._candidates(request, service, set(), service.claim_invites, match)
        if not best:
            match, best = await self._widened(request, service, set(), match)
        best = await self._within_cap(best, service.claim_invites)
        now = datetime.now(UTC)
        if not best:
            return await self._apply(request_id, _give_up(now))
        invited = [c.volunteer.id for c in best[: service.claim_invites]]
        return await self._apply(request_id, lambda m: lc.open_claim(m, invited, now))

    async def claim(self, who: Principal, request_id: str) -> lc.Match:
        """An invited volunteer takes a free slot: capacity first (guarded update), then the
        slot (compare-and-set on the request's document); losing either releases the other.
        A team request with slot roles gives them a slot of a role they qualify for."""
        roles = await self._claimable_roles(request_id, who.subject)
        if roles is None:
            return await self._take(request_id, who.subject, lc.claim)
        pinned, allowed = roles

        def command(m: lc.Match, c: Candidate, now: datetime) -> lc.Result:
            return lc.claim(lc.with_roles(m, pinned), c, now, allowed)

        return await self._take(request_id, who.subject, command)

    async def _claimable_roles(
        self, request_id: str, volunteer_id: str
    ) -> tuple[tuple[str, ...], teams.Roles] | None:
        """For a team request whose service type has slot roles: the role of each slot and
        the roles this volunteer qualifies for (`policy.ineligibility` per role); else None."""
        doc = await self._decisions.get(request_id)
        vol = self._index.get(volunteer_id)
        if doc is None or vol is None or "posted" not in doc or "lifecycle" not in doc:
            return None
        request = RequestPosted.model_validate(doc["posted"])
        service = self._service_types.get(request.service_type_id)
        if service is None or not service.slot_roles or doc["lifecycle"].get("mode") != "team":
            return None
        d = haversine_km(request.location.lat, request.location.lon, vol.home.lat, vol.home.lon)
        load = self._loads.cached().get(vol.id, Load())
        services = teams.services_by_role(service, request.slots)
        reasons = teams.role_reasons(vol, request, services, load, d)
        return teams.roles_by_slot(service), teams.eligible_roles(reasons)

    async def assign_by_coordinator(
        self, who: Principal, request_id: str, volunteer_id: str
    ) -> lc.Match:
        """A coordinator puts a volunteer on a free slot. With slot roles, the lowest free slot
        of a role whose requirements the volunteer holds: none such role -> 422
        `ineligible`; their roles' slots all taken -> 409 `no_slot`."""
        doc = await self._decisions.get(request_id)
        if doc is None:
            raise NotFound(f"no match for request {request_id!r}")
        if who.township and not who.has("admin") and doc.get("township_id") != who.township:
            raise NotFound(f"no match for request {request_id!r}")  # not in their township
        roles = self._coordinator_roles(doc, volunteer_id)
        if roles is None:
            return await self._take(request_id, volunteer_id, lc.assign)
        pinned, allowed = roles
        if not allowed:
            raise Unprocessable(
                f"{volunteer_id} lacks the skills or certifications of every role of this request",
                code="ineligible",
            )

        def command(m: lc.Match, c: Candidate, now: datetime) -> lc.Result:
            return lc.assign(lc.with_roles(m, pinned), c, now, 1, allowed)

        return await self._take(request_id, volunteer_id, command)

    def _coordinator_roles(
        self, doc: dict[str, Any], volunteer_id: str
    ) -> tuple[tuple[str, ...], teams.Roles] | None:
        """For a request with slot roles (pinned on its match, or its service type's): the
        role of each slot and the roles whose skills and certifications the volunteer holds
        (`teams.qualified_roles`; distance, availability and the like stay the
        coordinator's call, as for requests without roles). None without roles."""
        vol = self._index.get(volunteer_id)
        if vol is None or "posted" not in doc or "lifecycle" not in doc:
            return None
        request = RequestPosted.model_validate(doc["posted"])
        service = self._service_types.get(request.service_type_id)
        if service is None:
            return None
        pinned = tuple(doc["lifecycle"].get("slot_roles") or ()) or teams.roles_by_slot(service)
        if not pinned:
            return None
        services = teams.services_by_role(service, request.slots)
        return pinned, teams.qualified_roles(vol, services)

    async def _take(
        self,
        request_id: str,
        volunteer_id: str,
        command: Callable[[lc.Match, Candidate, datetime], lc.Result],
    ) -> lc.Match:
        vol = self._index.get(volunteer_id)
        doc = await self._decisions.get(request_id)
        if vol is None or doc is None or "posted" not in doc:
            raise NotFound(f"no open slot of request {request_id!r} for {volunteer_id!r}")
        request = RequestPosted.model_validate(doc["posted"])
        d = haversine_km(request.location.lat, request.location.lon, vol.home.lat, vol.home.lon)
        candidate = self._index.candidate(vol, request, self._loads.cached().get(vol.id, Load()), d)
        now = datetime.now(UTC)
        return await self._with_capacity(
            vol.id, candidate.volunteer.capacity, request_id, lambda m: command(m, candidate, now)
        )

    async def _with_capacity(
        self, volunteer_id: str, capacity: int, request_id: str, transition: Transition
    ) -> lc.Match:
        """Take the volunteer's capacity, then apply the transition; if the transition fails,
        give back only what this call took (a volunteer already holding the request — a
        repeated or double-tapped accept or claim — keeps it)."""
        reservation = await self._loads.reserve(volunteer_id, request_id, capacity)
        if not reservation:
            raise Conflict("no free capacity for another assignment", code="no_capacity")
        try:
            return await self._apply(request_id, transition)
        except Exception:
            await self._give_back(volunteer_id, request_id, reservation)
            raise

    async def _give_back(
        self, volunteer_id: str, request_id: str, reservation: Reservation
    ) -> None:
        """After a lost transition: release the unit only if this call took it and the
        volunteer is not on the match anyway (a racing attempt of the same pair won with the
        unit this call took; one hold per volunteer and request serves both)."""
        if reservation is not Reservation.TAKEN:
            return
        doc = await self._decisions.get(request_id)
        if doc is not None and "lifecycle" in doc:
            live = decode(doc["lifecycle"]).live_assignments
            if volunteer_id in {a.volunteer_id for a in live}:
                return
        await self._loads.release(volunteer_id, request_id)

    async def on_offer_timer(self, request_id: str) -> None:
        """An offer's time ran out: expire every due open offer, then offer the next."""
        now = datetime.now(UTC)
        await self._apply(request_id, _expire_due(now))
        await self.offer_next(request_id)

    # ---- commands --------------------------------------------------------------------------

    async def check_in(
        self, who: Principal, request_id: str, assignment_id: str, code: str
    ) -> lc.Match:
        now = datetime.now(UTC)
        return await self._apply(
            request_id, lambda m: lc.check_in(m, assignment_id, who.subject, code, now)
        )

    async def check_out(self, who: Principal, request_id: str, assignment_id: str) -> lc.Match:
        now = datetime.now(UTC)
        return await self._apply(
            request_id, lambda m: lc.check_out(m, assignment_id, who.subject, now)
        )

    async def report_no_show(self, who: Principal, request_id: str, assignment_id: str) -> lc.Match:
        """A coordinator reports that the volunteer did not come; the slot is offered to the
        next eligible volunteer at once (direct mode)."""
        if not who.is_staff:
            raise Forbidden("only a coordinator reports a no-show")
        now = datetime.now(UTC)
        match = await self._apply(
            request_id, lambda m: lc.report_no_show(m, assignment_id, now, "coordinator")
        )
        return await self.refill(request_id) or match

    async def on_request_cancelled(self, event: RequestCancelled) -> None:
        doc = await self._decisions.get(event.request_id)
        if doc is None or "lifecycle" not in doc:
            return  # cancelled before any assignment: nothing to release
        match = decode(doc["lifecycle"])
        if match.state not in lc.FINAL:  # else redelivered, or completed before the cancel
            await self._apply(
                event.request_id, lambda m: lc.cancel(m, event.by, event.cancelled_at)
            )
        await self._release_if_ended(event.request_id)

    async def release_capacity(self, event: AssignmentCancelled | AssignmentCompleted) -> None:
        await self._loads.release(event.volunteer_id, event.request_id)
        await self._release_if_ended(event.request_id)

    async def _release_if_ended(self, request_id: str) -> None:
        """Nobody holds capacity for an ended request: this also frees a unit left by an
        attempt that crashed between its reservation and its transition (ADR 0006)."""
        doc = await self._decisions.get(request_id)
        if doc is not None and "lifecycle" in doc:
            await self._release_holds(request_id, decode(doc["lifecycle"]))

    async def _release_holds(self, request_id: str, match: lc.Match) -> None:
        if match.state not in lc.FINAL:
            return
        # (an unfulfilled request may keep volunteers who still come: they keep their unit)
        serving = {a.volunteer_id for a in match.live_assignments if a.status != "completed"}
        for volunteer_id in await self._loads.holders_of(request_id):
            if volunteer_id not in serving:
                await self._loads.release(volunteer_id, request_id)

    async def refill(self, request_id: str) -> lc.Match | None:
        """Fill free slots of a direct-mode match with the best eligible volunteers who have
        not served (or failed to serve) this request."""
        doc = await self._decisions.get(request_id)
        if doc is None or "lifecycle" not in doc or "posted" not in doc:
            return None
        request = RequestPosted.model_validate(doc["posted"])
        service = self._service_types.get(request.service_type_id)
        match = decode(doc["lifecycle"])
        if service is None or not match.free_slots or match.state in lc.NOT_MATCHING:
            return None
        tried = {a.volunteer_id for a in match.assignments}
        fresh = self._fresh(request, service, tried, len(match.free_slots) + 5)
        for candidate in fresh:
            vid = candidate.volunteer.id
            reservation = await self._loads.reserve(vid, request_id, candidate.volunteer.capacity)
            if not reservation:
                continue
            try:
                return await self._apply(
                    request_id, _assign_to(candidate, datetime.now(UTC), len(fresh))
                )
            except (Conflict, NotFound):
                await self._give_back(vid, request_id, reservation)  # the match changed
                return None
        return None

    def _fresh(
        self,
        request: RequestPosted,
        service: ServiceTypeRecord,
        excluded: set[str],
        needed: int,
    ) -> list[Candidate]:
        """The best eligible volunteers not in `excluded`, best first, at least `needed` of
        them when there are that many (the index's best-first search, widened as needed)."""
        k = needed + len(excluded) + 5
        while True:
            found = self._index.best(request, service, self._loads.cached(), k)
            fresh = [c for c in found.candidates if c.volunteer.id not in excluded]
            if len(fresh) >= needed or len(found.candidates) < k:
                return fresh
            k *= 4

    # ---- for the pooled modes (teams, trips, batch) ----------------------------------------

    async def apply(self, request_id: str, transition: Transition) -> lc.Match:
        """The compare-and-set loop below, for use cases of other modules (pooled modes,
        review, escalation)."""
        return await self._apply(request_id, transition)

    async def apply_holding(
        self, request_id: str, holds: list[tuple[str, int]], transition: Transition
    ) -> lc.Match:
        """Take every volunteer's capacity (guarded updates), then apply the transition once;
        if any reservation or the transition fails, give back only what this call took."""
        taken: list[tuple[str, Reservation]] = []
        try:
            for volunteer_id, capacity in holds:
                reservation = await self._loads.reserve(volunteer_id, request_id, capacity)
                if not reservation:
                    raise Conflict(f"{volunteer_id} has no free capacity", code="no_capacity")
                taken.append((volunteer_id, reservation))
            return await self._apply(request_id, transition)
        except Exception:
            for volunteer_id, reservation in taken:
                await self._give_back(volunteer_id, request_id, reservation)
            raise

    # ---- the compare-and-set loop ----------------------------------------------------------

    async def _apply(self, request_id: str, transition: Transition) -> lc.Match:
        for _ in range(MAX_RACES):
            doc = await self._decisions.get(request_id)
            if doc is None or "lifecycle" not in doc:
                raise NotFound(f"no assignment for request {request_id!r}")
            before = decode(doc["lifecycle"])
            try:
                match, events = transition(before)
            except lc.LifecycleError as exc:
                raise problem_of(exc) from exc
            if not events and match == before:
                return match  # a no-op (a cancellation without assignments still is a change)
            entries = [outbox_entry(e, SOURCE) for e in events]
            if await self._decisions.save_lifecycle(request_id, doc["_v"], encode(match), entries):
                self._on_events()
                if before.state not in lc.FINAL:  # it just ended (unfulfilled, completed...)
                    await self._release_holds(request_id, match)
                return match
        raise Conflict(f"request {request_id} is changing too fast; retry")

    # ---- review, escalation, reassignment (ADR 0009) ----------------------------------------

    def _candidates(
        self,
        request: RequestPosted,
        service: ServiceTypeRecord,
        excluded: set[str],
        needed: int,
        match: lc.Match,
    ) -> list[Candidate]:
        """`_fresh`, or with the radius widened by the escalation ladder a pass over every
        volunteer with each radius multiplied (escalation is rare; the index has no factor)."""
        if match.radius_factor <= 1.0:
            return self._fresh(request, service, excluded, needed)
        found = widened_candidates(
            self._index.all(), request, service, self._loads.cached(), match.radius_factor
        )
        return [c for c in found if c.volunteer.id not in excluded]

    async def _widened(
        self,
        request: RequestPosted,
        service: ServiceTypeRecord,
        excluded: set[str],
        match: lc.Match,
    ) -> tuple[lc.Match, list[Candidate]]:
        """Nobody left within the radius: widen step by step (each a RequestEscalated
        wider_radius) until somebody is found or the ladder has no wider radius left."""
        fresh: list[Candidate] = []
        while not fresh and self.widen is not None:
            widened = await self.widen(request.request_id)
            if widened is None:
                break
            match = widened
            fresh = self._candidates(request, service, excluded, len(match.free_slots), match)
        return match, fresh

    async def _open(
        self, request_id: str
    ) -> tuple[lc.Match, RequestPosted, ServiceTypeRecord | None] | None:
        """The match, its request and service type; None unless it has a match that may
        still take volunteers (the service type is None if the catalog dropped it)."""
        doc = await self._decisions.get(request_id)
        if doc is None or "lifecycle" not in doc or "posted" not in doc:
            return None
        match = decode(doc["lifecycle"])
        if match.state in lc.NOT_MATCHING:
            return None
        request = RequestPosted.model_validate(doc["posted"])
        return match, request, self._service_types.get(request.service_type_id)

    async def _within_cap(self, candidates: list[Candidate], needed: int) -> list[Candidate]:
        """The first `needed` candidates, best first, who have not had their daily number of
        offers and invitations yet; each one kept counts one (an atomic increment)."""
        if self.offer_cap is None:
            return candidates
        day = datetime.now(LOCAL).date().isoformat()
        kept: list[Candidate] = []
        for c in candidates:
            if len(kept) >= needed:
                break
            if await self.offer_cap.take(c.volunteer.id, day):
                kept.append(c)
        return kept

    async def invite_more(self, request_id: str) -> lc.Match | None:
        """Open claim after a wider radius: invite the newly eligible volunteers too."""
        loaded = await self._open(request_id)
        if loaded is None:
            return None
        match, request, service = loaded
        if service is None or not match.free_slots:
            return match
        more = self._candidates(request, service, set(match.invited), service.claim_invites, match)
        more = await self._within_cap(more, service.claim_invites)
        if not more:
            return match
        invited = [c.volunteer.id for c in more[: service.claim_invites]]
        now = datetime.now(UTC)
        return await self._apply(request_id, lambda m: lc.open_claim(m, invited, now))

    async def fill_direct(self, request_id: str) -> lc.Match | None:
        """Direct mode after a review or a wider radius: assign the best eligible volunteers
        to every free slot (capacity first, as always)."""
        loaded = await self._open(request_id)
        if loaded is None:
            return None
        match, request, service = loaded
        if service is None:
            return match
        tried = {a.volunteer_id for a in match.assignments}
        fresh = self._candidates(request, service, tried, len(match.free_slots) + 5, match)
        for candidate in fresh:
            if not match.free_slots:
                break
            vid = candidate.volunteer.id
            reservation = await self._loads.reserve(vid, request_id, candidate.volunteer.capacity)
            if not reservation:
                continue
            try:
                match = await self._apply(
                    request_id, _assign_to(candidate, datetime.now(UTC), len(fresh))
                )
            except (Conflict, NotFound):
                await self._give_back(vid, request_id, reservation)
                break
        return match

    async def reassign(
        self, who: Principal, request_id: str, assignment_id: str, volunteer_id: str
    ) -> lc.Match:
        """A coordinator gives an assignment to another volunteer (township scope)."""
        doc = await self._decisions.get(request_id)
        if doc is None or not in_scope(who, doc):
            raise NotFound(f"no match for request {request_id!r}")

        roles = self._coordinator_roles(doc, volunteer_id)

        def command(m: lc.Match, c: Candidate, now: datetime) -> lc.Result:
            if roles is not None:  # the slot keeps its role: the newcomer must fit it
                m = lc.with_roles(m, roles[0])
                a = next((x for x in m.live_assignments if x.assignment_id == assignment_id), None)
                if a is not None and m.role_of(a.slot) not in roles[1]:
                    raise Unprocessable(
                        f"{volunteer_id} lacks the skills or certifications of the slot's role "
                        f"{m.role_of(a.slot)!r}",
                        code="ineligible",
                    )
            return lc.reassign(m, assignment_id, c, now)

        return await self._take(request_id, volunteer_id, command)


class OfferCap(Protocol):
    async def take(self, volunteer_id: str, day: str) -> bool:
        """Count one offer for the volunteer on this local day, unless the cap is reached."""
        ...


def in_scope(who: Principal, doc: dict[str, Any]) -> bool:
    """A township coordinator acts only in their township; county staff and admins anywhere."""
    if not who.township or who.has("admin"):
        return True
    township = doc.get("township_id") or (doc.get("posted") or {}).get("township_id")
    return bool(township == who.township)


def encode(match: lc.Match) -> dict[str, Any]:
    """The stored match with its review and escalation (the codec does not know them yet)."""
    doc = encode_base(match)
    doc.update(
        review=match.review,
        escalation_step=match.escalation_step,
        escalation_level=match.escalation_level,
        radius_factor=match.radius_factor,
        state=match.state.value,
        slot_roles=list(match.slot_roles),
    )
    return doc


def decode(doc: dict[str, Any]) -> lc.Match:
    return replace(
        decode_base(doc),
        review=doc.get("review") or "",
        escalation_step=doc.get("escalation_step") or 0,
        escalation_level=doc.get("escalation_level"),
        radius_factor=doc.get("radius_factor") or 1.0,
        slot_roles=tuple(doc.get("slot_roles") or ()),
    )


def problem_of(exc: lc.LifecycleError) -> Exception:
    if exc.code == "not_found":
        return NotFound(str(exc))
    if exc.code in ("wrong_code", "too_early"):
        return Unprocessable(str(exc), code=exc.code)
    return Conflict(str(exc), code=exc.code)


def _assign_to(candidate: Candidate, now: datetime, considered: int) -> Transition:
    def transition(match: lc.Match) -> lc.Result:
        return lc.assign(match, candidate, now, considered)

    return transition


def _offer_free_slots(fresh: list[Candidate], now: datetime, ttl: timedelta) -> Transition:
    def transition(match: lc.Match) -> lc.Result:
        events: list[Event] = []
        pool = [c for c in fresh if c.volunteer.id not in match.involved()]
        for candidate in pool[: len(match.free_slots)]:
            match, produced = lc.make_offer(match, candidate, now, ttl)
            events += produced
        return match, events

    return transition


def _expire_due(now: datetime) -> Transition:
    def transition(match: lc.Match) -> lc.Result:
        events: list[Event] = []
        for offer in match.open_offers:
            if offer.expires_at <= now:
                match, produced = lc.expire_offer(match, offer.offer_id, now)
                events += produced
        return match, events

    return transition


def _give_up(now: datetime) -> Transition:
    def transition(match: lc.Match) -> lc.Result:
        if match.open_offers or match.live_assignments or match.state in lc.FINAL:
            return match, []
        return lc.give_up(match, "no_candidates", now)

    return transition

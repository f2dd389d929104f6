"""Commands on a match after the decision: check-in, check-out, no-show, cancellation.

Each command reads the decision document, applies a pure transition (`domain.lifecycle`) and
writes the new match with its events in one compare-and-set on the document's version; a
lost race re-reads and re-applies, so concurrent commands on one request serialise. Capacity
is given back by `release_capacity`, which consumes matching's own `AssignmentCancelled` and
`AssignmentCompleted` events: at least once, and idempotent (a guarded update).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

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

from ..adapters.match_codec import decode, encode
from ..domain import lifecycle as lc
from ..domain.geo import haversine_km
from ..domain.index import VolunteerIndex
from ..domain.policy import Candidate, Load, score
from .ports import DecisionStore, LoadStore, Timers

SOURCE = "zhumeng/matching"
MAX_RACES = 20
OFFER_TIMER = "offer-expiry"
COOL_OFF = timedelta(hours=6)  # a decliner is not offered the same request again for this long
Transition = Callable[[lc.Match], lc.Result]


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

    # ---- auto-offer cascade ----------------------------------------------------------------

    async def offer_next(self, request_id: str) -> lc.Match | None:
        """Offer every free slot to the next best eligible volunteer not offered yet. With
        nobody left and nobody assigned, the request ends unfulfilled."""
        doc = await self._decisions.get(request_id)
        if doc is None or "lifecycle" not in doc or "posted" not in doc:
            return None
        match = decode(doc["lifecycle"])
        if match.state in lc.FINAL or not match.free_slots:
            return match
        request = RequestPosted.model_validate(doc["posted"])
        service = self._service_types.get(request.service_type_id)
        if service is None:
            return match
        now = datetime.now(UTC)
        ttl = timedelta(minutes=service.offer_ttl_min)
        tried = {o.volunteer_id for o in match.offers} | {a.volunteer_id for a in match.assignments}
        fresh = self._fresh(request, service, tried, len(match.free_slots))
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
        total, parts = score(vol, request, self._loads.cached().get(vol.id, Load()), d)
        candidate = Candidate(vol, d, total, parts)
        now = datetime.now(UTC)
        match = await self._with_capacity(
            vol.id,
            vol.capacity,
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
        if match.invited or match.state in lc.FINAL:
            return match  # invited already
        request = RequestPosted.model_validate(doc["posted"])
        service = self._service_types.get(request.service_type_id)
        if service is None:
            return match
        best = self._fresh(request, service, set(), service.claim_invites)
        now = datetime.now(UTC)
        if not best:
            return await self._apply(request_id, _give_up(now))
        invited = [c.volunteer.id for c in best[: service.claim_invites]]
        return await self._apply(request_id, lambda m: lc.open_claim(m, invited, now))

    async def claim(self, who: Principal, request_id: str) -> lc.Match:
        """An invited volunteer takes a free slot: capacity first (guarded update), then the
        slot (compare-and-set on the request's document); losing either releases the other."""
        return await self._take(request_id, who.subject, lc.claim)

    async def assign_by_coordinator(
        self, who: Principal, request_id: str, volunteer_id: str
    ) -> lc.Match:
        doc = await self._decisions.get(request_id)
        if doc is None:
            raise NotFound(f"no match for request {request_id!r}")
        if who.township and not who.has("admin") and doc.get("township_id") != who.township:
            raise NotFound(f"no match for request {request_id!r}")  # not in their township
        return await self._take(request_id, volunteer_id, lc.assign)

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
        total, parts = score(vol, request, self._loads.cached().get(vol.id, Load()), d)
        candidate = Candidate(vol, d, total, parts)
        now = datetime.now(UTC)
        return await self._with_capacity(
            vol.id, vol.capacity, request_id, lambda m: command(m, candidate, now)
        )

    async def _with_capacity(
        self, volunteer_id: str, capacity: int, request_id: str, transition: Transition
    ) -> lc.Match:
        """Take the volunteer's capacity, then apply the transition; if the transition fails,
        give back only what this call took (a volunteer already holding the request — a
        repeated accept or claim — keeps it)."""
        held_before = volunteer_id in await self._loads.holders_of(request_id)
        if not await self._loads.reserve(volunteer_id, request_id, capacity):
            raise Conflict("no free capacity for another assignment", code="no_capacity")
        try:
            return await self._apply(request_id, transition)
        except Exception:
            if not held_before:
                await self._loads.release(volunteer_id, request_id)
            raise

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
        if match.state in lc.FINAL:
            return  # redelivered, or completed before the cancellation arrived
        await self._apply(event.request_id, lambda m: lc.cancel(m, event.by, event.cancelled_at))

    async def release_capacity(self, event: AssignmentCancelled | AssignmentCompleted) -> None:
        await self._loads.release(event.volunteer_id, event.request_id)

    async def refill(self, request_id: str) -> lc.Match | None:
        """Fill free slots of a direct-mode match with the best eligible volunteers who have
        not served (or failed to serve) this request."""
        doc = await self._decisions.get(request_id)
        if doc is None or "lifecycle" not in doc or "posted" not in doc:
            return None
        request = RequestPosted.model_validate(doc["posted"])
        service = self._service_types.get(request.service_type_id)
        match = decode(doc["lifecycle"])
        if service is None or not match.free_slots or match.state in lc.FINAL:
            return None
        tried = {a.volunteer_id for a in match.assignments}
        fresh = self._fresh(request, service, tried, len(match.free_slots) + 5)
        for candidate in fresh:
            vid = candidate.volunteer.id
            if not await self._loads.reserve(vid, request_id, candidate.volunteer.capacity):
                continue
            try:
                return await self._apply(
                    request_id, _assign_to(candidate, datetime.now(UTC), len(fresh))
                )
            except (Conflict, NotFound):
                await self._loads.release(vid, request_id)  # the match changed meanwhile
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
        """The compare-and-set loop below, for use cases of other modules."""
        return await self._apply(request_id, transition)

    async def apply_holding(
        self, request_id: str, holds: list[tuple[str, int]], transition: Transition
    ) -> lc.Match:
        """Take every volunteer's capacity (guarded updates), then apply the transition once;
        if any reservation or the transition fails, give back only what this call took."""
        held_before = set(await self._loads.holders_of(request_id))
        taken: list[str] = []
        try:
            for volunteer_id, capacity in holds:
                if not await self._loads.reserve(volunteer_id, request_id, capacity):
                    raise Conflict(f"{volunteer_id} has no free capacity", code="no_capacity")
                taken.append(volunteer_id)
            return await self._apply(request_id, transition)
        except Exception:
            for volunteer_id in taken:
                if volunteer_id not in held_before:
                    await self._loads.release(volunteer_id, request_id)
            raise

    # ---- the compare-and-set loop ----------------------------------------------------------

    async def _apply(self, request_id: str, transition: Transition) -> lc.Match:
        for _ in range(MAX_RACES):
            doc = await self._decisions.get(request_id)
            if doc is None or "lifecycle" not in doc:
                raise NotFound(f"no assignment for request {request_id!r}")
            try:
                match, events = transition(decode(doc["lifecycle"]))
            except lc.LifecycleError as exc:
                raise problem_of(exc) from exc
            if not events:
                return match
            entries = [outbox_entry(e, SOURCE) for e in events]
            if await self._decisions.save_lifecycle(request_id, doc["_v"], encode(match), entries):
                self._on_events()
                return match
        raise Conflict(f"request {request_id} is changing too fast; retry")


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

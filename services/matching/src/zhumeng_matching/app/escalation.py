"""The SLA escalation ladder at work (ADR 0009): durable timers climb it, one rung each.

A request whose slots are not all filled `target_claim_min` after it was posted (or approved)
climbs `domain.escalation`'s ladder. Each rung runs from a durable timer (kind `escalation`,
payload: the rung the timer was armed after), so it survives restarts and runs once with two
replicas: the next timer is armed *before* the rung is written, the rung itself is a
compare-and-set on the match (`lc.escalate` is a no-op unless it is the next rung), and a
timer armed after an older rung finds the match moved on and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord
from zhumeng_kit.timers import Timer
from zhumeng_kit.views import View

from ..domain import lifecycle as lc
from ..domain.escalation import Climb, Ladder, Stop, Wait, decide
from .lifecycle_service import LifecycleService, Transition, decode
from .ports import DecisionStore, Timers

ESCALATION_TIMER = "escalation"
WINDOW_ONLY = -1  # a timer armed for the appointment window only (a request in review)
log = logging.getLogger("zhumeng.matching.escalation")
LadderOf = Callable[[ServiceTypeRecord], Ladder]


def ladder_factory(minute_s: float, radius_factors: tuple[float, ...], office: Any) -> LadderOf:
    """A service type's ladder: its target time to claim as the gap between rungs, with a
    minute lasting `minute_s` seconds (60 in service; a few in tests)."""

    def ladder_of(service: ServiceTypeRecord) -> Ladder:
        gap = timedelta(seconds=service.target_claim_min * minute_s)
        return Ladder(gap, radius_factors, office)

    return ladder_of


class EscalationService:
    def __init__(
        self,
        lifecycle: LifecycleService,
        decisions: DecisionStore,
        service_types: View[ServiceTypeRecord],
        timers: Timers,
        ladder_of: LadderOf,
    ) -> None:
        self._lifecycle = lifecycle
        self._decisions = decisions
        self._service_types = service_types
        self._timers = timers
        self._ladder_of = ladder_of

    async def arm(self, request: RequestPosted, since: datetime) -> None:
        """Start the clock: the first rung is due one target time after `since`."""
        service = self._service_types.get(request.service_type_id)
        if service is None:
            return
        due = self._ladder_of(service).first_due(since, request.window.start)
        await self._schedule(request.request_id, 0, due)

    async def arm_window(self, request: RequestPosted) -> None:
        """A request in review ends unfulfilled if the appointment starts before approval."""
        await self._timers.schedule(
            ESCALATION_TIMER,
            f"{request.request_id}:window",
            request.window.start,
            {"request_id": request.request_id, "step": WINDOW_ONLY},
        )

    async def on_timer(self, timer: Timer) -> None:
        await self.run(timer.payload["request_id"], int(timer.payload.get("step", 0)))

    async def run(self, request_id: str, armed_after: int, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        loaded = await self._load(request_id)
        if loaded is None:
            return
        match, request, ladder = loaded
        if match.state in lc.FINAL or len(match.live_assignments) >= match.slots:
            return  # filled, cancelled or over meanwhile: nothing to escalate
        if match.state is lc.State.IN_REVIEW or armed_after != match.escalation_step:
            if now >= request.window.start and not match.live_assignments:
                await self._give_up(request_id, "window_passed", now)
            return  # a timer of an older rung, or still in review
        anyone = bool(match.live_assignments)
        decision = decide(ladder, match.escalation_step, now, request.window.start, anyone)
        if isinstance(decision, Wait):
            await self._schedule(request_id, armed_after, decision.until)
        elif isinstance(decision, Stop):
            if decision.reason is not None:
                await self._give_up(request_id, decision.reason, now)
        else:
            await self._climb(request, match, decision, now)

    async def widen_now(self, request_id: str) -> lc.Match | None:
        """The cascade found nobody left: climb the next wider_radius rung at once (None when
        the next rung is not a wider radius)."""
        loaded = await self._load(request_id)
        if loaded is None:
            return None
        match, request, ladder = loaded
        rungs = ladder.rungs
        step = match.escalation_step
        if step >= len(rungs) or rungs[step].level != "wider_radius":
            return None
        now = datetime.now(UTC)
        rung = rungs[step]
        climb = Climb(
            step + 1, rung.level, rung.radius_factor, ladder.first_due(now, request.window.start)
        )
        await self._schedule(request_id, climb.step, climb.next_at)
        return await self._lifecycle.apply(request_id, _rung(request, climb, now))

    async def _climb(
        self, request: RequestPosted, match: lc.Match, climb: Climb, now: datetime
    ) -> None:
        rid = request.request_id
        await self._schedule(rid, climb.step, climb.next_at)  # armed before the rung is written
        after = await self._lifecycle.apply(rid, _rung(request, climb, now))
        if after.escalation_step != climb.step:
            return
        log.info("request %s escalated: step %d %s", rid, climb.step, climb.level)
        if climb.level == "wider_radius":
            await self._search_again(after)

    async def _search_again(self, match: lc.Match) -> None:
        """A wider radius: look again in the request's own mode."""
        rid = match.request_id
        if match.mode == "auto_offer":
            await self._lifecycle.offer_next(rid)
        elif match.mode == "open_claim":
            await self._lifecycle.invite_more(rid)
        else:
            await self._lifecycle.fill_direct(rid)

    async def _give_up(
        self,
        request_id: str,
        reason: Literal["window_passed", "escalation_exhausted"],
        now: datetime,
    ) -> None:
        def transition(m: lc.Match) -> lc.Result:
            if m.state in lc.FINAL or m.live_assignments:
                return m, []
            return lc.give_up(m, reason, now)

        await self._lifecycle.apply(request_id, transition)

    async def _schedule(self, request_id: str, step: int, due: datetime) -> None:
        # one key per rung and due time: a re-run of the same handler arms the same timer
        key = f"{request_id}:s{step}:{int(due.timestamp())}"
        await self._timers.schedule(
            ESCALATION_TIMER, key, due, {"request_id": request_id, "step": step}
        )

    async def _load(self, request_id: str) -> tuple[lc.Match, RequestPosted, Ladder] | None:
        doc = await self._decisions.get(request_id)
        if doc is None or "lifecycle" not in doc or "posted" not in doc:
            return None
        request = RequestPosted.model_validate(doc["posted"])
        service = self._service_types.get(request.service_type_id)
        if service is None:
            # not (yet) in the catalog view: fail, so the timer is tried again rather than the
            # ladder silently stopping
            raise LookupError(f"service type {request.service_type_id} not in the catalog view")
        return decode(doc["lifecycle"]), request, self._ladder_of(service)


def _rung(request: RequestPosted, climb: Climb, now: datetime) -> Transition:
    def transition(m: lc.Match) -> lc.Result:
        return lc.escalate(
            m,
            climb.step,
            climb.level,
            climb.radius_factor,
            request.township_id,
            climb.next_at,
            now,
        )

    return transition

"""Batch mode for routine requests: posted requests of a batch-mode service type wait in a
pool; every window one min-cost assignment over their open slots and the eligible volunteers
(`domain.batch.assign_batch`) decides, and greedy on the same data is computed beside it.

* **The window.** The first request of a service type that finds no open window opens one
  (`batch_windows`, one atomic upsert) and arms a durable timer `batch-window:<type>:<n>`
  due when it closes; later requests join it (scheduling the same timer is idempotent). The
  timer is leased by one replica at a time, so a window runs once however many replicas
  there are (ADR 0010).
* **The run** closes the window first (a request posted from then on opens the next), reads
  the pending requests with a slot still open (none filled yet, or partially assigned by an
  earlier window), turns each into one row per open slot (with its role, when the service
  type has slot roles; who serves the request already is not eligible again), runs batch
  and greedy on one snapshot of the loads, and assigns the batch's pairs one by one: the
  volunteer's capacity with the guarded update, then the request's match with its
  compare-and-set (`VolunteerAssigned(mode="batch")`), which takes the lowest free slot of
  the pair's role. A pair that loses either (capacity taken meanwhile, request cancelled,
  slot filled by another run) is skipped; the request stays pending (partially assigned if
  some of its slots were filled) and a next window is armed while any slot is still open.
* **Idempotent**: a run repeated after a crash finds the slots it already filled no longer
  open, and the match's compare-and-set never puts one volunteer on two slots of a request
  nor more volunteers than slots; the run's record (one document per window) is overwritten
  and counts its executions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord
from zhumeng_kit.problems import Conflict, NotFound
from zhumeng_kit.views import View

from ..adapters.batch_store import MongoBatchStore, PendingDecisions
from ..domain import lifecycle as lc
from ..domain.batch import Opening, assign_batch, assign_greedy
from ..domain.index import VolunteerIndex
from ..domain.policy import Candidate
from ..domain.teams import Role, roles_by_slot
from .lifecycle_service import LifecycleService, Transition, decode
from .ports import Doc, LoadStore, Timers

BATCH_STATE = "batching"  # the decision document's state while a request waits for a window
BATCH_TIMER = "batch-window"
log = logging.getLogger("zhumeng.matching.batch")


class FreshLoads(LoadStore, Protocol):
    async def warm(self) -> None:
        """Re-read every volunteer's load (the snapshot a run decides on)."""
        ...


class BatchRunner:
    state = BATCH_STATE

    def __init__(
        self,
        store: MongoBatchStore,
        pending: PendingDecisions,
        index: VolunteerIndex,
        service_types: View[ServiceTypeRecord],
        loads: FreshLoads,
        lifecycle: LifecycleService,
        timers: Timers,
        window_s: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._clock = clock
        self._store = store
        self._pending = pending
        self._index = index
        self._service_types = service_types
        self._loads = loads
        self._lifecycle = lifecycle
        self._timers = timers
        self._window_s = window_s

    # ---- the matcher's hook for batch-mode requests -----------------------------------------

    def takes(self, request: RequestPosted) -> bool:
        return True  # any number of slots: one row per open slot in the window's run

    async def opened(self, request: RequestPosted) -> None:
        await self.arm(request.service_type_id)

    def window(self, service: ServiceTypeRecord) -> timedelta:
        """The service type's window, or the test setting in seconds for every type."""
        if self._window_s is not None:
            return timedelta(seconds=self._window_s)
        return timedelta(minutes=service.batch_window_min)

    async def arm(self, service_type_id: str) -> None:
        """Join the open window of the service type, or open one; its timer is armed again
        on every call (idempotent), so a crash between the two writes loses nothing."""
        service = self._service_types.get(service_type_id)
        if service is None:
            return
        w = await self._store.open_window(service_type_id, self._clock(), self.window(service))
        n = int(w["window_no"])
        await self._timers.schedule(
            BATCH_TIMER,
            f"{service_type_id}:{n}",
            w["due_at"],
            {"service_type_id": service_type_id, "window_no": n},
        )

    # ---- the run -----------------------------------------------------------------------------

    async def run(self, service_type_id: str, window_no: int) -> Doc:
        started = self._clock()
        await self._store.close_window(service_type_id, window_no)
        service = self._service_types.get(service_type_id)
        roles = roles_by_slot(service) if service is not None else ()
        requests: list[RequestPosted] = []
        openings: dict[str, Opening] = {}
        for d in await self._pending.unfilled(BATCH_STATE, service_type_id):
            r = RequestPosted.model_validate(d["posted"])
            match = lc.with_roles(decode(d["lifecycle"]), roles)
            if r.window.end <= started or not match.free_slots:
                continue
            requests.append(r)
            openings[r.request_id] = Opening(
                tuple((s, match.role_of(s)) for s in match.free_slots),
                frozenset(a.volunteer_id for a in match.assignments),  # served or tried it
            )
        run_id = f"{service_type_id}:{window_no}"
        open_slots = sum(len(o.slots) for o in openings.values())
        if service is None or not requests:
            record: Doc = {"service_type_id": service_type_id, "window_no": window_no}
            record |= {"started_at": started, "requests": [r.request_id for r in requests]}
            await self._store.record_run(run_id, {**record, "assigned": [], "skipped": []})
            return record
        await self._loads.warm()
        loads = dict(self._loads.cached())
        services = {service.id: service}
        t0 = time.perf_counter()
        batch = assign_batch(requests, services, self._index, loads, openings=openings)
        t1 = time.perf_counter()
        greedy = assign_greedy(requests, services, self._index, loads, openings=openings)
        t2 = time.perf_counter()
        assigned: list[Doc] = []
        skipped: list[str] = []
        for pair in batch.assignments:
            vol = self._index.get(pair.volunteer_id)
            if vol is None:
                skipped.append(pair.request_id)
                continue
            candidate = Candidate(vol, pair.distance_km, pair.score, pair.parts)
            transition = _assign(candidate, self._clock(), len(requests), roles, pair.role)
            try:
                match = await self._lifecycle.apply_holding(
                    pair.request_id, [(vol.id, vol.capacity)], transition
                )
            except (Conflict, NotFound):
                skipped.append(pair.request_id)  # its slot stays open for the next window
                await self._keep_hold(pair.request_id, vol.id, vol.capacity)
                continue
            slot = next(a.slot for a in match.live_assignments if a.volunteer_id == vol.id)
            assigned.append(
                {"request_id": pair.request_id, "volunteer_id": vol.id, "slot": slot}
                | ({"role": pair.role} if pair.role else {})
            )
        record = {
            "service_type_id": service_type_id,
            "window_no": window_no,
            "started_at": started,
            "finished_at": self._clock(),
            "requests": [r.request_id for r in requests],
            "open_slots": open_slots,
            "assigned": assigned,
            "skipped": skipped,
            "unassigned": batch.unassigned,
            "batch_cost": batch.total_cost,
            "batch_assigned": batch.assigned,
            "greedy_cost": greedy.total_cost,
            "greedy_assigned": greedy.assigned,
            "batch_ms": round((t1 - t0) * 1000, 3),
            "greedy_ms": round((t2 - t1) * 1000, 3),
        }
        await self._store.record_run(run_id, record)
        log.info(
            "batch %s: %d requests, %d open slots, %d assigned, cost %.4f (greedy %.4f)",
            run_id,
            len(requests),
            open_slots,
            len(assigned),
            batch.total_cost,
            greedy.total_cost,
        )
        if len(assigned) < open_slots:
            await self.arm(service_type_id)  # the rest waits for the next window
        return record

    async def _keep_hold(self, request_id: str, volunteer_id: str, capacity: int) -> None:
        """Two runs of one window (a lease that ran out while the first still ran) may pick
        the same pair. The capacity hold is one per (volunteer, request), so the losing run's
        `apply_holding` may have given back the winner's: the winner's assignment keeps it."""
        try:
            match = await self._lifecycle.apply(request_id, lambda m: (m, []))  # a read
        except NotFound:
            return
        if volunteer_id in {a.volunteer_id for a in match.live_assignments}:
            await self._loads.reserve(volunteer_id, request_id, capacity)


def _assign(
    candidate: Candidate, now: datetime, considered: int, roles: tuple[str, ...], role: Role
) -> Transition:
    """The pair's slot: the lowest free one of its role (roles pinned on the match first);
    without roles, the lowest free one."""

    def transition(match: lc.Match) -> lc.Result:
        match = lc.with_roles(match, roles)
        allowed = frozenset({role}) if match.slot_roles else None
        return lc.assign(match, candidate, now, considered, allowed)

    return transition

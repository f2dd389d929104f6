"""Durable timers (DESIGN §4): offer expiry, SLA escalation.

A timer is one document in the service's own database (collection ``timers``)::

    {_id: "<kind>:<key>", kind, key, state, due_at, payload, attempts,
     owner, lease_until, created_at, fired_at | failed_at | cancelled_at, last_error}

``state`` is ``pending`` → ``leased`` → ``fired`` (or back to ``pending`` with a backoff
``due_at`` after a handler error, ``failed`` after ``max_attempts``, ``cancelled`` by
:func:`cancel`). Only single-document atomic operations are used, so the same code runs on a
MongoDB replica set and the local server; expiry of old timers is done in code
(:func:`purge`), never by a TTL index.

Scheduling is idempotent by ``(kind, key)``: the ``_id`` is deterministic, so scheduling the
same timer twice keeps one document; scheduling it again with another ``due_at`` or payload
reschedules it while it is still ``pending``. A timer that is leased (its handler is running),
fired, failed or cancelled is final for its ``(kind, key)``: scheduling it again changes nothing
(a redelivered "schedule" event cannot resurrect a cancelled timer); to arm a new one use a new
key (e.g. ``f"{offer_id}:2"``).

A :class:`Scheduler` leases each due timer with one atomic ``find_one_and_update`` whose
filter is the lease condition (pending and due, or leased with an expired lease) and whose
update sets ``state: leased, owner, lease_until`` and increments ``attempts``. To keep that
cheap on a busy collection, one query fetches the ids of up to ``batch_size`` takeable timers
(oldest ``due_at`` first) and each is then leased by ``_id`` under the same condition; one that
another replica took meanwhile is skipped. (``lease_one()`` without an id is the single-query
form, sorted by ``due_at``.) After the handler for the timer's ``kind`` returns, the timer is
marked ``fired`` with an update conditional on its own lease (``owner`` and the lease's
``attempts`` number, a fencing token): a replica whose lease expired cannot complete, fail or
retry a timer that another replica took over. While a handler runs its lease is renewed
(heartbeat), so two live replicas never run one timer at the same time.

**Handlers must be idempotent.** "Fires once" holds for the handler's *effect*, not for its
invocation: a replica that crashes after the effect but before ``fired`` was written leaves
a lease that expires, and another replica runs the handler again. Write the outcome with a
conditional single-document update (``{"_id": offer, "state": "offered"} → expired``) and put
events in that document's outbox (:mod:`zhumeng_kit.outbox`); ``timer.id`` is stable across
attempts and may serve as the applied-marker (``consumer.not_applied(timer.id)``-style).

Wiring in a service's ``bootstrap.py``::

    from zhumeng_kit.timers import Scheduler, ensure_timer_indexes

    scheduler = Scheduler(runtime.db, {"offer-expiry": expire_offer})
    runtime.on_startup(lambda: ensure_timer_indexes(runtime.db))
    runtime.in_background(scheduler.run)

    # in a use case (or an idempotent event handler):
    await scheduler.schedule("offer-expiry", offer_id, due_at, {"request": request_id})
    await scheduler.cancel("offer-expiry", offer_id)

``Scheduler.schedule`` wakes the local loop when the timer is already due; otherwise every
replica polls (``poll_interval_s``, default 0.5 s), so a timer fires within about one poll
interval of its ``due_at``. Clocks: ``due_at`` and leases are compared with the replica's own
clock (like :class:`zhumeng_kit.outbox.Lease`); replicas need roughly synchronised clocks
(NTP), and ``lease_s`` must stay well above any clock skew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from .mongo import Doc

log = logging.getLogger("zhumeng.timers")

TIMERS = "timers"
_T = TypeVar("_T")

TimerState = Literal["pending", "leased", "fired", "failed", "cancelled"]
ScheduleResult = Literal[
    "scheduled",  # a new pending timer
    "rescheduled",  # the pending timer now has the given due_at/payload
    "unchanged",  # the pending timer already had them (a repeated call)
    "leased",  # not changed: its handler is running
    "fired",  # not changed: final
    "failed",  # not changed: final
    "cancelled",  # not changed: final
]
Outcome = Literal["fired", "retry", "failed", "lost"]
Clock = Callable[[], datetime]
TimerHandler = Callable[["Timer"], Awaitable[None]]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(dt: datetime) -> datetime:
    """Datetimes read by a client without ``tz_aware=True`` come back naive (they are UTC)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def timer_id(kind: str, key: str) -> str:
    if not kind or ":" in kind:
        raise ValueError(f"timer kind must be non-empty without ':' (got {kind!r})")
    return f"{kind}:{key}"


@dataclass(frozen=True, slots=True)
class Timer:
    """What a handler gets: one due timer, leased for this run."""

    id: str
    kind: str
    key: str
    due_at: datetime
    payload: Doc = field(default_factory=dict)
    attempts: int = 1  # this run's number: 1 on the first run, 2 on the first retry, …

    @classmethod
    def from_doc(cls, doc: Doc) -> Timer:
        return cls(
            id=str(doc["_id"]),
            kind=str(doc["kind"]),
            key=str(doc["key"]),
            due_at=_aware(doc["due_at"]),
            payload=dict(doc.get("payload") or {}),
            attempts=int(doc.get("attempts", 0)),
        )


def backoff_delay(attempts: int, base_s: float, cap_s: float) -> float:
    """Seconds to wait before the retry that follows failed attempt number ``attempts``."""
    return float(min(cap_s, base_s * 2 ** max(0, attempts - 1)))


def takeable(now: datetime) -> dict[str, Doc]:
    """By state, the condition under which a timer may be leased now: pending and due, or
    leased by an owner whose lease ran out (a crashed or stalled replica)."""
    return {
        "pending": {"state": "pending", "due_at": {"$lte": now}},
        "leased": {"state": "leased", "lease_until": {"$lt": now}},
    }


def lease_filter(now: datetime, kinds: list[str]) -> Doc:
    """Timers of these kinds that may be leased now."""
    return {"kind": {"$in": kinds}, "$or": list(takeable(now).values())}


def lease_update(owner: str, now: datetime, lease: timedelta) -> Doc:
    return {
        "$set": {"state": "leased", "owner": owner, "lease_until": now + lease, "leased_at": now},
        "$inc": {"attempts": 1},
    }


def own_lease(timer: Timer, owner: str) -> Doc:
    """The filter of every write a lease holder makes: it matches only while the lease is
    still this very lease (same owner, same attempt number)."""
    return {"_id": timer.id, "state": "leased", "owner": owner, "attempts": timer.attempts}


async def ensure_timer_indexes(db: AsyncDatabase[Doc], collection: str = TIMERS) -> None:
    await db[collection].create_index(
        [("state", ASCENDING), ("due_at", ASCENDING)], name="timers_due"
    )


async def schedule(
    db: AsyncDatabase[Doc],
    kind: str,
    key: str,
    due_at: datetime,
    payload: Doc | None = None,
    *,
    collection: str = TIMERS,
    clock: Clock = utcnow,
) -> ScheduleResult:
    """Create the timer ``(kind, key)`` or reschedule it while it is pending (one atomic
    upsert). Returns what happened; a leased/final timer is left as it is."""
    coll = db[collection]
    _id = timer_id(kind, key)
    update = {
        "$set": {"due_at": _aware(due_at), "payload": dict(payload or {})},
        "$setOnInsert": {"kind": kind, "key": key, "attempts": 0, "created_at": clock()},
    }
    for _ in range(10):
        try:
            # The filter's equalities (_id, state: pending) become fields of an inserted doc.
            res = await coll.update_one({"_id": _id, "state": "pending"}, update, upsert=True)
        except DuplicateKeyError:
            # The timer exists and is not pending (or a concurrent call just inserted it).
            doc = await coll.find_one({"_id": _id}, {"state": 1})
            if doc is None or doc.get("state") == "pending":
                continue
            state: ScheduleResult = doc["state"]
            return state
        if res.upserted_id is not None:
            return "scheduled"
        return "rescheduled" if res.modified_count else "unchanged"
    raise RuntimeError(f"timer {_id}: schedule kept racing with concurrent changes")


async def cancel(
    db: AsyncDatabase[Doc],
    kind: str,
    key: str,
    *,
    collection: str = TIMERS,
    clock: Clock = utcnow,
) -> TimerState | None:
    """Cancel a timer; returns the state it was in (``None``: no such timer).

    ``"pending"``: it will never run. ``"leased"``: its handler may be running right now (the
    handler's own conditional update decides whether its effect still applies); it will not be
    retried nor taken over. Final states are left unchanged. The document stays as a tombstone
    so that a late ``schedule`` cannot re-arm it (see :func:`purge`).
    """
    coll = db[collection]
    _id = timer_id(kind, key)
    update = {
        "$set": {"state": "cancelled", "cancelled_at": clock()},
        "$unset": {"lease_until": ""},
    }
    for _ in range(10):
        # Two conditional updates rather than one with the pre-image: which state we
        # cancelled matters to the caller, and the answer must come from the matching filter.
        live: tuple[TimerState, ...] = ("pending", "leased")
        for state in live:
            res = await coll.update_one({"_id": _id, "state": state}, update)
            if res.modified_count:
                return state
        doc = await coll.find_one({"_id": _id}, {"state": 1})
        if doc is None:
            return None
        if doc.get("state") not in ("pending", "leased"):
            final: TimerState = doc["state"]
            return final
    raise RuntimeError(f"timer {_id}: cancel kept racing with concurrent changes")


async def get_timer(
    db: AsyncDatabase[Doc], kind: str, key: str, *, collection: str = TIMERS
) -> Doc | None:
    return await db[collection].find_one({"_id": timer_id(kind, key)})


async def purge(db: AsyncDatabase[Doc], older_than: datetime, *, collection: str = TIMERS) -> int:
    """Delete fired and cancelled timers whose due time is before ``older_than`` (failed ones
    stay for inspection). Run it now and then; no TTL index is relied on."""
    res = await db[collection].delete_many(
        {"state": {"$in": ["fired", "cancelled"]}, "due_at": {"$lt": _aware(older_than)}}
    )
    return int(res.deleted_count)


async def _finish(step: Coroutine[Any, Any, _T]) -> _T:
    """Run a bookkeeping write to its end even if the scheduler is cancelled meanwhile (a
    graceful shutdown must not leave a lease behind to expire); the cancellation follows."""
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


class Scheduler:
    """Runs due timers of the registered kinds. Several replicas (each its own ``owner``) may
    run one on the same database: each timer is leased by one of them at a time.

    ``concurrency`` timers run at once per scheduler. A handler that raises (or exceeds
    ``handler_timeout_s``) is retried after ``backoff_s * 2**(attempt-1)`` (at most
    ``max_backoff_s``); after ``max_attempts`` runs the timer ends ``failed`` with the error.
    """

    def __init__(
        self,
        db: AsyncDatabase[Doc],
        handlers: Mapping[str, TimerHandler] | None = None,
        *,
        collection: str = TIMERS,
        owner: str | None = None,
        poll_interval_s: float = 0.5,
        lease_s: float = 30.0,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        concurrency: int = 4,
        batch_size: int = 100,
        handler_timeout_s: float | None = 60.0,
        clock: Clock = utcnow,
    ) -> None:
        if min(max_attempts, concurrency, batch_size) < 1 or lease_s <= 0:
            raise ValueError("max_attempts, concurrency, batch_size and lease_s must be positive")
        self._db = db
        self._coll: AsyncCollection[Doc] = db[collection]
        self._collection = collection
        self._handlers: dict[str, TimerHandler] = {}
        for kind, handler in (handlers or {}).items():
            self.register(kind, handler)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._poll = poll_interval_s
        self._lease = timedelta(seconds=lease_s)
        self._max_attempts = max_attempts
        self._backoff = backoff_s
        self._max_backoff = max_backoff_s
        self._concurrency = concurrency
        self._batch = batch_size
        self._queue: deque[tuple[str, str]] = deque()  # (id, state) due at the last query
        self._refill_lock = asyncio.Lock()
        self._refills = 0
        self._timeout = handler_timeout_s
        self._clock = clock
        self._wakers: list[asyncio.Event] = []  # one per running worker
        self._idle: list[asyncio.Event] = []  # wakers of workers waiting for work
        self.fired = 0
        self.retried = 0
        self.failed = 0

    def register(self, kind: str, handler: TimerHandler) -> None:
        timer_id(kind, "")  # validates the kind
        self._handlers[kind] = handler

    # -- scheduling (convenience: the module functions on this scheduler's collection) --

    async def schedule(
        self, kind: str, key: str, due_at: datetime, payload: Doc | None = None
    ) -> ScheduleResult:
        result = await schedule(
            self._db, kind, key, due_at, payload, collection=self._collection, clock=self._clock
        )
        if result in ("scheduled", "rescheduled") and _aware(due_at) <= self._clock():
            self.wake()
        return result

    async def cancel(self, kind: str, key: str) -> TimerState | None:
        return await cancel(self._db, kind, key, collection=self._collection, clock=self._clock)

    # -- running --

    def wake(self) -> None:
        """Look for due timers now instead of at the next poll (e.g. one due immediately)."""
        for waker in self._wakers:
            waker.set()

    def _wake_idle(self, n: int) -> None:
        for _ in range(min(n, len(self._idle))):
            self._idle.pop(0).set()

    async def run(self) -> None:
        """Run until cancelled (hand it to ``ServiceRuntime.in_background``)."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self._concurrency):
                group.create_task(self._worker())

    async def _worker(self) -> None:
        waker = asyncio.Event()
        self._wakers.append(waker)
        try:
            while True:
                waker.clear()  # before the pass: a wake-up during the pass is kept
                try:
                    if await self.fire_one() is not None:
                        continue
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("timer pass failed; retrying after the poll interval")
                self._idle.append(waker)
                try:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._poll):
                            await waker.wait()
                finally:
                    with contextlib.suppress(ValueError):
                        self._idle.remove(waker)
        finally:
            self._wakers.remove(waker)

    async def tick(self) -> int:
        """Run every timer that is due now (``concurrency`` at a time); returns how many runs
        were made (fired, retried or failed). For tests and one-shot jobs."""

        async def drain() -> int:
            n = 0
            while await self.fire_one() is not None:
                n += 1
            return n

        return sum(await asyncio.gather(*(drain() for _ in range(self._concurrency))))

    async def lease_one(
        self, timer_id: str | None = None, seen_state: str | None = None
    ) -> Timer | None:
        """Atomically take a due timer: the given one if it is still takeable (in the state
        the candidate query saw it in, when given), else the most overdue timer of a
        registered kind. ``None``: nothing taken (e.g. another replica was faster)."""
        if not self._handlers:
            return None
        now = self._clock()
        update = lease_update(self.owner, now, self._lease)
        if timer_id is not None:
            # kind is not re-checked: it never changes, and the candidate query filtered it.
            # One branch of the condition when the state is known: cheaper than the $or.
            branches = takeable(now)
            flt: Doc = {"_id": timer_id}
            if seen_state in branches:
                flt.update(branches[seen_state])
            else:
                flt["$or"] = list(branches.values())
            doc = await self._coll.find_one_and_update(
                flt, update, return_document=ReturnDocument.AFTER
            )
        else:
            doc = await self._coll.find_one_and_update(
                lease_filter(now, sorted(self._handlers)),
                update,
                sort=[("due_at", ASCENDING)],
                return_document=ReturnDocument.AFTER,
            )
        return None if doc is None else Timer.from_doc(doc)

    async def _candidates(self) -> list[tuple[str, str]]:
        """Ids of up to ``batch_size`` due timers, oldest first, rotated by a random offset
        so that replicas working through the same batch rarely race for the same timer."""
        now = self._clock()
        docs = (
            await self._coll.find(lease_filter(now, sorted(self._handlers)), {"state": 1})
            .sort("due_at", ASCENDING)
            .limit(self._batch)
            .to_list()
        )
        ids = [(str(d["_id"]), str(d["state"])) for d in docs]
        if len(ids) > 1:
            cut = random.randrange(len(ids))
            ids = ids[cut:] + ids[:cut]
        return ids

    async def _next_candidate(self) -> tuple[str, str] | None:
        if self._queue:
            return self._queue.popleft()
        if not self._handlers:
            return None
        seen = self._refills
        async with self._refill_lock:
            # Query only if no other worker did while this one waited for the lock: an empty
            # answer there means nothing is due, and N idle workers need not ask N times.
            if not self._queue and self._refills == seen:
                self._queue.extend(await self._candidates())
                self._refills += 1
                self._wake_idle(len(self._queue) - 1)
            return self._queue.popleft() if self._queue else None

    async def fire_one(self) -> Outcome | None:
        """Lease one due timer and run it; ``None`` when nothing is due.

        One query finds a batch of due timers; each is then leased by its ``_id`` with the
        same due-or-expired condition (one atomic ``find_one_and_update``), so a timer
        another replica took meanwhile is simply skipped."""
        while True:
            candidate = await self._next_candidate()
            if candidate is None:
                return None
            timer = await self.lease_one(*candidate)
            if timer is not None:
                return await self._run(timer)

    async def _run(self, timer: Timer) -> Outcome:
        if timer.attempts > self._max_attempts:
            # Its previous lease ran out without an outcome (a crash mid-handler, maybe
            # caused by this very timer): give up rather than crash replicas forever.
            return await self._fail(
                timer, f"gave up: lease expired on attempt {timer.attempts - 1}"
            )
        handler = self._handlers[timer.kind]
        heartbeat = asyncio.create_task(self._heartbeat(timer))
        error: Exception | None = None
        try:
            async with asyncio.timeout(self._timeout):  # None: no limit
                await handler(timer)
        except asyncio.CancelledError:
            heartbeat.cancel()
            await _finish(self._release(timer))
            raise
        except Exception as exc:
            error = exc
        # Not awaited: a renewal still in flight is fenced by its filter like every write.
        heartbeat.cancel()
        if error is None:
            return await _finish(self._complete(timer))
        return await _finish(self._after_error(timer, error))

    async def _heartbeat(self, timer: Timer) -> None:
        """Renews the lease while a long handler runs."""
        every = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            try:
                res = await self._coll.update_one(
                    own_lease(timer, self.owner),
                    {"$set": {"lease_until": self._clock() + self._lease}},
                )
            except Exception:
                log.warning("timer %s: lease renewal failed; will retry", timer.id, exc_info=True)
                continue
            if not res.matched_count:
                log.warning("timer %s: lease lost while its handler runs", timer.id)
                return

    async def _complete(self, timer: Timer) -> Outcome:
        res = await self._coll.update_one(
            own_lease(timer, self.owner),
            {"$set": {"state": "fired", "fired_at": self._clock()}, "$unset": {"lease_until": ""}},
        )
        if not res.matched_count:
            # Cancelled meanwhile, or our lease ran out and another replica took it over.
            log.warning("timer %s: ran, but the lease was gone when marking it fired", timer.id)
            return "lost"
        self.fired += 1
        return "fired"

    async def _after_error(self, timer: Timer, exc: BaseException) -> Outcome:
        error = repr(exc)[:1000]
        if timer.attempts >= self._max_attempts:
            log.error("timer %s failed %d times, giving up: %s", timer.id, timer.attempts, error)
            return await self._fail(timer, error)
        delay = backoff_delay(timer.attempts, self._backoff, self._max_backoff)
        log.info(
            "timer %s failed (attempt %d), retry in %.1fs: %s",
            timer.id,
            timer.attempts,
            delay,
            error,
        )
        res = await self._coll.update_one(
            own_lease(timer, self.owner),
            {
                "$set": {
                    "state": "pending",
                    "due_at": self._clock() + timedelta(seconds=delay),
                    "last_error": error,
                },
                "$unset": {"lease_until": ""},
            },
        )
        if not res.matched_count:
            return "lost"
        self.retried += 1
        return "retry"

    async def _fail(self, timer: Timer, error: str) -> Outcome:
        res = await self._coll.update_one(
            own_lease(timer, self.owner),
            {
                "$set": {"state": "failed", "failed_at": self._clock(), "last_error": error},
                "$unset": {"lease_until": ""},
            },
        )
        if not res.matched_count:
            return "lost"
        self.failed += 1
        return "failed"

    async def _release(self, timer: Timer) -> None:
        """On shutdown mid-handler: hand the timer back at once instead of letting the lease
        run out (the interrupted run does not count as an attempt)."""
        try:
            await self._coll.update_one(
                own_lease(timer, self.owner),
                {
                    "$set": {"state": "pending"},
                    "$unset": {"lease_until": ""},
                    "$inc": {"attempts": -1},
                },
            )
        except Exception:  # the lease then simply expires
            log.warning("timer %s: could not release its lease", timer.id, exc_info=True)


__all__ = [
    "TIMERS",
    "Outcome",
    "ScheduleResult",
    "Scheduler",
    "Timer",
    "TimerHandler",
    "TimerState",
    "backoff_delay",
    "cancel",
    "ensure_timer_indexes",
    "get_timer",
    "lease_filter",
    "lease_update",
    "own_lease",
    "purge",
    "schedule",
    "takeable",
    "timer_id",
]

"""Durable timers against an in-memory fake of the few collection operations they use, with a
fake clock: the state machine, fencing of stale leases, backoff and bounded attempts."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from pymongo.errors import DuplicateKeyError

from zhumeng_kit.timers import (
    Scheduler,
    Timer,
    backoff_delay,
    cancel,
    get_timer,
    purge,
    schedule,
    timer_id,
)

pytestmark = pytest.mark.unit

Doc = dict[str, Any]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _matches(doc: Doc, flt: Doc) -> bool:
    for k, cond in flt.items():
        if k == "$or":
            if not any(_matches(doc, sub) for sub in cond):
                return False
            continue
        value = doc.get(k)
        if isinstance(cond, dict):
            for op, arg in cond.items():
                if op == "$in":
                    ok = value in arg
                elif op == "$lte":
                    ok = value is not None and value <= arg
                elif op == "$lt":
                    ok = value is not None and value < arg
                else:
                    raise NotImplementedError(op)
                if not ok:
                    return False
        elif value != cond:
            return False
    return True


def _apply(doc: Doc, update: Doc, inserting: bool) -> None:
    for k, v in update.get("$set", {}).items():
        doc[k] = copy.deepcopy(v)
    for k in update.get("$unset", {}):
        doc.pop(k, None)
    for k, v in update.get("$inc", {}).items():
        doc[k] = doc.get(k, 0) + v
    if inserting:
        for k, v in update.get("$setOnInsert", {}).items():
            doc[k] = copy.deepcopy(v)


@dataclass
class Result:
    matched_count: int = 0
    modified_count: int = 0
    upserted_id: Any = None
    deleted_count: int = 0


class FakeCollection:
    """Single-threaded, so every operation is trivially atomic, like one MongoDB document."""

    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}

    def _find(self, flt: Doc, sort: list[tuple[str, int]] | None = None) -> list[Doc]:
        found = [d for d in self.docs.values() if _matches(d, flt)]
        for key, _ in reversed(sort or []):
            found.sort(key=lambda d: d[key])
        return found

    def find(self, flt: Doc, projection: Any = None) -> FakeCursor:
        return FakeCursor(self, flt)

    async def find_one(self, flt: Doc, projection: Any = None) -> Doc | None:
        await asyncio.sleep(0)
        found = self._find(flt)
        return copy.deepcopy(found[0]) if found else None

    async def find_one_and_update(
        self, flt: Doc, update: Doc, sort: Any = None, return_document: Any = None
    ) -> Doc | None:
        await asyncio.sleep(0)
        found = self._find(flt, sort)
        if not found:
            return None
        _apply(found[0], update, inserting=False)
        return copy.deepcopy(found[0])

    async def update_one(self, flt: Doc, update: Doc, upsert: bool = False) -> Result:
        await asyncio.sleep(0)
        found = self._find(flt)
        if found:
            before = copy.deepcopy(found[0])
            _apply(found[0], update, inserting=False)
            return Result(matched_count=1, modified_count=int(found[0] != before))
        if not upsert:
            return Result()
        if flt["_id"] in self.docs:
            raise DuplicateKeyError("E11000 duplicate key")
        doc = {k: v for k, v in flt.items() if not isinstance(v, dict)}
        _apply(doc, update, inserting=True)
        self.docs[doc["_id"]] = doc
        return Result(upserted_id=doc["_id"])

    async def delete_many(self, flt: Doc) -> Result:
        gone = [d["_id"] for d in self._find(flt)]
        for _id in gone:
            del self.docs[_id]
        return Result(deleted_count=len(gone))


class FakeCursor:
    def __init__(self, coll: FakeCollection, flt: Doc) -> None:
        self._coll, self._flt, self._sort, self._limit = coll, flt, "", 0

    def sort(self, key: str, direction: int) -> FakeCursor:
        self._sort = key
        return self

    def limit(self, n: int) -> FakeCursor:
        self._limit = n
        return self

    async def to_list(self) -> list[Doc]:
        await asyncio.sleep(0)
        found = self._coll._find(self._flt, [(self._sort, 1)] if self._sort else None)
        return copy.deepcopy(found[: self._limit or None])


class FakeDb:
    def __init__(self) -> None:
        self.colls: dict[str, FakeCollection] = {}

    def __getitem__(self, name: str) -> FakeCollection:
        return self.colls.setdefault(name, FakeCollection())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db() -> Any:
    return cast(Any, FakeDb())


def state(db: Any, kind: str, key: str) -> Doc:
    return cast(Doc, db["timers"].docs[timer_id(kind, key)])


def test_ids_and_backoff() -> None:
    assert timer_id("offer-expiry", "o1:x") == "offer-expiry:o1:x"
    with pytest.raises(ValueError):
        timer_id("a:b", "c")
    with pytest.raises(ValueError):
        timer_id("", "c")
    assert [backoff_delay(n, 1.0, 5.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_schedule_is_idempotent_and_reschedules_only_pending(db: Any, clock: Clock) -> None:
    due = T0 + timedelta(seconds=10)
    assert await schedule(db, "k", "a", due, {"x": 1}, clock=clock) == "scheduled"
    assert await schedule(db, "k", "a", due, {"x": 1}, clock=clock) == "unchanged"
    assert len(db["timers"].docs) == 1
    later = due + timedelta(seconds=5)
    assert await schedule(db, "k", "a", later, {"x": 2}, clock=clock) == "rescheduled"
    doc = await get_timer(db, "k", "a")
    assert doc is not None
    assert (doc["state"], doc["due_at"], doc["payload"], doc["attempts"]) == (
        "pending",
        later,
        {"x": 2},
        0,
    )

    fired: list[Timer] = []

    async def handler(t: Timer) -> None:
        fired.append(t)

    clock.advance(15)
    assert await Scheduler(db, {"k": handler}, clock=clock).tick() == 1
    assert [(t.id, t.payload, t.attempts) for t in fired] == [("k:a", {"x": 2}, 1)]
    # fired is final: a late (re)schedule changes nothing
    assert await schedule(db, "k", "a", T0 + timedelta(hours=1), clock=clock) == "fired"
    assert state(db, "k", "a")["due_at"] == later


async def test_cancel(db: Any, clock: Clock) -> None:
    await schedule(db, "k", "a", T0, clock=clock)
    assert await cancel(db, "k", "a", clock=clock) == "pending"
    assert await cancel(db, "k", "a", clock=clock) == "cancelled"
    assert await cancel(db, "k", "missing", clock=clock) is None
    # the tombstone keeps a redelivered "schedule" from re-arming it
    assert await schedule(db, "k", "a", T0, clock=clock) == "cancelled"

    async def boom(t: Timer) -> None:
        raise AssertionError("a cancelled timer must not run")

    assert await Scheduler(db, {"k": boom}, clock=clock).tick() == 0

    clock.advance(100)
    await schedule(db, "k", "b", T0, clock=clock)
    assert await purge(db, T0 + timedelta(seconds=1)) == 1  # the cancelled one
    assert set(db["timers"].docs) == {"k:b"}


async def test_only_due_timers_of_registered_kinds_run_oldest_first(db: Any, clock: Clock) -> None:
    for i, offset in enumerate([3, 1, 2, 60]):
        await schedule(db, "k", f"t{i}", T0 + timedelta(seconds=offset), clock=clock)
    await schedule(db, "other", "x", T0, clock=clock)
    order: list[str] = []

    async def handler(t: Timer) -> None:
        order.append(t.key)

    clock.advance(5)
    s = Scheduler(db, {"k": handler}, clock=clock, concurrency=1, batch_size=1)
    assert await s.tick() == 3
    assert order == ["t1", "t2", "t0"]
    assert state(db, "k", "t3")["state"] == "pending"
    assert state(db, "other", "x")["state"] == "pending"


async def test_failing_handler_backs_off_then_fails(db: Any, clock: Clock) -> None:
    await schedule(db, "k", "a", T0, clock=clock)
    calls: list[int] = []

    async def flaky(t: Timer) -> None:
        calls.append(t.attempts)
        raise RuntimeError(f"down #{t.attempts}")

    s = Scheduler(db, {"k": flaky}, clock=clock, max_attempts=3, backoff_s=2.0)
    assert await s.tick() == 1
    doc = state(db, "k", "a")
    assert (doc["state"], doc["due_at"], doc["last_error"]) == (
        "pending",
        T0 + timedelta(seconds=2),
        "RuntimeError('down #1')",
    )
    clock.advance(1.9)
    assert await s.tick() == 0  # not yet
    clock.advance(0.1)
    assert await s.tick() == 1
    assert state(db, "k", "a")["due_at"] == clock.now + timedelta(seconds=4)
    clock.advance(4)
    assert await s.tick() == 1
    doc = state(db, "k", "a")
    assert (doc["state"], doc["attempts"], doc["last_error"]) == (
        "failed",
        3,
        "RuntimeError('down #3')",
    )
    assert calls == [1, 2, 3]
    assert (s.fired, s.retried, s.failed) == (0, 2, 1)
    clock.advance(3600)
    assert await s.tick() == 0


async def test_expired_lease_is_taken_over_and_the_stale_holder_cannot_complete(
    db: Any, clock: Clock
) -> None:
    await schedule(db, "k", "a", T0, clock=clock)
    runs: list[str] = []

    async def handler(t: Timer) -> None:
        runs.append(t.id)

    a = Scheduler(db, {"k": handler}, owner="a", clock=clock, lease_s=10)
    b = Scheduler(db, {"k": handler}, owner="b", clock=clock, lease_s=10)
    stale = await a.lease_one()  # "a" stalls right after leasing
    assert stale is not None
    clock.advance(5)
    assert await b.tick() == 0  # the lease is live: b must not take it
    clock.advance(6)
    assert await b.tick() == 1
    assert runs == ["k:a"]
    assert state(db, "k", "a")["owner"] == "b"
    # "a" wakes up: none of its lease-holder writes may touch b's outcome
    assert await a._complete(stale) == "lost"
    assert await a._after_error(stale, RuntimeError("x")) == "lost"
    doc = state(db, "k", "a")
    assert (doc["state"], doc["attempts"]) == ("fired", 2)


async def test_a_timer_whose_leases_keep_expiring_is_given_up(db: Any, clock: Clock) -> None:
    await schedule(db, "k", "a", T0, clock=clock)
    s = Scheduler(db, {"k": lambda t: asyncio.sleep(0)}, clock=clock, lease_s=1, max_attempts=2)
    for _ in range(2):  # two replicas crash with it in hand
        assert await s.lease_one() is not None
        clock.advance(2)
    assert await s.tick() == 1
    doc = state(db, "k", "a")
    assert doc["state"] == "failed"
    assert "lease expired" in doc["last_error"]


async def test_cancel_while_running_wins_over_completion(db: Any, clock: Clock) -> None:
    await schedule(db, "k", "a", T0, clock=clock)

    async def handler(t: Timer) -> None:
        assert await cancel(db, "k", "a", clock=clock) == "leased"

    s = Scheduler(db, {"k": handler}, clock=clock)
    assert await s.fire_one() == "lost"
    assert state(db, "k", "a")["state"] == "cancelled"
    clock.advance(3600)
    assert await s.tick() == 0


async def test_run_fires_on_wake_and_releases_on_cancel(db: Any) -> None:
    fired = asyncio.Event()
    started = asyncio.Event()

    async def quick(t: Timer) -> None:
        fired.set()

    async def slow(t: Timer) -> None:
        started.set()
        await asyncio.sleep(3600)

    s = Scheduler(db, {"quick": quick, "slow": slow}, poll_interval_s=3600, concurrency=2)
    task = asyncio.create_task(s.run())
    await asyncio.sleep(0.05)  # both workers are idle, waiting a whole poll interval
    now = datetime.now(UTC)
    assert await s.schedule("quick", "a", now) == "scheduled"  # due now: wakes the loop
    await asyncio.wait_for(fired.wait(), 2)
    await s.schedule("slow", "b", now)
    await asyncio.wait_for(started.wait(), 2)
    assert state(db, "slow", "b")["state"] == "leased"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # shut down mid-handler: handed back at once, and the interrupted run is not counted
    doc = state(db, "slow", "b")
    assert (doc["state"], doc["attempts"]) == ("pending", 0)
    assert state(db, "quick", "a")["state"] == "fired"

"""Durable timers on the real document server (DESIGN §4): two replicas never fire a timer
twice, timers survive a scheduler restart, a crashed replica's lease is taken over, failing
handlers back off and end failed, and scheduling is idempotent per (kind, key)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from zhumeng_devstack.stack import Platform
from zhumeng_kit.mongo import Doc, make_client
from zhumeng_kit.timers import (
    Scheduler,
    Timer,
    cancel,
    ensure_timer_indexes,
    get_timer,
    own_lease,
    schedule,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(platform: Platform) -> AsyncIterator[AsyncDatabase[Doc]]:
    client = make_client(platform.mongo.uri, "zt-timers")
    database = client[f"zt_timers_{uuid.uuid4().hex[:12]}"]
    await ensure_timer_indexes(database)
    yield database
    await client.drop_database(database.name)
    await client.close()


def now() -> datetime:
    return datetime.now(UTC)


async def until(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def stop(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def count(db: AsyncDatabase[Doc], **flt: object) -> int:
    return await db["timers"].count_documents(dict(flt))


async def test_two_replicas_fire_each_of_200_timers_exactly_once(db: AsyncDatabase[Doc]) -> None:
    n = 200
    due = now()
    await db["effects"].insert_many([{"_id": str(i), "done": False} for i in range(n)])
    results = await asyncio.gather(*(schedule(db, "expiry", str(i), due) for i in range(n)))
    assert set(results) == {"scheduled"}
    invocations: Counter[str] = Counter()
    applied = 0

    def handler_for(owner: str) -> Callable[[Timer], Awaitable[None]]:
        async def expire(timer: Timer) -> None:
            nonlocal applied
            invocations[timer.key] += 1
            # the idempotent effect: a conditional single-document update
            res = await db["effects"].update_one(
                {"_id": timer.key, "done": False}, {"$set": {"done": True, "by": owner}}
            )
            applied += res.modified_count

        return expire

    replicas = [
        Scheduler(db, {"expiry": handler_for(o)}, owner=o, poll_interval_s=0.1)
        for o in ("matching-1", "matching-2")
    ]
    started = time.monotonic()
    tasks = [asyncio.create_task(s.run()) for s in replicas]
    try:
        # in-memory counters: polling the database would slow the replicas down
        await until(lambda: _sum_is(n, replicas), within=90)
    finally:
        await stop(*tasks)
    elapsed = time.monotonic() - started

    assert len(invocations) == n and set(invocations.values()) == {1}  # no crash: runs once
    assert applied == n
    assert await db["effects"].count_documents({"done": True}) == n
    assert await count(db, state="fired") == n
    assert await count(db, attempts=1) == n
    fired = [s.fired for s in replicas]
    assert sum(fired) == n and min(fired) > 0, fired  # both replicas took part
    print(f"\n200 timers, two replicas: {fired} in {elapsed:.2f}s ({n / elapsed:.0f}/s)")


async def _sum_is(n: int, replicas: list[Scheduler]) -> bool:
    return sum(s.fired for s in replicas) >= n


async def _all_fired(db: AsyncDatabase[Doc], n: int) -> bool:
    return await count(db, state="fired") == n


async def test_timers_survive_a_scheduler_restart(db: AsyncDatabase[Doc]) -> None:
    due = now() + timedelta(seconds=1)
    keys = [f"o{i}" for i in range(5)]
    for key in keys:
        await schedule(db, "expiry", key, due, {"offer": key})
    runs: list[tuple[str, datetime, str]] = []

    def handler_for(owner: str) -> Callable[[Timer], Awaitable[None]]:
        async def expire(timer: Timer) -> None:
            runs.append((timer.payload["offer"], now(), owner))

        return expire

    first = Scheduler(db, {"expiry": handler_for("first")}, owner="first", poll_interval_s=0.1)
    task = asyncio.create_task(first.run())
    await asyncio.sleep(0.4)
    await stop(task)  # the replica stops (deploy, crash of the process) before they are due
    assert runs == []
    assert await count(db, state="pending") == len(keys)

    second = Scheduler(db, {"expiry": handler_for("second")}, owner="second", poll_interval_s=0.1)
    task = asyncio.create_task(second.run())
    try:
        await until(lambda: _all_fired(db, len(keys)), within=10)
        await asyncio.sleep(0.3)  # a few more polls: nothing fires again
    finally:
        await stop(task)
    assert sorted(k for k, _, _ in runs) == keys
    assert {owner for _, _, owner in runs} == {"second"}
    assert all(at >= due for _, at, _ in runs)


async def test_a_crashed_owners_lease_is_taken_over_once(db: AsyncDatabase[Doc]) -> None:
    t = now()
    base = {"kind": "expiry", "payload": {}, "created_at": t - timedelta(minutes=1)}
    await db["timers"].insert_many(
        [
            {  # its replica died mid-handler: the lease ran out
                **base,
                "_id": "expiry:dead",
                "key": "dead",
                "state": "leased",
                "owner": "dead",
                "attempts": 1,
                "due_at": t - timedelta(seconds=40),
                "lease_until": t - timedelta(seconds=1),
            },
            {  # a live replica is running it right now: hands off
                **base,
                "_id": "expiry:alive",
                "key": "alive",
                "state": "leased",
                "owner": "alive",
                "attempts": 1,
                "due_at": t - timedelta(seconds=5),
                "lease_until": t + timedelta(seconds=30),
            },
        ]
    )
    runs: list[tuple[str, int]] = []

    async def expire(timer: Timer) -> None:
        runs.append((timer.key, timer.attempts))

    survivor = Scheduler(db, {"expiry": expire}, owner="survivor")
    assert await survivor.tick() == 1
    assert await survivor.tick() == 0
    assert runs == [("dead", 2)]
    taken = await get_timer(db, "expiry", "dead")
    assert taken is not None
    assert (taken["state"], taken["owner"], taken["attempts"]) == ("fired", "survivor", 2)
    alive = await get_timer(db, "expiry", "alive")
    assert alive is not None
    assert (alive["state"], alive["owner"]) == ("leased", "alive")

    # the "dead" replica comes back and tries to finish its old lease: fenced off
    stale = Timer("expiry:dead", "expiry", "dead", t, {}, attempts=1)
    res = await db["timers"].update_one(own_lease(stale, "dead"), {"$set": {"state": "fired"}})
    assert res.matched_count == 0
    assert runs == [("dead", 2)]


async def test_a_failing_handler_backs_off_then_ends_failed(db: AsyncDatabase[Doc]) -> None:
    await schedule(db, "escalate", "req1", now())
    calls: list[float] = []

    async def broken(timer: Timer) -> None:
        calls.append(time.monotonic())
        raise RuntimeError(f"mail server down (attempt {timer.attempts})")

    s = Scheduler(db, {"escalate": broken}, max_attempts=3, backoff_s=0.3, poll_interval_s=0.05)
    task = asyncio.create_task(s.run())
    try:
        await until(lambda: _state_is(db, "escalate:req1", "failed"), within=15)
        await asyncio.sleep(0.5)
    finally:
        await stop(task)
    doc = await get_timer(db, "escalate", "req1")
    assert doc is not None
    assert (doc["state"], doc["attempts"]) == ("failed", 3)
    assert doc["last_error"] == "RuntimeError('mail server down (attempt 3)')"
    assert len(calls) == 3
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.25 and gaps[1] >= 0.55, gaps  # 0.3 s, then 0.6 s (±clock rounding)
    assert (s.fired, s.retried, s.failed) == (0, 2, 1)


async def _state_is(db: AsyncDatabase[Doc], _id: str, state: str) -> bool:
    doc = await db["timers"].find_one({"_id": _id}, {"state": 1})
    return doc is not None and doc["state"] == state


async def test_reschedule_and_cancel(db: AsyncDatabase[Doc]) -> None:
    runs: Counter[str] = Counter()

    async def expire(timer: Timer) -> None:
        runs[timer.key] += 1

    s = Scheduler(db, {"expiry": expire})
    later = now() + timedelta(seconds=30)

    # concurrent schedules of one timer (a redelivered event, two replicas): one document
    results = await asyncio.gather(*(schedule(db, "expiry", "a", later) for _ in range(20)))
    assert sorted(set(results)) == ["scheduled", "unchanged"] and results.count("scheduled") == 1
    assert await count(db) == 1
    assert await s.tick() == 0  # not due

    assert await schedule(db, "expiry", "a", now(), {"v": 2}) == "rescheduled"
    assert await s.tick() == 1
    assert runs == Counter({"a": 1})
    # fired is final: rescheduling it again does nothing
    assert await schedule(db, "expiry", "a", now()) == "fired"
    assert await s.tick() == 0
    assert await cancel(db, "expiry", "a") == "fired"

    await schedule(db, "expiry", "b", now() + timedelta(milliseconds=200))
    assert await cancel(db, "expiry", "b") == "pending"
    assert await schedule(db, "expiry", "b", now()) == "cancelled"  # a tombstone, not re-armed
    await asyncio.sleep(0.3)
    assert await s.tick() == 0
    assert await cancel(db, "expiry", "missing") is None
    assert runs == Counter({"a": 1})
    doc = await get_timer(db, "expiry", "b")
    assert doc is not None and doc["state"] == "cancelled"


async def test_wake_fires_a_timer_due_now_without_waiting_for_the_poll(
    db: AsyncDatabase[Doc],
) -> None:
    fired = asyncio.Event()

    async def expire(timer: Timer) -> None:
        fired.set()

    s = Scheduler(db, {"expiry": expire}, poll_interval_s=30)
    task = asyncio.create_task(s.run())
    try:
        await asyncio.sleep(0.3)  # the loop has looked once and sleeps for 30 s
        started = time.monotonic()
        assert await s.schedule("expiry", "now", now()) == "scheduled"
        await asyncio.wait_for(fired.wait(), 5)
        assert time.monotonic() - started < 5
    finally:
        await stop(task)

"""The delivery store after a kill -9 at each of its write steps, on the real local document
server. A "crash" makes one write raise and drops the store object; a new store object on the
same collections is the restarted notify. After every crash point the delivery must end
recorded as sent once, with its `NotificationDelivered` queued once, and must not be handed
to a sender again once its outcome is durable."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from zhumeng_kit.mongo import Doc
from zhumeng_notify.adapters.mongo import MongoDeliveryRepository, event_id
from zhumeng_notify.app.ports import Completion, NewDelivery
from zhumeng_notify.domain.model import Delivery

from .test_delivery_store_batches import claims_of, delivery, outcomes_of, sent

pytestmark = pytest.mark.integration

LEASE = timedelta(seconds=30)  # long enough for the batch path (one outcome document)
SHORT = timedelta(seconds=5)  # too short for it: every outcome closes its claim, one by one


async def killed(*args: object, **kwargs: object) -> Any:
    raise ConnectionError("kill -9")


async def sends(
    repo: MongoDeliveryRepository, batch: list[Delivery], now: datetime, lease: timedelta
) -> list[Completion]:
    """The batch claimed at `now`, and each delivery's "sent" outcome a second later."""
    claims = await repo.claim_many([NewDelivery(d) for d in batch], now, lease)
    assert {c.kind for c in claims} == {"send"}
    at = now + timedelta(seconds=1)
    return [sent(d, at, c.lease_until) for d, c in zip(batch, claims, strict=True)]


async def recorded_once(coll: AsyncCollection[Doc], c: Completion) -> Doc:
    """The history document of a completion: final, with its event queued exactly once
    (in the history's outbox or in an outcome document's)."""
    doc = await coll.find_one({"_id": c.delivery_id})
    assert doc is not None, f"{c.delivery_id}: no history document"
    assert (doc["status"], doc["attempts"]) == (c.status, c.attempt)
    queued = [e["id"] for e in doc["outbox"]]
    async for batch in outcomes_of(coll).find({}):
        queued += [e["id"] for e in batch.get("outbox", [])]
    assert queued.count(event_id(c)) == 1, queued
    return doc


async def test_a_crash_after_a_claim_is_closed_and_before_its_history_is_repaired(
    deliveries: AsyncCollection[Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-by-one path (a short lease, a takeover, a retry) closes the claim, then writes
    the history with the event. A kill in between used to leave a closed claim and no history:
    every later look said "done", so the delivery was never recorded nor announced."""
    crashed = MongoDeliveryRepository(deliveries)
    batch = [delivery(n, "email") for n in range(3)]
    now = datetime.now(UTC).replace(microsecond=0)
    done = await sends(crashed, batch, now, SHORT)
    monkeypatch.setattr(crashed._coll, "update_one", killed)
    for c in done:
        with pytest.raises(ConnectionError):
            await crashed.complete_many([c])
    closed = await claims_of(deliveries).find({}).to_list()
    assert {c["status"] for c in closed} == {"sent"}
    assert await deliveries.count_documents({}) == 0
    monkeypatch.undo()  # the process is gone; the database is not

    restarted = MongoDeliveryRepository(deliveries)
    later = now + LEASE
    # the redelivered event (its offset was not committed), a watch timer, a state query
    assert (await restarted.claim(batch[0], later, SHORT)).kind == "done"
    assert await restarted.take(batch[1].id, later, SHORT) is None
    state = await restarted.state(batch[2].id)
    assert state is not None and state["status"] == "sent"
    for c in done:
        doc = await recorded_once(deliveries, c)
        assert [(a["n"], a["outcome"]) for a in doc["attempt_log"]] == [(1, "sent")]
        assert doc["provider_message_id"] == f"ref-{c.delivery_id}"
    # looked at again, or finished by a second replica at the same time: written once
    assert (await restarted.claim(batch[0], later, SHORT)).kind == "done"
    closed_claim = await claims_of(deliveries).find_one({"_id": batch[0].id})
    assert closed_claim is not None
    await MongoDeliveryRepository(deliveries)._record(closed_claim, closed_claim["outcome"])
    await recorded_once(deliveries, done[0])


async def test_an_unreleased_batch_is_repaired_not_resent_when_its_lease_ran_out_first(
    deliveries: AsyncCollection[Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch path's outcome document is in, its history is not (a kill while the
    history was written behind the next batch), and the claims' leases have run out before
    the start-up repair (a watch timer, another replica's consumer): the outcome is found
    and repaired; the delivery is not taken over and sent again."""
    crashed = MongoDeliveryRepository(deliveries)
    batch = [delivery(n) for n in range(4)]
    now = datetime.now(UTC).replace(microsecond=0)
    done = await sends(crashed, batch, now, LEASE)
    monkeypatch.setattr(crashed, "_insert_history", killed)
    assert await crashed.complete_many(done) == 4
    await crashed.settled()

    restarted = MongoDeliveryRepository(deliveries)
    later = now + LEASE * 2
    assert await restarted.take(batch[0].id, later, LEASE) is None
    assert (await restarted.claim(batch[1], later, LEASE)).kind == "done"
    for c in done:
        await recorded_once(deliveries, c)
    [outcome] = await outcomes_of(deliveries).find({}).to_list()
    assert outcome["released"] and outcome["has_outbox"]
    claims_now = await claims_of(deliveries).find({}).to_list()
    assert {c["attempts"] for c in claims_now} == {1}  # none taken over


async def test_a_crash_mid_history_insert_is_completed_by_the_repair(
    deliveries: AsyncCollection[Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    crashed = MongoDeliveryRepository(deliveries)
    batch = [delivery(n) for n in range(5)]
    now = datetime.now(UTC).replace(microsecond=0)
    insert = crashed._insert_history

    async def half(docs: list[Doc], written: Any = frozenset()) -> None:
        await insert(docs[:2], written)
        raise ConnectionError("kill -9")

    monkeypatch.setattr(crashed, "_insert_history", half)
    done = await sends(crashed, batch, now, LEASE)
    assert await crashed.complete_many(done) == 5
    await crashed.settled()
    assert await deliveries.count_documents({}) == 2

    restarted = MongoDeliveryRepository(deliveries)
    await restarted.repair()
    await restarted.repair()  # a crash mid-repair: run again, changes nothing
    for c in done:
        doc = await recorded_once(deliveries, c)
        assert [(a["n"], a["outcome"]) for a in doc["attempt_log"]] == [(1, "sent")]


async def test_a_claim_whose_sender_died_before_sending_is_taken_over_once_its_lease_ran_out(
    deliveries: AsyncCollection[Doc],
) -> None:
    crashed = MongoDeliveryRepository(deliveries)
    d: Delivery = delivery(1, "email")
    now = datetime.now(UTC).replace(microsecond=0)
    [first] = await crashed.claim_many([NewDelivery(d)], now, SHORT)
    assert first.kind == "send"

    restarted = MongoDeliveryRepository(deliveries)
    busy = await restarted.claim(d, now + timedelta(seconds=1), SHORT)
    assert (busy.kind, busy.lease_until) == ("busy", now + SHORT)  # a timer watches it
    taken = await restarted.take(d.id, now + SHORT, SHORT)
    assert taken is not None and taken["attempts"] == 2
    at = now + SHORT + timedelta(seconds=1)
    second = dataclasses.replace(sent(d, at, now + SHORT * 2), attempt=2)
    assert await restarted.complete_many([second]) == 1
    await restarted.settled()
    # the dead sender's attempt, had it come back, is fenced out
    assert await crashed.complete_many([sent(d, at, first.lease_until)]) == 0
    await recorded_once(deliveries, second)

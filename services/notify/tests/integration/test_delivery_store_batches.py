"""The delivery store's batch path on the real local document server (no Kafka needed):
a flushed batch is one outcome document (its events in its outbox) plus history documents
inserted final, claims are never updated on that path, a crash between the two is repaired
before anything is sent again, in-app deliveries are in the history from their claim, and a
delivery in flight is visible as pending."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from zhumeng_contracts.events import NotificationDelivered
from zhumeng_kit.mongo import Doc
from zhumeng_notify.adapters.mongo import MongoDeliveryRepository, event_id
from zhumeng_notify.app.ports import Completion, NewDelivery
from zhumeng_notify.domain.model import Cause, Delivery, Receipt

pytestmark = pytest.mark.integration

LEASE = timedelta(seconds=30)


def delivery(n: int, channel: str = "log") -> Delivery:
    return Delivery(
        id=f"evt_{n}|res_{n}|{channel}",
        recipient_id=f"res_{n}",
        role="requester",
        channel=channel,
        masked_address=None,
        locale="zh-CN",
        subject=f"通知 {n}",
        body="正文",
        cause=Cause(f"evt_{n}", "zhumeng.request.unmatched.v1", f"req_{n}"),
    )


def sent(d: Delivery, at: datetime, lease_until: datetime | None) -> Completion:
    event = NotificationDelivered(
        delivery_id=d.id,
        cause_event_id=d.cause.event_id,
        cause_event_type=d.cause.event_type,
        recipient_id=d.recipient_id,
        recipient_role=d.role,
        channel=d.channel,
        status="sent",
        delivered_at=at,
    )
    return Completion(
        d.id, 1, "sent", at, event, Receipt(d.channel, f"ref-{d.id}", at), None, lease_until
    )


async def claim_and_send(
    repo: MongoDeliveryRepository, batch: list[Delivery], now: datetime
) -> int:
    claims = await repo.claim_many([NewDelivery(d) for d in batch], now, LEASE)
    assert [c.kind for c in claims] == ["send"] * len(batch)
    return await repo.complete_many(
        [sent(d, now, c.lease_until) for d, c in zip(batch, claims, strict=True)]
    )


def outcomes_of(coll: AsyncCollection[Doc]) -> AsyncCollection[Doc]:
    return coll.database[f"{coll.name}_outcomes"]


def claims_of(coll: AsyncCollection[Doc]) -> AsyncCollection[Doc]:
    return coll.database[f"{coll.name}_claims"]


async def test_a_batch_is_one_outcome_document_and_history_documents_inserted_final(
    deliveries: AsyncCollection[Doc],
) -> None:
    woken: list[int] = []
    repo = MongoDeliveryRepository(deliveries, on_events=lambda: woken.append(1))
    batch = [delivery(n) for n in range(20)]
    now = datetime.now(UTC).replace(microsecond=0)
    assert await claim_and_send(repo, batch, now) == 20
    await repo.settled()

    history = await deliveries.find({}).to_list()
    assert {d["_id"] for d in history} == {d.id for d in batch}
    for doc in history:
        assert (doc["status"], doc["attempts"], doc["sent_at"]) == ("sent", 1, now)
        assert doc["provider_message_id"] == f"ref-{doc['_id']}"
        assert [(a["n"], a["outcome"]) for a in doc["attempt_log"]] == [(1, "sent")]
        assert doc["outbox"] == [] and not doc["has_outbox"] and doc["_v"] == 1  # inserted
    [outcome] = await outcomes_of(deliveries).find({}).to_list()
    assert outcome["released"] and outcome["has_outbox"] and woken
    entries: list[dict[str, Any]] = outcome["outbox"]
    assert [e["topic"] for e in entries] == ["notify.events.v1"] * 20
    expected_ids = {event_id(sent(d, now, None)) for d in batch}
    assert {e["id"] for e in entries} == expected_ids and len(expected_ids) == 20
    # the claims were not written again: still as inserted
    claims = await claims_of(deliveries).find({}).to_list()
    assert {(c["status"], c["attempts"]) for c in claims} == {("pending", 1)}

    # a redelivered batch sends nothing again
    again = await repo.claim_many([NewDelivery(d) for d in batch], now + LEASE * 2, LEASE)
    assert {(c.kind, c.status) for c in again} == {("done", "sent")}
    assert await repo.take(batch[0].id, now + LEASE * 2, LEASE) is None


async def test_a_crash_before_the_history_is_repaired_before_anything_is_sent_again(
    deliveries: AsyncCollection[Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    crashed = MongoDeliveryRepository(deliveries)
    batch = [delivery(n) for n in range(5)]
    now = datetime.now(UTC).replace(microsecond=0)

    async def crash(*args: object) -> None:
        raise ConnectionError("killed")

    monkeypatch.setattr(crashed, "_insert_history", crash)
    assert await claim_and_send(crashed, batch, now) == 5  # the outcomes are durable
    await crashed.settled()
    [outcome] = await outcomes_of(deliveries).find({}).to_list()
    assert not outcome["released"] and not outcome["has_outbox"]  # the relay does not see it
    assert await deliveries.count_documents({}) == 0

    restarted = MongoDeliveryRepository(deliveries)
    # a redelivery before the repair finds the outcome and repairs its batch: nothing is
    # sent twice (see test_delivery_store_crashes.py for the other crash points)
    redelivered = await restarted.claim(batch[0], now + timedelta(seconds=1), LEASE)
    assert (redelivered.kind, redelivered.status) == ("done", "sent")
    await restarted.repair()
    [outcome] = await outcomes_of(deliveries).find({}).to_list()
    assert outcome["released"] and outcome["has_outbox"] and len(outcome["outbox"]) == 5
    docs = await deliveries.find({}).to_list()
    assert sorted(d["_id"] for d in docs) == sorted(d.id for d in batch)
    assert {d["status"] for d in docs} == {"sent"}
    later = now + LEASE * 2
    assert (await restarted.claim(batch[1], later, LEASE)).kind == "done"
    assert await restarted.take(batch[2].id, later, LEASE) is None
    await restarted.repair()  # nothing left to repair: changes nothing
    assert await deliveries.count_documents({}) == 5
    # once published (the relay empties the outbox), an outcome document is pruned
    await restarted.prune(timedelta(0))
    assert await outcomes_of(deliveries).count_documents({}) == 1
    await outcomes_of(deliveries).update_one({}, {"$set": {"outbox": [], "has_outbox": False}})
    await restarted.prune(timedelta(0))
    assert await outcomes_of(deliveries).count_documents({}) == 0


async def test_in_app_history_is_pending_from_the_claim_and_final_after_the_outcome(
    deliveries: AsyncCollection[Doc],
) -> None:
    repo = MongoDeliveryRepository(deliveries)
    inapp, log = delivery(1, "inapp"), delivery(2, "log")
    now = datetime.now(UTC).replace(microsecond=0)
    claims = await repo.claim_many([NewDelivery(inapp), NewDelivery(log)], now, LEASE)
    pending = await deliveries.find_one({"_id": inapp.id})
    assert pending is not None and pending["status"] == "pending"
    assert await deliveries.find_one({"_id": log.id}) is None
    # the history API shows a delivery in flight as pending all the same
    shown = await repo.get(log.id)
    assert shown is not None and (shown["status"], shown["attempts"]) == ("pending", 1)

    done = [sent(d, now, c.lease_until) for d, c in zip([inapp, log], claims, strict=True)]
    assert await repo.complete_many(done) == 2
    await repo.settled()
    for d in (inapp, log):
        doc = await repo.get(d.id)
        assert doc is not None and doc["status"] == "sent"
        assert [(a["n"], a["outcome"]) for a in doc["attempt_log"]] == [(1, "sent")]
    page, _ = await repo.page(None, None, 10, None)
    assert {d["_id"] for d in page} == {inapp.id, log.id}


async def test_an_outcome_written_twice_is_announced_under_one_event_id(
    deliveries: AsyncCollection[Doc],
) -> None:
    repo = MongoDeliveryRepository(deliveries)
    d = delivery(7)
    now = datetime.now(UTC).replace(microsecond=0)
    first = sent(d, now, now + LEASE)
    late = sent(d, now + timedelta(seconds=40), None)  # a sender that outlived its lease
    assert event_id(first) == event_id(late)
    dead = [
        Completion(d.id, n, "dead_lettered", now, first.event, None, "x", None) for n in (5, 10)
    ]
    assert event_id(dead[0]) != event_id(dead[1])  # a replayed delivery dies again, anew
    await claim_and_send(repo, [d], now)
    await repo.settled()
    doc = await deliveries.find_one({"_id": d.id})
    assert doc is not None and doc["status"] == "sent"


async def test_deliveries_recorded_before_the_claims_collection_are_found_after_a_backfill(
    deliveries: AsyncCollection[Doc],
) -> None:
    old_sent, old_pending = delivery(8), delivery(9)
    now = datetime.now(UTC).replace(microsecond=0)
    for d, status in ((old_sent, "sent"), (old_pending, "pending")):
        await deliveries.insert_one(
            {
                "_id": d.id,
                "recipient_id": d.recipient_id,
                "role": d.role,
                "channel": d.channel,
                "locale": d.locale,
                "subject": d.subject,
                "body": d.body,
                "cause_event_id": d.cause.event_id,
                "cause_event_type": d.cause.event_type,
                "request_id": d.cause.request_id,
                "status": status,
                "attempts": 1,
                "lease_until": None if status == "sent" else now,
                "created_at": now,
            }
        )
    repo = MongoDeliveryRepository(deliveries)
    await repo.backfill_claims()
    await repo.backfill_claims()  # once: the second finds its marker
    later = now + timedelta(seconds=1)
    assert (await repo.claim(old_sent, later, LEASE)).kind == "done"
    taken = await repo.claim(old_pending, later, LEASE)  # its sender's lease ran out
    assert (taken.kind, taken.attempts) == ("send", 2)
    assert await claims_of(deliveries).count_documents({}) == 2

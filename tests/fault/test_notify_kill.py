"""Fault: kill -9 notify while 200 events flow, then restart it.

Every expected notification must be delivered, recorded as sent once, announced once
(`NotificationDelivered`, deduplicated by event id as every consumer does) and reach its
recipient: the mail sink must hold every expected Message-ID. A mail handed to SMTP just
before the kill, and not yet recorded, is sent again on recovery with the *same* Message-ID
(derived from the delivery id), which mail clients drop: the test reports such resends and
checks that they are only that.

Notify runs alone on its own Kafka and document server (as in the integration tier), so the
events are published straight onto matching.events.v1 with their requester contacts first.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from zhumeng_contracts.envelope import EventMeta, encode
from zhumeng_contracts.events import Event, RequesterContact, RequestUnmatched, ServiceTypeRecord
from zhumeng_devstack.infra import free_port
from zhumeng_devstack.mail import MailSink
from zhumeng_devstack.stack import ServiceProcess
from zhumeng_devstack.testing import Infra, eventually, infra_fixture, read_topic, service_env
from zhumeng_notify.domain.model import message_id

pytestmark = pytest.mark.fault

N = 200
infra = infra_fixture("notify-kill")


@pytest.fixture(scope="module")
def mail(infra: Infra) -> Iterator[MailSink]:
    sink = MailSink(infra.data_dir / "mail", free_port())
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


async def publish_all(bootstrap: str, events: list[tuple[Event, EventMeta | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for event, meta in events:
            meta = meta or EventMeta.new(event, "zhumeng/tests")
            await producer.send_and_wait(
                event.TOPIC, encode(event), key=event.key().encode(), headers=meta.to_headers()
            )
            await asyncio.sleep(0.01)  # a stream, not one burst: the kill lands mid-way
    finally:
        await producer.stop()


# A lease shorter than the store's margin (5 s) sends every outcome down the one-by-one path
# (claim closed, then history); a longer one takes the batched path (one outcome document
# per flush, history behind it). Takeovers after the kill take the one-by-one path in both.
@pytest.mark.parametrize("lease_s", ["5", "20"], ids=["one-by-one", "batched"])
async def test_kill_notify_mid_stream(infra: Infra, mail: MailSink, lease_s: str) -> None:
    bootstrap = infra.kafka.bootstrap
    run = secrets.token_hex(3)
    service = ServiceTypeRecord(
        id="st_kill",
        name_zh="义剪",
        name_en="Free haircut",
        category="care",
        default_duration_min=60,
        target_claim_min=30,
        version=1,
    )
    contacts = [
        RequesterContact(
            request_id=f"req_k{run}_{i}",
            requester_id=f"res_k{run}_{i}",
            name="测试居民",
            email=f"k{run}{i}@example.org",
        )
        for i in range(N)
    ]
    await publish_all(bootstrap, [(service, None)])
    await publish_all(bootstrap, [(c, None) for c in contacts])

    port = free_port()
    env = service_env(
        infra,
        port,
        f"kill{run}",
        ZHUMENG_NOTIFY_SMTP_HOST="127.0.0.1",
        ZHUMENG_NOTIFY_SMTP_PORT=str(mail.port),
        ZHUMENG_RELAY_POLL_MS="100",
        ZHUMENG_DELIVERY_LEASE_S=lease_s,  # a crashed sender's lease runs out soon
        ZHUMENG_NOTIFY_QUIET_HOURS="off",  # the test must not depend on the hour
        ZHUMENG_NOTIFY_TIMER_POLL_S="0.2",
    )
    notify = ServiceProcess("notify", port, env, infra.data_dir / "logs" / "notify-kill.log")
    notify.start()
    events: list[tuple[Event, EventMeta | None]] = []
    for c in contacts:
        event = RequestUnmatched(
            request_id=c.request_id,
            service_type_id="st_kill",
            reasons={"too_far": 1},
            candidates_considered=1,
            decided_at=datetime.now(UTC),
        )
        events.append((event, EventMeta.new(event, "zhumeng/matching")))
    expected = {
        f"{meta.id}|{c.requester_id}|email": c.email
        for (_, meta), c in zip(events, contacts, strict=True)
        if meta is not None
    }
    mine = {str(e) for e in expected.values()}

    def received() -> list[Any]:
        return [m for m in mail.received() if str(m["To"]) in mine]

    kills = 0
    try:
        await asyncio.to_thread(notify.wait_ready, 120)

        async def chaos() -> None:
            nonlocal kills
            await eventually(
                lambda: _at_least(received, 40), within=180, what="40 mails before the kill"
            )
            notify.kill()  # kill -9, mid-stream
            kills += 1
            await asyncio.sleep(1)
            notify.start()
            await asyncio.to_thread(notify.wait_ready, 120)

        await asyncio.gather(publish_all(bootstrap, events), chaos())
        assert kills == 1

        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo.uri)
        try:
            coll = mongo[f"kill{run}_notify"]["deliveries"]

            async def all_sent() -> list[dict[str, Any]] | None:
                docs = await coll.find({"_id": {"$in": list(expected)}}).to_list()
                sent = [d for d in docs if d["status"] == "sent"]
                return sent if len(sent) == N else None

            try:
                docs = await eventually(all_sent, within=240, interval=1, what="all sent")
            except AssertionError:
                pytest.fail(await _not_sent(coll, list(expected)))
        finally:
            await mongo.close()

        # the announcements leave through the outbox relay a moment after the record: read
        # them while notify runs (stopped before the relay's turn, they wait for a restart)
        async def all_announced() -> dict[str, set[str]] | None:
            ids: dict[str, set[str]] = defaultdict(set)
            for record in await read_topic(bootstrap, "notify.events.v1"):
                body = json.loads(record.value)
                if body["delivery_id"] in expected and body["status"] == "sent":
                    ids[body["delivery_id"]].add(dict(record.headers)["ce_id"].decode())
            return ids if set(ids) == set(expected) else None

        sent_ids = await eventually(
            all_announced, within=60, interval=1, what="every delivery announced"
        )
    finally:
        notify.stop()

    # 1. every expected delivery recorded as sent, once (one document each, no others)
    assert {d["_id"] for d in docs} == set(expected)

    # 2. one "sent" announcement per delivery (republished copies keep their ce_id)
    assert set(sent_ids) == set(expected)
    assert {len(ids) for ids in sent_ids.values()} == {1}

    # 3. every recipient got their mail; a resend (if the kill fell between SMTP and the
    #    record) carries the same Message-ID as the first copy, so the client drops it
    mails = received()
    by_id = Counter(str(m["Message-ID"]) for m in mails)
    assert set(by_id) == {message_id(did) for did in expected}
    resends = sum(by_id.values()) - len(by_id)
    print(f"\nnotify kill -9: {N} deliveries, {resends} same-Message-ID resends after the kill")
    for m in mails:
        did = next(d for d, to in expected.items() if to == str(m["To"]))
        assert str(m["Message-ID"]) == message_id(did)


async def _not_sent(coll: AsyncCollection[dict[str, Any]], expected: list[str]) -> str:
    """Which deliveries are not recorded as sent in the history, and where each one stands:
    its history document, its claim, the outcome batch holding it."""
    claims = coll.database[f"{coll.name}_claims"]
    outcomes = coll.database[f"{coll.name}_outcomes"]
    history = {d["_id"]: d async for d in coll.find({"_id": {"$in": expected}})}
    missing = [did for did in expected if history.get(did, {}).get("status") != "sent"]
    lines = [f"{len(missing)} of {len(expected)} deliveries not recorded as sent:"]
    for did in missing[:20]:
        h = history.get(did)
        c = await claims.find_one({"_id": did})
        batch = await outcomes.find_one({"outcomes.delivery_id": did}, {"released": 1})
        claim = (c["status"], c["attempts"], c["lease_until"], "outcome" in c) if c else None
        lines.append(
            f"  {did}: history={h['status'] if h else None}"
            f" claim(status, attempts, lease, outcome)={claim}"
            f" batch={(batch['_id'], batch['released']) if batch else None}"
        )
    return "\n".join(lines)


async def _at_least(received: Any, n: int) -> bool:
    return len(received()) >= n

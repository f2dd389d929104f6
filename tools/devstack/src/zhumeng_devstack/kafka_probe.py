"""Check that aiokafka can use the features Zhumeng needs against a running Kafka broker.

    python -m zhumeng_devstack.kafka_probe --bootstrap 127.0.0.1:9092

Checks: (1) topic creation with AIOKafkaAdminClient; (2) idempotent producer + consumer;
(3) transactions: commit, abort, read_committed consumer sees only committed data;
(4) consumer group offset commit; (5, extra) consume-transform-produce with
send_offsets_to_transaction, plus ListOffsets (beginning/end offsets).
Prints PASS/FAIL per check, exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

CHECK_TIMEOUT_S = 60.0


async def _consume_until(
    consumer: AIOKafkaConsumer, done: Callable[[list[bytes]], bool], limit_s: float = 20.0
) -> list[bytes]:
    values: list[bytes] = []
    deadline = time.monotonic() + limit_s
    while not done(values):
        if time.monotonic() > deadline:
            raise TimeoutError(f"consumer timed out after {limit_s}s; got {values!r}")
        batches = await consumer.getmany(timeout_ms=500)
        for msgs in batches.values():
            values.extend(m.value for m in msgs if m.value is not None)
    return values


async def _check_create_topic(bootstrap: str, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        for _ in range(50):
            if topic in await admin.list_topics():
                return f"created {topic}"
            await asyncio.sleep(0.1)
        raise AssertionError(f"{topic} not listed after creation")
    finally:
        await admin.close()


async def _check_idempotent(bootstrap: str, topic: str) -> str:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        md = await producer.send_and_wait(topic, b"idem-1", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        values = await _consume_until(consumer, lambda v: b"idem-1" in v)
    finally:
        await consumer.stop()
    return f"sent at {md.partition}/{md.offset}, read back {values!r}"


async def _check_transactions(bootstrap: str, topic: str) -> str:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"probe-tx-{uuid.uuid4().hex[:8]}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"tx-committed")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"tx-aborted")
        await producer.abort_transaction()
        async with producer.transaction():  # sentinel: once seen, anything before is decided
            await producer.send_and_wait(topic, b"tx-sentinel")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        values = await _consume_until(consumer, lambda v: b"tx-sentinel" in v)
    finally:
        await consumer.stop()
    if values != [b"tx-committed", b"tx-sentinel"]:
        raise AssertionError(f"read_committed consumer saw {values!r}")
    return f"read_committed saw {values!r}"


async def _check_group_commit(bootstrap: str, topic: str) -> str:
    group = f"probe-group-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"g-1", partition=0)
        await producer.send_and_wait(topic, b"g-2", partition=0)
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), 30)
        await consumer.commit({tp: msg.offset + 1})
        committed = await consumer.committed(tp)
    finally:
        await consumer.stop()
    if committed != msg.offset + 1:
        raise AssertionError(f"committed offset {committed} != {msg.offset + 1}")
    # a new member of the group resumes after the committed offset
    consumer2 = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer2.start()
    try:
        msg2 = await asyncio.wait_for(consumer2.getone(), 30)
    finally:
        await consumer2.stop()
    if msg2.offset != committed:
        raise AssertionError(f"group resumed at {msg2.offset}, expected {committed}")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return f"committed {committed}, resumed at {msg2.offset}, admin sees {offsets}"


async def _check_consume_transform_produce(bootstrap: str, src: str, dst: str) -> str:
    """Exactly-once loop: read from src, write to dst and commit src offsets in one transaction."""
    group = f"probe-eos-{uuid.uuid4().hex[:8]}"
    plain = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await plain.start()
    try:
        await plain.send_and_wait(src, b"in-1", partition=0)
    finally:
        await plain.stop()
    tp = TopicPartition(src, 0)
    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"probe-eos-{uuid.uuid4().hex[:8]}"
    )
    await consumer.start()
    await producer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), 30)
        async with producer.transaction():
            await producer.send_and_wait(dst, b"out:" + (msg.value or b""))
            await producer.send_offsets_to_transaction({tp: msg.offset + 1}, group)
        # EndTxn returns before the commit markers are written: poll until the offset is stable
        committed = None
        for _ in range(100):
            committed = await consumer.committed(tp)
            if committed == msg.offset + 1:
                break
            await asyncio.sleep(0.1)
        end = await consumer.end_offsets([tp])
        begin = await consumer.beginning_offsets([tp])
    finally:
        await producer.stop()
        await consumer.stop()
    if committed != msg.offset + 1:
        raise AssertionError(f"transactional offset commit not visible: {committed}")
    return f"txn offset commit -> {committed}; beginning/end offsets {begin[tp]}/{end[tp]}"


async def probe(bootstrap: str) -> dict[str, Any]:
    """Run all checks against ``bootstrap``.

    Returns ``{"aiokafka": version, "ok": bool, "checks": {name: {"ok", "detail", "seconds"}}}``.
    """
    suffix = uuid.uuid4().hex[:8]
    t_main, t_tx, t_grp = f"probe-{suffix}", f"probe-tx-{suffix}", f"probe-grp-{suffix}"
    t_src, t_dst = f"probe-eos-in-{suffix}", f"probe-eos-out-{suffix}"
    checks: list[tuple[str, Callable[[], Awaitable[str]]]] = [
        ("create_topic", lambda: _check_create_topic(bootstrap, t_main)),
        ("idempotent_producer", lambda: _check_idempotent(bootstrap, t_main)),
        ("transactions", lambda: _tx(bootstrap, t_tx)),
        ("group_offsets", lambda: _grp(bootstrap, t_grp)),
        ("txn_offsets_eos", lambda: _eos(bootstrap, t_src, t_dst)),
    ]
    results: dict[str, dict[str, Any]] = {}
    for name, fn in checks:
        t0 = time.monotonic()
        try:
            detail = await asyncio.wait_for(fn(), CHECK_TIMEOUT_S)
            ok = True
        except Exception as e:  # report, don't stop: every check runs
            ok = False
            tb = traceback.format_exception_only(type(e), e)
            detail = "".join(tb).strip() or repr(e)
        results[name] = {"ok": ok, "detail": detail, "seconds": round(time.monotonic() - t0, 2)}
    return {
        "aiokafka": aiokafka.__version__,
        "ok": all(r["ok"] for r in results.values()),
        "checks": results,
    }


async def _tx(bootstrap: str, topic: str) -> str:
    await _check_create_topic(bootstrap, topic)
    return await _check_transactions(bootstrap, topic)


async def _grp(bootstrap: str, topic: str) -> str:
    await _check_create_topic(bootstrap, topic)
    return await _check_group_commit(bootstrap, topic)


async def _eos(bootstrap: str, src: str, dst: str) -> str:
    await _check_create_topic(bootstrap, src)
    await _check_create_topic(bootstrap, dst)
    return await _check_consume_transform_produce(bootstrap, src, dst)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = ap.parse_args(argv)
    res = asyncio.run(probe(args.bootstrap))
    print(f"aiokafka {res['aiokafka']} against {args.bootstrap}")
    for name, r in res["checks"].items():
        print(f"{'PASS' if r['ok'] else 'FAIL'} {name} ({r['seconds']}s): {r['detail']}")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

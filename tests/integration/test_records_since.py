"""Replay from a point in time (agency feeds) reads Kafka by the records' timestamps, which
several producers stamp with their own clocks: not monotonic within a partition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer

from zhumeng_devstack.testing import Infra, infra_fixture
from zhumeng_kit.kafka import records_since

pytestmark = pytest.mark.integration
infra = infra_fixture("records-since")
TOPIC = "public.requests.v1"


async def test_only_records_stamped_since_the_point_in_time_are_read(infra: Infra) -> None:
    since = datetime.now(UTC) - timedelta(minutes=10)
    ms = int(since.timestamp() * 1000)
    stamps = {
        b"before": ms - 60_000,
        b"ahead": ms + 120_000,  # a producer whose clock runs ahead, published first
        b"late-but-old": ms - 30_000,  # published after it, stamped before `since`
        b"after": ms + 1_000,
    }
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka.bootstrap)
    await producer.start()
    try:
        for value, stamp in stamps.items():
            await producer.send_and_wait(TOPIC, value, key=b"req_1", timestamp_ms=stamp)
    finally:
        await producer.stop()
    got = [r.value async for r in records_since(infra.kafka.bootstrap, [TOPIC], since)]
    assert got == [b"ahead", b"after"]

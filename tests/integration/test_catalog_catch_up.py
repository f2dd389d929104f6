"""A service's catalog view reads "up to now" on demand (ADR 0015): a record written just
before the call is in the view when `caught_up` returns, also after a transaction's commit
marker, which no record follows."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from aiokafka import AIOKafkaProducer

from zhumeng_contracts.envelope import EventMeta, encode
from zhumeng_contracts.events import ServiceTypeRecord
from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import publish
from zhumeng_kit.views import CompactedTopicsReader, View
from zhumeng_matching.examples import service

pytestmark = pytest.mark.integration
TOPIC = ServiceTypeRecord.TOPIC


def service_type(tag: str) -> ServiceTypeRecord:
    return service(id=f"catchup_{tag}")


async def test_a_record_written_just_before_is_in_the_view(platform: Platform) -> None:
    view: View[ServiceTypeRecord] = View(ServiceTypeRecord)
    reader = CompactedTopicsReader(platform.kafka.bootstrap, {TOPIC: view}, "tests-catch-up")
    task = asyncio.create_task(reader.run())
    producer = AIOKafkaProducer(
        bootstrap_servers=platform.kafka.bootstrap, transactional_id=f"tests-{secrets.token_hex(4)}"
    )
    await producer.start()
    try:
        await asyncio.wait_for(reader.ready.wait(), timeout=60)
        for i in range(10):
            record = service_type(f"{secrets.token_hex(4)}_{i}")
            await publish(platform.kafka.bootstrap, record)
            await reader.caught_up(TOPIC, within=30)
            assert view.get(record.id) == record, f"record {i} not read"

        # a transaction ends in a commit marker: the position steps over it
        record = service_type(secrets.token_hex(4))
        async with producer.transaction():
            await producer.send(
                TOPIC,
                encode(record),
                key=record.key().encode(),
                headers=EventMeta.new(record, "zhumeng/tests").to_headers(),
            )
        await reader.caught_up(TOPIC, within=30)
        assert view.get(record.id) == record
        await reader.caught_up(TOPIC, within=5)  # nothing new: returns at once
    finally:
        await producer.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

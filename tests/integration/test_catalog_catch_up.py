"""A service's catalog view reads "up to now" on demand (ADR 0015): a record written just
before the call is in the view when `caught_up` returns, also after a transaction's commit
marker, which no record follows; a service type created a moment before a request for it is
known to requests and to matching."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from zhumeng_contracts.envelope import EventMeta, encode
from zhumeng_contracts.events import ServiceTypeRecord
from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import (
    bearer,
    create_service_type,
    eventually,
    publish,
    read_topic,
    request_body,
)
from zhumeng_kit.kafka import end_offsets_of
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
        ends = await end_offsets_of(platform.kafka.bootstrap, [TOPIC])
        assert reader.positions() == {TOPIC: {p: end for (_, p), end in ends.items()}}
    finally:
        await producer.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_request_for_a_service_type_created_a_moment_ago_reaches_a_decision(
    platform: Platform,
) -> None:
    """Created through the catalog API and posted at once: requests accepts it, matching
    decides it (before ADR 0015: 422, or accepted and then dead-lettered as unknown)."""
    resident = bearer("res_catch_up", "resident")
    posted: list[str] = []
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=30) as api:
        for i in range(3):
            sid = await create_service_type(platform, "fresh")
            created = await api.post(
                "/v1/requests",
                json=request_body(sid, "pl_longxun_v1"),
                headers={**resident, "Idempotency-Key": f"catch-up-{sid}-{i}"},
            )
            assert created.status_code == 201, created.text
            posted.append(created.json()["id"])

    async def decided() -> set[str] | None:
        outcomes = {
            dict(r.headers)["ce_subject"].decode()
            for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1")
            if dict(r.headers).get("ce_type")
            in (b"zhumeng.volunteer.assigned.v1", b"zhumeng.request.unmatched.v1")
        }
        return outcomes if set(posted) <= outcomes else None

    await eventually(decided, within=90, what="matching's outcome for every request")
    dead = [
        r
        for r in await read_topic(platform.kafka.bootstrap, "requests.events.v1.dlq")
        if dict(r.headers).get("ce_subject", b"").decode() in posted
    ]
    assert dead == []

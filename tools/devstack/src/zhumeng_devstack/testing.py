"""Helpers for the integration, end-to-end and fault tests (and the benchmark)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from .infra import free_port
from .stack import SERVICES, StackConfig

T = TypeVar("T")
LOCAL = ZoneInfo("Asia/Shanghai")


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record on a topic right now, from the start (no consumer group)."""
    from aiokafka import AIOKafkaConsumer
    from zhumeng_kit.kafka import all_partitions

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = await all_partitions(consumer, [topic])
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records: list[Any] = []
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records += batch
        return records
    finally:
        await consumer.stop()


def isolated_stack_config(data_dir: Path, seed_demo: bool = True) -> StackConfig:
    """A stack on free ports with its own data: tests never share the development data."""
    return StackConfig(
        data_dir=data_dir,
        kafka_port=free_port(),
        controller_port=free_port(),
        mongo_port=free_port(),
        smtp_port=free_port(),
        service_ports={name: free_port() for name in SERVICES},
        db_prefix="zt",
        seed_demo=seed_demo,
        environment="test",
    )


def bearer(subject: str, *roles: str, township: str | None = None) -> dict[str, str]:
    from zhumeng_kit.auth import mint_token
    from zhumeng_kit.settings import DEV_JWT_SECRET

    return {"Authorization": "Bearer " + mint_token(DEV_JWT_SECRET, subject, list(roles), township)}


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    within: float = 30,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll until `check` returns something truthy; fail with `what` after `within` seconds."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {within}s waiting for {what} (last: {last!r})")


def window_tomorrow(start_hour: int = 9, hours: int = 3) -> dict[str, str]:
    """A window tomorrow morning, local time: inside most demo volunteers' availability."""
    day = (datetime.now(LOCAL) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    start = day.replace(hour=start_hour)
    return {"start": start.isoformat(), "end": (start + timedelta(hours=hours)).isoformat()}


def request_body(
    service_type_id: str, place_id: str, email: str | None = None, **extra: Any
) -> dict[str, Any]:
    requester: dict[str, Any] = {"name": "林秀英", "phone": "13900001234", "locale": "zh-CN"}
    if email:
        requester["email"] = email
    return {
        "service_type_id": service_type_id,
        "place_id": place_id,
        "window": window_tomorrow(),
        "requester": requester,
        **extra,
    }


async def publish(
    bootstrap: str,
    event: Any,
    *,
    value: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> tuple[int, int]:
    """Publish an event (CloudEvents binary mode) or raw bytes; returns (partition, offset)."""
    from aiokafka import AIOKafkaProducer
    from zhumeng_contracts.envelope import EventMeta, encode

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        meta_headers = (
            headers if headers is not None else EventMeta.new(event, "zhumeng/tests").to_headers()
        )
        md = await producer.send_and_wait(
            event.TOPIC,
            encode(event) if value is None else value,
            key=event.key().encode(),
            headers=meta_headers,
        )
        return md.partition, md.offset
    finally:
        await producer.stop()


async def committed_past(
    bootstrap: str, group: str, topic: str, partition: int, offset: int
) -> bool:
    """Has the consumer group committed beyond this record (i.e. processed it)?"""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        meta = offsets.get(TopicPartition(topic, partition))
        return meta is not None and meta.offset > offset
    finally:
        await admin.close()

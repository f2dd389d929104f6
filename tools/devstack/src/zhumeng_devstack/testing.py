"""Helpers for the integration, end-to-end and fault tests (and the benchmark)."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from .infra import FerretDBServer, KafkaServer, document_server, free_port
from .stack import SERVICES, ServiceProcess, StackConfig

T = TypeVar("T")
LOCAL = ZoneInfo("Asia/Shanghai")


async def read_topic(
    bootstrap: str, topic: str, at_least: int = 0, within: float = 30
) -> list[Any]:
    """Every record on a topic right now, from the start (no consumer group).

    With `at_least`, read again until the topic holds that many records (for up to `within`
    seconds; then return what is there and let the caller's assertions say what is missing).
    """
    deadline = time.monotonic() + within
    while True:
        records = await _read_topic_once(bootstrap, topic)
        if len(records) >= at_least or time.monotonic() >= deadline:
            return records
        await asyncio.sleep(0.2)


async def _read_topic_once(bootstrap: str, topic: str) -> list[Any]:
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


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """How many records each topic has ever had: its end offsets summed over partitions."""
    from aiokafka import AIOKafkaConsumer

    from zhumeng_kit.kafka import all_partitions

    names = list(topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = await all_partitions(consumer, names)
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        return {t: sum(off for tp, off in ends.items() if tp.topic == t) for t in names}
    finally:
        # aiokafka: stopping a consumer before its background task ever ran raises
        # CancelledError; give it a turn of the loop first.
        await asyncio.sleep(0.05)
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
        # One test session sends hundreds of offers and invitations to the same demo
        # volunteers within a day: the daily cap would let earlier tests starve later ones.
        # The cap has its own test, which sets it low for itself.
        extra_env={"ZHUMENG_DAILY_OFFER_CAP": "1000"},
    )


@dataclass
class Infra:
    """Kafka and the document server of one test module (see `running_infra`)."""

    kafka: KafkaServer
    mongo: FerretDBServer
    data_dir: Path


@contextmanager
def running_infra(data_dir: Path) -> Iterator[Infra]:
    """Kafka and the configured document server (ZHUMENG_DOCDB) on free ports, with their data
    and logs under `data_dir` and every registered topic (and dead-letter topic) created.

    For integration tests that run one service on infrastructure of their own instead of the
    session-wide `platform`, whose other services would consume the same topics. Synchronous
    (it runs `asyncio.run`): use it from a synchronous fixture.
    """
    from zhumeng_kit.kafka import ensure_topics

    logs = data_dir / "logs"
    kafka = KafkaServer(data_dir / "kafka", free_port(), free_port(), logs / "kafka.log")
    mongo = document_server(data_dir / "docdb", free_port(), logs / "docdb.log")
    try:
        kafka.start()
        mongo.start()
        kafka.wait_ready()
        mongo.wait_ready()
        asyncio.run(ensure_topics(kafka.bootstrap))
        yield Infra(kafka, mongo, data_dir)
    finally:
        mongo.stop()
        kafka.stop()


def infra_fixture(name: str) -> Any:
    """A module-scoped pytest fixture of `running_infra` in a fresh temporary directory:
    `infra = infra_fixture("notify-it")` gives each module that declares it its own Kafka and
    document server (pytest names the fixture after the module attribute)."""
    import pytest

    @pytest.fixture(scope="module")
    def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
        with running_infra(tmp_path_factory.mktemp(name)) as running:
            yield running

    return infra


def service_env(infra: Infra, port: int, db_prefix: str, **extra: str) -> dict[str, str]:
    """The environment of a service process on `infra`: this process's environment without
    any ZHUMENG_ setting (a developer's shell must not leak in), plus the test settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHUMENG_")}
    env.update(
        {
            "ZHUMENG_ENVIRONMENT": "test",
            "ZHUMENG_KAFKA_BOOTSTRAP": infra.kafka.bootstrap,
            "ZHUMENG_MONGO_URI": infra.mongo.uri,
            "ZHUMENG_MONGO_DB_PREFIX": db_prefix,
            "ZHUMENG_HTTP_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


@contextmanager
def running_service(
    name: str,
    infra: Infra,
    db_prefix: str,
    *,
    log_file: Path | None = None,
    ready_within: float = 120,
    **extra: str,
) -> Iterator[ServiceProcess]:
    """`python -m zhumeng_<name>` on a free port against `infra`, ready on entry, stopped on
    exit. `extra` are more environment settings (ZHUMENG_...=...)."""
    port = free_port()
    svc = ServiceProcess(
        name,
        port,
        service_env(infra, port, db_prefix, **extra),
        log_file or infra.data_dir / "logs" / f"{name}.log",
    )
    svc.start()
    try:
        svc.wait_ready(ready_within)
        yield svc
    finally:
        svc.stop()


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


async def catalog_read(
    matching_url: str, bootstrap: str, keys: Iterable[str] = (), within: float = 60
) -> None:
    """Wait until the matching service (or replica) at `matching_url` has read the catalog up
    to now: first until the catalog's outbox has put each of `keys` (ids just created through
    the catalog API) on its topic, then until matching's views (`/v1/read-model`) reach the
    topics' end offsets. Instead of sleeping after creating volunteers, teams or types."""
    import httpx

    from zhumeng_kit.kafka import end_offsets_of

    ops = bearer("ops_tests", "admin")
    async with httpx.AsyncClient(base_url=matching_url, timeout=10) as api:

        async def positions() -> dict[str, dict[str, int]]:
            got = await api.get("/v1/read-model", headers=ops)
            assert got.status_code == 200, got.text
            return dict(got.json()["catalog_positions"])

        topics = list(await positions())
        wanted = set(keys)

        async def published() -> bool:
            seen = {r.key.decode() for t in topics for r in await read_topic(bootstrap, t)}
            return wanted <= seen

        if wanted:
            await eventually(published, within=within, what=f"{sorted(wanted)} on the topics")
        ends = await end_offsets_of(bootstrap, topics)

        async def reached() -> bool:
            pos = await positions()
            return all(pos[t].get(str(p), 0) >= end for (t, p), end in ends.items())

        await eventually(reached, within=within, what=f"the catalog read by {matching_url}")


async def publish_request(
    bootstrap: str,
    posted: Any,
    email: str | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> tuple[int, int]:
    """What the requests service publishes for a new request: the requester's contact first
    (notify needs it to tell them), then `RequestPosted`; returns where the latter landed."""
    from zhumeng_contracts.events import RequesterContact

    contact = RequesterContact(
        request_id=posted.request_id,
        requester_id=f"res_{posted.request_id}",
        name="测试居民",
        phone="13900000000",
        email=email,
    )
    await publish(bootstrap, contact)
    return await publish(bootstrap, posted, headers=headers)


def longxun_request(
    service_type_id: str, *, prefix: str = "req_it", slots: int = 1, start: Any = None
) -> Any:
    """A `RequestPosted` at a Longxun village, by default tomorrow 09:00–12:00 local time, as
    the requests service would publish it (for tests that drive matching directly)."""
    from datetime import UTC

    from zhumeng_contracts.events import RequestPosted
    from zhumeng_contracts.events.common import GeoPoint, TimeWindow

    if start is None:
        start = (datetime.now(UTC) + timedelta(days=1)).replace(hour=1, minute=0)  # 09:00
    return RequestPosted(
        request_id=f"{prefix}_{secrets.token_hex(6)}",
        service_type_id=service_type_id,
        place_id="pl_longxun_v1",
        township_id="pl_longxun",
        location=GeoPoint(lat=25.492, lon=118.243),
        window=TimeWindow(start=start, end=start + timedelta(hours=3)),
        slots=slots,
        posted_at=datetime.now(UTC),
    )


async def create_service_type(platform: Any, prefix: str, **fields: Any) -> str:
    """Create a service type through the catalog API; returns its id. The other services read
    their catalog views up to now before calling an id unknown (ADR 0015), so no wait."""
    import httpx

    sid = f"{prefix}_{secrets.token_hex(4)}"
    body = {
        "id": sid,
        "name_zh": "测试服务",
        "name_en": "Test service",
        "category": "care",
        "default_duration_min": 60,
        "target_claim_min": 60,
        **fields,
    }
    async with httpx.AsyncClient(base_url=platform.url("catalog"), timeout=10) as api:
        created = await api.post(
            "/v1/service-types", json=body, headers=bearer("admin_tests", "admin")
        )
    assert created.status_code == 201, created.text
    return sid

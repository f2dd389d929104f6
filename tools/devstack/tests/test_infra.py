"""Integration tests: real Kafka and document-server processes on free loopback ports in a tmp
dir (the document server is the configured one: SecantusDB unless ZHUMENG_DOCDB says ferretdb)."""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from zhumeng_devstack.infra import (
    FerretDBServer,
    InfraError,
    KafkaServer,
    document_server,
    ensure_kafka_jars,
    free_port,
    wire_ping,
)
from zhumeng_devstack.kafka_probe import probe

pytestmark = pytest.mark.integration

HAS_PYMONGO = importlib.util.find_spec("pymongo") is not None


@pytest.fixture(scope="module")
def kafka_jars() -> Path:
    return ensure_kafka_jars()


@pytest.fixture
def kafka(tmp_path: Path, kafka_jars: Path) -> Iterator[KafkaServer]:
    srv = KafkaServer(tmp_path / "kafka", free_port(), free_port(), tmp_path / "kafka.log")
    srv.start()
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def docdb(tmp_path: Path) -> Iterator[FerretDBServer]:
    srv = document_server(tmp_path / "docdb", free_port(), tmp_path / "docdb.log")
    srv.start()
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_ensure_is_idempotent(kafka_jars: Path) -> None:
    assert ensure_kafka_jars() == kafka_jars
    assert any(p.name.startswith("kafka_2.13-") for p in kafka_jars.iterdir())


async def test_kafka_produce_consume(kafka: KafkaServer) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    assert kafka.pid is not None
    assert kafka.bootstrap.startswith("127.0.0.1:")
    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        group_id="g1",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), 30)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert (msg.key, msg.value) == (b"k1", b"hello")


async def test_kafka_probe_passes(kafka: KafkaServer) -> None:
    res = await probe(kafka.bootstrap)
    assert res["ok"], res


def test_kafka_restart_reuses_data_dir(tmp_path: Path, kafka_jars: Path) -> None:
    data = tmp_path / "kafka"
    for _ in range(2):  # second start: storage already formatted, new ports
        srv = KafkaServer(data, free_port(), free_port(), tmp_path / "kafka.log")
        srv.start()
        try:
            srv.wait_ready()
        finally:
            srv.stop()
        assert srv.pid is None
    assert (data / "kraft-logs" / "meta.properties").is_file()


def test_kafka_wait_ready_reports_death(tmp_path: Path, kafka_jars: Path) -> None:
    port = free_port()
    first = KafkaServer(tmp_path / "a", port, free_port(), tmp_path / "a.log")
    first.start()
    try:
        first.wait_ready()
        clash = KafkaServer(tmp_path / "b", port, free_port(), tmp_path / "b.log")
        clash.start()
        try:
            with pytest.raises(InfraError):
                clash.wait_ready(timeout=60)
        finally:
            clash.stop()
    finally:
        first.stop()


def test_document_server_ping_and_restart(tmp_path: Path) -> None:
    data = tmp_path / "docdb"
    for _ in range(2):
        srv = document_server(data, free_port(), tmp_path / "docdb.log")
        srv.start()
        try:
            srv.wait_ready()
            assert wire_ping("127.0.0.1", srv.port)
            assert srv.uri == f"mongodb://127.0.0.1:{srv.port}/"
        finally:
            srv.stop()
        assert srv.pid is None


@pytest.mark.skipif(not HAS_PYMONGO, reason="pymongo not installed")
async def test_document_server_insert_find(docdb: FerretDBServer) -> None:
    from pymongo import AsyncMongoClient, ReturnDocument
    from pymongo.errors import DuplicateKeyError

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(docdb.uri)
    try:
        col = client["zhumeng_test"]["things"]
        await col.insert_one({"_id": "a", "n": 0, "tags": ["x"]})
        assert await col.find_one({"_id": "a"}) == {"_id": "a", "n": 0, "tags": ["x"]}
        doc = await col.find_one_and_update(
            {"_id": "a", "n": {"$lt": 3}},
            {"$inc": {"n": 1}, "$push": {"tags": "y"}, "$set": {"s": "open"}},
            return_document=ReturnDocument.AFTER,
        )
        assert doc == {"_id": "a", "n": 1, "tags": ["x", "y"], "s": "open"}
        await col.update_one({"_id": "a"}, {"$pull": {"tags": "x"}})
        assert (await col.find_one({"_id": "a"}) or {})["tags"] == ["y"]
        await col.create_index("email", unique=True)
        await col.insert_one({"_id": "b", "email": "e@x"})
        with pytest.raises(DuplicateKeyError):
            await col.insert_one({"_id": "c", "email": "e@x"})
    finally:
        await client.close()

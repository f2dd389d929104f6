"""Kafka plumbing: the FastStream broker with an idempotent producer, topic creation from the
registry, and the relay's publisher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import Event
from zhumeng_contracts.topics import TOPICS

from .metrics import OUTBOX_PUBLISHED
from .mongo import Doc
from .outbox import Publisher, wire_message

log = logging.getLogger("zhumeng.kafka")
TOPIC_ALREADY_EXISTS = 36
DLQ_CONFIG = {"retention.ms": str(30 * 24 * 3600 * 1000)}


async def all_partitions(consumer: Any, topics: Iterable[str]) -> list[TopicPartition]:
    """The partitions of these topics, from fresh cluster metadata (a consumer without a
    subscription knows no partitions yet)."""
    cluster = await consumer._client.fetch_all_metadata()
    return [
        TopicPartition(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())
    ]


async def end_offsets_of(bootstrap: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """The current end offset of every partition of these topics (where "now" ends)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = await all_partitions(consumer, topics)
        ends = await consumer.end_offsets(parts)
        return {(tp.topic, tp.partition): int(off) for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def records_since(
    bootstrap: str,
    topics: Iterable[str],
    since: datetime,
    until: Mapping[tuple[str, int], int] | None = None,
) -> AsyncIterator[Any]:
    """Every record of these topics with a timestamp from `since` on (the broker's time index:
    `offsets_for_times`), up to the `until` end offsets (default: the ends right now), in
    order within each partition. No consumer group: nothing is committed."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = await all_partitions(consumer, topics)
        consumer.assign(parts)
        if until is None:
            until = {
                (tp.topic, tp.partition): int(o)
                for tp, o in (await consumer.end_offsets(parts)).items()
            }
        since_ms = int(since.timestamp() * 1000)
        starts = await consumer.offsets_for_times({tp: since_ms for tp in parts})
        todo: dict[TopicPartition, int] = {}
        for tp in parts:
            start, end = starts.get(tp), until.get((tp.topic, tp.partition), 0)
            if start is not None and start.offset < end:
                consumer.seek(tp, start.offset)
                todo[tp] = end
        while todo:
            batches = await consumer.getmany(*todo, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    # Timestamps are the producers' clocks (CreateTime), not monotonic within a
                    # partition: the time index gives the first offset stamped at or after
                    # `since`; earlier-stamped records after it are skipped here.
                    if record.offset < todo.get(tp, 0) and record.timestamp >= since_ms:
                        yield record
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp]:
                    del todo[tp]
    finally:
        await consumer.stop()


def make_broker(bootstrap: str, client_id: str) -> KafkaBroker:
    # Idempotent producer with acks=all: a retried send never duplicates or reorders
    # within a partition (DESIGN §4).
    return KafkaBroker(
        bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        logger=logging.getLogger(f"faststream.{client_id}"),
    )


class BrokerPublisher(Publisher):
    def __init__(self, broker: KafkaBroker, service: str) -> None:
        self._broker = broker
        self._published = OUTBOX_PUBLISHED.labels(service)

    async def publish_many(self, entries: list[Doc]) -> None:
        pending = [
            await self._broker.publish(
                e["body"].encode(),
                topic=e["topic"],
                key=e["key"].encode(),
                headers=e["headers"],
                no_confirm=True,
            )
            for e in entries
        ]
        await asyncio.gather(*pending)
        self._published.inc(len(entries))


async def publish_event(broker: KafkaBroker, meta: EventMeta, event: Event) -> None:
    """Publish one event in its topic's wire format (binary or structured CloudEvents) and
    wait for the broker's acknowledgement (idempotent producer, acks=all)."""
    value, headers = wire_message(meta, event)
    await broker.publish(value, topic=event.TOPIC, key=event.key().encode(), headers=headers)


async def ensure_topics(bootstrap: str, partitions_override: int | None = None) -> list[str]:
    """Create every registered topic and its dead-letter topic; returns those created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="zhumeng-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted: list[NewTopic] = []
        for spec in TOPICS:
            parts = partitions_override or spec.partitions
            if spec.name not in existing:
                wanted.append(NewTopic(spec.name, parts, 1, topic_configs=spec.config()))
            if spec.dlq not in existing:
                wanted.append(NewTopic(spec.dlq, 1, 1, topic_configs=DLQ_CONFIG))
        created = []
        if wanted:
            resp = await admin.create_topics(wanted)
            for name, code, *rest in resp.topic_errors:
                if code == 0:
                    created.append(name)
                elif code != TOPIC_ALREADY_EXISTS:  # a concurrent creator is fine
                    raise RuntimeError(f"creating topic {name} failed: code {code} {rest}")
        await _wait_for_leaders(admin, [t.name for t in wanted])
        return created
    finally:
        await admin.close()


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30
) -> None:
    """New partitions take a moment to get a leader; producing before that only logs errors."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while names and asyncio.get_running_loop().time() < deadline:
        described = await admin.describe_topics(names)
        if all(
            t.get("error_code", 0) == 0
            and t.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in t["partitions"])
            for t in described
        ):
            return
        await asyncio.sleep(0.2)

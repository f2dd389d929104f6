"""In-memory views of compacted topics (catalog state), rebuilt from the start of each topic.

Every replica reads every partition (no consumer group), so each holds the whole view. The
view is `ready` once it has read up to the end offsets the topics had when it started, so a
service never decides on a half-loaded catalog; `caught_up` does the same later, on demand,
for a record that may have been written a moment ago (a request for a service type created
just before it, ADR 0015).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from zhumeng_contracts.envelope import EnvelopeError, EventMeta, decode
from zhumeng_contracts.events import Event

from .consumer import DeadLetters
from .kafka import all_partitions

log = logging.getLogger("zhumeng.views")

E = TypeVar("E", bound=Event)


class View(Generic[E]):
    """id -> current record of one entity type; inactive records are dropped."""

    def __init__(self, model: type[E]) -> None:
        self.model = model
        self.items: dict[str, E] = {}
        self.listeners: list[Callable[[str, E | None], None]] = []

    def apply(self, key: str, record: E | None) -> None:
        if record is None or not getattr(record, "active", True):
            self.items.pop(key, None)
            record = None
        else:
            old = self.items.get(key)
            if old is not None and getattr(old, "version", 0) > getattr(record, "version", 0):
                return  # an older state replayed late
            self.items[key] = record
        for listener in self.listeners:
            listener(key, record)

    def get(self, key: str) -> E | None:
        return self.items.get(key)

    def __len__(self) -> int:
        return len(self.items)


class CompactedTopicsReader:
    """Feeds views from their compacted topics; runs for the life of the service."""

    def __init__(
        self,
        bootstrap: str,
        views: dict[str, View[Any]],
        client_id: str,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._dlq = dead_letters
        self._views = views
        self._client_id = client_id
        self.ready = asyncio.Event()
        self.rejected = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {}  # next offset to read, per partition
        self._progress = asyncio.Condition()

    async def caught_up(self, *topics: str, within: float = 10.0) -> None:
        """Return once the views of `topics` hold every record written to them before now.

        Raises TimeoutError if that takes longer than `within` seconds (the broker unreachable)."""
        async with asyncio.timeout(within):
            await self.ready.wait()
            consumer = self._consumer
            if consumer is None:
                raise ConnectionError("the catalog reader is restarting")
            parts = [tp for tp in self._positions if tp.topic in topics]
            targets = await consumer.end_offsets(parts)

            def reached() -> bool:
                return all(self._positions.get(tp, 0) >= end for tp, end in targets.items())

            async with self._progress:
                await self._progress.wait_for(reached)

    def positions(self) -> dict[str, dict[int, int]]:
        """topic -> partition -> the next offset the view will read (operations: how far it
        trails its topics)."""
        out: dict[str, dict[int, int]] = {}
        for tp, offset in self._positions.items():
            out.setdefault(tp.topic, {})[tp.partition] = offset
        return out

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            parts = await all_partitions(consumer, self._views)
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            self._positions = dict.fromkeys(parts, 0)
            self._consumer = consumer
            targets = {tp: off for tp, off in (await consumer.end_offsets(parts)).items() if off}
            if not targets:
                self.ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=1000)
                for tp, records in batch.items():
                    for rec in records:
                        await self._apply(rec)
                    if tp in targets and records and records[-1].offset + 1 >= targets[tp]:
                        del targets[tp]
                # the position, not the last record: it also steps over transaction markers
                for tp in self._positions:
                    self._positions[tp] = await consumer.position(tp)
                async with self._progress:
                    self._progress.notify_all()
                if not self.ready.is_set():
                    for tp in list(targets):
                        if self._positions[tp] >= targets[tp]:
                            del targets[tp]
                    if not targets:
                        log.info("views ready: %s", {t: len(v) for t, v in self._views.items()})
                        self.ready.set()
        finally:
            self._consumer = None
            await consumer.stop()

    async def _apply(self, rec: Any) -> None:
        view = self._views[rec.topic]
        key = (rec.key or b"").decode()
        if rec.value is None:
            view.apply(key, None)  # tombstone
            return
        try:
            event = decode(EventMeta.from_headers(rec.headers or []), rec.value)
        except EnvelopeError as exc:
            self.rejected += 1
            if self._dlq is not None:
                await self._dlq.send(rec, "invalid-record", str(exc), 1)
            return
        if isinstance(event, view.model):
            view.apply(key, event)

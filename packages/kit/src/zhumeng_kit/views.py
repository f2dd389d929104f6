"""In-memory views of compacted topics (catalog state), rebuilt from the start of each topic.

Every replica reads every partition (no consumer group), so each holds the whole view. The
view is `ready` once it has read up to the end offsets the topics had when it started, so a
service never decides on a half-loaded catalog.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer

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
                if not self.ready.is_set():
                    for tp in list(targets):
                        if await consumer.position(tp) >= targets[tp]:
                            del targets[tp]
                    if not targets:
                        log.info("views ready: %s", {t: len(v) for t, v in self._views.items()})
                        self.ready.set()
        finally:
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

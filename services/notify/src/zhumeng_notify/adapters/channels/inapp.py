"""In-app notifications: the channel hands each message to the person's open event streams
(`/v1/stream`, entrypoints/stream_http.py) through an in-process hub, and the stream reads the
stored in-app deliveries to resume after `Last-Event-ID` and to catch what another replica
sent. The delivery document (written before the send) is the record; the hub only makes it
immediate."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from zhumeng_kit.mongo import Doc

from ...domain.model import INAPP_CHANNEL, Message, Receipt
from .base import utcnow

log = logging.getLogger("zhumeng.notify.inapp")


@dataclass(frozen=True)
class InAppEvent:
    id: str  # the delivery id: the SSE event id, and what Last-Event-ID names
    data: dict[str, Any]
    seq: str = ""  # stored deliveries: their time-ordered sequence id
    sent: bool = False  # stored deliveries: the send completed (not in flight)

    @classmethod
    def of_message(cls, message: Message, at: datetime) -> InAppEvent:
        return cls(
            message.delivery_id,
            {
                "id": message.delivery_id,
                "subject": message.rendered.subject,
                "body": message.rendered.body,
                "urgent": message.rendered.urgent,
                "request_id": message.cause.request_id,
                "event_type": message.cause.event_type,
                "locale": message.locale,
                "at": at.isoformat(),
            },
        )

    @classmethod
    def of_doc(cls, doc: Doc) -> InAppEvent:
        at = doc.get("created_at")
        return cls(
            str(doc["_id"]),
            {
                "id": str(doc["_id"]),
                "subject": doc.get("subject", ""),
                "body": doc.get("body", ""),
                "urgent": bool(doc.get("urgent", False)),
                "request_id": doc.get("request_id"),
                "event_type": doc.get("cause_event_type"),
                "locale": doc.get("locale"),
                "at": at.isoformat() if isinstance(at, datetime) else None,
            },
            seq=str(doc.get("seq", "")),
            sent=doc.get("status") == "sent",
        )


class InAppHub:
    """Fan-out to the streams open in this process, per person. A stream that does not keep
    up loses live events (its queue is bounded) and gets them back from the stored deliveries
    on its next poll."""

    def __init__(self, queue_size: int = 100) -> None:
        self._queues: dict[str, set[asyncio.Queue[InAppEvent]]] = {}
        self._size = queue_size

    @contextmanager
    def subscribe(self, recipient_id: str) -> Iterator[asyncio.Queue[InAppEvent]]:
        queue: asyncio.Queue[InAppEvent] = asyncio.Queue(self._size)
        self._queues.setdefault(recipient_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._queues.get(recipient_id, set())
            queues.discard(queue)
            if not queues:
                self._queues.pop(recipient_id, None)

    def publish(self, recipient_id: str, event: InAppEvent) -> int:
        """Hand the event to every open stream of the person; returns how many took it."""
        taken = 0
        for queue in self._queues.get(recipient_id, ()):
            try:
                queue.put_nowait(event)
                taken += 1
            except asyncio.QueueFull:
                log.warning("in-app stream of %s is behind; it will catch up", recipient_id)
        return taken

    def streams(self, recipient_id: str) -> int:
        return len(self._queues.get(recipient_id, ()))


class InAppChannel:
    name = INAPP_CHANNEL

    def __init__(self, hub: InAppHub, clock: Callable[[], datetime] = utcnow) -> None:
        self._hub = hub
        self._clock = clock

    async def send(self, message: Message) -> Receipt:
        at = self._clock()
        streams = self._hub.publish(message.recipient.id, InAppEvent.of_message(message, at))
        log.info(
            "notification delivery=%s channel=inapp recipient=%s open_streams=%d",
            message.delivery_id,
            message.recipient.id,
            streams,
        )
        return Receipt(self.name, f"inapp:{message.delivery_id}", at)


class InAppFeed:
    """Read-only queries of notify's deliveries collection for the stream."""

    def __init__(self, deliveries: AsyncCollection[Doc]) -> None:
        self._coll = deliveries

    def _mine(self, recipient_id: str) -> dict[str, Any]:
        return {
            "recipient_id": recipient_id,
            "channel": INAPP_CHANNEL,
            "status": {"$in": ["pending", "sent"]},
        }

    async def after(
        self, recipient_id: str, last_event_id: str, limit: int = 500
    ) -> list[InAppEvent]:
        """The person's in-app deliveries after the one named, oldest first; nothing if that
        one is unknown or not theirs."""
        last = await self._coll.find_one(
            {"_id": last_event_id, "recipient_id": recipient_id}, {"seq": 1}
        )
        if last is None:
            return []
        query = {**self._mine(recipient_id), "seq": {"$gt": last["seq"]}}
        docs = (
            await self._coll.find(query, {"outbox": 0})
            .sort("seq", ASCENDING)
            .limit(limit)
            .to_list()
        )
        return [InAppEvent.of_doc(d) for d in docs]

    async def recent(self, recipient_id: str, limit: int = 50) -> list[InAppEvent]:
        """The person's latest in-app deliveries, oldest first."""
        docs = (
            await self._coll.find(self._mine(recipient_id), {"outbox": 0})
            .sort("seq", DESCENDING)
            .limit(limit)
            .to_list()
        )
        return [InAppEvent.of_doc(d) for d in reversed(docs)]

"""Transactional outbox without multi-document transactions (DESIGN §4).

A command writes its events into the aggregate's own document, in the same single-document
update as the state change:

    {"$set": {...state...}, "$push": {"outbox": {"$each": [...]}}, "$inc": {"_v": 1}}

The relay publishes pending events with the idempotent producer (acks=all) and removes them
only after the broker acknowledged, with a compare-and-set on `_v` so it never drops an event
a concurrent command appended meanwhile. A crash between publish and removal republishes:
consumers are idempotent by event id, so that is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from zhumeng_contracts.envelope import EventMeta, encode, to_structured
from zhumeng_contracts.events import Event
from zhumeng_contracts.topics import TOPICS_BY_NAME

from .mongo import Doc

log = logging.getLogger("zhumeng.outbox")


STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"


def is_structured(topic: str) -> bool:
    spec = TOPICS_BY_NAME.get(topic)
    return spec is not None and spec.structured


def wire_message(meta: EventMeta, event: Event) -> tuple[bytes, dict[str, str]]:
    """The Kafka value and headers of an event on its topic.

    Internal topics: CloudEvents binary mode (`ce_*` headers, the payload as the value).
    Structured topics (the public feeds): the whole CloudEvent is the value, with
    `content-type: application/cloudevents+json`, so it can go to an agency byte for byte.
    The `ce_*` headers are kept as a copy for tooling that routes or counts by type without
    parsing values (dead letters, metrics); the value is authoritative, and a CloudEvents
    reader picks structured mode by the content type."""
    headers = {k: v.decode() for k, v in meta.to_headers()}
    if is_structured(event.TOPIC):
        value = json.dumps(to_structured(meta, event), ensure_ascii=False).encode()
        return value, {**headers, "content-type": STRUCTURED_CONTENT_TYPE}
    return encode(event), headers


def outbox_entry(
    event: Event, source: str, traceparent: str | None = None, event_id: str | None = None
) -> Doc:
    """The stored form of one pending event. `event_id` fixes the CloudEvents id (an event
    derived from another gets an id derived from that one, so a re-derivation repeats it)."""
    meta = EventMeta.new(event, source, traceparent)
    if event_id is not None:
        meta = dataclasses.replace(meta, id=event_id)
    value, headers = wire_message(meta, event)
    return {
        "id": meta.id,
        "topic": event.TOPIC,
        "key": event.key(),
        # a mapping, not pairs: MongoDB-compatible servers may reject nested arrays
        "headers": headers,
        "body": value.decode(),
    }


def append_events(update: Doc, entries: Iterable[Doc]) -> Doc:
    """Add outbox entries (and the version bump) to a MongoDB update document."""
    entries = list(entries)
    update = {k: dict(v) for k, v in update.items()}
    update.setdefault("$inc", {})["_v"] = 1
    if entries:
        update.setdefault("$push", {})["outbox"] = {"$each": entries}
        update.setdefault("$set", {})["has_outbox"] = True
    return update


def new_document(doc: Doc, entries: Iterable[Doc]) -> Doc:
    """A new aggregate document with its first events."""
    entries = list(entries)
    return {**doc, "_v": 1, "outbox": entries, "has_outbox": bool(entries)}


async def ensure_outbox_index(collection: AsyncCollection[Doc]) -> None:
    await collection.create_index([("has_outbox", ASCENDING)], name="outbox_pending")


class Lease:
    """A named lease in MongoDB, so that one relay per collection runs among N replicas."""

    def __init__(self, db: AsyncDatabase[Doc], name: str, ttl_s: float = 10.0) -> None:
        self._coll = db["leases"]
        self.name = name
        self.ttl = timedelta(seconds=ttl_s)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._renew_after = 0.0  # monotonic time after which the lease is renewed

    async def acquire(self) -> bool:
        """Take or renew the lease; renews in the database only once half its time is gone,
        so an idle relay does not write on every poll."""
        if time.monotonic() < self._renew_after:
            return True
        now = datetime.now(UTC)
        query = {"_id": self.name, "$or": [{"owner": self.owner}, {"expires_at": {"$lt": now}}]}
        update = {"$set": {"owner": self.owner, "expires_at": now + self.ttl}}
        try:
            got = await self._coll.find_one_and_update(
                query, update, upsert=True, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:  # another owner holds a live lease
            return False
        held = got is not None and got.get("owner") == self.owner
        if held:
            self._renew_after = time.monotonic() + self.ttl.total_seconds() / 2
        return held


class Publisher:
    """What the relay needs of a Kafka producer (the FastStream broker in production)."""

    async def publish_many(self, entries: list[Doc]) -> None:
        raise NotImplementedError


class OutboxRelay:
    """Publishes pending outbox entries of the given collections, oldest documents first."""

    def __init__(
        self,
        db: AsyncDatabase[Doc],
        collections: list[str],
        publisher: Publisher,
        poll_interval_s: float = 0.2,
        batch_size: int = 200,
    ) -> None:
        self._db = db
        self._collections = collections
        self._publisher = publisher
        self._poll = poll_interval_s
        self._batch = batch_size
        self._wake = asyncio.Event()
        self._lease = Lease(db, "relay:" + ",".join(collections))
        self.published = 0

    def wake(self) -> None:
        """Called after a command wrote events, so they go out without waiting for the poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            # cleared before the pass: a wake-up that arrives during the pass is kept
            self._wake.clear()
            try:
                if await self._lease.acquire():
                    moved = await self.relay_once()
                    if moved:
                        continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def relay_once(self) -> int:
        """One pass over every collection; returns how many events went out."""
        total = 0
        for name in self._collections:
            coll = self._db[name]
            docs = (
                await coll.find({"has_outbox": True}, {"outbox": 1, "_v": 1})
                .limit(self._batch)
                .to_list()
            )
            entries = [e for d in docs for e in d.get("outbox", [])]
            if not entries:
                continue
            await self._publisher.publish_many(entries)
            await asyncio.gather(*(self._remove_published(coll, d) for d in docs))
            total += len(entries)
        self.published += total
        return total

    async def _remove_published(self, coll: AsyncCollection[Doc], doc: Doc) -> None:
        """Drop what went out; keep anything a concurrent command appended meanwhile."""
        sent = {e["id"] for e in doc.get("outbox", [])}
        current: Doc | None = doc
        while current is not None:
            rest = [e for e in current.get("outbox", []) if e["id"] not in sent]
            res = await coll.update_one(
                {"_id": current["_id"], "_v": current["_v"]},
                {"$set": {"outbox": rest, "has_outbox": bool(rest)}},
            )
            if res.matched_count:
                return
            current = await coll.find_one({"_id": doc["_id"]}, {"outbox": 1, "_v": 1})

"""Structured CloudEvents for the public topics; binary mode unchanged for internal ones."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from zhumeng_contracts.envelope import EnvelopeError, EventMeta
from zhumeng_contracts.events import Event, PublicRequestPosted, RequestCancelled
from zhumeng_kit.consumer import DeadLetters, EventRunner, Record, decode_structured
from zhumeng_kit.outbox import outbox_entry

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
PUBLIC = PublicRequestPosted(
    request_id="req_1",
    service_type_id="haircut",
    township_id="pl_longxun",
    place_id="pl_longxun_v1",
    window={"start": NOW, "end": NOW + timedelta(hours=3)},
    slots=1,
    posted_at=NOW,
)


def test_a_public_event_is_one_structured_cloudevent_value() -> None:
    entry = outbox_entry(PUBLIC, "zhumeng/requests", event_id="pub-1")
    assert entry["topic"] == "public.requests.v1" and entry["key"] == "req_1"
    assert entry["headers"]["content-type"] == "application/cloudevents+json"
    assert entry["headers"]["ce_type"] == PublicRequestPosted.TYPE  # a copy, for tooling
    ce = json.loads(entry["body"])
    assert ce["specversion"] == "1.0" and ce["id"] == "pub-1"
    assert ce["type"] == PublicRequestPosted.TYPE and ce["source"] == "zhumeng/requests"
    assert ce["subject"] == "req_1" and ce["datacontenttype"] == "application/json"
    assert ce["data"]["township_id"] == "pl_longxun"


def test_an_internal_event_stays_in_binary_mode() -> None:
    event = RequestCancelled(request_id="req_1", by="requester", cancelled_at=NOW)
    entry = outbox_entry(event, "zhumeng/requests")
    assert entry["headers"]["ce_type"] == RequestCancelled.TYPE
    assert entry["headers"]["content-type"] == "application/json"
    assert json.loads(entry["body"])["request_id"] == "req_1"


def test_decode_structured_is_the_inverse() -> None:
    entry = outbox_entry(PUBLIC, "zhumeng/requests", event_id="pub-1")
    meta, event = decode_structured(entry["body"].encode(), "00-abc-def-01")
    assert meta.id == "pub-1" and meta.type == PublicRequestPosted.TYPE
    assert meta.traceparent == "00-abc-def-01"
    assert event == PUBLIC


@pytest.mark.parametrize(
    "value",
    [b"{not json", b"[]", b'{"id": "x"}', b'{"id":"x","type":"t","source":"s","data":{}}'],
)
def test_decode_structured_rejects_malformed_values(value: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode_structured(value)


@dataclass
class FakeRecord:
    value: bytes
    headers: list[tuple[str, bytes]]
    topic: str = "public.requests.v1"
    partition: int = 0
    offset: int = 0
    key: bytes | None = b"req_1"


class FakeDeadLetters:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    async def send(self, record: Record, reason: str, error: str, attempts: int) -> None:
        self.reasons.append(reason)


async def test_the_runner_dispatches_structured_records_and_dead_letters_bad_ones() -> None:
    seen: list[tuple[EventMeta, Event]] = []

    async def handler(meta: EventMeta, event: Event) -> None:
        seen.append((meta, event))

    dlq = FakeDeadLetters()
    runner = EventRunner("t", {PublicRequestPosted: handler}, cast(DeadLetters, dlq))
    entry = outbox_entry(PUBLIC, "zhumeng/requests", event_id="pub-1")
    headers: list[tuple[str, bytes]] = [(k, v.encode()) for k, v in entry["headers"].items()]
    await runner.process(cast(Any, FakeRecord(entry["body"].encode(), headers)))
    assert [(m.id, e) for m, e in seen] == [("pub-1", PUBLIC)]
    await runner.process(cast(Any, FakeRecord(b"{oops", headers)))
    broken = json.loads(entry["body"]) | {"data": {"request_id": "req_1"}}
    await runner.process(cast(Any, FakeRecord(json.dumps(broken).encode(), headers)))
    assert dlq.reasons == ["bad-envelope", "invalid-payload"]
    assert len(seen) == 1

"""CloudEvents 1.0 envelope: binary mode for internal Kafka topics (headers `ce_*`),
structured mode for external feeds (DESIGN §3)."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from .events import EVENTS_BY_TYPE, Event

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
Headers = list[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """A message that is not a valid Zhumeng event: it belongs on the dead-letter topic."""


def new_event_id() -> str:
    """A time-ordered id: 12 hex digits of milliseconds, then 16 random hex digits."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


def new_traceparent() -> str:
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


@dataclass(frozen=True)
class EventMeta:
    id: str
    type: str
    source: str
    time: datetime
    subject: str
    traceparent: str

    @classmethod
    def new(cls, event: Event, source: str, traceparent: str | None = None) -> EventMeta:
        return cls(
            id=new_event_id(),
            type=event.TYPE,
            source=source,
            time=datetime.now(UTC),
            subject=event.key(),
            traceparent=traceparent or new_traceparent(),
        )

    def to_headers(self) -> Headers:
        return [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_type", self.type.encode()),
            ("ce_source", self.source.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("ce_subject", self.subject.encode()),
            ("content-type", CONTENT_TYPE.encode()),
            ("traceparent", self.traceparent.encode()),
        ]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes]] | Mapping[str, Any]) -> EventMeta:
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        h = {k: (v.decode() if isinstance(v, bytes | bytearray) else str(v)) for k, v in pairs}
        missing = [k for k in ("ce_id", "ce_type", "ce_source", "ce_time") if not h.get(k)]
        if missing:
            raise EnvelopeError(f"missing CloudEvents headers: {', '.join(missing)}")
        if h.get("ce_specversion", SPEC_VERSION) != SPEC_VERSION:
            raise EnvelopeError(f"unsupported ce_specversion {h['ce_specversion']!r}")
        try:
            when = datetime.fromisoformat(h["ce_time"])
        except ValueError as exc:
            raise EnvelopeError(f"ce_time is not ISO 8601: {h['ce_time']!r}") from exc
        return cls(
            id=h["ce_id"],
            type=h["ce_type"],
            source=h["ce_source"],
            time=when,
            subject=h.get("ce_subject", ""),
            traceparent=h.get("traceparent", ""),
        )


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


def decode(meta: EventMeta, body: bytes) -> Event:
    """Validate a message body against the model its `ce_type` names."""
    model = EVENTS_BY_TYPE.get(meta.type)
    if model is None:
        raise EnvelopeError(f"unknown event type {meta.type!r}")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise EnvelopeError(
            f"{meta.type} payload invalid: {exc.errors(include_url=False)}"
        ) from exc


def to_structured(meta: EventMeta, event: Event) -> dict[str, Any]:
    """Structured-mode CloudEvent, for external feeds and webhooks."""
    return {
        "specversion": SPEC_VERSION,
        "id": meta.id,
        "type": meta.type,
        "source": meta.source,
        "time": meta.time.isoformat(),
        "subject": meta.subject,
        "datacontenttype": CONTENT_TYPE,
        "data": json.loads(event.model_dump_json()),
    }

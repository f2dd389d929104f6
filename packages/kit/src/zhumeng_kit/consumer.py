"""Idempotent, explicitly acknowledged event consumers with bounded retries and dead letters.

Every subscriber acks only after its handler finished (AckPolicy.NACK_ON_ERROR: an error
that escapes rewinds to the message, so nothing is skipped). The runner below catches handler
errors itself: it retries with backoff a bounded number of times, then sends the message to
`<topic>.dlq` with headers that say why and where it came from, and the consumer goes on.
Handlers must be idempotent: a message may arrive again after a crash or rebalance.
"""

# No `from __future__ import annotations`: FastStream inspects the handler's annotations.
import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, cast

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from zhumeng_contracts.envelope import EnvelopeError, EventMeta, decode
from zhumeng_contracts.events import Event
from zhumeng_contracts.topics import dlq_name

from .metrics import EVENT_SECONDS, EVENTS
from .mongo import Doc
from .outbox import STRUCTURED_CONTENT_TYPE

log = logging.getLogger("zhumeng.consumer")

Handler = Callable[[EventMeta, Event], Awaitable[None]]


class PermanentError(Exception):
    """An event that can never be applied (retrying will not help): dead-letter it now."""


class Record(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any


def _header(headers: Any, name: str) -> str | None:
    for k, v in headers or []:
        if k.lower() == name:
            return v.decode(errors="replace") if isinstance(v, bytes | bytearray) else str(v)
    return None


def is_structured_record(headers: Any) -> bool:
    content_type = _header(headers, "content-type") or ""
    return content_type.split(";")[0].strip() == STRUCTURED_CONTENT_TYPE


def structured_envelope(value: bytes, traceparent: str | None = None) -> tuple[EventMeta, bytes]:
    """The metadata and the `data` (as JSON bytes, not yet validated) of a structured-mode
    CloudEvent (`content-type: application/cloudevents+json`, the public feeds)."""
    try:
        ce = json.loads(value)
    except ValueError as exc:
        raise EnvelopeError(f"structured CloudEvent is not JSON: {exc}") from exc
    if not isinstance(ce, dict) or "data" not in ce:
        raise EnvelopeError("structured CloudEvent must be a JSON object with data")
    attrs = ("specversion", "id", "type", "source", "time", "subject")
    headers = {f"ce_{a}": ce[a] for a in attrs if isinstance(ce.get(a), str)}
    if traceparent:
        headers["traceparent"] = traceparent
    return EventMeta.from_headers(headers), json.dumps(ce["data"]).encode()


def decode_structured(value: bytes, traceparent: str | None = None) -> tuple[EventMeta, Event]:
    """Decode and validate a structured-mode CloudEvent (the inverse of `to_structured`)."""
    meta, data = structured_envelope(value, traceparent)
    return meta, decode(meta, data)


class DeadLetters:
    def __init__(self, broker: "KafkaBroker", consumer: str) -> None:
        self._broker = broker
        self._consumer = consumer
        self.sent = 0

    async def send(self, record: Record, reason: str, error: str, attempts: int) -> None:
        headers = {
            k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
            for k, v in (record.headers or [])
        }
        headers.update(
            {
                "dlq-reason": reason,
                "dlq-error": error[:1000],
                "dlq-attempts": str(attempts),
                "dlq-origin-topic": record.topic,
                "dlq-origin-partition": str(record.partition),
                "dlq-origin-offset": str(record.offset),
                "dlq-consumer": self._consumer,
            }
        )
        await self._broker.publish(
            record.value or b"", topic=dlq_name(record.topic), key=record.key, headers=headers
        )
        self.sent += 1
        log.warning(
            "dead-lettered %s[%s]@%s: %s", record.topic, record.partition, record.offset, reason
        )


class EventRunner:
    """Decodes a record, dispatches it by event type, retries, dead-letters."""

    def __init__(
        self,
        service: str,
        handlers: dict[type[Event], Handler],
        dead_letters: DeadLetters,
        max_attempts: int = 5,
        backoff_s: float = 0.2,
    ) -> None:
        self._service = service
        self._handlers = {model.TYPE: h for model, h in handlers.items()}
        self._dlq = dead_letters
        self._max = max_attempts
        self._backoff = backoff_s
        self.processed = 0

    async def process(self, record: Record) -> None:
        ce_type, outcome = await self._process(record)
        EVENTS.labels(self._service, record.topic, ce_type, outcome).inc()

    async def _process(self, record: Record) -> tuple[str, str]:
        """Returns the event type (as far as known) and what became of the record."""
        body = record.value or b""
        try:
            if is_structured_record(record.headers):
                meta, body = structured_envelope(body, _header(record.headers, "traceparent"))
            else:
                meta = EventMeta.from_headers(record.headers or [])
        except EnvelopeError as exc:
            await self._dlq.send(record, "bad-envelope", str(exc), 1)
            return "unknown", "dead_lettered"
        handler = self._handlers.get(meta.type)
        if handler is None:
            return meta.type, "ignored"  # another consumer's event type on a shared topic
        try:
            event = decode(meta, body)
        except EnvelopeError as exc:
            await self._dlq.send(record, "invalid-payload", str(exc), 1)
            return meta.type, "dead_lettered"
        for attempt in range(1, self._max + 1):
            try:
                with EVENT_SECONDS.labels(self._service, meta.type).time():
                    await handler(meta, event)
                self.processed += 1
                return meta.type, "applied" if attempt == 1 else "retried"
            except asyncio.CancelledError:
                raise
            except PermanentError as exc:
                await self._dlq.send(record, "rejected", str(exc), attempt)
                return meta.type, "dead_lettered"
            except Exception as exc:
                if attempt == self._max:
                    log.exception("handler failed %d times for %s", attempt, meta.id)
                    await self._dlq.send(record, "handler-failed", repr(exc), attempt)
                    return meta.type, "dead_lettered"
                log.info("handler failed for %s (attempt %d), retrying: %r", meta.id, attempt, exc)
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable: the loop returns on its last attempt")


def subscribe(
    broker: KafkaBroker,
    topics: Iterable[str],
    group_id: str,
    runner: EventRunner,
    workers: int = 1,
    **options: Any,
) -> None:
    """Register a consumer-group subscriber whose offsets are committed only after processing.

    With `workers` > 1 (one topic only) that many consumers join the group; each owns whole
    partitions, so events of one key are still handled in order, one at a time.
    """
    topics = list(topics)
    if workers > 1 and len(topics) == 1:
        options["max_workers"] = workers

    async def raw_body(msg: Any) -> Any:
        # The runner decodes the record itself. FastStream's default decoder would parse a
        # `content-type: application/json` body before the handler runs: a body that is not
        # JSON would then fail outside the runner, be nacked and redelivered forever (a
        # poison pill that blocks the partition) instead of going to the dead-letter topic.
        return msg.body

    sub = broker.subscriber(
        *topics,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        decoder=raw_body,
        **options,
    )

    @sub  # type: ignore[untyped-decorator]  # FastStream's decorator is untyped
    async def on_record(msg: KafkaMessage) -> None:
        await runner.process(cast(Record, msg.raw_message))  # one record: not a batch subscriber


# Idempotency helpers for handlers: record applied event ids in the same single-document
# update as the state change, so that a redelivered event matches nothing and is a no-op.
def not_applied(event_id: str) -> Doc:
    return {"applied": {"$ne": event_id}}


def mark_applied(update: Doc, event_id: str) -> Doc:
    update = {k: dict(v) for k, v in update.items()}
    update.setdefault("$push", {})["applied"] = event_id
    return update

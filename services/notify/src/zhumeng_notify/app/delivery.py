"""Delivery semantics: which channel, when, how often, and what is recorded.

`Dispatcher.deliver(recipient, rendered, cause)` is what every event handler calls. Deliveries
are keyed by (event id, recipient, channel): a redelivered event finds its delivery and sends
nothing again. Calls that arrive together (the handlers of one polled batch of events run
concurrently) are flushed together: one bulk insert claims them all, the channels send them
concurrently, one bulk update records every outcome with its `NotificationDelivered` in the
outbox. A flush never waits for a slow retry: anything that cannot go out now is handed to a
durable timer and the event is acknowledged.

- Quiet hours (22:00-07:00 Asia/Shanghai by default): a non-urgent message for a person who
  keeps quiet hours is stored `deferred` and a timer sends it when they end.
- A transient failure (`SendUnavailable`, or any unexpected error) keeps the delivery pending
  with its lease set to the retry time, and a timer retries it after an exponential backoff
  with jitter; after the last attempt it is `dead_lettered` (an admin may replay it).
  `SendRejected` fails it at once.
- A delivery held by another sender (a crash mid-send leaves its lease behind) is watched by a
  timer that takes it over once the lease has run out: exactly one send follows.
- `ContactMissing` (a contact topic lags the event): the event itself is kept in a timer and
  handled again later (`EventReplay`), instead of blocking its partition.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from zhumeng_contracts.envelope import EventMeta, decode, encode
from zhumeng_contracts.events import Event, NotificationDelivered

from ..domain.backoff import RetryPolicy
from ..domain.model import (
    FINAL,
    Cause,
    Delivery,
    Final,
    Locale,
    Message,
    Receipt,
    Recipient,
    Rendered,
    address_for,
    delivery_id,
)
from ..domain.preferences import DEFAULTS, Preferences, apply, choose_channel
from ..domain.quiet_hours import QuietHours, send_at
from .ports import (
    Channel,
    Completion,
    DeliveryRepository,
    Directory,
    NewDelivery,
    PreferenceSource,
    SendRejected,
    Timers,
)

log = logging.getLogger("zhumeng.notify.delivery")

RESUME = "notify-delivery"  # timer kind: send a delivery now (retry, quiet hours, a lease)
REPLAY = "notify-event"  # timer kind: handle an event again (its contact had not arrived)

EventHandler = Callable[[EventMeta, Event], Awaitable[Any]]


class ContactMissing(Exception):
    """A recipient's contact is not in the view yet (its topic can lag): handled later."""


@dataclass(frozen=True)
class Outcome:
    delivery_id: str
    # sent | failed | skipped (already done) | deferred | retrying | dead_lettered
    # | suppressed | busy (another sender holds it; a timer watches it)
    result: str


@dataclass(frozen=True)
class DeliveryPolicy:
    lease: timedelta = timedelta(seconds=30)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    quiet: QuietHours | None = field(default_factory=QuietHours)
    max_batch: int = 2000


def _utcnow() -> datetime:
    return datetime.now(UTC)


def describe(exc: BaseException, address: str | None) -> str:
    """An error text fit to store and log: no address, no body."""
    text = f"{type(exc).__name__}: {exc}"[:300]
    if address:
        text = text.replace(address, "<address>")
    return text


class _NoPreferences:
    def get(self, person_id: str) -> Preferences | None:
        return None

    def sms_blocked(self, phone: str | None) -> bool:
        return False


class PreferringDirectory:
    """The directory as each person's preferences shape it (locale, WeChat binding), so that
    handlers render in the language the person chose."""

    def __init__(self, inner: Directory, preferences: PreferenceSource) -> None:
        self.inner = inner
        self._prefs = preferences

    def requester(self, request_id: str) -> Recipient | None:
        found = self.inner.requester(request_id)
        return apply(found, self._prefs.get(found.id)) if found else None

    def volunteer(self, volunteer_id: str) -> Recipient | None:
        found = self.inner.volunteer(volunteer_id)
        return apply(found, self._prefs.get(found.id)) if found else None

    def service_name(self, service_type_id: str, locale: Locale) -> str | None:
        return self.inner.service_name(service_type_id, locale)


@dataclass
class _Job:
    recipient: Recipient
    rendered: Rendered
    cause: Cause
    future: asyncio.Future[Outcome]


@dataclass(frozen=True)
class _Send:
    message: Message
    attempt: int
    last_attempt: int | None = None
    lease_until: datetime | None = None  # when this sender's hold on it runs out


class Dispatcher:
    def __init__(
        self,
        deliveries: DeliveryRepository,
        channels: Mapping[str, Channel],
        directory: Directory,
        timers: Timers,
        *,
        preferences: PreferenceSource | None = None,
        policy: DeliveryPolicy | None = None,
        clock: Callable[[], datetime] = _utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if "log" not in channels:
            raise ValueError("the log channel is the fallback and must be configured")
        self._deliveries = deliveries
        self.channels = dict(channels)
        self._prefs: PreferenceSource = preferences or _NoPreferences()
        self.directory = PreferringDirectory(directory, self._prefs)
        self._timers = timers
        self.policy = policy or DeliveryPolicy()
        self._clock = clock
        self._rand = rand
        self._queue: list[_Job] = []
        self._flusher: asyncio.Task[None] | None = None
        self.flushes = 0
        self._recorded_s = 0.0  # time the last flush spent recording outcomes

    # ---- the handlers' entry ----------------------------------------------------------------

    async def deliver(self, recipient: Recipient, rendered: Rendered, cause: Cause) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(recipient, rendered, cause, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        return await asyncio.shield(future)

    async def _flush_loop(self) -> None:
        while self._queue:
            # Let the other handlers of the same polled batch reach `deliver` first.
            seen = -1
            for _ in range(20):
                if len(self._queue) == seen:
                    break
                seen = len(self._queue)
                await asyncio.sleep(0)
            jobs = self._queue[: self.policy.max_batch]
            del self._queue[: len(jobs)]
            try:
                outcomes = await self._flush(jobs)
            except Exception as exc:  # the store is down: every handler retries its event
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for job, outcome in zip(jobs, outcomes, strict=True):
                if not job.future.done():
                    job.future.set_result(outcome)

    def _channel_for(self, recipient: Recipient) -> str:
        prefs = self._prefs.get(recipient.id) or DEFAULTS
        blocked = self._prefs.sms_blocked(recipient.phone)
        return choose_channel(recipient, prefs, self.channels, blocked)

    def _message(self, recipient: Recipient, rendered: Rendered, cause: Cause) -> Message:
        recipient = apply(recipient, self._prefs.get(recipient.id))
        channel = self._channel_for(recipient)
        return Message(
            delivery_id=delivery_id(cause.event_id, recipient.id, channel),
            channel=channel,
            recipient=recipient,
            address=address_for(recipient, channel),
            rendered=rendered,
            cause=cause,
            locale=recipient.locale,
        )

    def _due(self, message: Message, now: datetime) -> datetime | None:
        """When quiet hours hold the message back: the time they end; else None (now)."""
        prefs = self._prefs.get(message.recipient.id) or DEFAULTS
        at = send_at(now, self.policy.quiet, message.rendered.urgent, prefs.quiet_hours)
        return at if at > now else None

    async def _flush(self, jobs: list[_Job]) -> list[Outcome]:
        self.flushes += 1
        now = self._clock()
        messages = [self._message(j.recipient, j.rendered, j.cause) for j in jobs]
        first: dict[str, int] = {}
        items: list[NewDelivery] = []
        for i, m in enumerate(messages):
            if m.delivery_id in first:
                continue  # the same event twice in one batch: its first copy decides
            first[m.delivery_id] = i
            due = self._due(m, now)
            event = self._event(m, "deferred", 1, now) if due else None
            items.append(NewDelivery(Delivery.of(m), due, event))
        started = time.perf_counter()
        claims = await self._deliveries.claim_many(items, now, self.policy.lease)
        claimed = time.perf_counter()
        results: dict[str, Outcome] = {}
        sends: list[_Send] = []
        watches: list[Awaitable[Any]] = []
        for item, claim in zip(items, claims, strict=True):
            did = item.delivery.id
            message = messages[first[did]]
            if claim.kind == "send":
                sends.append(_Send(message, claim.attempts, lease_until=claim.lease_until))
                continue
            if claim.kind == "deferred":
                log.info("delivery %s deferred to %s (quiet hours)", did, claim.lease_until)
                watches.append(self._resume_at(did, "d", claim.lease_until))
                results[did] = Outcome(did, "deferred")
            elif claim.kind == "done":
                log.info("delivery %s already %s; not sent again", did, claim.status)
                results[did] = Outcome(did, "skipped")
            else:
                # held by a live lease (a sender mid-send, a crash, or a retry or deferral
                # waiting): a timer takes it over once that has run out
                tag = "d" if claim.status == "deferred" else f"b{claim.attempts}"
                watches.append(self._resume_at(did, tag, claim.lease_until))
                results[did] = Outcome(did, "busy")
        await asyncio.gather(*watches)
        results.update(await self._send(sends))
        if len(jobs) >= 100:  # where a big batch's time goes (the store, mostly)
            total = time.perf_counter() - claimed
            log.info(
                "flushed %d deliveries: claim %.3f s, send %.3f s, record %.3f s",
                len(jobs),
                claimed - started,
                total - self._recorded_s,
                self._recorded_s,
            )
        return [
            results[m.delivery_id]
            if first[m.delivery_id] == i
            else Outcome(m.delivery_id, "skipped")
            for i, m in enumerate(messages)
        ]

    # ---- sending and recording --------------------------------------------------------------

    async def _send(self, sends: list[_Send]) -> dict[str, Outcome]:
        if not sends:
            return {}
        answers = await asyncio.gather(
            *(self.channels[s.message.channel].send(s.message) for s in sends),
            return_exceptions=True,
        )
        now = self._clock()
        completions: list[Completion] = []
        results: dict[str, Outcome] = {}
        retries: list[tuple[_Send, str]] = []
        for s, answer in zip(sends, answers, strict=True):
            did = s.message.delivery_id
            if isinstance(answer, Receipt):
                completions.append(self._completion(s, "sent", now, answer))
                results[did] = Outcome(did, "sent")
                continue
            if not isinstance(answer, Exception):  # cancelled: the lease expires, a timer resumes
                raise answer
            error = describe(answer, s.message.address)
            if isinstance(answer, SendRejected):
                log.warning(
                    "delivery %s rejected by the %s channel: %s", did, s.message.channel, error
                )
                completions.append(self._completion(s, "failed", now, None, error))
                results[did] = Outcome(did, "failed")
            elif self.policy.retry.exhausted(s.attempt, s.last_attempt):
                log.error("delivery %s dead-lettered after attempt %d: %s", did, s.attempt, error)
                completions.append(self._completion(s, "dead_lettered", now, None, error))
                results[did] = Outcome(did, "dead_lettered")
            else:
                retries.append((s, error))
                results[did] = Outcome(did, "retrying")
        recording = time.perf_counter()
        held = await self._deliveries.complete_many(completions)
        self._recorded_s = time.perf_counter() - recording
        if held < len(completions):
            log.warning(
                "%d deliveries were taken over before they completed", len(completions) - held
            )
        await asyncio.gather(*(self._retry(s, error, now) for s, error in retries))
        return results

    async def _retry(self, s: _Send, error: str, now: datetime) -> None:
        did = s.message.delivery_id
        retry_at = now + timedelta(seconds=self.policy.retry.delay_s(s.attempt, self._rand))
        # a retry does not wake anybody either: it waits for the end of their quiet hours
        retry_at = self._due(s.message, retry_at) or retry_at
        # the timer first: should we crash before the next write, it still comes
        await self._resume_at(did, f"r{s.attempt}", retry_at)
        await self._deliveries.retry_later(did, s.attempt, now, retry_at, error)
        log.warning(
            "delivery %s attempt %d failed (%s); retry at %s", did, s.attempt, error, retry_at
        )

    def _completion(
        self,
        s: _Send,
        status: Final,
        now: datetime,
        receipt: Receipt | None = None,
        error: str | None = None,
    ) -> Completion:
        event = self._event(s.message, status, s.attempt, now, receipt)
        return Completion(
            s.message.delivery_id, s.attempt, status, now, event, receipt, error, s.lease_until
        )

    @staticmethod
    def _event(
        m: Message, status: str, attempt: int, now: datetime, receipt: Receipt | None = None
    ) -> NotificationDelivered:
        return NotificationDelivered(
            delivery_id=m.delivery_id,
            cause_event_id=m.cause.event_id,
            cause_event_type=m.cause.event_type,
            recipient_id=m.recipient.id,
            recipient_role=m.recipient.role,
            channel=m.channel,
            status=status,
            delivered_at=now,
            attempt=max(1, attempt),
            provider_message_id=receipt.reference[:128] if receipt else None,
        )

    # ---- timers -----------------------------------------------------------------------------

    async def _resume_at(self, did: str, tag: str, at: datetime | None) -> None:
        await self._timers.schedule(RESUME, f"{did}#{tag}", at or self._clock(), {"delivery": did})

    async def replay(self, did: str) -> dict[str, Any] | None:
        """An admin's second chance for a dead-lettered delivery: a fresh budget of
        attempts, the first one now. None if it is not dead-lettered."""
        doc = await self._deliveries.replay(did, self._clock(), self.policy.retry.max_attempts)
        if doc is not None:
            await self._resume_at(did, f"x{doc['attempts']}", self._clock())
        return doc

    async def on_timer(self, key: str, payload: Mapping[str, Any]) -> Outcome:
        """The RESUME timer: send the delivery if it is due and nobody holds it."""
        return await self.resume(str(payload["delivery"]), own_key=key)

    async def resume(self, did: str, own_key: str | None = None) -> Outcome:
        now = self._clock()
        doc = await self._deliveries.take(did, now, self.policy.lease)
        if doc is None:
            state = await self._deliveries.state(did)
            if state is None or state["status"] in FINAL:
                return Outcome(did, "skipped")
            tag = "d" if state["status"] == "deferred" else f"b{state['attempts']}"
            if f"{did}#{tag}" != own_key:  # else another timer (a retry) already waits
                await self._resume_at(did, tag, state.get("lease_until"))
            return Outcome(did, "busy")
        attempt = int(doc["attempts"])
        send = self._rebuild(doc, attempt)
        if send is None:
            error = "ContactMissing: the recipient is no longer in the contact views"
            stub = _Send(self._placeholder(doc), attempt, doc.get("last_attempt"))
            return await self._fail_transiently(stub, error, now)
        message = send.message
        if self._channel_for(message.recipient) != message.channel:
            # opted out (or unbound) since: this channel is suppressed, the next one is used
            await self._deliveries.complete_many([self._completion(send, "suppressed", now)])
            log.info("delivery %s suppressed: %s is no longer wanted", did, message.channel)
            return await self.deliver(message.recipient, message.rendered, message.cause)
        return (await self._send([send]))[did]

    async def _fail_transiently(self, s: _Send, error: str, now: datetime) -> Outcome:
        did = s.message.delivery_id
        if self.policy.retry.exhausted(s.attempt, s.last_attempt):
            await self._deliveries.complete_many(
                [self._completion(s, "dead_lettered", now, None, error)]
            )
            return Outcome(did, "dead_lettered")
        await self._retry(s, error, now)
        return Outcome(did, "retrying")

    def _recipient_of(self, doc: Mapping[str, Any]) -> Recipient | None:
        if doc["role"] == "requester":
            found = self.directory.requester(doc["request_id"])
            return found if found is not None and found.id == doc["recipient_id"] else None
        return self.directory.volunteer(doc["recipient_id"])

    @staticmethod
    def _cause(doc: Mapping[str, Any]) -> Cause:
        return Cause(doc["cause_event_id"], doc["cause_event_type"], doc["request_id"])

    @staticmethod
    def _rendered(doc: Mapping[str, Any]) -> Rendered:
        return Rendered(doc["subject"], doc["body"], doc.get("short"), bool(doc.get("urgent")))

    def _placeholder(self, doc: Mapping[str, Any]) -> Message:
        who = Recipient(doc["recipient_id"], doc["role"], "", doc["locale"])
        return Message(
            doc["_id"],
            doc["channel"],
            who,
            None,
            self._rendered(doc),
            self._cause(doc),
            doc["locale"],
        )

    def _rebuild(self, doc: Mapping[str, Any], attempt: int) -> _Send | None:
        """The stored delivery as a message again; the address is looked up afresh (only a
        masked one is stored)."""
        recipient = self._recipient_of(doc)
        if recipient is None:
            return None
        channel = doc["channel"]
        message = Message(
            delivery_id=doc["_id"],
            channel=channel,
            recipient=recipient,
            address=address_for(recipient, channel),
            rendered=self._rendered(doc),
            cause=self._cause(doc),
            locale=doc["locale"],
        )
        return _Send(message, attempt, doc.get("last_attempt"), doc.get("lease_until"))


class EventReplay:
    """Events whose recipient's contact has not arrived yet are kept in a durable timer and
    handled again later, so that the partition moves on. The timer's own retries (with
    backoff) wait for the contact; after its last attempt the timer is left `failed`."""

    def __init__(
        self, timers: Timers, wait: timedelta, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._timers = timers
        self._wait = wait
        self._clock = clock
        self._handlers: dict[str, EventHandler] = {}

    def wrap(self, handlers: Mapping[type[Event], EventHandler]) -> dict[type[Event], EventHandler]:
        wrapped: dict[type[Event], EventHandler] = {}
        for model, handler in handlers.items():
            self._handlers[model.TYPE] = handler
            wrapped[model] = self._guard(handler)
        return wrapped

    def _guard(self, handler: EventHandler) -> EventHandler:
        async def guarded(meta: EventMeta, event: Event) -> None:
            try:
                await handler(meta, event)
            except ContactMissing as exc:
                payload = {
                    "headers": {k: v.decode() for k, v in meta.to_headers()},
                    "body": encode(event).decode(),
                }
                due = self._clock() + self._wait
                kept = await self._timers.schedule(REPLAY, meta.id, due, payload)
                if kept not in ("scheduled", "rescheduled", "unchanged", "leased"):
                    # its timer already gave up (or ran): retry in-line, then the DLQ topic
                    raise
                log.info("event %s waits for a contact (%s); handled again later", meta.id, exc)

        return guarded

    async def on_timer(self, key: str, payload: Mapping[str, Any]) -> None:
        """The REPLAY timer: handle the kept event; ContactMissing makes the timer retry."""
        meta = EventMeta.from_headers(payload["headers"])
        event = decode(meta, str(payload["body"]).encode())
        handler = self._handlers.get(meta.type)
        if handler is None:
            log.warning("no handler any more for kept event %s of type %s", key, meta.type)
            return
        await handler(meta, event)

"""Agency feeds (ADR 0014): the public events, delivered to every matching subscription by a
signed POST, at least once, with retries, dead letters and replay from a point in time.

Flow: a consumer (own group) on the public topics calls `on_public_event`; for each matching
subscription one delivery record is inserted under its deterministic id, a durable timer is
armed a little later as a safety net, and the first attempt starts at once in this process.
Delivered (or refused for good) -> the safety net is dropped. A transient failure moves the
timer to the backoff; from then on the timer runs `deliver` and the scheduler retries with
exponential backoff (surviving restarts). After the last attempt, or at once on a 4xx, the
delivery is dead-lettered. A crash before the first attempt ends leaves the safety net, which
fires. A replay scans the public topics from `since` (broker time index) up to where they
ended when it was asked for, and enqueues the subscription's matching events again, each as a
new delivery marked with the replay id.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from zhumeng_contracts.envelope import EnvelopeError, EventMeta, to_structured
from zhumeng_contracts.events import Event
from zhumeng_kit.consumer import decode_structured
from zhumeng_kit.ids import new_id
from zhumeng_kit.outbox import STRUCTURED_CONTENT_TYPE
from zhumeng_kit.timers import Timer

from ..domain.subscriptions import Subscription, delivery_id
from .ports import SendRejected

log = logging.getLogger("zhumeng.notify.agency")

WEBHOOK_TIMER = "webhook"
REPLAY_HEADER = "zhumeng-replay-id"
Doc = dict[str, Any]
Offsets = dict[tuple[str, int], int]


# Development and tests only, refused in production (like the JWT secret): a Fernet key.
DEV_SECRETS_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"zhumeng dev only").digest()).decode()


class AgencyFeedSettings(BaseSettings):
    """Validated at start-up (env prefix ZHUMENG_AGENCY_)."""

    model_config = SettingsConfigDict(env_prefix="ZHUMENG_AGENCY_", extra="ignore")

    environment: str = Field(
        default="development", validation_alias=AliasChoices("ZHUMENG_ENVIRONMENT")
    )
    webhook_max_attempts: int = Field(default=8, ge=1, le=20)
    webhook_backoff_s: float = Field(default=2.0, gt=0, le=3600)
    webhook_max_backoff_s: float = Field(default=900.0, gt=0, le=86_400)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    webhook_concurrency: int = Field(default=32, ge=1, le=256)
    # loopback and private addresses as webhook targets: default on outside production
    webhook_allow_loopback: bool | None = None
    # notify's own webhook channel (one configured endpoint), off unless set
    notify_webhook_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ZHUMENG_NOTIFY_WEBHOOK_URL")
    )
    notify_webhook_secret: str | None = Field(
        default=None,
        min_length=24,
        validation_alias=AliasChoices("ZHUMENG_NOTIFY_WEBHOOK_SECRET"),
    )

    # Fernet keys sealing subscription secrets at rest, comma-separated, the sealing one first
    secrets_keys: SecretStr = SecretStr(DEV_SECRETS_KEY)

    @model_validator(mode="after")
    def _safe_defaults(self) -> AgencyFeedSettings:
        production = self.environment == "production"
        if production and DEV_SECRETS_KEY in self.secrets_keys.get_secret_value():
            raise ValueError("ZHUMENG_AGENCY_SECRETS_KEYS must be set in production")
        if self.webhook_allow_loopback is None:
            self.webhook_allow_loopback = not production
        elif self.webhook_allow_loopback and production:
            raise ValueError("webhooks to internal addresses are refused in production")
        if self.notify_webhook_url and not self.notify_webhook_secret:
            raise ValueError("ZHUMENG_NOTIFY_WEBHOOK_SECRET must be set with the webhook URL")
        return self

    @property
    def loopback_allowed(self) -> bool:
        return bool(self.webhook_allow_loopback)


class SubscriptionStore(Protocol):
    async def active(self) -> list[Subscription]: ...

    async def get(self, sub_id: str) -> Subscription | None: ...

    async def add_delivery(self, doc: Doc) -> bool: ...

    async def delivery(self, delivery_id: str) -> Doc | None: ...

    async def update_pending(self, delivery_id: str, fields: Doc) -> bool: ...

    async def add_replay(self, doc: Doc) -> None: ...

    async def replay(self, replay_id: str) -> Doc | None: ...

    async def running_replays(self) -> list[Doc]: ...

    async def finish_replay(self, replay_id: str, fields: dict[str, Any]) -> None: ...


class Sender(Protocol):
    async def post(
        self,
        url: str,
        secret: str,
        msg_id: str,
        body: bytes,
        content_type: str = ...,
        extra_headers: Mapping[str, str] | None = None,
    ) -> tuple[int, datetime]: ...


class Timers(Protocol):
    async def arm(self, key: str, due_at: datetime, new: bool) -> None:
        """Arm the delivery timer `key` unless it exists (pending, running or final); `new`:
        the delivery was just inserted, so no timer can exist yet."""
        ...

    async def retry_at(self, key: str, due_at: datetime) -> None:
        """Move the pending timer `key` to `due_at` (the first retry)."""
        ...

    async def drop(self, key: str) -> None:
        """Remove the pending timer `key`: its delivery is final."""
        ...


History = Callable[[datetime, Offsets], AsyncIterator[Any]]  # Kafka records since, up to


def utcnow() -> datetime:
    return datetime.now(UTC)


class RetryLater(Exception):
    """A transient failure: the timer is retried with backoff."""


Outcome = str  # "delivered" | "dead_lettered" | "cancelled" | "retry" | "done"


class AgencyFeed:
    def __init__(
        self,
        store: SubscriptionStore,
        sender: Sender,
        timers: Timers,
        history: History,
        ends: Callable[[], Awaitable[Offsets]],
        max_attempts: int,
        clock: Callable[[], datetime] = utcnow,
        backoff_s: float = 2.0,
        safety_net_s: float = 60.0,
        concurrency: int = 32,
    ) -> None:
        self._store = store
        self._sender = sender
        self._timers = timers
        self._history = history
        self._ends = ends
        self._max = max_attempts
        self._clock = clock
        self._backoff = timedelta(seconds=backoff_s)
        self._safety_net = timedelta(seconds=safety_net_s)
        self._gate = asyncio.Semaphore(concurrency)
        self._replays: set[asyncio.Task[None]] = set()
        self._first: set[asyncio.Task[None]] = set()

    # -- live events --

    async def on_public_event(self, meta: EventMeta, event: Event) -> None:
        township = getattr(event, "township_id", None)
        subs = [s for s in await self._store.active() if s.wants(meta.type, township)]
        if not subs:
            return
        # the same bytes the public topic carries (`wire_message`)
        body = json.dumps(to_structured(meta, event), ensure_ascii=False)
        for sub in subs:
            await self._enqueue(sub, meta, township, body, None)

    async def _enqueue(
        self,
        sub: Subscription,
        meta: EventMeta,
        township: str | None,
        body: str,
        replay_id: str | None,
    ) -> None:
        did = delivery_id(meta.id, sub.id, replay_id)
        now = self._clock()
        doc = {
            "_id": did,
            "subscription_id": sub.id,
            "owner": sub.owner,
            "event_id": meta.id,
            "event_type": meta.type,
            "event_time": meta.time,
            "request_id": meta.subject,
            "township_id": township,
            "replay_id": replay_id,
            "body": body,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        if await self._store.add_delivery(doc):
            await self._timers.arm(did, now + self._safety_net, new=True)
            task = asyncio.create_task(self._first_attempt(did, doc, sub))
            self._first.add(task)
            task.add_done_callback(self._first.discard)
        else:  # a redelivered event: a crash may have come between the two writes
            await self._timers.arm(did, now, new=False)

    async def _first_attempt(self, did: str, doc: Doc, sub: Subscription) -> None:
        try:
            async with self._gate:
                outcome = await self._attempt(did, (doc, sub))
            if outcome == "retry":
                await self._timers.retry_at(did, self._clock() + self._backoff)
            else:
                await self._timers.drop(did)
        except asyncio.CancelledError:
            raise
        except Exception:  # the safety-net timer takes over
            log.warning("first attempt of %s failed to run; the timer retries", did, exc_info=True)

    async def drain(self) -> None:
        """Wait for the first attempts under way (tests, shutdown)."""
        while self._first:
            await asyncio.gather(*self._first, return_exceptions=True)

    # -- sending --

    async def deliver(self, timer: Timer) -> None:
        """The timer handler: one attempt; a transient failure raises for the backoff."""
        outcome = await self._attempt(timer.key)
        if outcome == "retry":
            raise RetryLater(timer.key)

    async def _attempt(
        self, did: str, fresh: tuple[Doc, Subscription | None] | None = None
    ) -> Outcome:
        """One attempt. `fresh`: the delivery just inserted and its subscription (the first
        attempt needs not read them again); otherwise both are read now."""
        doc, sub = fresh if fresh is not None else (await self._store.delivery(did), None)
        if doc is None or doc["status"] != "pending":
            return "done"
        now = self._clock()
        if fresh is None:
            sub = await self._store.get(doc["subscription_id"])
        if sub is None:
            await self._store.update_pending(
                did, {"status": "cancelled", "updated_at": now, "last_error": "unsubscribed"}
            )
            return "cancelled"
        attempt = int(doc.get("attempts", 0)) + 1
        extra = {REPLAY_HEADER: doc["replay_id"]} if doc.get("replay_id") else {}
        try:
            code, at = await self._sender.post(
                sub.url,
                sub.secret,
                doc["event_id"],
                doc["body"].encode(),
                STRUCTURED_CONTENT_TYPE,
                extra,
            )
        except SendRejected as exc:
            return await self._dead_letter(did, attempt, f"rejected: {exc}")
        except Exception as exc:  # SendUnavailable and anything unforeseen: retried
            error = str(exc) or type(exc).__name__
            if attempt >= self._max:
                return await self._dead_letter(did, attempt, f"gave up: {error}")
            await self._store.update_pending(
                did, {"attempts": attempt, "last_error": error, "updated_at": now}
            )
            return "retry"
        await self._store.update_pending(
            did,
            {
                "status": "delivered",
                "attempts": attempt,
                "status_code": code,
                "delivered_at": at,
                "updated_at": at,
            },
        )
        return "delivered"

    async def _dead_letter(self, did: str, attempt: int, error: str) -> Outcome:
        log.warning("webhook delivery %s dead-lettered after %d attempts: %s", did, attempt, error)
        await self._store.update_pending(
            did,
            {
                "status": "dead_lettered",
                "attempts": attempt,
                "last_error": error,
                "updated_at": self._clock(),
            },
        )
        return "dead_lettered"

    # -- replay --

    async def start_replay(self, sub: Subscription, since: datetime) -> Doc:
        """Record the replay (with where the topics end now), then scan in the background."""
        until = await self._ends()
        doc: Doc = {
            "_id": new_id("rpl"),
            "subscription_id": sub.id,
            "owner": sub.owner,
            "since": since,
            "until": [{"topic": t, "partition": p, "offset": o} for (t, p), o in until.items()],
            "state": "running",
            "created_at": self._clock(),
            "matched": 0,
        }
        await self._store.add_replay(doc)
        self._spawn(doc["_id"])
        return doc

    def _spawn(self, replay_id: str) -> None:
        task = asyncio.create_task(self.run_replay(replay_id))
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)

    async def resume_replays(self) -> None:
        """After a restart: scan again the replays that had not finished (idempotent: the
        delivery ids of a replay are deterministic)."""
        for doc in await self._store.running_replays():
            self._spawn(doc["_id"])

    async def run_replay(self, replay_id: str, attempts: int = 6) -> None:
        """Scan, and scan again after a failure (a broker or database hiccup under load) with a
        growing pause; re-enqueuing is idempotent, so a partial scan repeated sends nothing
        twice. After the last attempt it resumes at the next start."""
        for attempt in range(1, attempts + 1):
            try:
                await self._replay(replay_id)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("replay %s failed (attempt %d of %d)", replay_id, attempt, attempts)
                if attempt < attempts:
                    await asyncio.sleep(min(2.0**attempt, 30.0))
        log.error("replay %s gave up for now; it resumes at the next start", replay_id)

    async def _replay(self, replay_id: str) -> None:
        doc = await self._store.replay(replay_id)
        if doc is None or doc["state"] != "running":
            return
        sub = await self._store.get(doc["subscription_id"])
        matched = 0
        if sub is not None:
            until = {(u["topic"], u["partition"]): u["offset"] for u in doc["until"]}
            since = doc["since"] if doc["since"].tzinfo else doc["since"].replace(tzinfo=UTC)
            async for record in self._history(since, until):
                try:
                    meta, event = decode_structured(record.value or b"")
                except EnvelopeError:
                    continue  # the live consumer dead-letters it; nothing to re-deliver
                township = getattr(event, "township_id", None)
                if sub.wants(meta.type, township):
                    await self._enqueue(sub, meta, township, record.value.decode(), replay_id)
                    matched += 1
        await self._store.finish_replay(
            replay_id, {"matched": matched, "finished_at": self._clock()}
        )
        log.info("replay %s enqueued %d deliveries", replay_id, matched)

    async def stop(self) -> None:
        tasks = [*self._replays, *self._first]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

"""The ports the use case needs; adapters implement them, tests fake them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from zhumeng_contracts.events import NotificationDelivered

from ..domain.model import Claim, Delivery, Final, Locale, Message, Receipt, Recipient
from ..domain.preferences import Preferences


class SendRejected(Exception):
    """The provider refused the message for good (bad number, opted out, template invalid):
    retrying cannot help, so the delivery fails at once."""


class SendUnavailable(Exception):
    """The provider could not take the message now (5xx, timeout, throttled): retried with
    backoff. Any other exception a channel raises counts as this."""


class Channel(Protocol):
    """One way of reaching people: log, email, sms, wechat, inapp, webhook."""

    name: str

    async def send(self, message: Message) -> Receipt:
        """Deliver or raise (`SendRejected` / `SendUnavailable`). Must not put the address or
        the body into an exception."""
        ...


@dataclass(frozen=True)
class Completion:
    """The outcome of one send attempt, written with its event in one update."""

    delivery_id: str
    attempt: int
    status: Final
    at: datetime
    event: NotificationDelivered
    receipt: Receipt | None = None
    error: str | None = None
    # the sender's lease: while it has clearly not run out, nobody else can have taken the
    # delivery over, and the store may skip the fence (cheaper on some servers)
    lease_until: datetime | None = None


@dataclass(frozen=True)
class NewDelivery:
    """A delivery to insert: pending (sent now) or deferred until `due_at` (with its event)."""

    delivery: Delivery
    due_at: datetime | None = None
    deferred_event: NotificationDelivered | None = None


class DeliveryRepository(Protocol):
    async def claim_many(
        self, items: list[NewDelivery], now: datetime, lease: timedelta
    ) -> list[Claim]:
        """Insert each delivery (one bulk write): pending as attempt 1 under a lease, or
        deferred. One that exists already is taken over if its lease ran out, else reported
        done / busy (with the time its lease, retry or deferral ends)."""
        ...

    async def complete_many(self, items: list[Completion]) -> int:
        """One bulk write: each delivery still held as `attempt` gets its final status, its
        attempt log entry and its event in the outbox. Returns how many were still held."""
        ...

    async def retry_later(
        self, delivery_id: str, attempt: int, now: datetime, retry_at: datetime, error: str
    ) -> bool:
        """Keep a pending delivery for a retry at `retry_at` (its lease ends then)."""
        ...

    async def take(
        self, delivery_id: str, now: datetime, lease: timedelta
    ) -> dict[str, Any] | None:
        """Take a pending or deferred delivery whose lease or deferral ended, as its next
        attempt; None if it is final, held, or not due."""
        ...

    async def replay(self, delivery_id: str, now: datetime, budget: int) -> dict[str, Any] | None:
        """A dead-lettered delivery back to pending, due now, with `budget` more attempts."""
        ...

    async def state(self, delivery_id: str) -> dict[str, Any] | None:
        """Status, attempts, lease_until and last_attempt of a delivery."""
        ...


class Timers(Protocol):
    """Durable timers (zhumeng_kit.timers.Scheduler): idempotent by (kind, key)."""

    async def schedule(
        self, kind: str, key: str, due_at: datetime, payload: dict[str, Any] | None = None
    ) -> str: ...


class PreferenceSource(Protocol):
    """Preferences as the dispatcher reads them: from memory, kept fresh by the store."""

    def get(self, person_id: str) -> Preferences | None: ...

    def sms_blocked(self, phone: str | None) -> bool:
        """Did this phone reply TD/STOP while nobody was known by it?"""
        ...


class Directory(Protocol):
    """Who is who: contacts and names from the views of the catalog and requests topics, and
    the coordinators from notify's own directory (ADR 0012)."""

    def requester(self, request_id: str) -> Recipient | None: ...

    def volunteer(self, volunteer_id: str) -> Recipient | None: ...

    def service_name(self, service_type_id: str, locale: Locale) -> str | None: ...

    async def coordinators(self, township_id: str | None) -> list[Recipient]:
        """A township's coordinators (None: the county centre's); none known: empty."""
        ...

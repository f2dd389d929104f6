"""The ports the use case needs; adapters implement them, tests fake them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from zhumeng_contracts.events import NotificationDelivered

from ..domain.model import Claim, Delivery, Final, Locale, Message, Receipt, Recipient


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


class DeliveryRepository(Protocol):
    async def claim(self, delivery: Delivery, now: datetime, lease: timedelta) -> Claim:
        """Insert the delivery as pending (attempt 1), or take over a pending one whose lease
        expired (attempt n+1), or report it done / busy."""
        ...

    async def complete(
        self,
        delivery_id: str,
        attempt: int,
        status: Final,
        now: datetime,
        receipt: Receipt | None,
        error: str | None,
        event: NotificationDelivered,
    ) -> bool:
        """One update: status sent/failed (if still held as `attempt`) plus the outbox event.
        False if another sender took the delivery over meanwhile."""
        ...

    async def release(self, delivery_id: str, attempt: int, now: datetime, error: str) -> None:
        """Give a pending delivery back (lease expired now) after a transient send error."""
        ...


class Directory(Protocol):
    """Who is who: contacts and names from the views of the catalog and requests topics."""

    def requester(self, request_id: str) -> Recipient | None: ...

    def volunteer(self, volunteer_id: str) -> Recipient | None: ...

    def service_name(self, service_type_id: str, locale: Locale) -> str | None: ...

"""What notify works with: recipients, rendered messages, deliveries. Pure values, no I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from zhumeng_kit.pii import mask_email, mask_phone

Role = Literal["requester", "volunteer", "coordinator"]
Locale = Literal["zh-CN", "en"]
# pending: being sent, or waiting for its retry (lease_until); deferred: held for quiet hours
Status = Literal["pending", "deferred", "sent", "failed", "dead_lettered", "suppressed"]
Final = Literal["sent", "failed", "dead_lettered", "suppressed"]
FINAL: frozenset[str] = frozenset({"sent", "failed", "dead_lettered", "suppressed"})
CHANNELS: tuple[str, ...] = ("sms", "email", "wechat", "inapp", "log")

LOG_CHANNEL = "log"
EMAIL_CHANNEL = "email"
SMS_CHANNEL = "sms"
WECHAT_CHANNEL = "wechat"
INAPP_CHANNEL = "inapp"
WEBHOOK_CHANNEL = "webhook"


@dataclass(frozen=True)
class Recipient:
    """Someone to tell: a requester (from requests.contacts.v1) or a volunteer (catalog)."""

    id: str
    role: Role
    name: str
    locale: Locale = "zh-CN"
    email: str | None = None
    phone: str | None = None
    wechat_openid: str | None = None  # bound through the person's preferences

    def __repr__(self) -> str:  # never print contact details by accident
        return f"Recipient(id={self.id!r}, role={self.role!r}, locale={self.locale!r})"


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    # the SMS text (within one provider segment) and whether quiet hours may be ignored
    short: str | None = None
    urgent: bool = False


@dataclass(frozen=True)
class Cause:
    """The event a notification answers."""

    event_id: str
    event_type: str
    request_id: str


def delivery_id(event_id: str, recipient_id: str, channel: str) -> str:
    """The idempotency key: one event, one recipient, one channel -> at most one send."""
    return f"{event_id}|{recipient_id}|{channel}"


def message_id(delivery: str, domain: str = "notify.zhumeng") -> str:
    """A stable RFC 5322 Message-ID: a resent duplicate carries the same one."""
    digest = hashlib.sha256(delivery.encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


def address_for(recipient: Recipient, channel: str) -> str | None:
    if channel == EMAIL_CHANNEL:
        return recipient.email
    if channel == LOG_CHANNEL:
        return recipient.email or recipient.phone
    if channel == WECHAT_CHANNEL:
        return recipient.wechat_openid
    if channel in (INAPP_CHANNEL, WEBHOOK_CHANNEL):
        return None  # in-app goes to the person's id; a webhook to its configured URL
    return recipient.phone


def mask_address(address: str | None) -> str | None:
    if address is None:
        return None
    return mask_email(address) if "@" in address else mask_phone(address)


@dataclass(frozen=True)
class Message:
    """One rendered notification for one recipient on one channel."""

    delivery_id: str
    channel: str
    recipient: Recipient
    address: str | None
    rendered: Rendered
    cause: Cause
    locale: Locale

    @property
    def masked_address(self) -> str | None:
        return mask_address(self.address)

    def __repr__(self) -> str:
        return f"Message(delivery_id={self.delivery_id!r}, channel={self.channel!r})"


@dataclass(frozen=True)
class Receipt:
    channel: str
    reference: str
    at: datetime


@dataclass(frozen=True)
class Delivery:
    """The stored record of a delivery (no full address: it is looked up again to resend)."""

    id: str
    recipient_id: str
    role: Role
    channel: str
    masked_address: str | None
    locale: Locale
    subject: str
    body: str
    cause: Cause
    status: Status = "pending"
    attempts: int = 0
    short: str | None = None
    urgent: bool = False

    @classmethod
    def of(cls, message: Message) -> Delivery:
        return cls(
            id=message.delivery_id,
            recipient_id=message.recipient.id,
            role=message.recipient.role,
            channel=message.channel,
            masked_address=message.masked_address,
            locale=message.locale,
            subject=message.rendered.subject,
            body=message.rendered.body,
            cause=message.cause,
            short=message.rendered.short,
            urgent=message.rendered.urgent,
        )


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to take a delivery for sending.

    send: this caller sends now, as attempt `attempts`; deferred: stored to be sent at
    `lease_until` (quiet hours); done: already final; busy: another sender holds a live lease,
    or a retry or a deferral waits (until `lease_until`).
    """

    kind: Literal["send", "deferred", "done", "busy"]
    attempts: int
    status: Status
    lease_until: datetime | None = None

"""Events of notify (key = delivery id). No message body and no address: dashboards only."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import Event
from .common import AwareDatetime, Id


class NotificationDelivered(Event):
    TYPE: ClassVar[str] = "zhumeng.notification.delivered.v1"
    TOPIC: ClassVar[str] = "notify.events.v1"

    delivery_id: str
    cause_event_id: str
    cause_event_type: str
    recipient_id: Id
    recipient_role: Literal["requester", "volunteer", "coordinator"]
    channel: str
    status: Literal["sent", "failed", "deferred", "dead_lettered", "suppressed"]
    delivered_at: AwareDatetime
    # additive: which attempt this outcome belongs to, and the provider's own message id
    attempt: int = Field(default=1, ge=1)
    provider_message_id: str | None = Field(default=None, max_length=128)

    def key(self) -> str:
        return self.delivery_id

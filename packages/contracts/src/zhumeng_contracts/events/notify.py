"""Events of notify (key = delivery id). No message body and no address: dashboards only."""

from __future__ import annotations

from typing import ClassVar, Literal

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
    status: Literal["sent", "failed"]
    delivered_at: AwareDatetime

    def key(self) -> str:
        return self.delivery_id

"""Every event type, and the lookup from CloudEvents type to model."""

from .base import Event
from .catalog import ContactRecord, PlaceRecord, ServiceTypeRecord, TeamRecord, VolunteerRecord
from .matching import RequestUnmatched, ScorePart, VolunteerAssigned
from .notify import NotificationDelivered
from .requests import RequesterContact, RequestPosted

ALL_EVENTS: tuple[type[Event], ...] = (
    ServiceTypeRecord,
    PlaceRecord,
    VolunteerRecord,
    TeamRecord,
    ContactRecord,
    RequestPosted,
    RequesterContact,
    VolunteerAssigned,
    RequestUnmatched,
    NotificationDelivered,
)

EVENTS_BY_TYPE: dict[str, type[Event]] = {e.TYPE: e for e in ALL_EVENTS}

__all__ = [
    "ALL_EVENTS",
    "EVENTS_BY_TYPE",
    "ContactRecord",
    "Event",
    "NotificationDelivered",
    "PlaceRecord",
    "RequestPosted",
    "RequestUnmatched",
    "RequesterContact",
    "ScorePart",
    "ServiceTypeRecord",
    "TeamRecord",
    "VolunteerAssigned",
    "VolunteerRecord",
]

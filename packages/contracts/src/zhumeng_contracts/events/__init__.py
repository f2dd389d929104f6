"""Every event type, and the lookup from CloudEvents type to model."""

from .base import Event
from .catalog import ContactRecord, PlaceRecord, ServiceTypeRecord, TeamRecord, VolunteerRecord
from .lifecycle import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    ClaimOpened,
    OfferDeclined,
    OfferExpired,
    OfferMade,
    RequestCompleted,
    RequestUnfulfilled,
)
from .matching import RequestUnmatched, ScorePart, VolunteerAssigned
from .notify import NotificationDelivered
from .requests import RequestCancelled, RequesterContact, RequestPosted, RequestRated

ALL_EVENTS: tuple[type[Event], ...] = (
    ServiceTypeRecord,
    PlaceRecord,
    VolunteerRecord,
    TeamRecord,
    ContactRecord,
    RequestPosted,
    RequesterContact,
    RequestCancelled,
    RequestRated,
    VolunteerAssigned,
    RequestUnmatched,
    OfferMade,
    OfferDeclined,
    OfferExpired,
    ClaimOpened,
    CheckedIn,
    AssignmentCompleted,
    AssignmentCancelled,
    RequestCompleted,
    RequestUnfulfilled,
    NotificationDelivered,
)

EVENTS_BY_TYPE: dict[str, type[Event]] = {e.TYPE: e for e in ALL_EVENTS}

__all__ = [
    "ALL_EVENTS",
    "EVENTS_BY_TYPE",
    "AssignmentCancelled",
    "AssignmentCompleted",
    "CheckedIn",
    "ClaimOpened",
    "ContactRecord",
    "Event",
    "NotificationDelivered",
    "OfferDeclined",
    "OfferExpired",
    "OfferMade",
    "PlaceRecord",
    "RequestCancelled",
    "RequestCompleted",
    "RequestPosted",
    "RequestRated",
    "RequestUnfulfilled",
    "RequestUnmatched",
    "RequesterContact",
    "ScorePart",
    "ServiceTypeRecord",
    "TeamRecord",
    "VolunteerAssigned",
    "VolunteerRecord",
]

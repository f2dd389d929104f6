"""`public.assignments.v1`: matching's assignments without personal data, for other agencies.

A projector in its own consumer group on `matching.events.v1`: each VolunteerAssigned,
AssignmentCompleted and AssignmentCancelled becomes one public event — no volunteer id or
name, no check-in code, no distance; the township and service type come from the request as
matching stored it (the Match document's `posted`, read only).

At least once and idempotent: the public event's id is a UUIDv5 of the source event's id and
its time is the source event's time, so a redelivered source event republishes the very same
CloudEvent (same id, same bytes) and subscribers drop it. The idempotent producer (acks=all)
publishes it before the source offset is committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    Event,
    PublicAssignmentCancelled,
    PublicAssignmentCompleted,
    PublicAssignmentMade,
    VolunteerAssigned,
)
from zhumeng_kit.consumer import Handler, PermanentError

SOURCE = "zhumeng/matching"
GROUP = "zhumeng-matching-public-feed"
NAMESPACE = uuid.UUID("0c6f4f0a-3d1e-4a53-8f61-7f1b6b2e9d42")
Doc = dict[str, Any]
Source = VolunteerAssigned | AssignmentCompleted | AssignmentCancelled
PublicEvent = PublicAssignmentMade | PublicAssignmentCompleted | PublicAssignmentCancelled
MatchReader = Callable[[str], Awaitable[Doc | None]]
Publish = Callable[[EventMeta, Event], Awaitable[None]]


def public_id(source_event_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"assignment:{source_event_id}"))


def project(event: Source, posted: Doc) -> PublicEvent:
    """The public form of one assignment event; `posted` is the request as matching got it."""
    common = {
        "request_id": event.request_id,
        "assignment_id": event.assignment_id,
        "service_type_id": posted["service_type_id"],
        "township_id": posted["township_id"],
    }
    match event:
        case VolunteerAssigned():
            return PublicAssignmentMade(
                **common,
                mode=event.mode,
                slot=event.slot,
                team_id=event.team_id,
                minutes_to_claim=_minutes_between(posted.get("posted_at"), event.assigned_at),
                assigned_at=event.assigned_at,
            )
        case AssignmentCompleted():
            return PublicAssignmentCompleted(
                **common, hours=event.hours, completed_at=event.checked_out_at
            )
        case AssignmentCancelled():
            return PublicAssignmentCancelled(
                **common, reason=event.reason, cancelled_at=event.cancelled_at
            )


def _minutes_between(posted_at: Any, assigned_at: datetime) -> float | None:
    if posted_at is None:
        return None
    start = posted_at if isinstance(posted_at, datetime) else datetime.fromisoformat(posted_at)
    return round(max(0.0, (assigned_at - start).total_seconds() / 60), 2)


class PublicAssignmentsFeed:
    def __init__(self, matches: MatchReader, publish: Publish) -> None:
        self._matches = matches
        self._publish = publish

    async def on_event(self, meta: EventMeta, event: Event) -> None:
        if not isinstance(event, VolunteerAssigned | AssignmentCompleted | AssignmentCancelled):
            return
        match = await self._matches(event.request_id)
        if match is None or "posted" not in match:
            # assignments are made on a match, so this cannot heal by retrying
            raise PermanentError(f"{event.TYPE} for request {event.request_id} without a match")
        public = project(event, match["posted"])
        public_meta = EventMeta(
            id=public_id(meta.id),
            type=public.TYPE,
            source=SOURCE,
            time=meta.time,
            subject=public.key(),
            traceparent=meta.traceparent,
        )
        await self._publish(public_meta, public)

    def handlers(self) -> dict[type[Event], Handler]:
        return dict.fromkeys(
            (VolunteerAssigned, AssignmentCompleted, AssignmentCancelled), self.on_event
        )

"""The public assignments projector: PII-free, deterministic ids, township from the match."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

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
from zhumeng_kit.consumer import PermanentError
from zhumeng_kit.outbox import wire_message
from zhumeng_matching.app.public_feed import PublicAssignmentsFeed, public_id

pytestmark = pytest.mark.unit
T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
MATCH = {
    "_id": "req_1",
    "posted": {
        "request_id": "req_1",
        "service_type_id": "haircut",
        "township_id": "pl_longxun",
        "posted_at": T0.isoformat(),
    },
}
ASSIGNED = VolunteerAssigned(
    request_id="req_1",
    assignment_id="asg_1",
    volunteer_id="vol_secret_7",
    volunteer_display_name="小林",
    service_type_id="haircut",
    window={"start": T0 + timedelta(days=1), "end": T0 + timedelta(days=1, hours=2)},
    distance_km=2.5,
    score=0.9,
    explanation=[],
    candidates_considered=3,
    assigned_at=T0 + timedelta(minutes=12, seconds=30),
    mode="open_claim",
    checkin_code="730164",
)


class Published:
    def __init__(self) -> None:
        self.items: list[tuple[EventMeta, Event]] = []

    async def __call__(self, meta: EventMeta, event: Event) -> None:
        self.items.append((meta, event))


async def matches(request_id: str) -> dict[str, Any] | None:
    return MATCH if request_id == "req_1" else None


async def test_an_assignment_becomes_a_public_event_without_personal_data() -> None:
    published = Published()
    feed = PublicAssignmentsFeed(matches, published)
    meta = EventMeta.new(ASSIGNED, "zhumeng/matching")
    await feed.on_event(meta, ASSIGNED)
    [(public_meta, public)] = published.items
    assert isinstance(public, PublicAssignmentMade)
    assert (public.township_id, public.service_type_id, public.mode) == (
        "pl_longxun",
        "haircut",
        "open_claim",
    )
    assert public.minutes_to_claim == 12.5
    assert public_meta.id == public_id(meta.id) and public_meta.time == meta.time
    value, headers = wire_message(public_meta, public)
    assert headers["content-type"] == "application/cloudevents+json"
    text = value.decode()
    for secret in ("vol_secret_7", "小林", "730164", "distance", "score"):
        assert secret not in text
    assert json.loads(text)["data"]["assignment_id"] == "asg_1"


async def test_a_redelivered_source_event_gives_the_same_cloudevent() -> None:
    published = Published()
    feed = PublicAssignmentsFeed(matches, published)
    meta = EventMeta.new(ASSIGNED, "zhumeng/matching")
    await feed.on_event(meta, ASSIGNED)
    await feed.on_event(meta, ASSIGNED)
    first, second = (wire_message(m, e)[0] for m, e in published.items)
    assert first == second


async def test_completed_and_cancelled_assignments() -> None:
    published = Published()
    feed = PublicAssignmentsFeed(matches, published)
    completed = AssignmentCompleted(
        request_id="req_1",
        assignment_id="asg_1",
        volunteer_id="vol_secret_7",
        service_type_id="haircut",
        checked_in_at=T0,
        checked_out_at=T0 + timedelta(hours=1),
        hours=1.0,
    )
    cancelled = AssignmentCancelled(
        request_id="req_1",
        assignment_id="asg_2",
        volunteer_id="vol_secret_8",
        by="coordinator",
        reason="no_show",
        cancelled_at=T0,
    )
    for event in (completed, cancelled):
        await feed.on_event(EventMeta.new(event, "zhumeng/matching"), event)
    done, gone = (e for _, e in published.items)
    assert isinstance(done, PublicAssignmentCompleted) and done.hours == 1.0
    assert done.completed_at == T0 + timedelta(hours=1)
    assert isinstance(gone, PublicAssignmentCancelled) and gone.reason == "no_show"
    assert gone.township_id == "pl_longxun" and gone.service_type_id == "haircut"


async def test_an_assignment_without_a_match_is_dead_lettered() -> None:
    feed = PublicAssignmentsFeed(matches, Published())
    other = ASSIGNED.model_copy(update={"request_id": "req_unknown"})
    with pytest.raises(PermanentError):
        await feed.on_event(EventMeta.new(other, "zhumeng/matching"), other)

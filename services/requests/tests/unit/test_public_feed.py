"""The request's public projection: status changes only, filled slots, deterministic ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from zhumeng_contracts.events import PublicRequestStatusChanged, RequestPosted
from zhumeng_contracts.events.common import GeoPoint, TimeWindow
from zhumeng_requests.domain import public_feed

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
REQUEST = {
    "_id": "req_1",
    "service_type_id": "haircut",
    "township_id": "pl_longxun",
    "place_id": "pl_longxun_v1",
    "status": "posted",
    "slots": 2,
    "requester": {"name": "林秀英", "phone": "13900001234"},
}


def assignment(slot: int, status: str = "assigned") -> dict[str, object]:
    return {
        "assignment_id": f"asg_{slot}",
        "volunteer_id": f"vol_{slot}",
        "volunteer_display_name": "小林",
        "slot": slot,
        "status": status,
        "assigned_at": NOW,
    }


def test_a_status_change_becomes_a_public_event_with_filled_slots() -> None:
    fields = {"status": "partially_assigned", "assignments": [assignment(1)]}
    event = public_feed.status_changed(REQUEST, fields, NOW)
    assert event == PublicRequestStatusChanged(
        request_id="req_1",
        service_type_id="haircut",
        township_id="pl_longxun",
        status="partially_assigned",
        filled_slots=1,
        slots=2,
        changed_at=NOW,
    )
    text = event.model_dump_json()
    assert "林秀英" not in text and "13900001234" not in text and "vol_1" not in text


def test_no_event_without_a_status_change() -> None:
    doc = {**REQUEST, "status": "partially_assigned", "assignments": [assignment(1)]}
    fields = {
        "status": "partially_assigned",
        "assignments": [assignment(1), assignment(2, "no_show")],
    }
    assert public_feed.status_changed(doc, fields, NOW) is None
    assert public_feed.status_changed(doc, {"updated_at": NOW}, NOW) is None


def test_ended_assignments_do_not_count_as_filled() -> None:
    doc = {**REQUEST, "status": "assigned"}
    fields = {"status": "matching", "assignments": [assignment(1, "no_show"), assignment(2)]}
    event = public_feed.status_changed(doc, fields, NOW)
    assert event is not None and event.filled_slots == 1


def test_public_ids_are_deterministic_per_source_event_and_kind() -> None:
    assert public_feed.public_id("e1", "status") == public_feed.public_id("e1", "status")
    assert public_feed.public_id("e1", "status") != public_feed.public_id("e2", "status")
    assert public_feed.public_id("e1", "status") != public_feed.public_id("e1", "posted")


def test_posted_keeps_only_public_fields() -> None:
    posted = RequestPosted(
        request_id="req_1",
        service_type_id="haircut",
        place_id="pl_longxun_v1",
        township_id="pl_longxun",
        location=GeoPoint(lat=25.49, lon=118.24),
        window=TimeWindow(start=NOW, end=NOW + timedelta(hours=3)),
        slots=2,
        posted_at=NOW,
    )
    public = public_feed.posted(posted)
    assert public.place_id == "pl_longxun_v1" and public.slots == 2
    assert "location" not in public.model_dump() and "25.49" not in public.model_dump_json()

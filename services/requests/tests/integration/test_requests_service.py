"""requests as a process on the real stack: HTTP in, events out, outcomes back in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCompleted,
    CheckedIn,
    RequestCompleted,
    RequestUnmatched,
)
from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import bearer, eventually, publish, read_topic, request_body

pytestmark = pytest.mark.integration
RESIDENT = bearer("res_it_requests", "resident")


def subject_of(record: Any) -> str:
    return str(dict(record.headers).get("ce_subject", b"").decode())


def type_of(record: Any) -> str:
    return str(dict(record.headers).get("ce_type", b"").decode())


async def request_events(platform: Platform, request_id: str, ce_type: str) -> list[Any]:
    return [
        r
        for r in await read_topic(platform.kafka.bootstrap, "requests.events.v1")
        if subject_of(r) == request_id and type_of(r) == ce_type
    ]


async def test_post_publishes_contact_and_posted_without_personal_data(platform: Platform) -> None:
    body = request_body("care_visit", "pl_gaide_v1", email="chen@example.org")
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as api:
        first = await api.post(
            "/v1/requests", json=body, headers={**RESIDENT, "Idempotency-Key": "it-1"}
        )
        again = await api.post(
            "/v1/requests", json=body, headers={**RESIDENT, "Idempotency-Key": "it-1"}
        )
        changed = await api.post(
            "/v1/requests",
            json={**body, "slots": 3},
            headers={**RESIDENT, "Idempotency-Key": "it-1"},
        )
    assert first.status_code == 201 and first.headers["location"].endswith(first.json()["id"])
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert changed.status_code == 409
    request_id = first.json()["id"]

    async def published() -> tuple[list[Any], list[Any]] | None:
        bootstrap = platform.kafka.bootstrap
        posted = [
            r
            for r in await read_topic(bootstrap, "requests.events.v1")
            if subject_of(r) == request_id
        ]
        contact = [
            r
            for r in await read_topic(bootstrap, "requests.contacts.v1")
            if subject_of(r) == request_id
        ]
        return (posted, contact) if posted and contact else None

    posted, contact = await eventually(published, within=30, what="both events")
    assert len(posted) == 1 and len(contact) == 1  # the replay published nothing
    payload = json.loads(posted[0].value)
    assert payload["request_id"] == request_id and posted[0].key == request_id.encode()
    assert not {"requester", "phone", "email", "name"} & payload.keys()
    assert "13900001234" not in posted[0].value.decode()
    assert json.loads(contact[0].value)["email"] == "chen@example.org"


async def test_outcome_updates_status_and_poison_goes_to_dlq(platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as api:
        # a poison message first: the consumer must dead-letter it and go on
        poison = RequestUnmatched(
            request_id="req_poison",
            service_type_id="haircut",
            reasons={},
            candidates_considered=0,
            decided_at="2026-11-27T00:00:00+00:00",
        )
        await publish(
            platform.kafka.bootstrap,
            poison,
            value=b"{not json",
            headers=EventMeta.new(poison, "zhumeng/tests").to_headers(),
        )
        created = await api.post(
            "/v1/requests",
            json=request_body("neighbour_help", "pl_leifeng_v1"),
            headers={**RESIDENT, "Idempotency-Key": "it-2"},
        )
        request_id = created.json()["id"]

        async def decided() -> dict[str, Any] | None:
            doc = (await api.get(f"/v1/requests/{request_id}", headers=RESIDENT)).json()
            return doc if doc["status"] != "posted" else None

        doc = await eventually(decided, within=60, what="the outcome to reach the request")
        other = await api.get(f"/v1/requests/{request_id}", headers=bearer("res_x", "resident"))
        coordinator = await api.get(
            f"/v1/requests/{request_id}",
            headers=bearer("c_it", "coordinator", township="pl_leifeng"),
        )
    assert doc["status"] in {"assigned", "unmatched"}
    assert other.status_code == 404  # someone else's request is not visible
    assert coordinator.status_code == 200
    assert coordinator.json()["requester"]["phone"] == "139****1234"  # masked for staff

    dead = [
        r
        for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1.dlq")
        if subject_of(r) == "req_poison"
        and dict(r.headers).get("dlq-consumer") == b"zhumeng-requests"
    ]
    assert len(dead) == 1
    assert dict(dead[0].headers)["dlq-reason"] == b"invalid-payload"


async def test_list_is_paginated_with_a_cursor(platform: Platform) -> None:
    who = bearer("res_it_pages", "resident")
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as api:
        ids = []
        for i in range(5):
            for _ in range(3):  # as a client does: a 503 is retried with the same key
                r = await api.post(
                    "/v1/requests",
                    json=request_body("haircut", "pl_sanban_v1"),
                    headers={**who, "Idempotency-Key": f"page-{i}"},
                )
                if r.status_code != 503:
                    break
            assert r.status_code in (200, 201), r.text  # 200: the first try had landed
            ids.append(r.json()["id"])
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await api.get("/v1/requests", params=params, headers=who)).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        bad = await api.get("/v1/requests", params={"cursor": "%%%"}, headers=who)
    assert seen == ids[::-1]
    assert bad.status_code == 400


async def test_cancel_publishes_request_cancelled_once(platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as api:
        created = await api.post(
            "/v1/requests",
            json=request_body("care_visit", "pl_gaide_v1"),
            headers={**RESIDENT, "Idempotency-Key": "it-cancel"},
        )
        request_id = created.json()["id"]
        url = f"/v1/requests/{request_id}"
        early_rating = await api.post(f"{url}/rating", json={"stars": 5}, headers=RESIDENT)
        someone_else = await api.post(f"{url}/cancel", headers=bearer("res_x", "resident"))
        other_township = await api.post(
            f"{url}/cancel", headers=bearer("c_it", "coordinator", township="pl_leifeng")
        )
        cancelled = await api.post(f"{url}/cancel", headers=RESIDENT)
        again = await api.post(f"{url}/cancel", headers=RESIDENT)
        seen = (await api.get(url, headers=RESIDENT)).json()
        listed = (
            await api.get("/v1/requests", params={"status": "cancelled"}, headers=RESIDENT)
        ).json()
    assert early_rating.status_code == 409, early_rating.text  # not completed yet
    assert someone_else.status_code == 404  # not theirs: not even visible
    assert other_township.status_code == 404
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancelled"]["by"] == "requester"
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["detail"] == "already cancelled"
    assert again.json()["request_status"] == "cancelled"
    assert seen["status"] == "cancelled"
    assert request_id in [item["id"] for item in listed["items"]]

    async def published() -> list[Any] | None:
        return await request_events(platform, request_id, "zhumeng.request.cancelled.v1") or None

    records = await eventually(published, within=30, what="RequestCancelled on the topic")
    assert len(records) == 1  # the second cancel published nothing
    payload = json.loads(records[0].value)
    assert payload["request_id"] == request_id and payload["by"] == "requester"
    assert records[0].key == request_id.encode()


async def test_lifecycle_events_move_the_request_and_the_requester_rates(
    platform: Platform,
) -> None:
    """Matching assigns the request itself; the test then plays the volunteer's check-in and
    check-out by publishing matching's lifecycle events for that assignment."""
    who = bearer("res_it_lifecycle", "resident")
    staff = bearer("c_it_longxun", "coordinator", township="pl_longxun")
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as api:
        created = await api.post(
            "/v1/requests",
            json=request_body("haircut", "pl_longxun_v1"),
            headers={**who, "Idempotency-Key": "it-lifecycle"},
        )
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        url = f"/v1/requests/{request_id}"

        async def decided() -> dict[str, Any] | None:
            doc = (await api.get(url, headers=who)).json()
            return doc if doc["status"] != "posted" else None

        doc = await eventually(decided, within=60, what="matching's outcome")
        assert doc["status"] == "assigned", doc
        (assignment,) = doc["assignments"]
        assert "checkin_code" in assignment  # the requester shows it to the volunteer
        staff_view = (await api.get(url, headers=staff)).json()
        assert "checkin_code" not in staff_view["assignments"][0]
        assert "checkin_code" not in staff_view["assignment"]

        asg_id, volunteer_id = assignment["assignment_id"], assignment["volunteer_id"]
        now = datetime.now(UTC)
        bootstrap = platform.kafka.bootstrap
        await publish(
            bootstrap,
            CheckedIn(
                request_id=request_id,
                assignment_id=asg_id,
                volunteer_id=volunteer_id,
                checked_in_at=now,
            ),
        )

        async def status_is(status: str) -> dict[str, Any] | None:
            doc = (await api.get(url, headers=who)).json()
            return doc if doc["status"] == status else None

        doc = await eventually(lambda: status_is("in_progress"), within=30, what="in_progress")
        assert doc["assignments"][0]["status"] == "checked_in"
        await publish(
            bootstrap,
            AssignmentCompleted(
                request_id=request_id,
                assignment_id=asg_id,
                volunteer_id=volunteer_id,
                service_type_id="haircut",
                checked_in_at=now,
                checked_out_at=now + timedelta(hours=1.5),
                hours=1.5,
            ),
        )
        completed = RequestCompleted(
            request_id=request_id, hours_total=1.5, completed_at=now + timedelta(hours=1.5)
        )
        await publish(bootstrap, completed)
        await publish(bootstrap, completed)  # the same event again (a new id): changes nothing
        doc = await eventually(lambda: status_is("completed"), within=30, what="completed")
        assert doc["hours_total"] == 1.5
        assert doc["assignments"][0]["status"] == "completed"
        assert doc["assignments"][0]["hours"] == 1.5

        not_theirs = await api.post(f"{url}/rating", json={"stars": 2}, headers=staff)
        invalid = await api.post(f"{url}/rating", json={"stars": 6}, headers=who)
        rated = await api.post(
            f"{url}/rating", json={"stars": 5, "comment": "理得很好"}, headers=who
        )
        twice = await api.post(f"{url}/rating", json={"stars": 1}, headers=who)
        late_cancel = await api.post(f"{url}/cancel", headers=who)
    assert not_theirs.status_code == 403
    assert invalid.status_code == 422
    assert rated.status_code == 200, rated.text
    assert rated.json()["status"] == "rated"
    assert rated.json()["rating"]["stars"] == 5
    assert rated.json()["rating"]["comment"] == "理得很好"
    assert twice.status_code == 409 and twice.json()["detail"] == "already rated"
    assert late_cancel.status_code == 409

    async def published() -> list[Any] | None:
        return await request_events(platform, request_id, "zhumeng.request.rated.v1") or None

    records = await eventually(published, within=30, what="RequestRated on the topic")
    assert len(records) == 1
    payload = json.loads(records[0].value)
    assert payload["request_id"] == request_id and payload["stars"] == 5
    assert "comment" not in payload and "理得很好" not in records[0].value.decode()

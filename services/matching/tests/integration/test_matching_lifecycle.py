"""The lifecycle after a direct assignment, on the real stack: check-in with the requester's
code, check-out credits hours and gives capacity back, a no-show re-assigns, a cancellation
releases the volunteer."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from zhumeng_contracts.events import RequestCancelled, RequestPosted
from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import (
    bearer,
    eventually,
    longxun_request,
    publish,
    publish_request,
    read_topic,
)

pytestmark = pytest.mark.integration
ADMIN = bearer("admin_lc", "admin")


OnCall = Callable[[str, int], Awaitable[tuple[str, list[str]]]]


async def posted(on_call: OnCall) -> RequestPosted:
    """A request of a type only two volunteers on call at any hour can take (conftest)."""
    service_id, _ = await on_call("lc", 2)
    # the window opens within the next hour: check-in is allowed from two hours before
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=30)
    return longxun_request(service_id, prefix="req_lc", start=start)


async def events_of(platform: Platform, request_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (dict(r.headers)["ce_type"].decode(), json.loads(r.value))
        for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1")
        if dict(r.headers).get("ce_subject") == request_id.encode()
    ]


async def assigned(platform: Platform, request_id: str, count: int = 1) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        got = [
            body
            for kind, body in await events_of(platform, request_id)
            if kind == "zhumeng.volunteer.assigned.v1"
        ]
        return got if len(got) >= count else None

    return await eventually(found, within=60, what=f"{count} assignment(s)")


async def load_of(platform: Platform, volunteer_id: str) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(platform.mongo.uri)
    try:
        coll = client[f"{platform.config.db_prefix}_matching"]["loads"]
        return await coll.find_one({"_id": volunteer_id}) or {}
    finally:
        await client.close()


async def test_check_in_check_out_credits_hours_and_releases_capacity(
    platform: Platform, on_call: OnCall
) -> None:
    event = await posted(on_call)
    await publish_request(platform.kafka.bootstrap, event)
    (a,) = await assigned(platform, event.request_id)
    vid, asg, code = a["volunteer_id"], a["assignment_id"], a["checkin_code"]
    assert event.request_id in (await load_of(platform, vid))["active"]
    me = bearer(vid, "volunteer")
    base = f"/v1/matches/{event.request_id}/assignments/{asg}"
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=10) as api:
        wrong = "000000" if code != "000000" else "111111"
        bad = await api.post(f"{base}/check-in", json={"code": wrong}, headers=me)
        other = await api.post(
            f"{base}/check-in", json={"code": code}, headers=bearer("vol_other", "volunteer")
        )
        early_out = await api.post(f"{base}/check-out", headers=me)
        checked_in = await api.post(f"{base}/check-in", json={"code": code}, headers=me)
        mine = (await api.get("/v1/assignments", headers=me)).json()["items"]
        done = await api.post(f"{base}/check-out", headers=me)
        hours_csv = await api.get("/v1/hours", params={"format": "csv"}, headers=ADMIN)
        by_volunteer = (await api.get("/v1/hours", params={"by": "volunteer"}, headers=me)).json()
    assert bad.status_code == 422 and bad.json()["code"] == "wrong_code"
    assert other.status_code == 404
    assert early_out.status_code == 409
    assert checked_in.status_code == 200 and checked_in.json()["state"] == "in_progress"
    assert any(m["request_id"] == event.request_id for m in mine)
    assert "code" not in json.dumps(mine)  # check-in codes never leave matching's API
    assert done.status_code == 200 and done.json()["state"] == "completed"
    assert asg in hours_csv.text and hours_csv.headers["content-type"].startswith("text/csv")
    assert vid in by_volunteer["totals"]

    kinds = [k for k, _ in await events_of(platform, event.request_id)]
    assert kinds[-3:] == [
        "zhumeng.assignment.checked-in.v1",
        "zhumeng.assignment.completed.v1",
        "zhumeng.request.completed.v1",
    ]

    async def released() -> bool:
        return event.request_id not in (await load_of(platform, vid)).get("active", [])

    await eventually(released, within=30, what="the volunteer's capacity back")


async def test_no_show_reassigns_to_someone_else(platform: Platform, on_call: OnCall) -> None:
    event = await posted(on_call)
    await publish_request(platform.kafka.bootstrap, event)
    (first,) = await assigned(platform, event.request_id)
    base = f"/v1/matches/{event.request_id}/assignments/{first['assignment_id']}"
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=10) as api:
        refused = await api.post(f"{base}/no-show", headers=bearer("vol_x", "volunteer"))
        reported = await api.post(f"{base}/no-show", headers=ADMIN)
    assert refused.status_code == 403
    assert reported.status_code == 200
    _, second = await assigned(platform, event.request_id, count=2)
    assert second["volunteer_id"] != first["volunteer_id"]
    assert second["slot"] == first["slot"] == 1


async def test_cancellation_releases_the_volunteer(platform: Platform, on_call: OnCall) -> None:
    event = await posted(on_call)
    await publish_request(platform.kafka.bootstrap, event)
    (a,) = await assigned(platform, event.request_id)
    cancel = RequestCancelled(
        request_id=event.request_id, by="requester", cancelled_at=datetime.now(UTC)
    )
    await publish(platform.kafka.bootstrap, cancel)

    async def cancelled() -> bool:
        return any(
            kind == "zhumeng.assignment.cancelled.v1" and body["reason"] == "request_cancelled"
            for kind, body in await events_of(platform, event.request_id)
        )

    await eventually(cancelled, within=30, what="the assignment cancelled")

    async def released() -> bool:
        load = await load_of(platform, a["volunteer_id"])
        return event.request_id not in load.get("active", [])

    await eventually(released, within=30, what="the volunteer's capacity back")

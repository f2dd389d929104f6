"""Volunteers' histories on the real stack: a completed assignment and a rating change the
volunteer's explanation figures for the next request; redelivered events change nothing."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import AssignmentCompleted, RequestPosted, RequestRated
from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import (
    bearer,
    committed_past,
    eventually,
    longxun_request,
    publish,
    publish_request,
    read_topic,
)

pytestmark = pytest.mark.integration


async def assignment_of(platform: Platform, request_id: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1"):
            h = dict(r.headers)
            if (
                h.get("ce_subject") == request_id.encode()
                and h.get("ce_type") == b"zhumeng.volunteer.assigned.v1"
            ):
                return dict(json.loads(r.value))
        return None

    return await eventually(found, within=90, what=f"the assignment of {request_id}")


def figures(assigned: dict[str, Any]) -> dict[str, float]:
    return {p["criterion"]: p["value"] for p in assigned["explanation"]}


async def matching_doc(platform: Platform, collection: str, key: str) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(platform.mongo.uri)
    try:
        coll = client[f"{platform.config.db_prefix}_matching"][collection]
        return await coll.find_one({"_id": key}) or {}
    finally:
        await client.close()


async def redeliver_completion(platform: Platform, request_id: str) -> tuple[int, int]:
    """Publish the request's AssignmentCompleted record again, same id: a redelivery."""

    async def record() -> Any:
        for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1"):
            h = dict(r.headers)
            if (
                h.get("ce_subject") == request_id.encode()
                and h.get("ce_type") == b"zhumeng.assignment.completed.v1"
            ):
                return r
        return None

    r = await eventually(record, within=60, what="the completion event")
    event = AssignmentCompleted.model_validate_json(r.value)
    return await publish(platform.kafka.bootstrap, event, headers=list(r.headers))


def soon(service_type_id: str) -> RequestPosted:
    # the window opens within the hour: check-in is allowed from two hours before
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=30)
    posted: RequestPosted = longxun_request(service_type_id, prefix="req_st", start=start)
    return posted


async def test_completion_and_rating_change_the_next_explanation(
    platform: Platform, on_call: Callable[[str, int], Awaitable[tuple[str, list[str]]]]
) -> None:
    # the only volunteer with the type's skill, so every request of the type is theirs
    service_id, (vid,) = await on_call("stats", 1)

    first = soon(service_id)
    await publish_request(platform.kafka.bootstrap, first)
    a1 = await assignment_of(platform, first.request_id)
    assert a1["volunteer_id"] == vid
    before = figures(a1)
    assert before["newcomer"] == 1.0 and before["experience"] == 0.0
    assert before["rating"] == 0.75  # the prior, 4 stars

    me = bearer(vid, "volunteer")
    base = f"/v1/matches/{first.request_id}/assignments/{a1['assignment_id']}"
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=10) as api:
        checked_in = await api.post(
            f"{base}/check-in", json={"code": a1["checkin_code"]}, headers=me
        )
        assert checked_in.status_code == 200, checked_in.text
        done = await api.post(f"{base}/check-out", headers=me)
        assert done.status_code == 200, done.text
    rated = RequestRated(request_id=first.request_id, stars=5, rated_at=datetime.now(UTC))
    headers = EventMeta.new(rated, "zhumeng/tests").to_headers()
    await publish(platform.kafka.bootstrap, rated, headers=headers)
    again = [
        await publish(platform.kafka.bootstrap, rated, headers=headers),
        await redeliver_completion(platform, first.request_id),
    ]

    async def redeliveries_done() -> bool:
        return all(
            [
                await committed_past(
                    platform.kafka.bootstrap, "zhumeng-matching-stats", topic, part, off
                )
                for topic, (part, off) in zip(
                    ["requests.events.v1", "matching.events.v1"], again, strict=True
                )
            ]
        )

    await eventually(redeliveries_done, within=90, what="the stats consumer past the redeliveries")
    doc = await matching_doc(platform, "volunteer_stats", vid)
    assert (doc["completed"], doc["stars_n"], doc["stars_sum"]) == (1, 1, 5)  # applied once
    assert doc["by_type"] == {service_id: 1} and first.request_id in doc["rated"]

    async def released() -> bool:
        load = await matching_doc(platform, "loads", vid)
        return first.request_id not in load.get("active", [first.request_id])

    await eventually(released, within=60, what="the newcomer's one assignment given back")

    second = soon(service_id)
    await publish_request(platform.kafka.bootstrap, second)
    after = figures(await assignment_of(platform, second.request_id))
    assert after["experience"] == 0.2  # one completion of this type out of five
    assert after["newcomer"] == pytest.approx(2 / 3, abs=1e-4)
    assert after["rating"] == pytest.approx(((4 * 5 + 5) / 6 - 1) / 4, abs=1e-4)
    assert after["recent_hours"] <= before["recent_hours"]

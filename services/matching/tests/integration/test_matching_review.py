"""Review before matching on the real stack (ADR 0009): a request of a service type that needs
review is held until a coordinator of its township approves it (then assigned) or rejects it
(then rejected); the requester sees both; another township's coordinator can neither see nor
review it; a coordinator reassigns an assignment to another volunteer."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import bearer, create_service_type, eventually, read_topic
from zhumeng_devstack.testing import request_body as body_of

pytestmark = pytest.mark.integration
RESIDENT = bearer("res_review", "resident")
LONGXUN = bearer("coord_rv_longxun", "coordinator", township="pl_longxun")
GAIDE = bearer("coord_rv_gaide", "coordinator", township="pl_gaide")
COUNTY = bearer("coord_rv_county", "coordinator")


@pytest.fixture(scope="module")
async def reviewed_service(platform: Platform) -> str:
    """Direct mode, no skills needed (demo volunteers in Longxun qualify), reviewed first."""
    return await create_service_type(platform, "review_test", needs_review=True)


async def kinds_of(platform: Platform, request_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (dict(r.headers)["ce_type"].decode(), json.loads(r.value))
        for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1")
        if dict(r.headers).get("ce_subject") == request_id.encode()
    ]


async def post_request(http: httpx.AsyncClient, platform: Platform, service: str, key: str) -> str:
    created = await http.post(
        platform.url("requests") + "/v1/requests",
        json=body_of(service, "pl_longxun_v1"),
        headers={**RESIDENT, "Idempotency-Key": key},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def status_becomes(
    http: httpx.AsyncClient, platform: Platform, rid: str, status: str
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        got = await http.get(platform.url("requests") + f"/v1/requests/{rid}", headers=RESIDENT)
        doc: dict[str, Any] = got.json()
        return doc if doc["status"] == status else None

    return await eventually(check, within=90, interval=0.5, what=f"request {status}")


async def test_approved_request_is_matched_and_can_be_reassigned(
    platform: Platform, reviewed_service: str
) -> None:
    matching = platform.url("matching")
    async with httpx.AsyncClient(timeout=15) as http:
        rid = await post_request(http, platform, reviewed_service, "rv-approve-1")
        held = await status_becomes(http, platform, rid, "in_review")
        queue = (await http.get(matching + "/v1/coordinator/queue", headers=LONGXUN)).json()
        other_queue = (await http.get(matching + "/v1/coordinator/queue", headers=GAIDE)).json()
        county_queue = (await http.get(matching + "/v1/coordinator/queue", headers=COUNTY)).json()
        stranger = await http.post(f"{matching}/v1/matches/{rid}/review/approve", headers=GAIDE)
        resident = await http.post(f"{matching}/v1/matches/{rid}/review/approve", headers=RESIDENT)
        approved = await http.post(
            f"{matching}/v1/matches/{rid}/review/approve",
            json={"note": "confirmed by phone"},
            headers=LONGXUN,
        )
        again = await http.post(f"{matching}/v1/matches/{rid}/review/approve", headers=LONGXUN)
        assigned = await status_becomes(http, platform, rid, "assigned")

        first = assigned["assignment"]
        base = f"{matching}/v1/matches/{rid}/assignments/{first['assignment_id']}"
        elsewhere = await http.post(
            f"{base}/reassign", json={"volunteer_id": "vol_0001"}, headers=GAIDE
        )
        for n in range(1, 30):  # the first demo volunteer with free capacity
            other = f"vol_{n:04d}"
            if other == first["volunteer_id"]:
                continue
            reassigned = await http.post(
                f"{base}/reassign", json={"volunteer_id": other}, headers=LONGXUN
            )
            if reassigned.json().get("code") != "no_capacity":
                break

        async def moved() -> dict[str, Any] | None:
            doc = await status_becomes(http, platform, rid, "assigned")
            return doc if doc["assignment"]["volunteer_id"] == other else None

        after = await eventually(moved, within=90, what="the requester sees the new volunteer")
    assert held["review"]["required_at"]
    mine = [i for i in queue["items"] if i["request_id"] == rid]
    assert [(i["kind"], i["township_id"]) for i in mine] == [("in_review", "pl_longxun")]
    assert rid not in [i["request_id"] for i in other_queue["items"]]
    assert rid in [i["request_id"] for i in county_queue["items"]]
    assert stranger.status_code == 404 and resident.status_code == 403
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "assigned"
    assert again.status_code == 409
    assert assigned["review"]["decision"] == "approved"
    assert assigned["review"]["note"] == "confirmed by phone"
    assert elsewhere.status_code == 404
    assert reassigned.status_code == 200, reassigned.text
    assert [a["status"] for a in after["assignments"]] == ["reassigned", "assigned"]
    kinds = [k for k, _ in await kinds_of(platform, rid)]
    assert kinds == [
        "zhumeng.request.review-required.v1",
        "zhumeng.request.reviewed.v1",
        "zhumeng.volunteer.assigned.v1",
        "zhumeng.assignment.cancelled.v1",
        "zhumeng.volunteer.assigned.v1",
    ]
    last = (await kinds_of(platform, rid))[-1][1]
    assert last["mode"] == "coordinator" and last["volunteer_id"] == other


async def test_rejected_request_ends_without_matching(
    platform: Platform, reviewed_service: str
) -> None:
    matching = platform.url("matching")
    async with httpx.AsyncClient(timeout=15) as http:
        rid = await post_request(http, platform, reviewed_service, "rv-reject-1")
        await status_becomes(http, platform, rid, "in_review")
        too_long = await http.post(
            f"{matching}/v1/matches/{rid}/review/reject", json={"note": "x" * 501}, headers=COUNTY
        )
        rejected = await http.post(
            f"{matching}/v1/matches/{rid}/review/reject",
            json={"note": "a clinic visit suits better"},
            headers=COUNTY,
        )
        late = await http.post(f"{matching}/v1/matches/{rid}/review/approve", headers=COUNTY)
        shown = await status_becomes(http, platform, rid, "rejected")
        cancel = await http.post(
            platform.url("requests") + f"/v1/requests/{rid}/cancel", headers=RESIDENT
        )
    assert too_long.status_code == 422
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    assert late.status_code == 409
    assert shown["review"]["decision"] == "rejected"
    assert cancel.status_code == 409
    kinds = [k for k, _ in await kinds_of(platform, rid)]
    assert kinds == ["zhumeng.request.review-required.v1", "zhumeng.request.reviewed.v1"]

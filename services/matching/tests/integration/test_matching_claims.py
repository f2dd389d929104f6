"""Open claim (抢单) on the real stack: fifty concurrent claims on a three-slot request give
exactly three winners, nobody holds capacity they did not win, and a coordinator can assign."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from zhumeng_contracts.events import RequestPosted
from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import (
    bearer,
    create_service_type,
    eventually,
    longxun_request,
    publish_request,
    read_topic,
)

pytestmark = pytest.mark.integration
ADMIN = bearer("admin_claims", "admin")


@pytest.fixture(scope="module")
async def claim_service(platform: Platform) -> str:
    return await create_service_type(
        platform, "claim_test", matching_mode="open_claim", claim_invites=60, target_claim_min=180
    )


def posted(service_type_id: str, slots: int) -> RequestPosted:
    return longxun_request(service_type_id, prefix="req_cl", slots=slots)


async def opened(platform: Platform, request_id: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1"):
            h = dict(r.headers)
            if h.get("ce_subject") == request_id.encode() and h.get("ce_type") == (
                b"zhumeng.claim.opened.v1"
            ):
                return dict(json.loads(r.value))
        return None

    return await eventually(found, within=60, what="the claim to open")


async def test_fifty_concurrent_claims_on_three_slots_give_three_winners(
    platform: Platform, claim_service: str
) -> None:
    event = posted(claim_service, slots=3)
    await publish_request(platform.kafka.bootstrap, event)
    invited = (await opened(platform, event.request_id))["invited_volunteer_ids"]
    assert len(invited) >= 4
    claimers = [invited[i % len(invited)] for i in range(50)]  # fifty claims, some repeated
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=30) as api:
        listed = (await api.get("/v1/claims", headers=bearer(invited[0], "volunteer"))).json()
        outsider = await api.post(
            f"/v1/matches/{event.request_id}/claim", headers=bearer("vol_outsider", "volunteer")
        )
        results = await asyncio.gather(
            *(
                api.post(f"/v1/matches/{event.request_id}/claim", headers=bearer(vid, "volunteer"))
                for vid in claimers
            )
        )
        decision = (await api.get(f"/v1/decisions/{event.request_id}", headers=ADMIN)).json()
    assert any(item["request_id"] == event.request_id for item in listed["items"])
    assert outsider.status_code == 404  # not a volunteer the catalog knows
    statuses = Counter(r.status_code for r in results)
    assert set(statuses) <= {200, 409}, statuses
    winners = {a["volunteer_id"] for a in decision["lifecycle"]["assignments"]}
    assert len(decision["lifecycle"]["assignments"]) == 3 and len(winners) == 3
    assert decision["lifecycle"]["state"] == "assigned"

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(platform.mongo.uri)
    try:
        loads = client[f"{platform.config.db_prefix}_matching"]["loads"]
        holders = {d["_id"] for d in await loads.find({"active": event.request_id}).to_list()}
    finally:
        await client.close()
    assert holders == winners  # losers gave back what they took


async def test_a_coordinator_assigns_a_volunteer(platform: Platform, claim_service: str) -> None:
    event = posted(claim_service, slots=1)
    await publish_request(platform.kafka.bootstrap, event)
    invited = (await opened(platform, event.request_id))["invited_volunteer_ids"]
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=10) as api:
        elsewhere = await api.post(
            f"/v1/matches/{event.request_id}/assign",
            json={"volunteer_id": invited[-1]},
            headers=bearer("coord_gaide", "coordinator", township="pl_gaide"),
        )
        done = await api.post(
            f"/v1/matches/{event.request_id}/assign",
            json={"volunteer_id": invited[-1]},
            headers=bearer("coord_longxun", "coordinator", township="pl_longxun"),
        )
        full = await api.post(
            f"/v1/matches/{event.request_id}/assign",
            json={"volunteer_id": invited[0]},
            headers=ADMIN,
        )
    assert elsewhere.status_code == 404  # another township's coordinator
    assert done.status_code == 200 and done.json()["state"] == "assigned"
    assert full.status_code == 409  # the only slot is taken

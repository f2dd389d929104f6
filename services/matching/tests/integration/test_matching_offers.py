"""Auto-offer cascade on the real stack: a volunteer accepts or declines an offer; an offer
nobody answers expires once — also across a kill -9 of matching — and goes to the next."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

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
ADMIN = bearer("admin_offers", "admin")


@pytest.fixture(scope="module")
async def offered_service(platform: Platform) -> str:
    """A service type in auto-offer mode with one-minute offers, known to matching."""
    return await create_service_type(
        platform, "offer_test", matching_mode="auto_offer", offer_ttl_min=1
    )


def posted(service_type_id: str) -> RequestPosted:
    return longxun_request(service_type_id, prefix="req_of")


async def events_of(platform: Platform, request_id: str, kind: str) -> list[dict[str, Any]]:
    return [
        json.loads(r.value)
        for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1")
        if dict(r.headers).get("ce_subject") == request_id.encode()
        and dict(r.headers).get("ce_type") == kind.encode()
    ]


async def wait_for(
    platform: Platform, request_id: str, kind: str, count: int = 1, within: float = 60
) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        got = await events_of(platform, request_id, kind)
        return got if len(got) >= count else None

    return await eventually(found, within=within, what=f"{count} × {kind}")


async def test_accepting_an_offer_assigns_the_volunteer(
    platform: Platform, offered_service: str
) -> None:
    event = posted(offered_service)
    await publish_request(platform.kafka.bootstrap, event)
    (offer,) = await wait_for(platform, event.request_id, "zhumeng.offer.made.v1")
    vid = offer["volunteer_id"]
    me = bearer(vid, "volunteer")
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=10) as api:
        mine = (await api.get("/v1/offers", headers=me)).json()["items"]
        stranger = await api.post(
            f"/v1/matches/{event.request_id}/offers/{offer['offer_id']}/accept",
            headers=bearer("vol_stranger", "volunteer"),
        )
        accepted = await api.post(
            f"/v1/matches/{event.request_id}/offers/{offer['offer_id']}/accept", headers=me
        )
        again = await api.post(
            f"/v1/matches/{event.request_id}/offers/{offer['offer_id']}/accept", headers=me
        )
    assert [o["offer_id"] for o in mine if o["request_id"] == event.request_id] == [
        offer["offer_id"]
    ]
    assert stranger.status_code == 404
    assert accepted.status_code == 200 and accepted.json()["state"] == "assigned"
    assert again.status_code == 409
    (assigned,) = await wait_for(platform, event.request_id, "zhumeng.volunteer.assigned.v1")
    assert assigned["volunteer_id"] == vid and assigned["mode"] == "auto_offer"


async def test_declining_moves_the_offer_to_someone_else(
    platform: Platform, offered_service: str
) -> None:
    event = posted(offered_service)
    await publish_request(platform.kafka.bootstrap, event)
    (first,) = await wait_for(platform, event.request_id, "zhumeng.offer.made.v1")
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=10) as api:
        declined = await api.post(
            f"/v1/matches/{event.request_id}/offers/{first['offer_id']}/decline",
            headers=bearer(first["volunteer_id"], "volunteer"),
        )
    assert declined.status_code == 200
    _, second = await wait_for(platform, event.request_id, "zhumeng.offer.made.v1", count=2)
    assert second["volunteer_id"] != first["volunteer_id"]
    assert len(await events_of(platform, event.request_id, "zhumeng.offer.declined.v1")) == 1


async def test_an_unanswered_offer_expires_once_across_a_crash(
    platform: Platform, offered_service: str
) -> None:
    event = posted(offered_service)
    await publish_request(platform.kafka.bootstrap, event)
    (first,) = await wait_for(platform, event.request_id, "zhumeng.offer.made.v1")
    platform.services["matching"].kill()  # kill -9 while the offer is pending
    await asyncio.sleep(2)
    restarted = platform.start_service("matching")
    await asyncio.to_thread(restarted.wait_ready)
    (expired,) = await wait_for(platform, event.request_id, "zhumeng.offer.expired.v1", within=120)
    assert expired["offer_id"] == first["offer_id"]
    _, second = await wait_for(platform, event.request_id, "zhumeng.offer.made.v1", count=2)
    assert second["volunteer_id"] != first["volunteer_id"]
    await asyncio.sleep(5)  # nothing more may come of that one timer
    assert len(await events_of(platform, event.request_id, "zhumeng.offer.expired.v1")) == 1
    assert len(await events_of(platform, event.request_id, "zhumeng.offer.made.v1")) == 2

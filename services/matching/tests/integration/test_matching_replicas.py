"""Two matching replicas on the real stack: offers are made once, and an unanswered offer
expires once, whichever replica holds the request's partition or the timer's lease."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from zhumeng_devstack.infra import free_port
from zhumeng_devstack.stack import Platform, ServiceProcess
from zhumeng_devstack.testing import (
    bearer,
    create_service_type,
    eventually,
    longxun_request,
    publish_request,
    read_topic,
)

pytestmark = pytest.mark.integration
ADMIN = bearer("admin_replicas", "admin")


@pytest.fixture(scope="module")
async def second_replica(platform: Platform) -> AsyncIterator[ServiceProcess]:
    """Another matching process in the same consumer group, database and timers."""
    port = free_port()
    env = {**platform.service_env("matching"), "ZHUMENG_HTTP_PORT": str(port)}
    replica = ServiceProcess(
        "matching", port, env, platform.config.data_dir / "logs" / "matching-2.log"
    )
    replica.start()
    await asyncio.to_thread(replica.wait_ready)
    yield replica
    replica.stop()


@pytest.fixture(scope="module")
async def offered_service(platform: Platform) -> str:
    return await create_service_type(
        platform, "replica_test", matching_mode="auto_offer", offer_ttl_min=1
    )


async def test_offers_are_made_and_expire_once_with_two_replicas(
    platform: Platform, second_replica: ServiceProcess, offered_service: str
) -> None:
    requests = [longxun_request(offered_service, prefix="req_rp") for _ in range(12)]
    for event in requests:
        await publish_request(platform.kafka.bootstrap, event)
    ids = {e.request_id for e in requests}

    async def events() -> list[tuple[str, dict[str, Any]]]:
        out = []
        for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1"):
            h = dict(r.headers)
            if h.get("ce_subject", b"").decode() in ids:
                out.append((h["ce_type"].decode(), json.loads(r.value)))
        return out

    async def second_round() -> list[tuple[str, dict[str, Any]]] | None:
        got = await events()
        made = Counter(b["request_id"] for k, b in got if k == "zhumeng.offer.made.v1")
        return got if len(made) == len(ids) and min(made.values()) >= 2 else None

    # every request: a first offer, its expiry after a minute, and a second offer
    got = await eventually(second_round, within=180, interval=2, what="expiries and re-offers")
    await asyncio.sleep(5)  # let any duplicate show itself
    got = await events()
    made = [b for k, b in got if k == "zhumeng.offer.made.v1"]
    expired = [b for k, b in got if k == "zhumeng.offer.expired.v1"]
    assert len({b["offer_id"] for b in made}) == len(made)  # no offer published twice
    pairs = Counter((b["request_id"], b["volunteer_id"]) for b in made)
    assert max(pairs.values()) == 1  # nobody offered the same request twice
    per_offer = Counter(b["offer_id"] for b in expired)
    assert per_offer and max(per_offer.values()) == 1  # each offer expired once
    first_offers = {b["offer_id"] for b in made}
    assert set(per_offer) <= first_offers
    async with httpx.AsyncClient(timeout=5) as client:
        both_ready = [
            (await client.get(url + "/readyz")).status_code
            for url in (platform.url("matching"), second_replica.url)
        ]
    assert both_ready == [200, 200]

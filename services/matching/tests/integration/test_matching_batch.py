"""Batch mode on the real stack, with two matching replicas: requests posted within one window
are assigned together by one min-cost run, each exactly once, and the run records the batch's
cost beside greedy's on the same data."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from zhumeng_contracts.events.common import GeoPoint
from zhumeng_devstack.infra import free_port
from zhumeng_devstack.stack import Platform, ServiceProcess
from zhumeng_devstack.testing import (
    bearer,
    catalog_read,
    eventually,
    longxun_request,
    publish_request,
    read_topic,
)

pytestmark = pytest.mark.integration
ADMIN = bearer("admin_batch", "admin")
WINDOW_S = 10  # every batch window, in seconds (the test setting)
LONGXUN = {"lat": 25.492, "lon": 118.243}  # where `longxun_request` asks for help


@pytest.fixture(scope="module")
async def two_replicas(platform: Platform) -> AsyncIterator[ServiceProcess]:
    """The platform's matching restarted with the test window, and a second replica with the
    same settings (same consumer group, database and timers)."""
    platform.config.extra_env["ZHUMENG_BATCH_WINDOW_S"] = str(WINDOW_S)
    await asyncio.to_thread(platform.restart, "matching")
    port = free_port()
    env = {**platform.service_env("matching"), "ZHUMENG_HTTP_PORT": str(port)}
    replica = ServiceProcess(
        "matching", port, env, platform.config.data_dir / "logs" / "matching-batch-2.log"
    )
    replica.start()
    try:
        await asyncio.to_thread(replica.wait_ready)
        yield replica
    finally:
        replica.stop()
        del platform.config.extra_env["ZHUMENG_BATCH_WINDOW_S"]
        await asyncio.to_thread(platform.restart, "matching")


@pytest.fixture(scope="module")
async def batch_service(
    platform: Platform,
    two_replicas: ServiceProcess,
    pooled_service_type: Callable[..., Awaitable[str]],
    catalog_volunteer: Callable[..., Awaitable[None]],
) -> dict[str, Any]:
    """Eight volunteers of capacity one around Longxun, with a skill only they have."""
    tag = secrets.token_hex(3)
    skill = f"batch_{tag}"
    volunteers = [f"vol_b{i}_{tag}" for i in range(8)]
    for i, vid in enumerate(volunteers):
        home = {"lat": 25.47 + 0.01 * i, "lon": 118.22 + 0.007 * (i % 3)}
        await catalog_volunteer(vid, [skill], capacity=1, home=home, radius_km=25)
    sid = await pooled_service_type("batch_test", matching_mode="batch", required_skills=[skill])
    for matching in (platform.url("matching"), two_replicas.url):
        await catalog_read(matching, platform.kafka.bootstrap, [*volunteers, sid])
    return {"service": sid, "volunteers": volunteers}


async def test_one_window_assigns_the_pending_requests_once_with_two_replicas(
    platform: Platform, two_replicas: ServiceProcess, batch_service: dict[str, Any]
) -> None:
    events = [longxun_request(batch_service["service"], prefix="req_bt") for _ in range(6)]
    await asyncio.gather(*(publish_request(platform.kafka.bootstrap, e) for e in events))
    ids = {e.request_id for e in events}

    async def runs() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=two_replicas.url, timeout=30) as api:
            got = await api.get(
                "/v1/batch-runs",
                params={"service_type_id": batch_service["service"]},
                headers=bearer("coord", "coordinator"),
            )
        assert got.status_code == 200, got.text
        return list(got.json()["items"])

    async def all_assigned() -> list[dict[str, Any]] | None:
        done = await runs()
        assigned = [a["request_id"] for r in done for a in r.get("assigned", [])]
        return done if ids <= set(assigned) else None

    done = await eventually(all_assigned, within=120, interval=1, what="a batch run")
    await asyncio.sleep(WINDOW_S + 2)  # a duplicate run would show itself by now
    done = await runs()
    assigned = Counter(a["request_id"] for r in done for a in r.get("assigned", []))
    assert set(assigned) == ids and max(assigned.values()) == 1  # each request once
    assert all(r["executions"] == 1 for r in done)  # each window ran once, on one replica
    (run,) = [r for r in done if ids & set(r["requests"])]  # one window took them all
    assert set(run["requests"]) == ids and run["skipped"] == []
    print(
        f"\nbatch window of {len(ids)} requests: batch cost {run['batch_cost']:.4f} "
        f"({run['batch_assigned']} assigned, {run['batch_ms']} ms), greedy cost "
        f"{run['greedy_cost']:.4f} ({run['greedy_assigned']} assigned, {run['greedy_ms']} ms)"
    )
    assert run["batch_assigned"] >= run["greedy_assigned"]
    if run["batch_assigned"] == run["greedy_assigned"]:
        assert run["batch_cost"] <= run["greedy_cost"] + 1e-9

    async def published() -> list[dict[str, Any]] | None:
        out = []
        for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1"):
            if dict(r.headers).get("ce_type") == b"zhumeng.volunteer.assigned.v1":
                body = json.loads(r.value)
                if body["request_id"] in ids:
                    out.append(body)
        return out if len(out) >= len(ids) else None

    bodies = await eventually(published, within=60, what="VolunteerAssigned of every request")
    await asyncio.sleep(2)
    bodies = await published() or bodies
    assert Counter(b["request_id"] for b in bodies) == Counter({rid: 1 for rid in ids})
    assert {b["mode"] for b in bodies} == {"batch"}
    volunteers = [b["volunteer_id"] for b in bodies]
    assert len(set(volunteers)) == len(volunteers)  # capacity one each: nobody twice
    assert set(volunteers) <= set(batch_service["volunteers"])

    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=30) as api:
        refused = await api.get("/v1/batch-runs", headers=bearer("vol_x", "volunteer"))
    assert refused.status_code == 403


async def test_the_batch_assigns_what_greedy_leaves_over(
    platform: Platform,
    two_replicas: ServiceProcess,
    pooled_service_type: Callable[..., Awaitable[str]],
    catalog_volunteer: Callable[..., Awaitable[None]],
) -> None:
    """Two requests, two volunteers of capacity one: greedy gives the first request its best
    volunteer, the only one who can reach the second; the min-cost run serves both."""
    tag = secrets.token_hex(3)
    skill = f"batchq_{tag}"
    near, north = f"vol_bqn_{tag}", f"vol_bqf_{tag}"
    await catalog_volunteer(near, [skill], capacity=1, home=LONGXUN, radius_km=10)
    far_home = {"lat": LONGXUN["lat"] + 0.0675, "lon": LONGXUN["lon"]}  # 7.5 km north
    await catalog_volunteer(north, [skill], capacity=1, home=far_home, radius_km=12)
    sid = await pooled_service_type("batch_q", matching_mode="batch", required_skills=[skill])
    for matching in (platform.url("matching"), two_replicas.url):
        await catalog_read(matching, platform.kafka.bootstrap, [near, north, sid])
    first = longxun_request(sid, prefix="req_bq1")  # at Longxun: both can come
    south = GeoPoint(lat=LONGXUN["lat"] - 0.081, lon=LONGXUN["lon"])  # 9 km south
    second = longxun_request(sid, prefix="req_bq2").model_copy(update={"location": south})
    await asyncio.gather(*(publish_request(platform.kafka.bootstrap, e) for e in (first, second)))

    async def run() -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=30) as api:
            got = await api.get("/v1/batch-runs", params={"service_type_id": sid}, headers=ADMIN)
        items = got.json()["items"]
        return next((r for r in items if len(r.get("assigned", [])) == 2), None)

    done = await eventually(run, within=120, interval=1, what="the batch run of both")
    print(
        f"\nbatch: {done['batch_assigned']} assigned, cost {done['batch_cost']:.4f}; "
        f"greedy: {done['greedy_assigned']} assigned, cost {done['greedy_cost']:.4f}"
    )
    assert (done["batch_assigned"], done["greedy_assigned"]) == (2, 1)
    pairs = {a["request_id"]: a["volunteer_id"] for a in done["assigned"]}
    assert pairs == {first.request_id: north, second.request_id: near}

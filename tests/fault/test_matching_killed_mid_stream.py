"""Fault: kill -9 the matching service while 200 requests flow, then restart it.

Every request must end with exactly one outcome, no volunteer may hold more than their
capacity, and nobody may be notified twice."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import bearer, eventually, read_topic, request_body

pytestmark = pytest.mark.fault

N = 200
ADMIN = bearer("admin_fault", "admin")
OUTCOME_TYPES = {"zhumeng.volunteer.assigned.v1", "zhumeng.request.unmatched.v1"}


async def catalog_items(api: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = (
            await api.get(
                path,
                params={**params, "limit": 200, **({"cursor": cursor} if cursor else {})},
                headers=ADMIN,
            )
        ).json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


async def outcome_events(bootstrap: str, request_ids: set[str]) -> dict[str, set[tuple[str, str]]]:
    """Every outcome event on matching.events.v1 for these requests: request -> {(ce_id, type)}."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for rec in await read_topic(bootstrap, "matching.events.v1"):
        headers = {k: v.decode() for k, v in rec.headers}
        subject = headers.get("ce_subject", "")
        if subject in request_ids and headers.get("ce_type") in OUTCOME_TYPES:
            found[subject].add((headers["ce_id"], headers["ce_type"]))
    return found


async def test_kill_matching_mid_stream(platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=platform.url("catalog"), timeout=20) as catalog:
        villages = [p["id"] for p in await catalog_items(catalog, "/v1/places", kind="village")]
        volunteers = await catalog_items(catalog, "/v1/volunteers")
    capacity = {v["id"]: v["capacity"] for v in volunteers}
    kinds = ["haircut", "neighbour_help", "care_visit", "culture_event", "parcel_delivery"]
    plan = list(zip(range(N), itertools.cycle(kinds), itertools.cycle(villages), strict=False))

    request_ids: dict[int, str] = {}
    posted = asyncio.Event()

    async def post(client: httpx.AsyncClient, i: int, kind: str, village: str) -> None:
        who = bearer(f"res_fault_{i % 40}", "resident")
        body = request_body(kind, village, email=f"fault{i}@example.org")
        for _ in range(20):  # the requests service is up; retry only transport hiccups
            try:
                r = await client.post(
                    "/v1/requests", json=body, headers={**who, "Idempotency-Key": f"fault-{i}"}
                )
            except httpx.TransportError:
                await asyncio.sleep(0.5)
                continue
            assert r.status_code in (200, 201), r.text
            request_ids[i] = r.json()["id"]
            if len(request_ids) >= 60:
                posted.set()
            return
        raise AssertionError(f"could not post request {i}")

    async def chaos() -> None:
        await posted.wait()
        platform.services["matching"].kill()  # kill -9, mid-stream
        await asyncio.sleep(2)
        svc = platform.start_service("matching")
        await asyncio.to_thread(svc.wait_ready)

    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=30) as api:
        sem = asyncio.Semaphore(8)

        async def bounded(i: int, kind: str, village: str) -> None:
            async with sem:
                await post(api, i, kind, village)

        await asyncio.gather(chaos(), *(bounded(*p) for p in plan))
        assert len(request_ids) == N

        async def all_decided() -> dict[str, str] | None:
            statuses = {}
            for rid in request_ids.values():
                doc = (await api.get(f"/v1/requests/{rid}", headers=ADMIN)).json()
                statuses[rid] = doc["status"]
            return statuses if "posted" not in statuses.values() else None

        statuses = await eventually(
            all_decided, within=240, interval=2, what="every request to reach an outcome"
        )

    ids = set(request_ids.values())
    # 1. exactly one outcome per request (a republished event keeps its id: same outcome)
    events = await outcome_events(platform.kafka.bootstrap, ids)
    assert set(events) == ids
    doubled = {rid: ev for rid, ev in events.items() if len(ev) != 1}
    assert doubled == {}
    for rid, ((_, ce_type),) in ((r, tuple(e)) for r, e in events.items()):
        expected = "assigned" if ce_type == "zhumeng.volunteer.assigned.v1" else "unmatched"
        assert statuses[rid] == expected
    assigned = {rid for rid, s in statuses.items() if s == "assigned"}
    assert assigned, "the demo catalog should place at least some of these requests"

    # 2. no volunteer over capacity; each assigned request held by exactly one volunteer
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(platform.mongo.uri)
    try:
        loads = await mongo[f"{platform.config.db_prefix}_matching"]["loads"].find().to_list()
        deliveries_coll = mongo[f"{platform.config.db_prefix}_notify"]["deliveries"]

        for load in loads:
            # (volunteers other tests published straight onto the catalog topic are not in
            # the catalog API's list; their counts must still agree)
            assert load["n"] == len(load["active"]) <= capacity.get(load["_id"], 20), load
        holders = Counter(r for load in loads for r in load["active"] if r in ids)
        assert set(holders) == assigned and set(holders.values()) == {1}

        # 3. nobody notified twice: one delivery per (event, person, channel), one email each.
        # The requester hears "received" and the outcome; an assigned volunteer the task.
        expected = {rid: 3 if rid in assigned else 2 for rid in ids}

        async def delivered() -> list[dict[str, Any]] | None:
            docs = await deliveries_coll.find(
                {"request_id": {"$in": list(ids)}, "status": "sent"}
            ).to_list()
            per_request = Counter(d["request_id"] for d in docs)
            return docs if per_request == Counter(expected) else None

        docs = await eventually(delivered, within=240, interval=2, what="all notifications")
    finally:
        await mongo.close()
    assert len({(d["cause_event_id"], d["recipient_id"], d["channel"]) for d in docs}) == len(docs)
    mails = [
        m
        for m in platform.mail.received()
        if any(rid in str(m.get("Message-ID", "")) for rid in ids)
        or any(f"fault{i}@example.org" == str(m["To"]) for i in request_ids)
    ]
    message_ids = Counter(str(m["Message-ID"]) for m in mails)
    assert message_ids and max(message_ids.values()) == 1
    to_requesters = Counter(str(m["To"]) for m in mails if str(m["To"]).startswith("fault"))
    assert set(to_requesters.values()) == {2} and len(to_requesters) == N

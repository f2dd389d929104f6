"""Multi-slot requests in batch mode, and a coordinator's assignment with slot roles, on the real
stack: one window's run assigns a three-slot request and single-slot ones together, exactly
three different volunteers on the three slots; a coordinator's pick lands on a free slot of a
role the volunteer fits, or is refused with a problem."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import (
    bearer,
    catalog_read,
    create_service_type,
    eventually,
    longxun_request,
    publish_request,
    read_topic,
)

pytestmark = pytest.mark.integration
ADMIN = bearer("admin_batch_slots", "admin")
COORDINATOR = bearer("coord_batch_slots", "coordinator")
WINDOW_S = 10  # every batch window, in seconds (the test setting)


@pytest.fixture(scope="module")
async def short_windows(platform: Platform) -> AsyncIterator[None]:
    """Matching restarted with the test's batch window."""
    platform.config.extra_env["ZHUMENG_BATCH_WINDOW_S"] = str(WINDOW_S)
    await asyncio.to_thread(platform.restart, "matching")
    try:
        yield
    finally:
        del platform.config.extra_env["ZHUMENG_BATCH_WINDOW_S"]
        await asyncio.to_thread(platform.restart, "matching")


async def assigned_bodies(platform: Platform, ids: set[str]) -> list[dict[str, Any]]:
    out = []
    for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1"):
        if dict(r.headers).get("ce_type") == b"zhumeng.volunteer.assigned.v1":
            body = json.loads(r.value)
            if body["request_id"] in ids:
                out.append(body)
    return out


async def test_one_window_puts_three_different_volunteers_on_a_three_slot_request(
    platform: Platform,
    short_windows: None,
    pooled_service_type: Callable[..., Awaitable[str]],
    catalog_volunteer: Callable[..., Awaitable[None]],
) -> None:
    tag = secrets.token_hex(3)
    skill = f"batchs_{tag}"
    volunteers = [f"vol_bs{i}_{tag}" for i in range(7)]
    for i, vid in enumerate(volunteers):
        home = {"lat": 25.47 + 0.008 * i, "lon": 118.23 + 0.006 * (i % 3)}
        await catalog_volunteer(vid, [skill], capacity=3, home=home, radius_km=25)
    sid = await pooled_service_type("batch_slots", matching_mode="batch", required_skills=[skill])
    await catalog_read(platform.url("matching"), platform.kafka.bootstrap, volunteers)
    big = longxun_request(sid, prefix="req_bs3", slots=3)
    singles = [longxun_request(sid, prefix="req_bs1") for _ in range(2)]
    await asyncio.gather(*(publish_request(platform.kafka.bootstrap, e) for e in (big, *singles)))
    ids = {big.request_id, *(e.request_id for e in singles)}

    async def the_run() -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=30) as api:
            got = await api.get(
                "/v1/batch-runs", params={"service_type_id": sid}, headers=COORDINATOR
            )
        assert got.status_code == 200, got.text
        for run in got.json()["items"]:
            if len(run.get("assigned", [])) == 5:
                return dict(run)
        return None

    run = await eventually(the_run, within=120, interval=1, what="one window's run of all")
    print(
        f"\nbatch window: {len(run['requests'])} requests, {run['open_slots']} slots; batch "
        f"{run['batch_assigned']} filled, cost {run['batch_cost']:.4f} ({run['batch_ms']} ms); "
        f"greedy {run['greedy_assigned']} filled, cost {run['greedy_cost']:.4f}"
    )
    assert set(run["requests"]) == ids and run["open_slots"] == 5
    assert run["skipped"] == [] and run["unassigned"] == []
    assert run["executions"] == 1
    on_big = [a for a in run["assigned"] if a["request_id"] == big.request_id]
    assert sorted(a["slot"] for a in on_big) == [1, 2, 3]
    assert len({a["volunteer_id"] for a in on_big}) == 3  # three different volunteers
    assert Counter(a["request_id"] for a in run["assigned"]) == Counter(
        {big.request_id: 3, singles[0].request_id: 1, singles[1].request_id: 1}
    )

    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=30) as api:
        decision = (await api.get(f"/v1/decisions/{big.request_id}", headers=ADMIN)).json()
    lifecycle = decision["lifecycle"]
    assert lifecycle["state"] == "assigned"
    live = [a for a in lifecycle["assignments"] if a["status"] != "cancelled"]
    assert sorted((a["slot"], a["volunteer_id"]) for a in live) == sorted(
        (a["slot"], a["volunteer_id"]) for a in on_big
    )

    async def published() -> list[dict[str, Any]] | None:
        bodies = await assigned_bodies(platform, ids)
        return bodies if len(bodies) >= 5 else None

    bodies = await eventually(published, within=60, what="VolunteerAssigned of every slot")
    await asyncio.sleep(WINDOW_S + 2)  # a second run or a duplicate would show itself by now
    bodies = await assigned_bodies(platform, ids)
    assert Counter(b["request_id"] for b in bodies) == Counter(
        {big.request_id: 3, singles[0].request_id: 1, singles[1].request_id: 1}
    )
    assert {b["mode"] for b in bodies} == {"batch"}
    big_bodies = [b for b in bodies if b["request_id"] == big.request_id]
    assert sorted(b["slot"] for b in big_bodies) == [1, 2, 3]
    assert {b["slots"] for b in big_bodies} == {3}
    assert len({b["volunteer_id"] for b in big_bodies}) == 3
    assert {b["volunteer_id"] for b in bodies} <= set(volunteers)


async def test_a_coordinator_assigns_a_slot_of_a_role_the_volunteer_fits(
    platform: Platform, catalog_volunteer: Callable[..., Awaitable[None]]
) -> None:
    tag = secrets.token_hex(3)
    cut, dent = f"cutc_{tag}", f"dentc_{tag}"
    barber, dentist, dentist2 = f"vol_kb_{tag}", f"vol_kd_{tag}", f"vol_kd2_{tag}"
    cook = f"vol_kc_{tag}"
    await catalog_volunteer(barber, [cut])
    await catalog_volunteer(dentist, [], certifications=[dent])
    await catalog_volunteer(dentist2, [], certifications=[dent])
    await catalog_volunteer(cook, ["cooking"])

    def role(slug: str, count: int = 1, **needs: list[str]) -> dict[str, Any]:
        return {"role": slug, "name_zh": slug, "name_en": slug.title(), "count": count, **needs}

    sid = await create_service_type(
        platform,
        "clinic_coord",
        category="health",
        matching_mode="team",
        slot_roles=[
            role("barber", 2, required_skills=[cut]),
            role("dentist", required_certifications=[dent]),
        ],
    )
    await catalog_read(
        platform.url("matching"), platform.kafka.bootstrap, [barber, dentist, dentist2, cook, sid]
    )
    event = longxun_request(sid, prefix="req_kc", slots=3)
    await publish_request(platform.kafka.bootstrap, event)
    rid = event.request_id
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=30) as api:

        async def opened() -> dict[str, Any] | None:
            got = await api.get(f"/v1/decisions/{rid}", headers=ADMIN)
            doc = got.json() if got.status_code == 200 else {}
            return doc if doc.get("state") == "team_claiming" else None

        await eventually(opened, within=90, what="the clinic request to open")
        url = f"/v1/matches/{rid}/assign"
        first = await api.post(url, json={"volunteer_id": dentist}, headers=COORDINATOR)
        unfit = await api.post(url, json={"volunteer_id": cook}, headers=COORDINATOR)
        no_slot = await api.post(url, json={"volunteer_id": dentist2}, headers=COORDINATOR)
        second = await api.post(url, json={"volunteer_id": barber}, headers=COORDINATOR)
        barber_slot = next(
            a["assignment_id"] for a in second.json()["assignments"] if a["volunteer_id"] == barber
        )
        wrong_role = await api.post(
            f"/v1/matches/{rid}/assignments/{barber_slot}/reassign",
            json={"volunteer_id": dentist2},
            headers=COORDINATOR,
        )
        decision = (await api.get(f"/v1/decisions/{rid}", headers=ADMIN)).json()

    assert first.status_code == 200, first.text
    assert [(a["slot"], a["role"]) for a in first.json()["assignments"]] == [(3, "dentist")]
    assert unfit.status_code == 422, unfit.text
    assert unfit.headers["content-type"].startswith("application/problem+json")
    assert unfit.json()["code"] == "ineligible"
    assert no_slot.status_code == 409, no_slot.text
    assert no_slot.json()["code"] == "no_slot"
    assert second.status_code == 200, second.text
    assert wrong_role.status_code == 422, wrong_role.text
    assert wrong_role.json()["code"] == "ineligible"
    live = {
        a["volunteer_id"]: (a["slot"], a["role"])
        for a in decision["lifecycle"]["assignments"]
        if a["status"] != "cancelled"
    }
    assert live == {dentist: (3, "dentist"), barber: (1, "barber")}
    assert decision["lifecycle"]["slot_roles"] == ["barber", "barber", "dentist"]

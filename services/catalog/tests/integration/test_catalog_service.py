"""The catalog as a real process against a real local Kafka broker and document server.

Self-contained: the module starts its own Kafka and document server (SecantusDB by default)
on free ports in a temporary directory (`running_infra`; not the session-wide `platform`,
whose own catalog would publish to the same topics), runs `python -m zhumeng_catalog` as a
subprocess and talks to it over HTTP, then reads what it published back from the compacted
topics.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from zhumeng_devstack.stack import ServiceProcess
from zhumeng_devstack.testing import (
    Infra,
    bearer,
    end_offsets,
    eventually,
    infra_fixture,
    read_topic,
    running_service,
)
from zhumeng_kit.auth import mint_token
from zhumeng_kit.mongo import make_client
from zhumeng_kit.problems import PROBLEM_JSON

pytestmark = pytest.mark.integration

CATALOG_TOPICS = (
    "catalog.service-types.v1",
    "catalog.places.v1",
    "catalog.volunteers.v1",
    "catalog.teams.v1",
    "catalog.contacts.v1",
)
CATALOG_ENV = {"ZHUMENG_RELAY_POLL_MS": "50"}
ADMIN = bearer("adm_it", "admin")
COORD = bearer("co_it", "coordinator")
RESIDENT = bearer("res_it", "resident")


# SecantusDB by default (ZHUMENG_DOCDB): FerretDB v1's updates are not atomic (ADR 0003)
infra = infra_fixture("catalog_it")


@pytest.fixture(scope="module")
def catalog(infra: Infra) -> Iterator[ServiceProcess]:
    with running_service("catalog", infra, f"it{uuid.uuid4().hex[:10]}", **CATALOG_ENV) as svc:
        yield svc


@pytest.fixture
async def http(catalog: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=catalog.url, timeout=30) as client:
        yield client


async def records(bootstrap: str, topic: str) -> list[tuple[str, dict[str, str], Any]]:
    """Everything on a topic right now: (key, headers, decoded JSON value)."""
    return [
        (
            (r.key or b"").decode(),
            {k: v.decode() for k, v in r.headers},
            json.loads(r.value) if r.value is not None else None,
        )
        for r in await read_topic(bootstrap, topic)
    ]


async def wait_for(
    bootstrap: str, topic: str, key: str, version: int, within_s: float = 30
) -> list[tuple[str, dict[str, str], Any]]:
    """The records of `key` on `topic` once one with `version` arrived (the relay is async)."""

    async def arrived() -> list[tuple[str, dict[str, str], Any]] | None:
        mine = [r for r in await records(bootstrap, topic) if r[0] == key]
        return mine if any(r[2] and r[2].get("version") == version for r in mine) else None

    return await eventually(
        arrived, within=within_s, interval=0.3, what=f"{key} v{version} to reach {topic}"
    )


async def outbox_drained(mongo_uri: str, db_name: str, within_s: float = 180) -> None:
    """Wait until the relay has published and removed every pending outbox entry."""
    client = make_client(mongo_uri, "catalog-it")
    try:
        db = client[db_name]

        async def drained() -> bool:
            pending = 0
            for coll in ("places", "service_types", "volunteers", "teams"):
                pending += await db[coll].count_documents({"has_outbox": True})
            return not pending

        await eventually(
            drained, within=within_s, interval=0.5, what="the relay to drain every outbox entry"
        )
    finally:
        await client.close()


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["title"]
    return body


# ---------------------------------------------------------------------------------- tests


async def test_health(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json()["status"] == "ok"
    ready = (await http.get("/readyz")).json()
    assert ready["status"] == "ready" and ready["checks"] == {"mongo": True, "kafka": True}


async def test_no_or_bad_token_is_401(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/v1/places"), 401)
    assert_problem(await http.get("/v1/places", headers={"Authorization": "Bearer nope"}), 401)
    forged = mint_token("another-secret-that-is-long-enough-000", "x", ["admin"])
    assert_problem(await http.get("/v1/places", headers={"Authorization": f"Bearer {forged}"}), 401)
    assert_problem(await http.post("/v1/places", json={}, headers=RESIDENT), 403)


async def test_create_and_publish_through_the_outbox(http: httpx.AsyncClient, infra: Infra) -> None:
    town = {
        "id": "pl_it_town",
        "kind": "township",
        "name_zh": "测试镇",
        "name_en": "Testtown",
        "location": {"lat": 25.5, "lon": 118.25},
    }
    village = {
        "id": "pl_it_town_v1",
        "kind": "village",
        "name_zh": "测试村",
        "name_en": "Test village",
        "parent_id": "pl_it_town",
        "location": {"lat": 25.52, "lon": 118.27},
    }
    for body in (town, village):
        resp = await http.post("/v1/places", json=body, headers=COORD)
        assert resp.status_code == 201, resp.text
    assert (await http.get("/v1/places/pl_it_town_v1", headers=RESIDENT)).json()[
        "township_id"
    ] == "pl_it_town"

    st = {
        "id": "it_haircut",
        "name_zh": "义务理发",
        "name_en": "Free haircut",
        "category": "personal_care",
        "required_skills": ["haircut"],
        "default_duration_min": 45,
        "target_claim_min": 60,
    }
    resp = await http.post("/v1/service-types", json=st, headers=COORD)
    assert resp.status_code == 201, resp.text

    vol = {
        "id": "vol_it_1",
        "name": "林美华",
        "display_name": "美华",
        "phone": "13800000001",
        "email": "vol_it_1@volunteers.zhumeng.example",
        "skills": ["haircut", "driving"],
        "home_place_id": "pl_it_town_v1",
        "radius_km": 15,
        "capacity": 2,
        "availability": [{"weekday": 0, "start": "08:00", "end": "20:00"}],
        "languages": ["mandarin", "minnan"],
    }
    resp = await http.post("/v1/volunteers", json=vol, headers=COORD)
    assert resp.status_code == 201, resp.text
    shown = resp.json()
    assert shown["phone"] == "138****0001" and shown["email"].startswith("v***@")
    assert shown["home"] == {"lat": 25.52, "lon": 118.27}
    assert shown["township_id"] == "pl_it_town"
    mine = (
        await http.get(
            "/v1/volunteers/vol_it_1",
            headers=bearer("vol_it_1", "volunteer"),
        )
    ).json()
    assert mine["phone"] == "13800000001"

    resp = await http.patch("/v1/volunteers/vol_it_1", json={"radius_km": 25}, headers=COORD)
    assert resp.json()["version"] == 2

    boot = infra.kafka.bootstrap
    vrecs = await wait_for(boot, "catalog.volunteers.v1", "vol_it_1", 2)
    for _, headers, value in vrecs:
        assert headers["ce_type"] == "zhumeng.catalog.volunteer.v1"
        assert headers["ce_source"] == "zhumeng/catalog" and headers["ce_id"]
        assert not {"name", "phone", "email"} & set(value)
        assert value["display_name"] == "美华" and value["township_id"] == "pl_it_town"
    assert [v["version"] for _, _, v in vrecs] == [1, 2]

    contacts = await wait_for(boot, "catalog.contacts.v1", "vol_it_1", 1)
    assert [c[2]["version"] for c in contacts] == [1]  # radius change: no new contact record
    assert contacts[0][1]["ce_type"] == "zhumeng.catalog.contact.v1"
    assert contacts[0][2]["phone"] == "13800000001" and contacts[0][2]["name"] == "林美华"

    await wait_for(boot, "catalog.service-types.v1", "it_haircut", 1)
    await wait_for(boot, "catalog.places.v1", "pl_it_town_v1", 1)
    for topic in CATALOG_TOPICS:
        if topic == "catalog.contacts.v1":
            continue
        for _, _, value in await records(boot, topic):
            dumped = json.dumps(value, ensure_ascii=False)
            assert "13800000001" not in dumped and "vol_it_1@" not in dumped, topic

    team = {"id": "team_it", "name": "IT barbers", "member_ids": ["vol_it_1"]}
    assert (await http.post("/v1/teams", json=team, headers=COORD)).status_code == 201
    assert (await http.get("/v1/volunteers/vol_it_1", headers=COORD)).json()["team_ids"] == [
        "team_it"
    ]
    await wait_for(boot, "catalog.teams.v1", "team_it", 1)

    gone = await http.delete("/v1/service-types/it_haircut", headers=ADMIN)
    assert gone.status_code == 200 and gone.json()["active"] is False
    st_recs = await wait_for(boot, "catalog.service-types.v1", "it_haircut", 2)
    assert st_recs[-1][2]["active"] is False


async def test_review_batch_window_and_unavailability_are_published(
    http: httpx.AsyncClient, infra: Infra
) -> None:
    town = {
        "id": "pl_rv_town",
        "kind": "township",
        "name_zh": "审核镇",
        "name_en": "Reviewtown",
        "location": {"lat": 25.5, "lon": 118.25},
    }
    assert (await http.post("/v1/places", json=town, headers=COORD)).status_code == 201
    st = {
        "id": "rv_doctor",
        "name_zh": "医生出诊",
        "name_en": "Doctor visit",
        "category": "health",
        "default_duration_min": 60,
        "target_claim_min": 240,
        "needs_review": True,
        "batch_window_min": 20,
    }
    created = await http.post("/v1/service-types", json=st, headers=COORD)
    assert created.status_code == 201, created.text
    assert (created.json()["needs_review"], created.json()["batch_window_min"]) == (True, 20)
    patched = await http.patch(
        "/v1/service-types/rv_doctor", json={"needs_review": False}, headers=COORD
    )
    assert patched.json()["needs_review"] is False
    leave = {"start": "2026-12-01T08:00:00+08:00", "end": "2026-12-03T18:00:00+08:00"}
    vol = {
        "id": "vol_rv_1",
        "name": "陈志强",
        "display_name": "志强",
        "phone": "13800000009",
        "home_place_id": "pl_rv_town",
        "unavailable": [leave],
    }
    assert (await http.post("/v1/volunteers", json=vol, headers=COORD)).status_code == 201
    backwards = {"unavailable": [{"start": leave["end"], "end": leave["start"]}]}
    assert_problem(await http.patch("/v1/volunteers/vol_rv_1", json=backwards, headers=COORD), 422)

    boot = infra.kafka.bootstrap
    types = await wait_for(boot, "catalog.service-types.v1", "rv_doctor", 2)
    assert [(v["needs_review"], v["batch_window_min"]) for _, _, v in types] == [
        (True, 20),
        (False, 20),
    ]
    (volunteer,) = await wait_for(boot, "catalog.volunteers.v1", "vol_rv_1", 1)
    assert len(volunteer[2]["unavailable"]) == 1
    assert volunteer[2]["unavailable"] == [leave]


async def test_search_and_pagination(http: httpx.AsyncClient) -> None:
    for i in range(2, 6):
        body = {
            "id": f"vol_it_{i}",
            "name": f"测试{i}",
            "display_name": f"{i}",
            "skills": ["driving"] if i % 2 else ["cooking"],
            "home_place_id": "pl_it_town",
        }
        assert (await http.post("/v1/volunteers", json=body, headers=COORD)).status_code == 201
    drivers = (await http.get("/v1/volunteers", params={"skill": "driving"}, headers=COORD)).json()
    assert [v["id"] for v in drivers["items"]] == ["vol_it_1", "vol_it_3", "vol_it_5"]
    near = (
        await http.get(
            "/v1/volunteers", headers=COORD, params={"near": "25.52,118.27", "within_km": 1}
        )
    ).json()
    assert [v["id"] for v in near["items"]] == ["vol_it_1"]
    assert near["items"][0]["distance_km"] == 0
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "township_id": "pl_it_town"}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/v1/volunteers", params=params, headers=COORD)).json()
        ids += [v["id"] for v in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert ids == [f"vol_it_{i}" for i in range(1, 6)]
    found = (
        await http.get(
            "/v1/service-types", params={"q": "HAIR", "include_inactive": True}, headers=COORD
        )
    ).json()["items"]
    assert [s["id"] for s in found] == ["it_haircut"]
    villages = (
        await http.get(
            "/v1/places", params={"kind": "village", "township_id": "pl_it_town"}, headers=COORD
        )
    ).json()["items"]
    assert [p["id"] for p in villages] == ["pl_it_town_v1"]


async def test_bad_input_gives_problems(http: httpx.AsyncClient) -> None:
    orphan = {
        "id": "pl_orphan",
        "kind": "village",
        "name_zh": "孤村",
        "name_en": "Orphan",
        "parent_id": "pl_nowhere",
        "location": {"lat": 25.5, "lon": 118.2},
    }
    assert_problem(await http.post("/v1/places", json=orphan, headers=COORD), 422)
    assert_problem(
        await http.post("/v1/places", json={**orphan, "parent_id": None}, headers=COORD), 422
    )
    dup = {
        "id": "pl_it_town",
        "kind": "township",
        "name_zh": "x",
        "name_en": "x",
        "location": {"lat": 25.5, "lon": 118.2},
    }
    assert_problem(await http.post("/v1/places", json=dup, headers=COORD), 409)
    assert_problem(await http.post("/v1/volunteers", json={"name": "x"}, headers=COORD), 422)
    assert_problem(
        await http.post(
            "/v1/volunteers",
            headers=COORD,
            json={"name": "x", "display_name": "x", "home_place_id": "pl_missing"},
        ),
        422,
    )
    assert_problem(
        await http.post(
            "/v1/volunteers",
            headers=COORD,
            json={"name": "x", "display_name": "x", "home_place_id": "pl_it_town", "phone": "abc"},
        ),
        422,
    )
    assert_problem(
        await http.post(
            "/v1/teams", headers=COORD, json={"name": "ghosts", "member_ids": ["vol_nobody"]}
        ),
        422,
    )
    assert_problem(await http.get("/v1/volunteers/vol_nobody", headers=COORD), 404)
    assert_problem(await http.get("/v1/volunteers/Not%20An%20Id", headers=COORD), 422)
    assert_problem(await http.get("/v1/volunteers", params={"cursor": "%%%"}, headers=COORD), 400)
    assert_problem(
        await http.patch("/v1/places/pl_it_town", json={"kind": "village"}, headers=COORD), 422
    )
    assert_problem(
        await http.post(
            "/v1/service-types",
            content=b"[1,2",
            headers={**COORD, "content-type": "application/json"},
        ),
        422,
    )


async def test_demo_seed_is_idempotent(infra: Infra) -> None:
    """A seeded start publishes the demo catalog once; a second start publishes nothing."""
    prefix = f"seed{uuid.uuid4().hex[:8]}"
    bootstrap = infra.kafka.bootstrap
    env = {**CATALOG_ENV, "ZHUMENG_CATALOG_SEED_DEMO": "true"}
    log_file = infra.data_dir / "catalog-seed.log"
    before = await end_offsets(bootstrap, CATALOG_TOPICS)
    with running_service(
        "catalog", infra, prefix, log_file=log_file, ready_within=240, **env
    ) as first:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            types = (await client.get("/v1/service-types", headers=COORD)).json()["items"]
            assert len(types) == 13
            towns = (
                await client.get(
                    "/v1/places", params={"kind": "township", "limit": 200}, headers=COORD
                )
            ).json()["items"]
            assert len(towns) == 18
            dentists = (
                await client.get(
                    "/v1/volunteers", headers=COORD, params={"certification": "dentist_license"}
                )
            ).json()["items"]
            assert dentists
        await wait_for(bootstrap, "catalog.volunteers.v1", "vol_0200", 1)
        await wait_for(bootstrap, "catalog.teams.v1", "team_youth", 1)
        await outbox_drained(infra.mongo.uri, f"{prefix}_catalog")
        seeded = await end_offsets(bootstrap, CATALOG_TOPICS)
        assert seeded["catalog.contacts.v1"] - before["catalog.contacts.v1"] == 200
        assert seeded["catalog.service-types.v1"] - before["catalog.service-types.v1"] == 13
    with running_service("catalog", infra, prefix, log_file=log_file, ready_within=240, **env):
        await asyncio.sleep(1.5)
        assert await end_offsets(bootstrap, CATALOG_TOPICS) == seeded

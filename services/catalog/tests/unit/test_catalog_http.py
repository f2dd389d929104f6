"""The HTTP layer on the fake repository: auth, roles, masking, problems, pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from zhumeng_catalog.adapters.demo_data import demo_catalog, load_demo
from zhumeng_catalog.adapters.memory_repository import InMemoryCatalogRepository as FakeRepository
from zhumeng_catalog.app.use_cases import Catalog
from zhumeng_catalog.entrypoints.http import build_router
from zhumeng_catalog.settings import CatalogSettings
from zhumeng_kit.auth import mint_token
from zhumeng_kit.problems import PROBLEM_JSON, install_problem_handlers
from zhumeng_kit.settings import DEV_JWT_SECRET

pytestmark = pytest.mark.unit


def auth(subject: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, subject, list(roles))}"}


ADMIN = auth("adm_1", "admin")
COORD = auth("co_1", "coordinator")
RESIDENT = auth("res_1", "resident")
LONGXUN = {  # a township coordinator
    "Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, 'co_lx', ['coordinator'], 'pl_longxun')}"
}


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    catalog = Catalog(FakeRepository())
    await load_demo(catalog, demo_catalog())
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(build_router(catalog, CatalogSettings()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as c:
        yield c


def is_problem(resp: httpx.Response, status: int) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    body = resp.json()
    assert body["status"] == status and body["type"].startswith("https://")


async def test_auth_is_required(client: httpx.AsyncClient) -> None:
    is_problem(await client.get("/v1/service-types"), 401)
    is_problem(
        await client.get("/v1/service-types", headers={"Authorization": "Bearer x.y.z"}), 401
    )
    resp = await client.get("/v1/service-types", headers=RESIDENT)
    assert resp.status_code == 200 and len(resp.json()["items"]) == 13


async def test_writes_need_coordinator_or_admin(client: httpx.AsyncClient) -> None:
    body = {
        "id": "kite_repair",
        "name_zh": "修风筝",
        "name_en": "Kite repair",
        "category": "community",
        "default_duration_min": 30,
        "target_claim_min": 60,
    }
    is_problem(await client.post("/v1/service-types", json=body, headers=RESIDENT), 403)
    resp = await client.post("/v1/service-types", json=body, headers=COORD)
    assert resp.status_code == 201 and resp.json()["version"] == 1
    is_problem(await client.post("/v1/service-types", json=body, headers=COORD), 409)
    resp = await client.patch(
        "/v1/service-types/kite_repair", json={"target_claim_min": 15}, headers=ADMIN
    )
    assert resp.json()["version"] == 2 and resp.json()["target_claim_min"] == 15
    resp = await client.delete("/v1/service-types/kite_repair", headers=ADMIN)
    assert resp.status_code == 200 and resp.json()["active"] is False


async def test_bad_input_is_a_problem(client: httpx.AsyncClient) -> None:
    is_problem(await client.post("/v1/service-types", json={"id": "x"}, headers=COORD), 422)
    is_problem(
        await client.post(
            "/v1/service-types",
            content=b"{not json",
            headers={**COORD, "content-type": "application/json"},
        ),
        422,
    )
    is_problem(await client.get("/v1/service-types/BAD%20ID", headers=COORD), 422)
    is_problem(await client.get("/v1/service-types/nope", headers=COORD), 404)
    is_problem(
        await client.patch("/v1/service-types/haircut", json={"colour": "red"}, headers=COORD), 422
    )
    is_problem(await client.get("/v1/places?limit=0", headers=COORD), 422)
    is_problem(await client.get("/v1/places?limit=201", headers=COORD), 422)
    is_problem(await client.get("/v1/places?cursor=garbage", headers=COORD), 400)
    is_problem(await client.get("/v1/volunteers?near=north", headers=COORD), 422)
    is_problem(await client.get("/v1/volunteers?within_km=3", headers=COORD), 422)
    village = {
        "id": "pl_orphan",
        "kind": "village",
        "name_zh": "孤村",
        "name_en": "Orphan",
        "parent_id": "pl_nowhere",
        "location": {"lat": 25.5, "lon": 118.2},
    }
    is_problem(await client.post("/v1/places", json=village, headers=COORD), 422)
    team = {"id": "team_ghosts", "name": "Ghosts", "member_ids": ["vol_9999"]}
    resp = await client.post("/v1/teams", json=team, headers=COORD)
    is_problem(resp, 422)
    assert resp.json()["missing"] == ["vol_9999"]


async def test_masking_by_caller(client: httpx.AsyncClient) -> None:
    me = await client.get("/v1/volunteers/vol_0007", headers=auth("vol_0007", "volunteer"))
    assert me.json()["phone"] == "13800000007" and me.json()["name"]
    other = await client.get("/v1/volunteers/vol_0007", headers=auth("vol_0008", "volunteer"))
    assert other.json()["phone"] == "138****0007" and other.json()["name"] is None
    assert other.json()["email"].startswith("v***@")
    coord = (await client.get("/v1/volunteers/vol_0007", headers=COORD)).json()
    assert coord["phone"] == "138****0007" and coord["name"]
    admin = (await client.get("/v1/volunteers/vol_0007", headers=ADMIN)).json()
    assert admin["email"] == "vol0007@volunteers.zhumeng.example"


async def test_pagination_and_search(client: httpx.AsyncClient) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 70, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/volunteers", params=params, headers=COORD)).json()
        seen += [v["id"] for v in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 200 and seen == sorted(seen) and len(set(seen)) == 200

    page = (
        await client.get(
            "/v1/volunteers",
            headers=COORD,
            params={"skill": "driving", "near": "25.49,118.24", "within_km": 15, "limit": 200},
        )
    ).json()
    dists = [v["distance_km"] for v in page["items"]]
    assert dists == sorted(dists) and all(d <= 15 for d in dists) and dists
    assert all("driving" in v["skills"] for v in page["items"])

    villages = (
        await client.get(
            "/v1/places", headers=COORD, params={"kind": "village", "township_id": "pl_longxun"}
        )
    ).json()["items"]
    assert 2 <= len(villages) <= 3 and all(p["parent_id"] == "pl_longxun" for p in villages)
    found = (await client.get("/v1/service-types", headers=COORD, params={"q": "dental"})).json()[
        "items"
    ]
    assert [s["id"] for s in found] == ["dental_clinic"]


async def test_township_coordinator_writes_only_in_their_township(
    client: httpx.AsyncClient,
) -> None:
    kite = {
        "id": "kite_flying",
        "name_zh": "放风筝",
        "name_en": "Kite flying",
        "category": "community",
        "default_duration_min": 30,
        "target_claim_min": 60,
    }
    resp = await client.post("/v1/service-types", json=kite, headers=LONGXUN)
    is_problem(resp, 403)
    assert "county-level" in resp.json()["detail"]
    is_problem(
        await client.patch(
            "/v1/service-types/haircut", json={"target_claim_min": 5}, headers=LONGXUN
        ),
        403,
    )
    # reads are unchanged
    assert (await client.get("/v1/service-types/haircut", headers=LONGXUN)).status_code == 200

    village = {
        "id": "pl_longxun_v9",
        "kind": "village",
        "name_zh": "新村",
        "name_en": "New village",
        "parent_id": "pl_longxun",
        "location": {"lat": 25.5, "lon": 118.2},
    }
    assert (await client.post("/v1/places", json=village, headers=LONGXUN)).status_code == 201
    resp = await client.delete("/v1/places/pl_longxun_v9", headers=LONGXUN)
    assert resp.status_code == 200 and resp.json()["active"] is False
    resp = await client.post(
        "/v1/places",
        json={**village, "id": "pl_gaide_v9", "parent_id": "pl_gaide"},
        headers=LONGXUN,
    )
    is_problem(resp, 403)
    assert "pl_gaide" in resp.json()["detail"]
    is_problem(
        await client.patch("/v1/places/pl_longxun", json={"name_en": "X"}, headers=LONGXUN), 403
    )


async def test_township_coordinator_volunteers_and_teams(client: httpx.AsyncClient) -> None:
    mine = (
        await client.get(
            "/v1/volunteers", params={"township_id": "pl_longxun", "limit": 1}, headers=LONGXUN
        )
    ).json()["items"][0]
    theirs = (
        await client.get(
            "/v1/volunteers", params={"township_id": "pl_gaide", "limit": 1}, headers=LONGXUN
        )
    ).json()["items"][0]
    resp = await client.patch(
        f"/v1/volunteers/{mine['id']}", json={"radius_km": 12.5}, headers=LONGXUN
    )
    assert resp.status_code == 200 and resp.json()["radius_km"] == 12.5
    resp = await client.patch(
        f"/v1/volunteers/{theirs['id']}", json={"radius_km": 12.5}, headers=LONGXUN
    )
    is_problem(resp, 403)
    assert theirs["id"] in resp.json()["detail"]
    resp = await client.patch(
        f"/v1/volunteers/{mine['id']}", json={"home_place_id": "pl_gaide_v1"}, headers=LONGXUN
    )
    is_problem(resp, 403)
    assert "county-level" in resp.json()["detail"]
    same = (await client.get(f"/v1/volunteers/{mine['id']}", headers=LONGXUN)).json()
    assert same["township_id"] == "pl_longxun" and same["version"] == mine["version"] + 1

    resp = await client.patch(
        "/v1/teams/team_barbers", json={"skills": ["haircut", "shaving"]}, headers=LONGXUN
    )
    assert resp.status_code == 200 and resp.json()["skills"] == ["haircut", "shaving"]
    is_problem(
        await client.patch("/v1/teams/team_youth", json={"name": "Ours"}, headers=LONGXUN), 403
    )
    is_problem(await client.delete("/v1/teams/team_medical", headers=LONGXUN), 403)
    # a county-wide coordinator may
    resp = await client.patch("/v1/teams/team_youth", json={"name": "Youth"}, headers=COORD)
    assert resp.status_code == 200 and resp.json()["name"] == "Youth"

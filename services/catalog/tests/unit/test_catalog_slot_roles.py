"""Slot roles of team service types through the catalog's HTTP API and records: accepted for
team mode, refused with a 422 problem when invalid or for another mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from zhumeng_catalog.adapters.memory_repository import InMemoryCatalogRepository
from zhumeng_catalog.app.use_cases import Catalog
from zhumeng_catalog.entrypoints.http import build_router
from zhumeng_catalog.settings import CatalogSettings
from zhumeng_contracts.events import ServiceTypeRecord
from zhumeng_kit.auth import mint_token
from zhumeng_kit.problems import PROBLEM_JSON, install_problem_handlers
from zhumeng_kit.settings import DEV_JWT_SECRET

pytestmark = pytest.mark.unit
ADMIN = {"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, 'adm_1', ['admin'])}"}
BARBER = {
    "role": "barber",
    "name_zh": "理发师",
    "name_en": "Barber",
    "required_skills": ["Haircut"],
}
DENTIST = {
    "role": "dentist",
    "name_zh": "牙医",
    "name_en": "Dentist",
    "required_certifications": ["dentist_license"],
}


def clinic(**over: Any) -> dict[str, Any]:
    return {
        "id": "village_clinic",
        "name_zh": "义诊下乡",
        "name_en": "Village clinic",
        "category": "health",
        "default_duration_min": 240,
        "target_claim_min": 1440,
        "matching_mode": "team",
        "slot_roles": [{**BARBER, "count": 2}, DENTIST],
        **over,
    }


@pytest.fixture
async def setup() -> AsyncIterator[tuple[httpx.AsyncClient, InMemoryCatalogRepository]]:
    repo = InMemoryCatalogRepository()
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(build_router(Catalog(repo), CatalogSettings()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as c:
        yield c, repo


def is_problem(resp: httpx.Response) -> None:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)


async def test_roles_reach_the_record(
    setup: tuple[httpx.AsyncClient, InMemoryCatalogRepository],
) -> None:
    client, repo = setup
    resp = await client.post("/v1/service-types", json=clinic(), headers=ADMIN)
    assert resp.status_code == 201, resp.text
    roles = resp.json()["slot_roles"]
    assert [(r["role"], r["count"]) for r in roles] == [("barber", 2), ("dentist", 1)]
    assert roles[0]["required_skills"] == ["haircut"]  # tags are normalised
    (record,) = repo.of_type(ServiceTypeRecord)
    assert [r.role for r in record.slot_roles] == ["barber", "dentist"]
    assert record.slot_roles[1].required_certifications == ["dentist_license"]

    patched = await client.patch(
        "/v1/service-types/village_clinic", json={"slot_roles": [DENTIST]}, headers=ADMIN
    )
    assert patched.status_code == 200, patched.text
    assert [r.slot_roles for r in repo.of_type(ServiceTypeRecord)][-1][0].count == 1


@pytest.mark.parametrize(
    "over",
    [
        {"slot_roles": [BARBER, BARBER]},  # duplicate slug
        {"slot_roles": [{**BARBER, "count": 0}]},
        {"slot_roles": [{**BARBER, "count": 15}, {**DENTIST, "count": 6}]},  # 21 slots
        {"slot_roles": [{**BARBER, "role": "Barber!"}]},
        {"slot_roles": [{**BARBER, "colour": "red"}]},
        {"matching_mode": "open_claim"},  # roles only for team and batch modes
    ],
)
async def test_invalid_roles_are_a_problem(
    setup: tuple[httpx.AsyncClient, InMemoryCatalogRepository], over: dict[str, Any]
) -> None:
    client, repo = setup
    is_problem(await client.post("/v1/service-types", json=clinic(**over), headers=ADMIN))
    assert repo.of_type(ServiceTypeRecord) == []


async def test_a_batch_service_type_may_have_roles(
    setup: tuple[httpx.AsyncClient, InMemoryCatalogRepository],
) -> None:
    client, repo = setup
    resp = await client.post("/v1/service-types", json=clinic(matching_mode="batch"), headers=ADMIN)
    assert resp.status_code == 201, resp.text
    record = repo.of_type(ServiceTypeRecord)[-1]
    assert record.matching_mode == "batch" and [r.role for r in record.slot_roles] == [
        r["role"] for r in clinic()["slot_roles"]
    ]


async def test_a_patch_cannot_leave_roles_on_another_mode(
    setup: tuple[httpx.AsyncClient, InMemoryCatalogRepository],
) -> None:
    client, _ = setup
    assert (await client.post("/v1/service-types", json=clinic(), headers=ADMIN)).status_code == 201
    resp = await client.patch(
        "/v1/service-types/village_clinic", json={"matching_mode": "direct"}, headers=ADMIN
    )
    is_problem(resp)

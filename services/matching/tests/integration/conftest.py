"""Helpers of the pooled-mode tests (teams, batch, trips): volunteers with a skill only the
test's own volunteers have, created through the catalog API, and service types in the modes
the catalog API does not accept yet (published on the catalog topic as the catalog would);
and, for tests whose window opens within the hour, volunteers on call at any hour."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from zhumeng_contracts.events import ServiceTypeRecord
from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import bearer, catalog_read, publish
from zhumeng_matching.examples import ROUND_THE_CLOCK, volunteer
from zhumeng_matching.examples import service as example_service

ADMIN = bearer("admin_pooled", "admin")
EVERY_DAY = [{"weekday": d, "start": "07:00", "end": "21:00"} for d in range(7)]

ServiceTypeFactory = Callable[..., Awaitable[str]]
VolunteerFactory = Callable[..., Awaitable[None]]


@pytest.fixture(scope="module")
def pooled_service_type(platform: Platform) -> ServiceTypeFactory:
    """`await pooled_service_type("batch_test", matching_mode="batch", ...)` -> its id.

    The catalog API accepts only direct, auto_offer and open_claim so far; this publishes the
    record on `catalog.service-types.v1` itself, exactly as the catalog's outbox would."""

    async def create(prefix: str, **fields: Any) -> str:
        sid = f"{prefix}_{secrets.token_hex(4)}"
        record = ServiceTypeRecord.model_validate(
            {
                "id": sid,
                "name_zh": "测试服务",
                "name_en": "Test service",
                "category": "care",
                "default_duration_min": 60,
                "target_claim_min": 60,
                "version": 1,
                **fields,
            }
        )
        await publish(platform.kafka.bootstrap, record)
        await catalog_read(platform.url("matching"), platform.kafka.bootstrap)
        return sid

    return create


@pytest.fixture(scope="module")
def catalog_volunteer(platform: Platform) -> VolunteerFactory:
    """`await catalog_volunteer(id, skills, **fields)`: a volunteer at a Longxun village,
    available every day 07:00-21:00, created through the catalog API."""

    async def create(vid: str, skills: list[str], **fields: Any) -> None:
        body = {
            "id": vid,
            "name": "测试志愿者",
            "display_name": "志愿者",
            "phone": "13800009999",
            "skills": skills,
            "home_place_id": "pl_longxun_v1",
            "radius_km": 30,
            "availability": EVERY_DAY,
            "capacity": 3,
            **fields,
        }
        async with httpx.AsyncClient(base_url=platform.url("catalog"), timeout=30) as api:
            created = await api.post("/v1/volunteers", json=body, headers=ADMIN)
        assert created.status_code == 201, created.text

    return create


@pytest.fixture(scope="module")
def on_call(platform: Platform) -> Callable[[str, int], Awaitable[tuple[str, list[str]]]]:
    """`await on_call(prefix, n)` -> (service type id, volunteer ids): a direct-mode service
    type needing a skill only these `n` volunteers have, all on call day and night near the
    Longxun village, published on the catalog topics as the catalog would. The demo
    volunteers are off at night; a test whose window opens within the hour (check-in is
    allowed from two hours before) would otherwise pass or fail by the hour it runs at."""

    async def create(prefix: str, n: int) -> tuple[str, list[str]]:
        tag = secrets.token_hex(4)
        skill = f"{prefix}_skill_{tag}"
        service = example_service(
            id=f"{prefix}_svc_{tag}", required_skills=[skill], default_duration_min=30
        )
        ids = [f"vol_{prefix}_{tag}_{i}" for i in range(n)]
        for i, vid in enumerate(ids):
            vol = volunteer(
                vid,
                lat=25.492 + i * 0.001,
                lon=118.243,
                skills=[skill],
                availability=ROUND_THE_CLOCK,
                capacity=3,
            )
            await publish(platform.kafka.bootstrap, vol)
        await publish(platform.kafka.bootstrap, service)
        return service.id, ids

    return create

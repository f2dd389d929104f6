"""requests as a process on the real stack: HTTP in, events out, outcomes back in."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import RequestUnmatched
from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import bearer, eventually, publish, read_topic, request_body

pytestmark = pytest.mark.integration
RESIDENT = bearer("res_it_requests", "resident")


def subject_of(record: Any) -> str:
    return str(dict(record.headers).get("ce_subject", b"").decode())


async def test_post_publishes_contact_and_posted_without_personal_data(platform: Platform) -> None:
    body = request_body("care_visit", "pl_gaide_v1", email="chen@example.org")
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as api:
        first = await api.post(
            "/v1/requests", json=body, headers={**RESIDENT, "Idempotency-Key": "it-1"}
        )
        again = await api.post(
            "/v1/requests", json=body, headers={**RESIDENT, "Idempotency-Key": "it-1"}
        )
        changed = await api.post(
            "/v1/requests",
            json={**body, "slots": 3},
            headers={**RESIDENT, "Idempotency-Key": "it-1"},
        )
    assert first.status_code == 201 and first.headers["location"].endswith(first.json()["id"])
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert changed.status_code == 409
    request_id = first.json()["id"]

    async def published() -> tuple[list[Any], list[Any]] | None:
        bootstrap = platform.kafka.bootstrap
        posted = [
            r
            for r in await read_topic(bootstrap, "requests.events.v1")
            if subject_of(r) == request_id
        ]
        contact = [
            r
            for r in await read_topic(bootstrap, "requests.contacts.v1")
            if subject_of(r) == request_id
        ]
        return (posted, contact) if posted and contact else None

    posted, contact = await eventually(published, within=30, what="both events")
    assert len(posted) == 1 and len(contact) == 1  # the replay published nothing
    payload = json.loads(posted[0].value)
    assert payload["request_id"] == request_id and posted[0].key == request_id.encode()
    assert not {"requester", "phone", "email", "name"} & payload.keys()
    assert "13900001234" not in posted[0].value.decode()
    assert json.loads(contact[0].value)["email"] == "chen@example.org"


async def test_outcome_updates_status_and_poison_goes_to_dlq(platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as api:
        # a poison message first: the consumer must dead-letter it and go on
        poison = RequestUnmatched(
            request_id="req_poison",
            service_type_id="haircut",
            reasons={},
            candidates_considered=0,
            decided_at="2026-11-27T00:00:00+00:00",
        )  # type: ignore[arg-type]
        await publish(
            platform.kafka.bootstrap,
            poison,
            value=b"{not json",
            headers=EventMeta.new(poison, "zhumeng/tests").to_headers(),
        )
        created = await api.post(
            "/v1/requests",
            json=request_body("neighbour_help", "pl_leifeng_v1"),
            headers={**RESIDENT, "Idempotency-Key": "it-2"},
        )
        request_id = created.json()["id"]

        async def decided() -> dict[str, Any] | None:
            doc = (await api.get(f"/v1/requests/{request_id}", headers=RESIDENT)).json()
            return doc if doc["status"] != "posted" else None

        doc = await eventually(decided, within=60, what="the outcome to reach the request")
        other = await api.get(f"/v1/requests/{request_id}", headers=bearer("res_x", "resident"))
        coordinator = await api.get(
            f"/v1/requests/{request_id}",
            headers=bearer("c_it", "coordinator", township="pl_leifeng"),
        )
    assert doc["status"] in {"assigned", "unmatched"}
    assert other.status_code == 404  # someone else's request is not visible
    assert coordinator.status_code == 200
    assert coordinator.json()["requester"]["phone"] == "139****1234"  # masked for staff

    dead = [
        r
        for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1.dlq")
        if subject_of(r) == "req_poison"
        and dict(r.headers).get("dlq-consumer") == b"zhumeng-requests"
    ]
    assert len(dead) == 1
    assert dict(dead[0].headers)["dlq-reason"] == b"invalid-payload"


async def test_list_is_paginated_with_a_cursor(platform: Platform) -> None:
    who = bearer("res_it_pages", "resident")
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as api:
        ids = []
        for i in range(5):
            r = await api.post(
                "/v1/requests",
                json=request_body("haircut", "pl_sanban_v1"),
                headers={**who, "Idempotency-Key": f"page-{i}"},
            )
            ids.append(r.json()["id"])
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await api.get("/v1/requests", params=params, headers=who)).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        bad = await api.get("/v1/requests", params={"cursor": "%%%"}, headers=who)
    assert seen == ids[::-1]
    assert bad.status_code == 400

"""End to end, all four services as processes on real Kafka and the document server:
a resident posts a request, matching assigns a volunteer, notify tells both people — and the
emails reach a real SMTP server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import bearer, eventually, request_body

pytestmark = pytest.mark.e2e

RESIDENT = bearer("res_e2e", "resident")
ADMIN = bearer("admin_e2e", "admin")


async def test_posted_request_is_assigned_and_both_people_are_emailed(platform: Platform) -> None:
    body = request_body("haircut", "pl_longxun_v1", email="lin.e2e@example.org")
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as requests_api:
        posted = await requests_api.post(
            "/v1/requests", json=body, headers={**RESIDENT, "Idempotency-Key": "e2e-1"}
        )
        assert posted.status_code == 201, posted.text
        request_id = posted.json()["id"]

        async def assigned() -> dict[str, Any] | None:
            doc = (await requests_api.get(f"/v1/requests/{request_id}", headers=RESIDENT)).json()
            return doc if doc["status"] != "posted" else None

        doc = await eventually(assigned, within=60, what="a matching outcome")
    assert doc["status"] == "assigned", doc
    assignment = doc["assignment"]
    volunteer_id = assignment["volunteer_id"]
    assert {p["criterion"] for p in assignment["explanation"]} >= {"distance", "fairness"}

    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=10) as matching_api:
        decision = (await matching_api.get(f"/v1/decisions/{request_id}", headers=ADMIN)).json()
    assert decision["volunteer_id"] == volunteer_id and decision["state"] == "assigned"

    async with httpx.AsyncClient(base_url=platform.url("notify"), timeout=10) as notify_api:

        async def both_sent() -> list[dict[str, Any]] | None:
            page = (
                await notify_api.get(
                    "/v1/notifications", params={"request_id": request_id}, headers=ADMIN
                )
            ).json()
            sent = [n for n in page["items"] if n["status"] == "sent"]
            return sent if len(sent) == 3 else None

        # the requester: received, then matched (with the code); the volunteer: the task
        sent = await eventually(both_sent, within=60, what="three sent notifications")
        mine = (await notify_api.get("/v1/notifications", headers=RESIDENT)).json()["items"]
    assert sorted(n["role"] for n in sent) == ["requester", "requester", "volunteer"]
    assert {n["recipient_id"] for n in sent} == {"res_e2e", volunteer_id}
    assert all(n["channel"] == "email" for n in sent)
    assert all("@" in (n["address"] or "") and "***" in n["address"] for n in sent)  # masked
    # a resident sees only their own: "received" and "matched", both for this request
    assert [n["request_id"] for n in mine] == [request_id, request_id]

    async def emails() -> list[Any] | None:
        got = [
            m
            for m in platform.mail.received()
            if request_id in str(m.get("Message-ID", "")) or request_id in m.get_content()
        ]
        return got if len(got) >= 3 else None

    mails = await eventually(emails, within=30, what="three emails at the SMTP server")

    async with httpx.AsyncClient(timeout=10) as client:
        requests_metrics = (await client.get(platform.url("requests") + "/metrics")).text
        matching_metrics = (await client.get(platform.url("matching") + "/metrics")).text
    assert (
        'zhumeng_http_requests_total{method="POST",route="/v1/requests",service="requests",'
        'status="201"}' in requests_metrics
    )
    assert (
        'zhumeng_events_total{outcome="applied",service="matching",topic="requests.events.v1",'
        'type="zhumeng.request.posted.v1"}' in matching_metrics
    )
    assert "zhumeng_outbox_published_total" in matching_metrics
    assert "13900001234" not in requests_metrics + matching_metrics
    recipients = sorted(str(m["To"]) for m in mails)
    assert "lin.e2e@example.org" in recipients
    assert any(r.endswith("@volunteers.zhumeng.example") for r in recipients)
    assert len(mails) == 3


async def test_bad_input_gets_problem_details_and_nothing_is_posted(platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as api:
        no_token = await api.post("/v1/requests", json={}, headers={"Idempotency-Key": "x"})
        assert no_token.status_code == 401
        bad_token = await api.get("/v1/requests", headers={"Authorization": "Bearer nonsense"})
        assert bad_token.status_code == 401
        unknown = await api.post(
            "/v1/requests",
            json=request_body("teleportation", "pl_longxun_v1"),
            headers={**RESIDENT, "Idempotency-Key": "bad-1"},
        )
        assert unknown.status_code == 422
        no_key = await api.post(
            "/v1/requests", json=request_body("haircut", "pl_longxun_v1"), headers=RESIDENT
        )
        assert no_key.status_code == 400
        invalid = await api.post(
            "/v1/requests",
            json={"service_type_id": 7},
            headers={**RESIDENT, "Idempotency-Key": "bad-2"},
        )
        assert invalid.status_code == 422
        for response in (no_token, bad_token, unknown, no_key, invalid):
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert {"type", "title", "status", "detail"} <= problem.keys()
            assert problem["status"] == response.status_code
        listed = (await api.get("/v1/requests", headers=bearer("res_bad", "resident"))).json()
        assert listed["items"] == []

"""public.requests.v1 from the requests service on the real stack: a structured CloudEvent for
intake and for every status change, written with the change (outbox), without the
requester's personal data, with ids derived from the source events."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from zhumeng_contracts.events import PublicRequestPosted, PublicRequestStatusChanged
from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import bearer, eventually, read_topic, request_body
from zhumeng_requests.domain.public_feed import public_id

pytestmark = pytest.mark.integration
RESIDENT = bearer("res_it_public", "resident")
NAME, PHONE, EMAIL = "陈美华", "13712345678", "meihua.public@example.org"


async def public_records(platform: Platform, request_id: str) -> list[Any]:
    records = await read_topic(platform.kafka.bootstrap, "public.requests.v1")
    return [r for r in records if json.loads(r.value)["subject"] == request_id]


async def test_intake_and_every_status_change_are_public_without_personal_data(
    platform: Platform,
) -> None:
    body = request_body("haircut", "pl_longxun_v1", email=EMAIL)
    body["requester"].update(name=NAME, phone=PHONE)
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as api:
        created = await api.post(
            "/v1/requests", json=body, headers={**RESIDENT, "Idempotency-Key": "it-public-1"}
        )
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]

        async def decided() -> dict[str, Any] | None:
            doc = (await api.get(f"/v1/requests/{request_id}", headers=RESIDENT)).json()
            return doc if doc["status"] != "posted" else None

        outcome = (await eventually(decided, within=90, what="matching's outcome"))["status"]
        cancelled = await api.post(f"/v1/requests/{request_id}/cancel", headers=RESIDENT)
        assert cancelled.status_code == 200, cancelled.text

    async def three() -> list[Any] | None:
        records = await public_records(platform, request_id)
        return records if len(records) >= 3 else None

    records = await eventually(three, within=60, what="three public events")
    assert len(records) == 3, [r.value for r in records]
    events = [json.loads(r.value) for r in records]  # one partition per key: in order
    assert [(e["type"], e["data"].get("status")) for e in events] == [
        (PublicRequestPosted.TYPE, None),
        (PublicRequestStatusChanged.TYPE, outcome),
        (PublicRequestStatusChanged.TYPE, "cancelled"),
    ]
    for record, event in zip(records, events, strict=True):
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["content-type"] == "application/cloudevents+json"
        assert record.key == request_id.encode()
        assert event["source"] == "zhumeng/requests" and event["specversion"] == "1.0"
        assert event["data"]["township_id"] == "pl_longxun"
        text = record.value.decode()
        for pii in (NAME, PHONE, EMAIL, "requester", "checkin_code", "volunteer"):
            assert pii not in text, pii

    # the public id derives from the internal event the change came from
    internal = await read_topic(platform.kafka.bootstrap, "requests.events.v1")
    [posted] = [
        r
        for r in internal
        if dict(r.headers)["ce_subject"].decode() == request_id
        and dict(r.headers)["ce_type"].decode() == "zhumeng.request.posted.v1"
    ]
    assert events[0]["id"] == public_id(dict(posted.headers)["ce_id"].decode(), "posted")

"""matching as a process on the real stack: driven through its input topic, observed on its
output topic and HTTP API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import RequestPosted
from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import (
    bearer,
    committed_past,
    eventually,
    longxun_request,
    publish,
    publish_request,
    read_topic,
)
from zhumeng_matching.domain.policy import CRITERIA

pytestmark = pytest.mark.integration
ADMIN = bearer("admin_it", "admin")


def posted(service_type_id: str = "haircut") -> RequestPosted:
    return longxun_request(service_type_id)


async def outcomes(platform: Platform, request_id: str) -> list[Any]:
    return [
        r
        for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1")
        if dict(r.headers).get("ce_subject") == request_id.encode()
    ]


async def test_assigns_once_even_when_the_request_arrives_twice(platform: Platform) -> None:
    event = posted()
    headers = EventMeta.new(event, "zhumeng/tests").to_headers()
    await publish_request(platform.kafka.bootstrap, event, headers=headers)

    async def decided() -> list[Any] | None:
        return await outcomes(platform, event.request_id) or None

    first = await eventually(decided, within=60, what="an outcome event")
    assert dict(first[0].headers)["ce_type"] == b"zhumeng.volunteer.assigned.v1"

    part, off = await publish(platform.kafka.bootstrap, event, headers=headers)  # redelivery

    async def processed() -> bool:
        return await committed_past(
            platform.kafka.bootstrap, "zhumeng-matching", event.TOPIC, part, off
        )

    await eventually(processed, within=60, what="matching to commit past the duplicate")
    again = await outcomes(platform, event.request_id)
    assert {dict(r.headers)["ce_id"] for r in again} == {dict(first[0].headers)["ce_id"]}

    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=10) as api:
        decision = (await api.get(f"/v1/decisions/{event.request_id}", headers=ADMIN)).json()
        hidden = await api.get(
            f"/v1/decisions/{event.request_id}", headers=bearer("vol_nobody", "volunteer")
        )
    assert decision["state"] == "assigned"
    assert [p["criterion"] for p in decision["explanation"]] == list(CRITERIA)
    assert hidden.status_code == 404


async def test_certification_is_required_and_reasons_are_counted(platform: Platform) -> None:
    event = posted("dental_clinic").model_copy(update={"language": "english"})
    await publish_request(platform.kafka.bootstrap, event)

    async def decided() -> list[Any] | None:
        return await outcomes(platform, event.request_id) or None

    await eventually(decided, within=60, what="an outcome event")
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=10) as api:
        decision = (await api.get(f"/v1/decisions/{event.request_id}", headers=ADMIN)).json()
    if decision["state"] == "assigned":  # an English-speaking licensed dentist nearby
        async with httpx.AsyncClient(base_url=platform.url("catalog"), timeout=10) as catalog:
            vol = (
                await catalog.get(f"/v1/volunteers/{decision['volunteer_id']}", headers=ADMIN)
            ).json()
        assert "dentist_license" in vol["certifications"] and "english" in vol["languages"]
    else:
        assert decision["reasons"].get("missing_certification", 0) > 0


async def test_unknown_service_type_goes_to_the_dead_letter_topic(platform: Platform) -> None:
    event = posted("time_travel")
    part, off = await publish_request(platform.kafka.bootstrap, event)

    async def dead() -> list[Any] | None:
        found = [
            r
            for r in await read_topic(platform.kafka.bootstrap, "requests.events.v1.dlq")
            if dict(r.headers).get("ce_subject") == event.request_id.encode()
        ]
        return found or None

    (record,) = await eventually(dead, within=60, what="a dead letter")
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["dlq-reason"] == "rejected"
    assert headers["dlq-consumer"] == "zhumeng-matching"
    assert (headers["dlq-origin-partition"], headers["dlq-origin-offset"]) == (str(part), str(off))
    assert await outcomes(platform, event.request_id) == []

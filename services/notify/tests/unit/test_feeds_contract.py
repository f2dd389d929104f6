"""The public contract served over HTTP: AsyncAPI of the public topics and their schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import EVENTS_BY_TYPE
from zhumeng_kit.outbox import wire_message
from zhumeng_notify.bootstrap import build
from zhumeng_notify.domain.subscriptions import PUBLIC_EVENT_TYPES

pytestmark = pytest.mark.unit
EXAMPLES = Path(__file__).resolve().parents[4] / "packages" / "contracts" / "examples"


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


@pytest.fixture(scope="module")
async def api() -> Any:
    app = build()  # not started: these routes need neither Kafka nor the database
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://notify"
    ) as client:
        yield client


async def test_asyncapi_lists_the_public_topics_with_resolvable_messages(api: Any) -> None:
    doc = (await api.get("/v1/feeds/asyncapi.json")).json()
    assert doc["asyncapi"] == "2.6.0"
    assert set(doc["channels"]) == {"public.requests.v1", "public.assignments.v1"}
    types = {
        resolve(doc, m["$ref"])["name"]
        for c in doc["channels"].values()
        for m in c["subscribe"]["message"]["oneOf"]
    }
    assert types == set(PUBLIC_EVENT_TYPES)
    for ref in refs(doc):
        assert ref.startswith("#/components/"), ref
        resolve(doc, ref)  # raises if dangling
    assert "personal data" in doc["info"]["description"]


async def test_a_published_public_event_validates_against_its_asyncapi_payload(api: Any) -> None:
    doc = (await api.get("/v1/feeds/asyncapi.json")).json()
    for event_type in PUBLIC_EVENT_TYPES:
        model = EVENTS_BY_TYPE[event_type]
        example = json.loads((await api.get(f"/v1/feeds/schemas/{event_type}")).text)
        assert example["$id"] == f"urn:zhumeng:event:{event_type}"
        payload = doc["components"]["messages"][event_type]["payload"]
        schema = {**payload, "components": doc["components"]}
        # a real value as the topic carries it, built from the contract's example
        event = model.model_validate_json((EXAMPLES / f"{event_type}.json").read_text())
        value, _ = wire_message(EventMeta.new(event, "zhumeng/test"), event)
        jsonschema.validate(json.loads(value), schema)


async def test_schemas_are_listed_and_unknown_types_are_404_problems(api: Any) -> None:
    listed = (await api.get("/v1/feeds/schemas")).json()["items"]
    assert {i["type"] for i in listed} == set(PUBLIC_EVENT_TYPES)
    missing = await api.get("/v1/feeds/schemas/zhumeng.request.contact.v1")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


async def test_subscriptions_need_the_agency_role(api: Any) -> None:
    from zhumeng_devstack.testing import bearer

    assert (await api.get("/v1/subscriptions")).status_code == 401
    resident = await api.get("/v1/subscriptions", headers=bearer("res_1", "resident"))
    assert resident.status_code == 403

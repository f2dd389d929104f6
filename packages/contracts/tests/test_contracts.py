"""Contract tests: the committed schemas are the models' schemas, every event has an example
that both the model and the committed JSON Schema accept, breaking changes are caught, and
the topic registry is consistent."""

import json
from pathlib import Path

import jsonschema
import pytest

from zhumeng_contracts.compat import breaking_changes
from zhumeng_contracts.envelope import EnvelopeError, EventMeta, decode, encode, to_structured
from zhumeng_contracts.events import ALL_EVENTS, EVENTS_BY_TYPE, Event
from zhumeng_contracts.schemas import SCHEMA_DIR, rendered
from zhumeng_contracts.topics import TOPICS, TOPICS_BY_NAME, markdown_table

pytestmark = pytest.mark.contract
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_committed_schemas_match_the_models() -> None:
    committed = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.glob("*.json")}
    assert committed == rendered(), "run `uv run python -m zhumeng_contracts.schemas --write`"


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: e.TYPE)
def test_example_is_valid_for_model_and_committed_schema(event: type[Event]) -> None:
    example = json.loads((EXAMPLES / f"{event.TYPE}.json").read_text(encoding="utf-8"))
    event.model_validate(example)
    schema = json.loads((SCHEMA_DIR / f"{event.TYPE}.json").read_text(encoding="utf-8"))
    jsonschema.validate(example, schema)


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: e.TYPE)
def test_schema_rejects_an_example_without_a_required_field(event: type[Event]) -> None:
    schema = json.loads((SCHEMA_DIR / f"{event.TYPE}.json").read_text(encoding="utf-8"))
    example = json.loads((EXAMPLES / f"{event.TYPE}.json").read_text(encoding="utf-8"))
    required = schema["required"][0]
    del example[required]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(example, schema)


def test_breaking_changes_are_detected() -> None:
    old = {"properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a"]}
    assert breaking_changes(old, old) == []
    additive = {"properties": {**old["properties"], "c": {"type": "string"}}, "required": ["a"]}
    assert breaking_changes(old, additive) == []
    assert breaking_changes(old, {"properties": {"a": {"type": "string"}}, "required": ["a"]}) == [
        "b: removed"
    ]
    assert breaking_changes(old, {**old, "required": ["a", "b"]}) == ["b: newly required"]
    retyped = {
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a"],
    }
    assert breaking_changes(old, retyped) == ["a: type ['string'] -> ['integer']"]


def test_topic_registry_is_consistent() -> None:
    assert len(TOPICS_BY_NAME) == len(TOPICS)
    registered = {e for t in TOPICS for e in t.events}
    assert registered == set(ALL_EVENTS)
    for event in ALL_EVENTS:
        assert event.TOPIC in TOPICS_BY_NAME, event
        assert event in TOPICS_BY_NAME[event.TOPIC].events
        assert event.TYPE.startswith("zhumeng.") and event.TYPE.endswith(".v1")
    for spec in TOPICS:
        assert spec.name.endswith(".v1") and spec.partitions >= 1
        if spec.pii:  # personal data goes to notify only, never to a public feed
            assert spec.consumers == ("notify",), spec.name
        assert not spec.name.startswith("public.") or (not spec.pii and spec.structured)


#: field names that would carry personal data or identify a person
_PERSONAL = {
    "name",
    "phone",
    "email",
    "address",
    "location",
    "home",
    "volunteer_id",
    "requester_id",
    "display_name",
    "volunteer_display_name",
    "checkin_code",
    "note",
}


def test_public_events_carry_no_personal_fields() -> None:
    public = [e for t in TOPICS if t.name.startswith("public.") for e in t.events]
    assert len(public) == 5
    for event in public:
        assert not set(event.model_fields) & _PERSONAL, event


def test_envelope_round_trip_and_rejections() -> None:
    event = EVENTS_BY_TYPE["zhumeng.request.posted.v1"].model_validate(
        json.loads((EXAMPLES / "zhumeng.request.posted.v1.json").read_text(encoding="utf-8"))
    )
    meta = EventMeta.new(event, "zhumeng/test")
    headers = meta.to_headers()
    assert dict(headers)["ce_subject"] == event.key().encode()
    again = EventMeta.from_headers(headers)
    assert again.id == meta.id and decode(again, encode(event)) == event
    assert to_structured(meta, event)["data"]["request_id"] == event.key()
    with pytest.raises(EnvelopeError, match="missing CloudEvents headers"):
        EventMeta.from_headers([("ce_type", b"zhumeng.request.posted.v1")])
    with pytest.raises(EnvelopeError, match="unknown event type"):
        decode(
            EventMeta.from_headers([*headers[:2], ("ce_type", b"zhumeng.nope.v1"), *headers[3:]]),
            b"{}",
        )
    with pytest.raises(EnvelopeError, match="payload invalid"):
        decode(meta, b'{"request_id": 1}')


def test_readme_topic_table_is_the_registry() -> None:
    """The README's topic table is generated (`python -m zhumeng_contracts.topics`): a topic
    added, moved or re-described without regenerating it fails here."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme

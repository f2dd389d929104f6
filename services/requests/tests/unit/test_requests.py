"""The requests use cases on a fake repository: idempotent posting, validation, visibility,
and outcomes applied once."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from zhumeng_contracts.events import (
    PlaceRecord,
    RequestUnmatched,
    ServiceTypeRecord,
    VolunteerAssigned,
)
from zhumeng_contracts.events.common import GeoPoint, TimeWindow
from zhumeng_kit.auth import Principal
from zhumeng_kit.consumer import PermanentError
from zhumeng_kit.problems import Conflict, NotFound, Unprocessable
from zhumeng_requests.app.ports import Page
from zhumeng_requests.app.use_cases import RequestService
from zhumeng_requests.domain.model import NewRequest

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
RESIDENT = Principal("res_1", frozenset({"resident"}))
OTHER = Principal("res_2", frozenset({"resident"}))
COORD_LONGXUN = Principal("c1", frozenset({"coordinator"}), township="pl_longxun")


class FakeCatalog:
    def service_type(self, id: str) -> ServiceTypeRecord | None:
        if id != "haircut":
            return None
        return ServiceTypeRecord(
            id="haircut",
            name_zh="理发",
            name_en="Haircut",
            category="care",
            default_duration_min=60,
            target_claim_min=180,
            version=1,
        )

    def place(self, id: str) -> PlaceRecord | None:
        places = {
            "pl_longxun": PlaceRecord(
                id="pl_longxun",
                kind="township",
                name_zh="龙浔",
                name_en="Longxun",
                location=GeoPoint(lat=25.49, lon=118.24),
                version=1,
            ),
            "pl_longxun_v1": PlaceRecord(
                id="pl_longxun_v1",
                kind="village",
                name_zh="村",
                name_en="V1",
                parent_id="pl_longxun",
                township_id="pl_longxun",
                location=GeoPoint(lat=25.5, lon=118.25),
                version=1,
            ),
        }
        return places.get(id)


class FakeRepo:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    async def insert(self, doc: dict[str, Any]) -> bool:
        if any(d["idempotency_key"] == doc["idempotency_key"] for d in self.docs.values()):
            return False
        self.docs[doc["_id"]] = doc
        return True

    async def by_idempotency_key(self, key: str) -> dict[str, Any] | None:
        return next((d for d in self.docs.values() if d["idempotency_key"] == key), None)

    async def get(self, request_id: str) -> dict[str, Any] | None:
        return self.docs.get(request_id)

    async def exists(self, request_id: str) -> bool:
        return request_id in self.docs

    async def list(self, filters: dict[str, Any], limit: int, after: str | None) -> Page:
        found = [
            d
            for d in sorted(self.docs.values(), key=lambda d: d["_id"], reverse=True)
            if all(d.get(k) == v for k, v in filters.items())
            and (after is None or d["_id"] < after)
        ]
        more = len(found) > limit
        return Page(found[:limit], found[limit - 1]["_id"] if more else None)

    async def apply_outcome(self, request_id: str, event_id: str, change: dict[str, Any]) -> bool:
        doc = self.docs.get(request_id)
        if doc is None or doc["status"] != "posted" or event_id in doc["applied"]:
            return False
        doc.update(change)
        doc["applied"].append(event_id)
        return True


def body(**kw: Any) -> NewRequest:
    data: dict[str, Any] = {
        "service_type_id": "haircut",
        "place_id": "pl_longxun_v1",
        "window": {
            "start": (NOW + timedelta(days=1)).isoformat(),
            "end": (NOW + timedelta(days=1, hours=3)).isoformat(),
        },
        "requester": {"name": "林阿姨", "phone": "13800001111"},
    }
    data.update(kw)
    return NewRequest.model_validate(data)


@pytest.fixture
def svc() -> tuple[RequestService, FakeRepo]:
    repo = FakeRepo()
    return RequestService(repo, FakeCatalog()), repo


async def test_post_writes_contact_then_posted_event(svc: tuple[RequestService, FakeRepo]) -> None:
    service, _ = svc
    posted = await service.post(RESIDENT, body(), "k1", now=NOW)
    assert not posted.replayed
    doc = posted.doc
    assert doc["status"] == "posted" and doc["township_id"] == "pl_longxun"
    types = [e["headers"]["ce_type"] for e in doc["outbox"]]
    assert types == ["zhumeng.request.contact.v1", "zhumeng.request.posted.v1"]
    posted_body = doc["outbox"][1]["body"]
    assert "13800001111" not in posted_body and "林阿姨" not in posted_body  # no PII
    assert doc["outbox"][1]["key"] == doc["_id"]


async def test_same_key_same_body_replays_other_body_conflicts(
    svc: tuple[RequestService, FakeRepo],
) -> None:
    service, repo = svc
    first = await service.post(RESIDENT, body(), "k1", now=NOW)
    again = await service.post(RESIDENT, body(), "k1", now=NOW)
    assert again.replayed and again.doc["_id"] == first.doc["_id"]
    with pytest.raises(Conflict):
        await service.post(RESIDENT, body(slots=2), "k1", now=NOW)
    other = await service.post(OTHER, body(), "k1", now=NOW)  # keys are per caller
    assert other.doc["_id"] != first.doc["_id"]
    assert len(repo.docs) == 2


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"service_type_id": "nope"}, "service_type_id"),
        ({"place_id": "pl_nowhere"}, "place_id"),
        (
            {"window": {"start": "2026-11-20T08:00:00+08:00", "end": "2026-11-20T09:00:00+08:00"}},
            "window",
        ),
        (
            {"window": {"start": "2026-11-28T08:00:00+08:00", "end": "2026-12-28T09:00:00+08:00"}},
            "window",
        ),
    ],
)
async def test_unprocessable_input(
    svc: tuple[RequestService, FakeRepo], kw: dict[str, Any], field: str
) -> None:
    service, repo = svc
    with pytest.raises(Unprocessable) as err:
        await service.post(RESIDENT, body(**kw), "k1", now=NOW)
    assert err.value.extensions["field"] == field
    assert repo.docs == {}


def test_requester_needs_a_way_to_be_reached() -> None:
    with pytest.raises(ValueError, match="phone number or an email"):
        body(requester={"name": "x"})


async def test_visibility(svc: tuple[RequestService, FakeRepo]) -> None:
    service, _ = svc
    doc = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc
    assert (await service.get(RESIDENT, doc["_id"]))["_id"] == doc["_id"]
    assert (await service.get(COORD_LONGXUN, doc["_id"]))["_id"] == doc["_id"]
    with pytest.raises(NotFound):
        await service.get(OTHER, doc["_id"])
    with pytest.raises(NotFound):
        await service.get(Principal("c2", frozenset({"coordinator"}), "pl_gaide"), doc["_id"])
    assert (await service.list(OTHER, {}, 10, None)).items == []


async def test_list_paginates_newest_first(svc: tuple[RequestService, FakeRepo]) -> None:
    service, _ = svc
    ids = [(await service.post(RESIDENT, body(), f"k{i}", now=NOW)).doc["_id"] for i in range(5)]
    first = await service.list(RESIDENT, {}, 2, None)
    assert [d["_id"] for d in first.items] == ids[::-1][:2]
    second = await service.list(RESIDENT, {}, 2, first.next_cursor)
    assert [d["_id"] for d in second.items] == ids[::-1][2:4]


async def test_outcome_applied_once(svc: tuple[RequestService, FakeRepo]) -> None:
    service, repo = svc
    doc = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc
    window = TimeWindow(start=NOW + timedelta(days=1), end=NOW + timedelta(days=1, hours=3))
    assigned = VolunteerAssigned(
        request_id=doc["_id"],
        assignment_id="asg_1",
        volunteer_id="vol_0001",
        volunteer_display_name="小王",
        service_type_id="haircut",
        window=window,
        distance_km=1.2,
        score=0.9,
        explanation=[],
        candidates_considered=3,
        assigned_at=NOW,
    )
    await service.on_outcome("ev1", assigned)
    await service.on_outcome("ev1", assigned)
    assert repo.docs[doc["_id"]]["status"] == "assigned"
    assert repo.docs[doc["_id"]]["applied"] == ["ev1"]
    late = RequestUnmatched(
        request_id=doc["_id"],
        service_type_id="haircut",
        reasons={},
        candidates_considered=0,
        decided_at=NOW,
    )
    await service.on_outcome("ev2", late)  # an assignment is not undone
    assert repo.docs[doc["_id"]]["status"] == "assigned"
    with pytest.raises(PermanentError):
        await service.on_outcome("ev3", late.model_copy(update={"request_id": "req_unknown"}))

"""The requests use cases on a fake repository: idempotent posting, validation, visibility,
lifecycle events applied once, cancelling and rating."""

import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    PlaceRecord,
    RequestCompleted,
    RequestUnmatched,
    ServiceTypeRecord,
    VolunteerAssigned,
)
from zhumeng_contracts.events.common import GeoPoint, TimeWindow
from zhumeng_kit.auth import Principal, mint_token, principal_dependency
from zhumeng_kit.consumer import PermanentError
from zhumeng_kit.problems import (
    PROBLEM_JSON,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
    install_problem_handlers,
)
from zhumeng_kit.settings import DEV_JWT_SECRET, ServiceSettings
from zhumeng_requests.app.ports import Page
from zhumeng_requests.app.use_cases import RequestService
from zhumeng_requests.domain.model import NewRequest, RatingIn
from zhumeng_requests.entrypoints.http import present, router

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
RESIDENT = Principal("res_1", frozenset({"resident"}))
OTHER = Principal("res_2", frozenset({"resident"}))
COORD_LONGXUN = Principal("c1", frozenset({"coordinator"}), township="pl_longxun")
COORD_GAIDE = Principal("c2", frozenset({"coordinator"}), township="pl_gaide")
COORD_COUNTY = Principal("c3", frozenset({"coordinator"}))
ADMIN = Principal("a1", frozenset({"admin"}))


class FakeCatalog:
    """Knows the haircut type and a township with one village. A type named in `written` was
    written to the catalog but not read yet: the next catch-up reads it."""

    def __init__(self, written: tuple[str, ...] = ()) -> None:
        self.written = set(written)
        self.read: set[str] = {"haircut"}
        self.catch_ups = 0
        self.unreachable = False

    async def catch_up(self) -> None:
        if self.unreachable:
            raise TimeoutError
        self.catch_ups += 1
        self.read |= self.written

    def service_type(self, id: str) -> ServiceTypeRecord | None:
        if id not in self.read:
            return None
        return ServiceTypeRecord(
            id=id,
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
        self.before_write: Callable[[], Awaitable[None]] | None = None
        self.before_update: Callable[[], Awaitable[None]] | None = None

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

    async def apply_event(
        self, request_id: str, event_id: str, version: int, change: dict[str, Any] | None
    ) -> bool:
        if self.before_write is not None:  # a concurrent command sneaks in
            before, self.before_write = self.before_write, None
            await before()
        doc = self.docs.get(request_id)
        if doc is None or doc["_v"] != version or event_id in doc["applied"]:
            return False
        doc.update(copy.deepcopy(change or {}))
        doc["applied"].append(event_id)
        doc["_v"] += 1
        return True

    async def update_if(
        self, request_id: str, guard: dict[str, Any], update: dict[str, Any]
    ) -> dict[str, Any] | None:
        if self.before_update is not None:  # a concurrent change sneaks in
            before, self.before_update = self.before_update, None
            await before()
        if self.before_write is not None and "applied" in update.get("$push", {}):
            before, self.before_write = self.before_write, None  # an event applied with events
            await before()
        doc = self.docs.get(request_id)
        if doc is None or not all(matches(doc.get(k), v) for k, v in guard.items()):
            return None
        assert set(update) <= {"$set", "$push", "$inc"}, update
        doc.update(copy.deepcopy(update.get("$set", {})))
        for k, v in update.get("$push", {}).items():
            doc.setdefault(k, []).extend(copy.deepcopy(v["$each"]))
        for k, v in update.get("$inc", {}).items():
            doc[k] = doc.get(k, 0) + v
        return copy.deepcopy(doc)


def matches(value: Any, condition: Any) -> bool:
    if isinstance(condition, dict) and set(condition) == {"$in"}:
        return value in condition["$in"]
    return bool(value == condition)


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


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


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
    assert types == [
        "zhumeng.request.contact.v1",
        "zhumeng.request.posted.v1",
        "zhumeng.public.request.posted.v1",
    ]
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


async def test_a_service_type_written_a_moment_ago_is_read_before_it_is_called_unknown() -> None:
    catalog = FakeCatalog(written=("dental",))
    service = RequestService(FakeRepo(), catalog)
    posted = await service.post(RESIDENT, body(service_type_id="dental"), "k1", now=NOW)
    assert posted.doc["service_type_id"] == "dental" and catalog.catch_ups == 1
    await service.post(RESIDENT, body(), "k2", now=NOW)
    assert catalog.catch_ups == 1  # ids the view knows cost nothing
    with pytest.raises(Unprocessable):
        await service.post(RESIDENT, body(service_type_id="nope"), "k3", now=NOW)
    assert catalog.catch_ups == 2


async def test_an_unreadable_catalog_is_unavailable_not_unknown() -> None:
    catalog = FakeCatalog(written=("dental",))
    catalog.unreachable = True
    repo = FakeRepo()
    with pytest.raises(ServiceUnavailable):
        await RequestService(repo, catalog).post(
            RESIDENT, body(service_type_id="dental"), "k1", now=NOW
        )
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


WINDOW = TimeWindow(start=NOW + timedelta(days=1), end=NOW + timedelta(days=1, hours=3))


def volunteer_assigned(request_id: str, asg: str = "asg_1", **kw: Any) -> VolunteerAssigned:
    return VolunteerAssigned(
        request_id=request_id,
        assignment_id=asg,
        volunteer_id="vol_0001",
        volunteer_display_name="小王",
        service_type_id="haircut",
        window=WINDOW,
        distance_km=1.2,
        score=0.9,
        explanation=[],
        candidates_considered=3,
        assigned_at=NOW,
        checkin_code="042042",
        **kw,
    )


def unmatched(request_id: str) -> RequestUnmatched:
    return RequestUnmatched(
        request_id=request_id,
        service_type_id="haircut",
        reasons={},
        candidates_considered=0,
        decided_at=NOW,
    )


async def complete(service: RequestService, request_id: str) -> None:
    """Drive a request through assignment, check-in and check-out to completed."""
    await service.on_event("ev-a", volunteer_assigned(request_id))
    await service.on_event(
        "ev-i",
        CheckedIn(
            request_id=request_id, assignment_id="asg_1", volunteer_id="vol_0001", checked_in_at=NOW
        ),
    )
    await service.on_event(
        "ev-o",
        AssignmentCompleted(
            request_id=request_id,
            assignment_id="asg_1",
            volunteer_id="vol_0001",
            service_type_id="haircut",
            checked_in_at=NOW,
            checked_out_at=NOW + timedelta(hours=2),
            hours=2.0,
        ),
    )
    await service.on_event(
        "ev-c", RequestCompleted(request_id=request_id, hours_total=2.0, completed_at=NOW)
    )


def outbox_types(doc: dict[str, Any]) -> list[str]:
    return [e["headers"]["ce_type"] for e in doc["outbox"]]


async def test_event_applied_once(svc: tuple[RequestService, FakeRepo]) -> None:
    service, repo = svc
    doc = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc
    assigned = volunteer_assigned(doc["_id"])
    assert await service.on_event("ev1", assigned)
    assert not await service.on_event("ev1", assigned)  # redelivered: nothing changes
    stored = repo.docs[doc["_id"]]
    assert stored["status"] == "assigned" and stored["applied"] == ["ev1"]
    assert [a["assignment_id"] for a in stored["assignments"]] == ["asg_1"]
    assert stored["assignments"][0]["checkin_code"] == "042042"
    # an assignment is not undone by a late outcome: ignored, but recorded as applied
    assert not await service.on_event("ev2", unmatched(doc["_id"]))
    assert stored["status"] == "assigned" and stored["applied"] == ["ev1", "ev2"]
    with pytest.raises(PermanentError):
        await service.on_event("ev3", unmatched("req_unknown"))


async def test_whole_lifecycle_then_rating(svc: tuple[RequestService, FakeRepo]) -> None:
    service, repo = svc
    wakes = Wakes()
    service = RequestService(repo, FakeCatalog(), on_events=wakes)
    doc = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc
    rid = doc["_id"]
    with pytest.raises(Conflict, match="only a completed request"):
        await service.rate(RESIDENT, rid, RatingIn(stars=5))
    await complete(service, rid)
    stored = repo.docs[rid]
    assert stored["status"] == "completed" and stored["hours_total"] == 2.0
    assert stored["assignments"][0]["status"] == "completed"
    assert stored["assignments"][0]["hours"] == 2.0
    with pytest.raises(Forbidden):  # a coordinator may see it, but only the requester rates
        await service.rate(COORD_LONGXUN, rid, RatingIn(stars=1))
    with pytest.raises(NotFound):
        await service.rate(OTHER, rid, RatingIn(stars=1))
    wakes_before = wakes.count
    rated = await service.rate(RESIDENT, rid, RatingIn(stars=4, comment="很好, 谢谢"), now=NOW)
    assert rated["status"] == "rated" and wakes.count == wakes_before + 1
    assert rated["rating"] == {"stars": 4, "comment": "很好, 谢谢", "rated_at": NOW}
    assert outbox_types(rated)[-1] == "zhumeng.request.rated.v1"
    entry = rated["outbox"][-1]
    assert json.loads(entry["body"]).keys() == {"request_id", "stars", "rated_at"}
    assert json.loads(entry["body"])["stars"] == 4 and entry["key"] == rid
    assert "很好" not in entry["body"]  # the comment stays here
    with pytest.raises(Conflict, match="already rated"):
        await service.rate(RESIDENT, rid, RatingIn(stars=5))
    assert outbox_types(repo.docs[rid]).count("zhumeng.request.rated.v1") == 1


def test_rating_is_validated() -> None:
    with pytest.raises(ValueError):
        RatingIn(stars=0)
    with pytest.raises(ValueError):
        RatingIn(stars=6)
    with pytest.raises(ValueError):
        RatingIn(stars=3, comment="x" * 501)
    assert RatingIn(stars=3).comment == ""


async def test_requester_cancels_once(svc: tuple[RequestService, FakeRepo]) -> None:
    service, repo = svc
    wakes = Wakes()
    service = RequestService(repo, FakeCatalog(), on_events=wakes)
    rid = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc["_id"]
    await service.on_event("ev-a", volunteer_assigned(rid))
    wakes_before = wakes.count
    cancelled = await service.cancel(RESIDENT, rid, now=NOW)
    assert cancelled["status"] == "cancelled" and wakes.count == wakes_before + 1
    assert cancelled["cancelled"] == {"by": "requester", "by_id": "res_1", "at": NOW}
    assert outbox_types(cancelled)[-1] == "zhumeng.request.cancelled.v1"
    event = json.loads(cancelled["outbox"][-1]["body"])
    assert event["request_id"] == rid and event["by"] == "requester"
    assert cancelled["outbox"][-1]["key"] == rid
    with pytest.raises(Conflict, match="already cancelled") as again:
        await service.cancel(RESIDENT, rid)
    assert again.value.extensions == {"request_status": "cancelled"}
    assert outbox_types(repo.docs[rid]).count("zhumeng.request.cancelled.v1") == 1
    # matching then releases the volunteer; late events change nothing and never raise
    released = AssignmentCancelled(
        request_id=rid,
        assignment_id="asg_1",
        volunteer_id="vol_0001",
        by="requester",
        reason="request_cancelled",
        cancelled_at=NOW,
    )
    assert await service.on_event("ev-x", released)
    assert not await service.on_event("ev-late", volunteer_assigned(rid, asg="asg_2"))
    stored = repo.docs[rid]
    assert stored["status"] == "cancelled"
    assert [a["status"] for a in stored["assignments"]] == ["cancelled"]
    assert stored["applied"][-2:] == ["ev-x", "ev-late"]


@pytest.mark.parametrize(
    ("who", "by"),
    [(COORD_LONGXUN, "coordinator"), (COORD_COUNTY, "coordinator"), (ADMIN, "coordinator")],
)
async def test_coordinator_in_scope_cancels(
    svc: tuple[RequestService, FakeRepo], who: Principal, by: str
) -> None:
    service, _ = svc
    rid = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc["_id"]
    cancelled = await service.cancel(who, rid)
    assert cancelled["status"] == "cancelled" and cancelled["cancelled"]["by"] == by
    assert json.loads(cancelled["outbox"][-1]["body"])["by"] == by


@pytest.mark.parametrize("who", [OTHER, COORD_GAIDE, Principal("vol_1", frozenset({"volunteer"}))])
async def test_others_cannot_cancel(svc: tuple[RequestService, FakeRepo], who: Principal) -> None:
    service, repo = svc
    rid = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc["_id"]
    with pytest.raises(NotFound):
        await service.cancel(who, rid)
    assert repo.docs[rid]["status"] == "posted"


async def test_closed_requests_cannot_be_cancelled(svc: tuple[RequestService, FakeRepo]) -> None:
    service, repo = svc
    rid = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc["_id"]
    await complete(service, rid)
    with pytest.raises(Conflict, match="completed cannot be cancelled"):
        await service.cancel(RESIDENT, rid)
    assert repo.docs[rid]["status"] == "completed"


async def test_cancel_loses_to_a_concurrent_change(svc: tuple[RequestService, FakeRepo]) -> None:
    service, repo = svc
    rid = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc["_id"]

    async def unfulfilled_meanwhile() -> None:
        repo.docs[rid]["status"] = "unfulfilled"

    repo.before_update = unfulfilled_meanwhile  # lands between the read and the update
    with pytest.raises(Conflict) as err:
        await service.cancel(RESIDENT, rid)
    assert err.value.extensions == {"request_status": "unfulfilled"}
    assert "zhumeng.request.cancelled.v1" not in outbox_types(repo.docs[rid])


async def test_event_reevaluated_after_a_concurrent_cancel(
    svc: tuple[RequestService, FakeRepo],
) -> None:
    service, repo = svc
    rid = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc["_id"]

    async def cancel_now() -> None:
        await service.cancel(RESIDENT, rid)

    repo.before_write = cancel_now  # the cancel lands between reading and writing the event
    assert not await service.on_event("ev1", volunteer_assigned(rid))
    stored = repo.docs[rid]
    assert stored["status"] == "cancelled"  # the cancel is not overwritten
    assert "assignments" not in stored and stored["applied"] == ["ev1"]


async def test_no_show_goes_back_to_matching(svc: tuple[RequestService, FakeRepo]) -> None:
    service, repo = svc
    rid = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc["_id"]
    await service.on_event("ev1", volunteer_assigned(rid))
    no_show = AssignmentCancelled(
        request_id=rid,
        assignment_id="asg_1",
        volunteer_id="vol_0001",
        by="requester",
        reason="no_show",
        cancelled_at=NOW,
    )
    assert await service.on_event("ev2", no_show)
    assert repo.docs[rid]["status"] == "matching"
    assert await service.on_event("ev3", volunteer_assigned(rid, asg="asg_2"))
    stored = repo.docs[rid]
    assert stored["status"] == "assigned"
    assert [(a["assignment_id"], a["status"]) for a in stored["assignments"]] == [
        ("asg_1", "no_show"),
        ("asg_2", "assigned"),
    ]


async def test_list_filters_by_the_new_statuses(svc: tuple[RequestService, FakeRepo]) -> None:
    service, _ = svc
    first = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc["_id"]
    second = (await service.post(RESIDENT, body(), "k2", now=NOW)).doc["_id"]
    await service.cancel(RESIDENT, first)
    await complete(service, second)
    cancelled = await service.list(RESIDENT, {"status": "cancelled"}, 10, None)
    completed = await service.list(RESIDENT, {"status": "completed"}, 10, None)
    assert [d["_id"] for d in cancelled.items] == [first]
    assert [d["_id"] for d in completed.items] == [second]


async def test_checkin_code_only_for_the_requester(svc: tuple[RequestService, FakeRepo]) -> None:
    service, repo = svc
    rid = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc["_id"]
    await service.on_event("ev1", volunteer_assigned(rid))
    doc = repo.docs[rid]
    mine = present(doc, RESIDENT)
    assert mine["assignments"][0]["checkin_code"] == "042042"
    assert mine["assignment"]["volunteer_id"] == "vol_0001"  # the single-volunteer view
    for who in (COORD_LONGXUN, ADMIN):
        theirs = present(doc, who)
        assert "checkin_code" not in theirs["assignments"][0]
        assert "checkin_code" not in theirs["assignment"]
        assert "042042" not in json.dumps(theirs, default=str)


# ---- the HTTP layer on the fake repository -------------------------------------------------


def auth(who: Principal) -> dict[str, str]:
    token = mint_token(DEV_JWT_SECRET, who.subject, sorted(who.roles), who.township)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def http() -> AsyncIterator[tuple[httpx.AsyncClient, RequestService, FakeRepo]]:
    repo = FakeRepo()
    service = RequestService(repo, FakeCatalog())
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router(service, principal_dependency(ServiceSettings())))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://requests") as c:
        yield c, service, repo


async def test_http_cancel_and_rate(
    http: tuple[httpx.AsyncClient, RequestService, FakeRepo],
) -> None:
    client, service, _ = http
    rid = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc["_id"]
    await complete(service, rid)
    mine = (await client.get(f"/v1/requests/{rid}", headers=auth(RESIDENT))).json()
    assert mine["status"] == "completed" and mine["hours_total"] == 2.0
    assert mine["assignments"][0]["checkin_code"] == "042042"
    staff = (await client.get(f"/v1/requests/{rid}", headers=auth(COORD_LONGXUN))).json()
    assert "checkin_code" not in staff["assignments"][0]

    cancel = await client.post(f"/v1/requests/{rid}/cancel", headers=auth(RESIDENT))
    assert cancel.status_code == 409 and cancel.json()["request_status"] == "completed"
    assert cancel.headers["content-type"].startswith(PROBLEM_JSON)
    invalid = await client.post(
        f"/v1/requests/{rid}/rating", json={"stars": 3, "extra": 1}, headers=auth(RESIDENT)
    )
    assert invalid.status_code == 422
    long = await client.post(
        f"/v1/requests/{rid}/rating",
        json={"stars": 3, "comment": "x" * 501},
        headers=auth(RESIDENT),
    )
    assert long.status_code == 422
    rated = await client.post(
        f"/v1/requests/{rid}/rating", json={"stars": 3, "comment": "ok"}, headers=auth(RESIDENT)
    )
    assert rated.status_code == 200 and rated.json()["status"] == "rated"
    assert rated.json()["rating"]["comment"] == "ok" and "outbox" not in rated.json()
    again = await client.post(
        f"/v1/requests/{rid}/rating", json={"stars": 3}, headers=auth(RESIDENT)
    )
    assert again.status_code == 409 and again.json()["detail"] == "already rated"
    listed = await client.get("/v1/requests", params={"status": "rated"}, headers=auth(RESIDENT))
    assert [item["id"] for item in listed.json()["items"]] == [rid]
    bad = await client.get("/v1/requests", params={"status": "nope"}, headers=auth(RESIDENT))
    assert bad.status_code == 422


async def test_http_cancel_by_scope(
    http: tuple[httpx.AsyncClient, RequestService, FakeRepo],
) -> None:
    client, service, _ = http
    rid = (await service.post(RESIDENT, body(), "k1", now=NOW)).doc["_id"]
    assert (await client.post(f"/v1/requests/{rid}/cancel")).status_code == 401
    for who in (OTHER, COORD_GAIDE):
        resp = await client.post(f"/v1/requests/{rid}/cancel", headers=auth(who))
        assert resp.status_code == 404, who
    resp = await client.post(f"/v1/requests/{rid}/cancel", headers=auth(COORD_LONGXUN))
    assert resp.status_code == 200 and resp.json()["cancelled"]["by"] == "coordinator"
    again = await client.post(f"/v1/requests/{rid}/cancel", headers=auth(RESIDENT))
    assert again.status_code == 409 and again.json()["detail"] == "already cancelled"
    assert again.json()["status"] == 409  # the problem's own status is not overwritten

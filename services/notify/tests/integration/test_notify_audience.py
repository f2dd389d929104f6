"""Who hears what (ADR 0012) against a real Kafka broker and document server: claim
invitations, coordinators (their admin API, review and escalation), and reminders on the
durable timers with two schedulers on one database.

notify runs in this process, composed by `bootstrap.build` (the coordinator store and API,
both topics, reminders on its scheduler), with a second replica's scheduler for the reminders
on the same database; its Kafka and document server are this module's own (`infra_fixture`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCancelled,
    ClaimOpened,
    ContactRecord,
    Event,
    RequesterContact,
    RequestEscalated,
    ReviewRequired,
    ServiceTypeRecord,
    VolunteerAssigned,
)
from zhumeng_devstack.testing import Infra, bearer, eventually, infra_fixture, publish
from zhumeng_kit.mongo import Doc
from zhumeng_kit.runtime import ServiceRuntime
from zhumeng_kit.timers import Scheduler, get_timer
from zhumeng_notify.adapters.coordinator_store import (
    DEMO_COORDINATORS,
    MongoCoordinatorStore,
    seed_demo_coordinators,
)
from zhumeng_notify.adapters.mongo import COLLECTION
from zhumeng_notify.app.reminders import REMINDER, register_reminders
from zhumeng_notify.bootstrap import build
from zhumeng_notify.settings import NotifySettings

pytestmark = pytest.mark.integration

LEAD = timedelta(hours=2)
infra = infra_fixture("notify-audience")


@dataclass
class Notify:
    app: FastAPI
    db: AsyncDatabase[Doc]
    replica: Scheduler  # another replica's scheduler, running reminders only

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://t")


def compose(settings: NotifySettings) -> Notify:
    """`bootstrap.build`, plus a second scheduler on its database with the reminders
    registered (as another replica would have): the timers' leases let one of them run each."""
    app = build(settings)
    runtime: ServiceRuntime = app.state.runtime
    replica = Scheduler(runtime.db, poll_interval_s=settings.notify_timer_poll_s)
    register_reminders(replica, app.state.use_case, lead=LEAD)
    runtime.in_background(replica.run)
    return Notify(app, runtime.db, replica)


VOLUNTEERS = [
    ContactRecord(
        id=f"vol_au_{i}",
        name=f"Volunteer Number{i}",
        phone=f"1398765432{i}",
        email=f"vol{i}@example.org",
        locale="en" if i % 2 else "zh-CN",
        version=1,
    )
    for i in range(1, 5)
]
SERVICE = ServiceTypeRecord(
    id="st_hearing",
    name_zh="听力筛查",
    name_en="Hearing test",
    category="health",
    default_duration_min=45,
    target_claim_min=30,
    version=1,
)


def requester(request_id: str) -> RequesterContact:
    return RequesterContact(
        request_id=request_id,
        requester_id=f"res_{request_id}",
        name="陈美华",
        phone="13812345678",
        email="meihua@example.org",
    )


@pytest.fixture(scope="module")
async def notify(infra: Infra) -> AsyncIterator[Notify]:
    for record in (*VOLUNTEERS, SERVICE, requester("req_au_1"), requester("req_au_2")):
        await publish(infra.kafka.bootstrap, record)
    settings = NotifySettings(
        environment="test",
        kafka_bootstrap=infra.kafka.bootstrap,
        mongo_uri=infra.mongo.uri,
        mongo_db_prefix=f"au{secrets.token_hex(4)}",
        relay_poll_ms=100,
        notify_timer_poll_s=0.2,
        reminder_lead_min=int(LEAD.total_seconds() // 60),
        seed_demo_coordinators=False,  # the county centre is this module's own coordinator
        inapp_enabled=False,  # the log channel for all: it stores a (masked) address
    )
    service = compose(settings)
    async with service.app.router.lifespan_context(service.app):
        yield service


async def deliveries_of(notify: Notify, cause_event_id: str) -> list[Doc]:
    return await notify.db[COLLECTION].find({"cause_event_id": cause_event_id}).to_list()


async def sent(notify: Notify, meta_id: str, at_least: int) -> list[Doc] | None:
    docs = await deliveries_of(notify, meta_id)
    done = [d for d in docs if d["status"] == "sent"]
    return done if len(done) >= at_least else None


async def publish_with_meta(infra: Infra, event: Event) -> EventMeta:
    meta = EventMeta.new(event, "zhumeng/test")
    await publish(infra.kafka.bootstrap, event, headers=meta.to_headers())
    return meta


# ---- claim invitations --------------------------------------------------------------------


async def test_a_claim_invitation_reaches_each_invited_volunteer_once(
    infra: Infra, notify: Notify
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    opened = ClaimOpened(
        request_id="req_au_1",
        service_type_id="st_hearing",
        window={"start": now + timedelta(days=1), "end": now + timedelta(days=1, hours=1)},
        open_slots=2,
        invited_volunteer_ids=["vol_au_1", "vol_au_2", "vol_au_3", "vol_au_2"],
        opened_at=now,
    )
    meta = await publish_with_meta(infra, opened)
    await publish(infra.kafka.bootstrap, opened, headers=meta.to_headers())  # redelivered
    docs = await eventually(lambda: sent(notify, meta.id, 3), within=60, what="3 invitations")
    # a later event on the same key proves the redelivery was handled before it
    marker = await publish_with_meta(infra, escalated("req_au_1", "wider_radius"))
    await eventually(lambda: sent(notify, marker.id, 1), within=60, what="the marker")
    docs = await deliveries_of(notify, meta.id)
    assert sorted(d["recipient_id"] for d in docs) == ["vol_au_1", "vol_au_2", "vol_au_3"]
    assert {d["role"] for d in docs} == {"volunteer"}
    subjects = {d["recipient_id"]: d["subject"] for d in docs}
    assert subjects["vol_au_1"] == "Zhumeng: open to claim, Hearing test"
    assert subjects["vol_au_2"] == "【筑梦】抢单邀请：听力筛查"
    for d in docs:
        assert "13812345678" not in d["body"] and "陈美华" not in d["body"]


def escalated(request_id: str, level: str) -> RequestEscalated:
    return RequestEscalated(
        request_id=request_id,
        step=2,
        level=level,
        township_id="pl_au_town",
        open_slots=1,
        escalated_at=datetime.now(UTC),
    )


# ---- coordinators -------------------------------------------------------------------------

ADMIN = bearer("admin_1", "admin")


async def test_the_coordinator_api_is_admin_only_and_answers_bad_input_with_problems(
    notify: Notify,
) -> None:
    body = {"name": "郑丽华", "township_id": "pl_au_town", "phone": "13800000101"}
    async with notify.client() as api:
        created = await api.put("/v1/coordinators/coord_au_1", json=body, headers=ADMIN)
        assert created.status_code == 201, created.text
        again = await api.put("/v1/coordinators/coord_au_1", json=body, headers=ADMIN)
        assert again.status_code == 200
        got = (await api.get("/v1/coordinators/coord_au_1", headers=ADMIN)).json()
        assert got["township_id"] == "pl_au_town" and got["scope"] == "township"
        assert got["phone"] == "138****0101"  # masked
        listed = await api.get("/v1/coordinators?township_id=pl_au_town", headers=ADMIN)
        assert [c["id"] for c in listed.json()["items"]] == ["coord_au_1"]
        county = {"name": "Grace Wu", "scope": "county", "email": "g@example.org", "locale": "en"}
        assert (
            await api.put("/v1/coordinators/coord_au_cty", json=county, headers=ADMIN)
        ).status_code == 201

        bad = [
            ("coord_x", {"name": "x", "phone": "1"}, ADMIN),  # no township, bad phone
            (
                "coord_x",
                {"name": "x", "scope": "county", "township_id": "t", "phone": "13800000000"},
                ADMIN,
            ),
            ("coord_x", {"name": "x", "township_id": "t"}, ADMIN),  # no way to reach them
            ("bad id!", body, ADMIN),
            ("coord_x", body, bearer("coord_1", "coordinator", township="pl_au_town")),
            ("coord_x", body, {}),
        ]
        for coordinator_id, payload, headers in bad:
            response = await api.put(
                f"/v1/coordinators/{coordinator_id}", json=payload, headers=headers
            )
            assert response.status_code in (401, 403, 404, 422), response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert "13800000000" not in response.text
        missing = await api.get("/v1/coordinators/nobody", headers=ADMIN)
        assert missing.status_code == 404
        assert (await api.get("/v1/coordinators", headers=ADMIN)).status_code == 422


async def test_a_review_reaches_the_townships_coordinator(
    infra: Infra, notify: Notify, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    people = {
        "coord_au_1": {"name": "郑丽华", "township_id": "pl_au_town", "email": "zheng@example.org"},
        "coord_au_cty": {"name": "Grace Wu", "scope": "county", "email": "g@example.org"},
    }
    async with notify.client() as api:
        for coordinator_id, body in people.items():
            response = await api.put(f"/v1/coordinators/{coordinator_id}", json=body, headers=ADMIN)
            assert response.status_code in (200, 201)
    event = ReviewRequired(
        request_id="req_au_2",
        service_type_id="st_hearing",
        township_id="pl_au_town",
        held_at=datetime.now(UTC),
    )
    meta = await publish_with_meta(infra, event)
    [doc] = await eventually(lambda: sent(notify, meta.id, 1), within=60, what="the review")
    assert doc["recipient_id"] == "coord_au_1" and doc["role"] == "coordinator"
    assert doc["subject"] == "【筑梦】待审核：听力筛查" and doc["address"] == "z***@example.org"
    # the county centre's rung reaches the county coordinator, and the requester
    up = await publish_with_meta(infra, escalated("req_au_2", "county_centre"))
    docs = await eventually(lambda: sent(notify, up.id, 2), within=60, what="the escalation")
    assert sorted(d["recipient_id"] for d in docs) == ["coord_au_cty", "res_req_au_2"]
    assert "coord_au_1" in caplog.text  # the store and the log channel did log
    for pii in ("zheng@example.org", "g@example.org", "meihua@example.org", "13812345678"):
        assert pii not in caplog.text


async def test_demo_coordinators_are_seeded_once(notify: Notify) -> None:
    store = MongoCoordinatorStore(notify.db["demo_coordinators"])
    await store.ensure_indexes()
    assert await seed_demo_coordinators(store) == len(DEMO_COORDINATORS)
    assert await seed_demo_coordinators(store) == 0
    [longxun] = await store.of_township("pl_longxun")
    assert longxun.id == "coord_longxun"
    assert len(await store.of_township(None)) == 2


# ---- reminders ----------------------------------------------------------------------------


def assigned(request_id: str, assignment_id: str, due_in: timedelta) -> VolunteerAssigned:
    start = datetime.now(UTC) + LEAD + due_in
    return VolunteerAssigned(
        request_id=request_id,
        assignment_id=assignment_id,
        volunteer_id="vol_au_4",
        volunteer_display_name="Number4",
        service_type_id="st_hearing",
        window={"start": start, "end": start + timedelta(hours=1)},
        distance_km=1.0,
        score=0.5,
        explanation=[],
        candidates_considered=1,
        assigned_at=datetime.now(UTC),
        checkin_code="246810",
    )


async def timer_state(notify: Notify, key: str) -> str | None:
    doc = await get_timer(notify.db, REMINDER, key)
    return None if doc is None else str(doc["state"])


async def test_a_reminder_fires_once_and_not_after_a_cancellation(
    infra: Infra, notify: Notify
) -> None:
    # asg_b is due first but cancelled; asg_a is due after it and fires: when asg_a has fired,
    # the schedulers (which take the oldest due timer first) have passed asg_b's due time
    doomed = assigned("req_au_1", "asg_au_b", timedelta(seconds=4))
    kept = assigned("req_au_2", "asg_au_a", timedelta(seconds=8))
    await publish_with_meta(infra, doomed)
    await publish_with_meta(infra, kept)
    cancel = AssignmentCancelled(
        request_id="req_au_1",
        assignment_id="asg_au_b",
        volunteer_id="vol_au_4",
        by="coordinator",
        reason="reassigned",
        cancelled_at=datetime.now(UTC),
    )
    await publish_with_meta(infra, cancel)

    async def cancelled() -> bool:
        return await timer_state(notify, "asg_au_b") == "cancelled"

    await eventually(cancelled, within=60, what="the cancelled reminder timer")

    async def fired() -> bool:
        return await timer_state(notify, "asg_au_a") == "fired"

    await eventually(fired, within=90, what="the reminder timer to fire")
    reminders = await eventually(
        lambda: sent(notify, f"{REMINDER}:asg_au_a", 2), within=30, what="two reminders"
    )
    await asyncio.sleep(1.0)  # anything doubled would show up now
    reminders = await deliveries_of(notify, f"{REMINDER}:asg_au_a")
    assert sorted(d["recipient_id"] for d in reminders) == ["res_req_au_2", "vol_au_4"]
    to_requester = next(d for d in reminders if d["role"] == "requester")
    assert "服务提醒" in to_requester["subject"] and "246810" not in to_requester["body"]
    assert await deliveries_of(notify, f"{REMINDER}:asg_au_b") == []
    assert await timer_state(notify, "asg_au_b") == "cancelled"
    doc: Any = await get_timer(notify.db, REMINDER, "asg_au_a")
    assert doc["attempts"] == 1  # leased once: by one of the two schedulers, run once
    assert notify.replica.fired == (1 if doc["owner"] == notify.replica.owner else 0)

"""notify as a real process against a real Kafka broker, document server and SMTP server.

Self-contained: the module runs its own Kafka and document server on free ports in a temporary
directory (`running_infra`), not the session-wide `platform`, whose other services would
consume the events published here and whose dead-letter topics this test counts.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from zhumeng_contracts.envelope import EventMeta, encode
from zhumeng_contracts.events import (
    AssignmentCompleted,
    CheckedIn,
    ContactRecord,
    Event,
    RequestCompleted,
    RequesterContact,
    RequestUnmatched,
    ServiceTypeRecord,
    VolunteerAssigned,
)
from zhumeng_devstack.infra import free_port
from zhumeng_devstack.mail import MailSink
from zhumeng_devstack.stack import ServiceProcess
from zhumeng_devstack.testing import (
    Infra,
    bearer,
    eventually,
    infra_fixture,
    publish,
    read_topic,
    running_service,
)

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


# ---- servers ---------------------------------------------------------------------------------


infra = infra_fixture("notify-it")


@pytest.fixture(scope="module")
def mail(infra: Infra) -> Iterator[MailSink]:
    sink = MailSink(infra.data_dir / "mail", free_port())
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def to(mail: MailSink, address: str) -> list[EmailMessage]:
    return [m for m in mail.received() if m["To"] == address]


VOLUNTEER = ContactRecord(
    id="vol_it_1",
    name="Lin Xiaoming",
    phone="13987654321",
    email="lin.xiaoming@example.org",
    locale="en",
    version=1,
)
REQUESTER = RequesterContact(
    request_id="req_it_1",
    requester_id="res_it_1",
    name="王秀英",
    phone="13812345678",
    email="xiuying@example.org",
    locale="zh-CN",
)
SERVICE = ServiceTypeRecord(
    id="st_haircut",
    name_zh="义剪",
    name_en="Free haircut",
    category="care",
    default_duration_min=60,
    target_claim_min=30,
    version=1,
)


def assigned(request_id: str = "req_it_1") -> VolunteerAssigned:
    return VolunteerAssigned(
        request_id=request_id,
        assignment_id=f"asg_{request_id}",
        volunteer_id="vol_it_1",
        volunteer_display_name="小林",
        service_type_id="st_haircut",
        window={"start": T0, "end": T0 + timedelta(hours=1)},
        distance_km=2.5,
        score=0.9,
        explanation=[],
        candidates_considered=3,
        assigned_at=datetime.now(UTC),
    )


def unmatched(request_id: str) -> RequestUnmatched:
    return RequestUnmatched(
        request_id=request_id,
        service_type_id="st_haircut",
        reasons={"too_far": 2},
        candidates_considered=2,
        decided_at=datetime.now(UTC),
    )


@pytest.fixture(scope="module")
async def notify(infra: Infra, mail: MailSink) -> AsyncIterator[ServiceProcess]:
    # catalog state that exists before notify starts (loaded into its views at start-up)
    for record in (VOLUNTEER, SERVICE, REQUESTER):
        await publish(infra.kafka.bootstrap, record)
    with running_service(
        "notify",
        infra,
        f"it{secrets.token_hex(4)}",
        ready_within=90,
        ZHUMENG_NOTIFY_SMTP_HOST="127.0.0.1",
        ZHUMENG_NOTIFY_SMTP_PORT=str(mail.port),
        ZHUMENG_RELAY_POLL_MS="100",
    ) as service:
        yield service


# ---- the test --------------------------------------------------------------------------------


async def test_notify_end_to_end(infra: Infra, mail: MailSink, notify: ServiceProcess) -> None:
    bootstrap = infra.kafka.bootstrap

    async def emails(at_least: int) -> bool:
        return len(mail.received()) >= at_least

    # 1. an assignment tells both people, each by email in their own locale
    event = assigned()
    meta = EventMeta.new(event, "zhumeng/test")
    await publish(bootstrap, event, headers=meta.to_headers())
    await eventually(lambda: emails(2), what="two emails")
    [to_requester] = to(mail, "xiuying@example.org")
    [to_volunteer] = to(mail, "lin.xiaoming@example.org")
    assert "义剪" in to_requester["Subject"]
    requester_body = to_requester.get_content()
    assert "小林" in requester_body and "北京时间" in requester_body
    volunteer_body = to_volunteer.get_content()
    assert to_volunteer["Subject"] == "Zhumeng: new task, Free haircut"
    assert "秀英" in volunteer_body
    for pii in ("王秀英", "13812345678", "xiuying@example.org"):
        assert pii not in volunteer_body
    assert to_requester["Message-ID"] != to_volunteer["Message-ID"]

    # 2. the history API, masked; residents see only their own
    async with httpx.AsyncClient(base_url=notify.url, timeout=5) as client:
        page = (
            await client.get(
                "/v1/notifications",
                params={"request_id": "req_it_1"},
                headers=bearer("coord_1", "coordinator"),
            )
        ).json()
        assert "items" in page, page
        assert {i["recipient_id"] for i in page["items"]} == {"res_it_1", "vol_it_1"}
        assert {i["address"] for i in page["items"]} == {"x***@example.org", "l***@example.org"}
        assert all(i["status"] == "sent" for i in page["items"])
        raw = json.dumps(page, ensure_ascii=False)
        assert "xiuying@example.org" not in raw and "lin.xiaoming@example.org" not in raw

        mine = await client.get("/v1/notifications", headers=bearer("res_it_1", "resident"))
        assert [i["recipient_id"] for i in mine.json()["items"]] == ["res_it_1"]
        other = await client.get(
            "/v1/notifications",
            params={"recipient_id": "vol_it_1"},
            headers=bearer("res_it_1", "resident"),
        )
        assert other.status_code == 403
        assert other.headers["content-type"].startswith("application/problem+json")
        did = f"{meta.id}|res_it_1|email"
        one = await client.get(f"/v1/notifications/{did}", headers=bearer("res_it_1", "resident"))
        assert one.status_code == 200 and one.json()["address"] == "x***@example.org"
        hidden = await client.get(
            f"/v1/notifications/{meta.id}|vol_it_1|email", headers=bearer("res_it_1", "resident")
        )
        assert hidden.status_code == 404
        assert (await client.get("/v1/notifications")).status_code == 401
        # cursor pagination
        first = (
            await client.get(
                "/v1/notifications", params={"limit": 1}, headers=bearer("coord_1", "coordinator")
            )
        ).json()
        assert len(first["items"]) == 1 and first["next_cursor"]
        second = (
            await client.get(
                "/v1/notifications",
                params={"limit": 1, "cursor": first["next_cursor"]},
                headers=bearer("coord_1", "coordinator"),
            )
        ).json()
        assert second["items"][0]["id"] != first["items"][0]["id"]

    # 3. the same event again (same ce_id) sends nothing; a later event on the same key
    #    (same partition, so processed after it) proves the duplicate was handled
    await publish(bootstrap, event, headers=meta.to_headers())
    # 4. malformed messages go to the dead-letter topic, and the consumer goes on
    #    (both on matching.events.v1 with key req_it_1, the topic and key of `event`)
    await publish(
        bootstrap,
        event,
        value=b"{not json",
        headers=EventMeta.new(event, "zhumeng/test").to_headers(),
    )
    await publish(
        bootstrap, event, value=encode(event), headers=[("content-type", b"application/json")]
    )
    await publish(bootstrap, unmatched("req_it_1"))
    await eventually(lambda: emails(3), what="the email after the bad messages")
    await asyncio.sleep(1.0)
    messages = mail.received()
    assert len(messages) == 3, [m["Subject"] for m in messages]
    assert "暂未找到志愿者" in messages[2]["Subject"]

    dead = await read_topic(bootstrap, "matching.events.v1.dlq", at_least=2)
    reasons = sorted(dict(r.headers)["dlq-reason"].decode() for r in dead)
    assert reasons == ["bad-envelope", "invalid-payload"]
    for r in dead:
        headers = {k: v.decode() for k, v in r.headers}
        assert headers["dlq-origin-topic"] == "matching.events.v1"
        assert headers["dlq-consumer"] == "zhumeng-notify"

    # 5. a requester contact that lags its request's event is waited for (retries)
    late = RequesterContact(
        request_id="req_it_2",
        requester_id="res_it_2",
        name="Alice Chen",
        email="alice@example.org",
        locale="en",
    )
    await publish(bootstrap, unmatched("req_it_2"))
    await asyncio.sleep(1.5)
    await publish(bootstrap, late)

    async def late_email() -> list[EmailMessage]:
        return to(mail, "alice@example.org")

    [late_mail] = await eventually(late_email, what="the late email")
    assert late_mail["Subject"] == "Zhumeng: no volunteer found yet for your Free haircut request"

    # 6. NotificationDelivered events, without addresses or bodies
    delivered = await read_topic(bootstrap, "notify.events.v1", at_least=4)
    bodies = [json.loads(r.value) for r in delivered]
    assert len(bodies) == 4, bodies
    assert {b["recipient_id"] for b in bodies} == {"res_it_1", "vol_it_1", "res_it_2"}
    assert all(b["status"] == "sent" and b["channel"] == "email" for b in bodies)
    for r in delivered:
        text = r.value.decode()
        # (the email's own Message-ID, <hash@notify.zhumeng>, is the provider message id)
        for pii in ("xiuying@", "lin.xiaoming@", "alice@", "13812345678", "王秀英"):
            assert pii not in text
        headers = {k: v.decode() for k, v in r.headers}
        assert headers["ce_type"] == "zhumeng.notification.delivered.v1"
        assert headers["ce_source"] == "zhumeng/notify"

    # 7. no personal data in the service's own log
    log = notify.log_file.read_text(errors="replace")
    for pii in ("xiuying@example.org", "lin.xiaoming@example.org", "13812345678", "王秀英"):
        assert pii not in log


async def test_lifecycle_of_one_request(
    infra: Infra, mail: MailSink, notify: ServiceProcess
) -> None:
    """Assigned (with a check-in code) -> checked in -> assignment completed -> request
    completed: the requester gets 3 emails (the code in the first only), the volunteer 2.

    Its own request, requester and volunteer (own addresses), so the counts of the test above
    are not disturbed; it runs after that test, whose totals it leaves as they were.
    """
    bootstrap = infra.kafka.bootstrap
    code = "730164"
    requester = RequesterContact(
        request_id="req_it_3",
        requester_id="res_it_3",
        name="陈美华",
        email="meihua@example.org",
        locale="zh-CN",
    )
    volunteer = ContactRecord(
        id="vol_it_3",
        name="张志强",
        email="zhiqiang@example.org",
        locale="en",
        version=1,
    )
    for record in (requester, volunteer):
        await publish(bootstrap, record)
    now = datetime.now(UTC).replace(microsecond=0)
    events: list[Event] = [
        assigned("req_it_3").model_copy(
            update={
                "assignment_id": "asg_it_3",
                "volunteer_id": "vol_it_3",
                "volunteer_display_name": "小张",
                "checkin_code": code,
            }
        ),
        CheckedIn(
            request_id="req_it_3",
            assignment_id="asg_it_3",
            volunteer_id="vol_it_3",
            checked_in_at=now,
        ),
        AssignmentCompleted(
            request_id="req_it_3",
            assignment_id="asg_it_3",
            volunteer_id="vol_it_3",
            service_type_id="st_haircut",
            checked_in_at=now,
            checked_out_at=now + timedelta(hours=1, minutes=15),
            hours=1.25,
        ),
        RequestCompleted(request_id="req_it_3", hours_total=1.25, completed_at=now),
    ]
    metas = [EventMeta.new(e, "zhumeng/matching") for e in events]
    for event, meta in zip(events, metas, strict=True):
        await publish(bootstrap, event, headers=meta.to_headers())
        if isinstance(event, CheckedIn):  # redelivered (same ce_id): handled, not sent again
            await publish(bootstrap, event, headers=meta.to_headers())

    async def all_five() -> bool:
        return len(to(mail, "meihua@example.org")) + len(to(mail, "zhiqiang@example.org")) >= 5

    # the last event's mail proves every earlier one (same key, same partition) was handled
    await eventually(all_five, within=60, what="five lifecycle emails")
    await asyncio.sleep(1.0)
    to_requester = to(mail, "meihua@example.org")
    to_volunteer = to(mail, "zhiqiang@example.org")
    assert [m["Subject"] for m in to_requester] == [
        "【筑梦】您的“义剪”请求已有志愿者接单",
        "【筑梦】志愿者志强已到达并签到",
        "【筑梦】服务已完成，欢迎评价",
    ]
    assert [m["Subject"] for m in to_volunteer] == [
        "Zhumeng: new task, Free haircut",
        "Zhumeng: thank you, 1.25 hours credited for Free haircut",
    ]
    requester_bodies = [m.get_content() for m in to_requester]
    volunteer_bodies = [m.get_content() for m in to_volunteer]
    assert f"签到码：{code}" in requester_bodies[0] and "志愿者小张到达时" in requester_bodies[0]
    assert [code in b for b in requester_bodies] == [True, False, False]
    assert not any(code in b for b in volunteer_bodies)
    assert "共服务1.25 小时" in requester_bodies[2] and "评价" in requester_bodies[2]
    assert "美华" in volunteer_bodies[0] and "陈美华" not in volunteer_bodies[0]

    # one NotificationDelivered per email, each naming the event it answers
    causes = {m.id: m.type for m in metas}

    async def delivered() -> list[dict[str, Any]]:
        records = await read_topic(bootstrap, "notify.events.v1")
        bodies = [json.loads(r.value) for r in records]
        mine = [b for b in bodies if b["cause_event_id"] in causes]
        return mine if len(mine) >= 5 else []

    mine = await eventually(delivered, what="five NotificationDelivered events")
    assert sorted((b["recipient_id"], b["cause_event_type"]) for b in mine) == sorted(
        [
            ("res_it_3", VolunteerAssigned.TYPE),
            ("vol_it_3", VolunteerAssigned.TYPE),
            ("res_it_3", CheckedIn.TYPE),
            ("vol_it_3", AssignmentCompleted.TYPE),
            ("res_it_3", RequestCompleted.TYPE),
        ]
    )
    assert all(b["status"] == "sent" and b["channel"] == "email" for b in mine)
    assert not any(code in json.dumps(b) for b in mine)
    log = notify.log_file.read_text(errors="replace")
    assert f"签到码：{code}" not in log and "meihua@example.org" not in log


async def test_delivery_repository_on_the_document_server(infra: Infra) -> None:
    """The claim / lease / complete protocol against the real MongoDB-compatible server."""
    from pymongo import AsyncMongoClient

    from zhumeng_contracts.events import NotificationDelivered
    from zhumeng_notify.adapters.mongo import MongoDeliveryRepository
    from zhumeng_notify.domain.model import Cause, Delivery, Receipt

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo.uri, tz_aware=True)
    try:
        woken: list[int] = []
        coll = client[f"it{secrets.token_hex(4)}_notify"]["deliveries"]
        repo = MongoDeliveryRepository(coll, on_events=lambda: woken.append(1))
        await repo.ensure_indexes()
        delivery = Delivery(
            id="e1|res_1|email",
            recipient_id="res_1",
            role="requester",
            channel="email",
            masked_address="x***@example.org",
            locale="zh-CN",
            subject="s",
            body="b",
            cause=Cause("e1", "zhumeng.request.unmatched.v1", "req_1"),
        )
        lease = timedelta(seconds=30)
        now = datetime.now(UTC).replace(microsecond=0)
        first = await repo.claim(delivery, now, lease)
        assert (first.kind, first.attempts) == ("send", 1)
        busy = await repo.claim(delivery, now + timedelta(seconds=5), lease)
        assert busy.kind == "busy" and busy.lease_until == now + lease
        # the first sender "crashed"; after the lease another takes over as attempt 2
        later = now + timedelta(seconds=31)
        taken = await repo.claim(delivery, later, lease)
        assert (taken.kind, taken.attempts) == ("send", 2)
        retry_at = later + timedelta(seconds=2)
        await repo.retry_later(delivery.id, 2, later, retry_at, "ConnectionRefusedError: x")
        waiting = await repo.claim(delivery, later, lease)
        assert (waiting.kind, waiting.lease_until) == ("busy", retry_at)
        assert await repo.take(delivery.id, later, lease) is None  # not due yet
        taken_doc = await repo.take(delivery.id, retry_at, lease)
        assert taken_doc is not None and taken_doc["attempts"] == 3
        event = NotificationDelivered(
            delivery_id=delivery.id,
            cause_event_id="e1",
            cause_event_type="zhumeng.request.unmatched.v1",
            recipient_id="res_1",
            recipient_role="requester",
            channel="email",
            status="sent",
            delivered_at=later,
        )
        # the fenced-off attempt 2 cannot complete; attempt 3 can
        assert not await repo.complete(delivery.id, 2, "sent", retry_at, None, None, event)
        receipt = Receipt("email", "<m@x>", retry_at)
        assert await repo.complete(delivery.id, 3, "sent", retry_at, receipt, None, event)
        assert woken == [1]
        done = await repo.claim(delivery, later + timedelta(hours=1), lease)
        assert (done.kind, done.status) == ("done", "sent")
        doc = await coll.find_one({"_id": delivery.id})
        assert doc is not None
        assert doc["status"] == "sent" and doc["provider_message_id"] == "<m@x>"
        assert doc["has_outbox"]
        assert [(a["n"], a["outcome"]) for a in doc["attempt_log"]] == [(2, "retry"), (3, "sent")]
        # a provider report, recorded once however often it comes
        entry = {"status": "delivered", "code": "DELIVRD", "received_at": retry_at}
        assert await repo.record_receipt("tencent", "<m@x>", entry) == "recorded"
        assert await repo.record_receipt("tencent", "<m@x>", entry) == "duplicate"
        assert await repo.record_receipt("tencent", "nope", entry) == "unknown"
        doc = await coll.find_one({"_id": delivery.id})
        assert doc is not None and len(doc["receipts"]) == 1
        assert doc["receipt_status"] == "delivered"
        assert [e["topic"] for e in doc["outbox"]] == ["notify.events.v1"]
        items, cursor = await repo.page("res_1", None, 10, None)
        assert [i["_id"] for i in items] == [delivery.id] and cursor is None
        assert "outbox" not in items[0]
    finally:
        await client.close()

"""notify's delivery semantics on the real stack: Kafka and the document server on free ports,
notify's app run in this process (its consumer, relay and timers on this event loop) with two
channels injected (`build(settings, channels=...)`): "sms" and "email", each an HTTP client
of a stub provider served here over TCP, which can answer 503 for a while.

The clock: `ZHUMENG_NOTIFY_CLOCK_OFFSET_FILE` names a file of seconds added to notify's clock
(refused in production); the quiet-hours test moves it to 23:00 and then to 07:00 in
Asia/Shanghai.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    RequesterContact,
    RequestUnmatched,
    ServiceTypeRecord,
)
from zhumeng_devstack.testing import Infra, bearer, eventually, infra_fixture, publish, read_topic
from zhumeng_notify.app.ports import SendRejected, SendUnavailable
from zhumeng_notify.bootstrap import build
from zhumeng_notify.domain.model import Message, Receipt
from zhumeng_notify.settings import NotifySettings

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
ADMIN = bearer("admin_dl", "admin")
COORD = bearer("coord_dl", "coordinator")

infra = infra_fixture("notify-delivery")


# ---- a stub SMS/email provider over HTTP -----------------------------------------------------


@dataclass
class StubProvider:
    """A minimal HTTP/1.1 server: POST {"delivery_id", "to"} -> 200 {"id"}, or 503 while the
    delivery id is listed in `unavailable` (count of 503s still to give; -1: for ever)."""

    calls: list[tuple[str, int]] = field(default_factory=list)  # (delivery id, status)
    unavailable: dict[str, int] = field(default_factory=dict)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/send"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode().split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = json.loads(await reader.readexactly(length))
                did = body["delivery_id"]
                left = self.unavailable.get(did, 0)
                if left:
                    self.unavailable[did] = left - 1 if left > 0 else -1
                    status, answer = 503, {"error": "busy"}
                else:
                    status, answer = 200, {"id": f"sid-{len(self.calls)}-{secrets.token_hex(3)}"}
                self.calls.append((did, status))
                payload = json.dumps(answer).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def ok_calls(self, did: str) -> int:
        return sum(1 for d, s in self.calls if d == did and s == 200)

    def all_calls(self, did: str) -> int:
        return sum(1 for d, _ in self.calls if d == did)


class HttpChannel:
    """A channel that posts to the stub provider: 5xx -> SendUnavailable, 4xx -> rejected."""

    def __init__(self, name: str, provider: StubProvider) -> None:
        self.name = name
        self._provider = provider
        self._client = httpx.AsyncClient(timeout=5)

    async def send(self, message: Message) -> Receipt:
        body = {"delivery_id": message.delivery_id, "to": message.address}
        response = await self._client.post(self._provider.url, json=body)
        if response.status_code >= 500:
            raise SendUnavailable(f"provider answered {response.status_code}")
        if response.status_code >= 400:
            raise SendRejected(f"provider answered {response.status_code}")
        return Receipt(self.name, response.json()["id"], datetime.now(UTC))


# ---- notify, in process ----------------------------------------------------------------------


@dataclass
class Notify:
    api: httpx.AsyncClient
    provider: StubProvider
    clock_file: Path
    bootstrap: str

    def set_clock(self, at: datetime | None) -> None:
        """Make notify's clock read `at` (None: today's noon in Shanghai, and on from there,
        so that no test but the quiet-hours one depends on the hour it runs at)."""
        if at is None:
            at = datetime.now(SHANGHAI).replace(hour=12, minute=0, second=0, microsecond=0)
        self.clock_file.write_text(str((at - datetime.now(UTC)).total_seconds()))

    async def notification(self, did: str, who: dict[str, str] = ADMIN) -> dict[str, Any]:
        response = await self.api.get(f"/v1/notifications/{did}", headers=who)
        return response.json() if response.status_code == 200 else {}

    async def until(self, did: str, status: str, within: float = 60) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            doc = await self.notification(did)
            return doc if doc.get("status") == status else None

        return await eventually(reached, within=within, what=f"{did} {status}")


SERVICE = ServiceTypeRecord(
    id="st_dl",
    name_zh="义剪",
    name_en="Free haircut",
    category="care",
    default_duration_min=60,
    target_claim_min=30,
    version=1,
)


def requester(n: int, **fields: Any) -> RequesterContact:
    return RequesterContact(
        request_id=f"req_dl_{n}",
        requester_id=f"res_dl_{n}",
        name="Alice Chen",
        phone=f"1390000{n:04d}",
        email=f"dl{n}@example.org",
        locale="en",
        **fields,
    )


def unmatched(n: int) -> RequestUnmatched:
    return RequestUnmatched(
        request_id=f"req_dl_{n}",
        service_type_id="st_dl",
        reasons={"too_far": 1},
        candidates_considered=1,
        decided_at=datetime.now(UTC),
    )


async def events_of(notify: Notify, did: str, at_least: int = 1) -> list[dict[str, Any]]:
    """The NotificationDelivered events of one delivery, once there are `at_least`."""
    records = await read_topic(notify.bootstrap, "notify.events.v1")
    found = [b for b in (json.loads(r.value) for r in records) if b["delivery_id"] == did]
    return found if len(found) >= at_least else []


async def tell(notify: Notify, n: int) -> str:
    """Publish RequestUnmatched for request n; returns its event id."""
    event = unmatched(n)
    meta = EventMeta.new(event, "zhumeng/test")
    await publish(notify.bootstrap, event, headers=meta.to_headers())
    return meta.id


@pytest.fixture(scope="module")
def clock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clock") / "offset"
    path.write_text("0")
    return path


@pytest.fixture(scope="module")
async def notify(infra: Infra, clock_file: Path) -> AsyncIterator[Notify]:
    bootstrap = infra.kafka.bootstrap
    for record in [SERVICE, *(requester(n) for n in range(1, 10))]:
        await publish(bootstrap, record)
    provider = StubProvider()
    await provider.start()
    settings = NotifySettings(
        environment="test",
        kafka_bootstrap=bootstrap,
        mongo_uri=infra.mongo.uri,
        mongo_db_prefix=f"dl{secrets.token_hex(3)}",
        relay_poll_ms=100,
        max_send_attempts=3,
        notify_retry_base_s=0.5,
        notify_retry_cap_s=2.0,
        notify_timer_poll_s=0.2,
        notify_clock_offset_file=clock_file,
        notify_quiet_hours="22:00-07:00",  # on explicitly: a test stack has them off
    )
    channels = {"sms": HttpChannel("sms", provider), "email": HttpChannel("email", provider)}
    app = build(settings, channels=channels)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://notify") as api:
            running = Notify(api, provider, clock_file, bootstrap)
            running.set_clock(None)
            yield running
    assert provider.server is not None
    provider.server.close()


# ---- the tests -------------------------------------------------------------------------------


async def test_a_redelivered_event_sends_nothing_twice(notify: Notify) -> None:
    event = unmatched(1)
    meta = EventMeta.new(event, "zhumeng/test")
    for _ in range(3):  # the same ce_id three times: a redelivery, e.g. after a rebalance
        await publish(notify.bootstrap, event, headers=meta.to_headers())
    did = f"{meta.id}|res_dl_1|sms"  # SMS first: no WeChat bound (the default order)
    await notify.until(did, "sent")
    later = await tell(notify, 1)  # same key, same partition: handled after the copies
    await notify.until(f"{later}|res_dl_1|sms", "sent")
    assert notify.provider.all_calls(did) == 1
    page = (await notify.api.get("/v1/people/res_dl_1/notifications", headers=ADMIN)).json()
    assert Counter(i["cause_event_id"] for i in page["items"]) == {meta.id: 1, later: 1}


async def test_a_provider_answering_503_then_200_sends_exactly_once(notify: Notify) -> None:
    n = 2
    event = unmatched(n)
    meta = EventMeta.new(event, "zhumeng/test")
    did = f"{meta.id}|res_dl_{n}|sms"
    notify.provider.unavailable[did] = 1
    await publish(notify.bootstrap, event, headers=meta.to_headers())
    doc = await notify.until(did, "sent")
    assert (notify.provider.all_calls(did), notify.provider.ok_calls(did)) == (2, 1)
    assert doc["attempts"] == 2
    assert [a["outcome"] for a in doc["attempt_log"]] == ["retry", "sent"]
    assert "503" in doc["attempt_log"][0]["error"]

    [sent] = await eventually(lambda: events_of(notify, did), what="NotificationDelivered")
    assert (sent["status"], sent["attempt"]) == ("sent", 2)
    assert sent["provider_message_id"] == doc["receipt"]


async def test_dead_letter_after_the_last_attempt_then_an_admin_replays_it(
    notify: Notify,
) -> None:
    n = 3
    event = unmatched(n)
    meta = EventMeta.new(event, "zhumeng/test")
    did = f"{meta.id}|res_dl_{n}|sms"
    notify.provider.unavailable[did] = -1
    await publish(notify.bootstrap, event, headers=meta.to_headers())
    doc = await notify.until(did, "dead_lettered")
    assert doc["attempts"] == 3 and notify.provider.all_calls(did) == 3
    assert [a["outcome"] for a in doc["attempt_log"]] == ["retry", "retry", "dead_lettered"]
    # only an admin may replay, and only a dead letter
    denied = await notify.api.post(f"/v1/notifications/{did}/retry", headers=COORD)
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")
    notify.provider.unavailable[did] = 0
    replayed = await notify.api.post(f"/v1/notifications/{did}/retry", headers=ADMIN)
    assert replayed.status_code == 200, replayed.text
    await notify.until(did, "sent")
    assert notify.provider.ok_calls(did) == 1
    again = await notify.api.post(f"/v1/notifications/{did}/retry", headers=ADMIN)
    assert again.status_code == 409
    missing = await notify.api.post("/v1/notifications/nope/retry", headers=ADMIN)
    assert missing.status_code == 404

    found = await eventually(lambda: events_of(notify, did, 2), what="dead_lettered then sent")
    assert [b["status"] for b in found] == ["dead_lettered", "sent"]


async def test_an_sms_opt_out_moves_the_next_message_to_another_channel(
    notify: Notify,
) -> None:
    n = 4
    first = await tell(notify, n)
    await notify.until(f"{first}|res_dl_{n}|sms", "sent")
    # Alibaba Cloud's SmsUp push: a JSON array; "td" with spaces, any case
    up = [
        {
            "phone_number": f"1390000{n:04d}",
            "content": " td ",
            "sign_name": "筑梦",
            "send_time": "2026-11-27 10:00:00",
            "dest_code": "",
            "sequence_id": 1,
        }
    ]
    answer = await notify.api.post("/v1/sms/inbound/aliyun", json=up)
    assert answer.status_code == 200 and answer.json() == {"code": 0, "msg": "接收成功"}
    prefs = (await notify.api.get(f"/v1/people/res_dl_{n}/preferences", headers=ADMIN)).json()
    assert prefs["opted_out"] == ["sms"] and prefs["stored"] is True
    second = await tell(notify, n)
    doc = await notify.until(f"{second}|res_dl_{n}|email", "sent")
    assert doc["address"] == "d***@example.org"
    assert notify.provider.all_calls(f"{second}|res_dl_{n}|sms") == 0
    # Tencent's reply callback (one object) from a number nobody has: kept as a hash only
    reply = {
        "extend": "",
        "mobile": "13700001111",
        "nationcode": "86",
        "sign": "筑梦",
        "text": "退订",
        "time": 1764200000,
    }
    answer = await notify.api.post("/v1/sms/inbound/tencent", json=reply)
    assert answer.json() == {"result": 0, "errmsg": "OK"}
    # not an opt-out; unknown provider; a body no provider sends
    chat = [{"phone_number": f"1390000{n:04d}", "content": "谢谢"}]
    assert (await notify.api.post("/v1/sms/inbound/aliyun", json=chat)).status_code == 200
    assert (await notify.api.post("/v1/sms/inbound/nokia", json=up)).status_code == 404
    bad = await notify.api.post("/v1/sms/inbound/aliyun", content=b"{not json")
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


async def test_provider_receipts_are_recorded_once(notify: Notify) -> None:
    n = 5
    did = f"{await tell(notify, n)}|res_dl_{n}|sms"
    doc = await notify.until(did, "sent")
    sid = doc["receipt"]
    report = [
        {
            "user_receive_time": "2026-11-27 10:00:05",
            "nationcode": "86",
            "mobile": f"1390000{n:04d}",
            "report_status": "SUCCESS",
            "errmsg": "DELIVRD",
            "description": "用户短信送达成功",
            "sid": sid,
        }
    ]
    for _ in range(2):  # reports may come twice
        answer = await notify.api.post("/v1/receipts/tencent", json=report)
        assert answer.json() == {"result": 0, "errmsg": "OK"}
    aliyun = [
        {
            "phone_number": "1390000****",
            "send_time": "2026-11-27 10:00:00",
            "report_time": "2026-11-27 10:00:09",
            "success": False,
            "err_code": "MK:0001",
            "err_msg": "失败",
            "sms_size": "1",
            "biz_id": "unknown-biz",
            "out_id": "",
        }
    ]
    answer = await notify.api.post("/v1/receipts/aliyun", json=aliyun)
    assert answer.json() == {"code": 0, "msg": "接收成功"}
    assert (await notify.api.post("/v1/receipts/aliyun", json={"x": 1})).status_code == 422
    doc = await notify.notification(did)
    assert doc["receipt_status"] == "delivered"
    [receipt] = doc["receipts"]
    assert (receipt["provider"], receipt["code"]) == ("tencent", "DELIVRD")
    assert receipt["reported_at"].startswith("2026-11-27T02:00:05")


async def test_history_and_preferences_apis(notify: Notify) -> None:
    n = 6
    mine = bearer(f"res_dl_{n}", "resident")
    other = bearer("res_dl_1", "resident")
    # preferences: defaults, then the person's own choice (email first, no quiet hours)
    got = await notify.api.get(f"/v1/people/res_dl_{n}/preferences", headers=mine)
    assert got.json()["stored"] is False and got.json()["channels"][0] == "wechat"
    assert (
        await notify.api.get(f"/v1/people/res_dl_{n}/preferences", headers=other)
    ).status_code == 403
    assert (
        await notify.api.get(f"/v1/people/res_dl_{n}/preferences", headers=COORD)
    ).status_code == 403
    body = {"channels": ["email", "sms"], "quiet_hours": False, "locale": "zh-CN"}
    put = await notify.api.put(f"/v1/people/res_dl_{n}/preferences", json=body, headers=mine)
    assert put.status_code == 200 and put.json()["channels"] == ["email", "sms"]
    bad = {"channels": ["fax"]}
    rejected = await notify.api.put(f"/v1/people/res_dl_{n}/preferences", json=bad, headers=mine)
    assert rejected.status_code == 422
    assert rejected.headers["content-type"].startswith("application/problem+json")
    # two messages, by email now, in the chosen locale
    ids = [await tell(notify, n) for _ in range(2)]
    for event_id in ids:
        await notify.until(f"{event_id}|res_dl_{n}|email", "sent")
    path = f"/v1/people/res_dl_{n}/notifications"
    first = (await notify.api.get(path, params={"limit": 1}, headers=mine)).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = (
        await notify.api.get(
            path, params={"limit": 1, "cursor": first["next_cursor"]}, headers=mine
        )
    ).json()
    assert [i["cause_event_id"] for i in first["items"] + second["items"]] == ids[::-1]
    item = first["items"][0]
    assert item["address"] == "d***@example.org" and "【筑梦】" in item["subject"]
    raw = json.dumps(first) + json.dumps(second)
    assert f"dl{n}@example.org" not in raw and f"1390000{n:04d}" not in raw
    assert (await notify.api.get(path, headers=other)).status_code == 403
    assert (await notify.api.get(path, headers=COORD)).status_code == 200
    assert (await notify.api.get(path)).status_code == 401
    detail = await notify.notification(item["id"], mine)
    assert [a["outcome"] for a in detail["attempt_log"]] == ["sent"]
    assert detail["receipts"] == []
    assert await notify.notification(item["id"], other) == {}


async def test_quiet_hours_defer_and_later_send(notify: Notify) -> None:
    n = 7
    today = datetime.now(SHANGHAI).date()
    night = datetime(today.year, today.month, today.day, 23, 0, tzinfo=SHANGHAI)
    morning = night + timedelta(hours=8, seconds=2)  # 07:00:02 the next day
    notify.set_clock(night)
    try:
        event_id = await tell(notify, n)
        did = f"{event_id}|res_dl_{n}|sms"
        doc = await notify.until(did, "deferred")
        assert doc["next_attempt_at"].startswith(
            (night + timedelta(hours=8)).astimezone(UTC).isoformat()[:19]
        )
        await asyncio.sleep(2)  # a few timer polls: nothing goes out at night
        assert notify.provider.all_calls(did) == 0
        notify.set_clock(morning)
        await notify.until(did, "sent")
        assert notify.provider.ok_calls(did) == 1
    finally:
        notify.set_clock(None)

    found = await eventually(lambda: events_of(notify, did, 2), what="deferred then sent")
    assert [b["status"] for b in found] == ["deferred", "sent"]

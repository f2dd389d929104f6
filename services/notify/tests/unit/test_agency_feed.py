"""Agency feeds on fakes: matching subscriptions, one delivery per (event, subscription),
retries then dead letters, 4xx final, unsubscribed -> cancelled, replay marked and scoped."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import PublicRequestPosted, PublicRequestStatusChanged
from zhumeng_kit.outbox import wire_message
from zhumeng_kit.timers import Timer
from zhumeng_kit.webhooks import verify
from zhumeng_notify.adapters.webhook_channel import WebhookChannel, WebhookSender
from zhumeng_notify.app.agency_feed import (
    REPLAY_HEADER,
    AgencyFeed,
    AgencyFeedSettings,
    Offsets,
    RetryLater,
)
from zhumeng_notify.app.ports import SendRejected, SendUnavailable
from zhumeng_notify.domain.model import Cause, Message, Recipient, Rendered
from zhumeng_notify.domain.subscriptions import (
    Subscription,
    SubscriptionIn,
    UrlNotAllowed,
    check_url,
)

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def sub(sid: str, types: tuple[str, ...] = (), townships: tuple[str, ...] = ()) -> Subscription:
    return Subscription(
        sid, "agency_1", f"https://{sid}.example.org/hook", types, townships, SECRET, NOW
    )


def posted(request_id: str = "req_1", township: str = "pl_longxun") -> PublicRequestPosted:
    return PublicRequestPosted(
        request_id=request_id,
        service_type_id="haircut",
        township_id=township,
        place_id=f"{township}_v1",
        window={"start": NOW, "end": NOW + timedelta(hours=2)},
        slots=1,
        posted_at=NOW,
    )


class FakeStore:
    def __init__(self, subs: list[Subscription]) -> None:
        self.subs = {s.id: s for s in subs}
        self.deliveries: dict[str, dict[str, Any]] = {}
        self.replays: dict[str, dict[str, Any]] = {}

    async def active(self) -> list[Subscription]:
        return list(self.subs.values())

    async def get(self, sub_id: str) -> Subscription | None:
        return self.subs.get(sub_id)

    async def add_delivery(self, doc: dict[str, Any]) -> bool:
        if doc["_id"] in self.deliveries:
            return False
        self.deliveries[doc["_id"]] = dict(doc)
        return True

    async def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        return self.deliveries.get(delivery_id)

    async def update_pending(self, delivery_id: str, fields: dict[str, Any]) -> bool:
        doc = self.deliveries[delivery_id]
        if doc["status"] != "pending":
            return False
        doc.update(fields)
        return True

    async def add_replay(self, doc: dict[str, Any]) -> None:
        self.replays[doc["_id"]] = doc

    async def replay(self, replay_id: str) -> dict[str, Any] | None:
        return self.replays.get(replay_id)

    async def running_replays(self) -> list[dict[str, Any]]:
        return [d for d in self.replays.values() if d["state"] == "running"]

    async def finish_replay(self, replay_id: str, fields: dict[str, Any]) -> None:
        self.replays[replay_id].update(state="done", **fields)


class FakeTimers:
    def __init__(self) -> None:
        self.pending: dict[str, datetime] = {}
        self.armed: list[str] = []

    async def arm(self, key: str, due_at: datetime, new: bool) -> None:
        if key not in self.armed:
            self.armed.append(key)
            self.pending[key] = due_at

    async def retry_at(self, key: str, due_at: datetime) -> None:
        self.pending[key] = due_at

    async def drop(self, key: str) -> None:
        self.pending.pop(key, None)


class FakeSender:
    """Answers per URL, in order; 204 once a URL's list is used up."""

    def __init__(self, outcomes: dict[str, list[Exception | int]] | None = None) -> None:
        self.outcomes = outcomes or {}
        self.posts: list[tuple[str, str, bytes, Mapping[str, str]]] = []

    async def post(
        self,
        url: str,
        secret: str,
        msg_id: str,
        body: bytes,
        content_type: str = "application/json",
        extra_headers: Mapping[str, str] | None = None,
    ) -> tuple[int, datetime]:
        self.posts.append((url, msg_id, body, dict(extra_headers or {})))
        queue = self.outcomes.get(url) or []
        outcome = queue.pop(0) if queue else 204
        if isinstance(outcome, Exception):
            raise outcome
        return outcome, NOW


@dataclass
class FakeRecord:
    value: bytes


def feed_of(
    store: FakeStore, sender: FakeSender, records: list[FakeRecord] | None = None
) -> tuple[AgencyFeed, FakeTimers]:
    timers = FakeTimers()

    async def history(since: datetime, until: Offsets) -> AsyncIterator[Any]:
        for record in records or []:
            yield record

    async def ends() -> Offsets:
        return {("public.requests.v1", 0): 10}

    feed = AgencyFeed(
        store, sender, timers, history, ends, max_attempts=3, clock=lambda: NOW, backoff_s=2
    )
    return feed, timers


def timer(key: str, attempts: int = 1) -> Timer:
    return Timer(id=f"webhook:{key}", kind="webhook", key=key, due_at=NOW, attempts=attempts)


def url(sid: str) -> str:
    return f"https://{sid}.example.org/hook"


async def test_an_event_goes_once_to_each_matching_subscription_at_once() -> None:
    store = FakeStore(
        [
            sub("all"),
            sub("posted_longxun", (PublicRequestPosted.TYPE,), ("pl_longxun",)),
            sub("gaide", (), ("pl_gaide",)),
            sub("status_only", (PublicRequestStatusChanged.TYPE,)),
        ]
    )
    sender = FakeSender()
    feed, timers = feed_of(store, sender)
    meta = EventMeta.new(posted(), "zhumeng/requests")
    await feed.on_public_event(meta, posted())
    await feed.on_public_event(meta, posted())  # redelivered: no second delivery
    keys = [f"{meta.id}|all", f"{meta.id}|posted_longxun"]
    assert sorted(timers.armed) == keys
    # a safety net in case this process dies before the first attempt ends
    assert set(timers.pending.values()) == {NOW + timedelta(seconds=60)}
    await feed.drain()
    assert sorted(p[0] for p in sender.posts) == [url("all"), url("posted_longxun")]
    assert timers.pending == {}  # delivered: the safety nets are gone
    doc = store.deliveries[keys[0]]
    assert (doc["status"], doc["attempts"], doc["request_id"]) == ("delivered", 1, "req_1")
    # the body is the CloudEvent exactly as the public topic carries it
    assert doc["body"].encode() == wire_message(meta, posted())[0]
    assert {p[1] for p in sender.posts} == {meta.id}  # webhook-id = CloudEvent id


async def test_a_transient_failure_is_retried_by_the_timer_then_delivered() -> None:
    store = FakeStore([sub("s1")])
    sender = FakeSender({url("s1"): [SendUnavailable("HTTP 500"), 200]})
    feed, timers = feed_of(store, sender)
    meta = EventMeta.new(posted(), "zhumeng/requests")
    await feed.on_public_event(meta, posted())
    await feed.drain()
    [key] = timers.armed
    assert timers.pending == {key: NOW + timedelta(seconds=2)}  # the backoff
    assert store.deliveries[key]["status"] == "pending"
    assert store.deliveries[key]["last_error"] == "HTTP 500"
    await feed.deliver(timer(key, 1))
    doc = store.deliveries[key]
    assert (doc["status"], doc["attempts"], doc["status_code"]) == ("delivered", 2, 200)
    await feed.deliver(timer(key, 2))  # a late duplicate run sends nothing
    assert len(sender.posts) == 2


async def test_the_last_attempt_dead_letters_and_a_4xx_at_once() -> None:
    store = FakeStore([sub("s1"), sub("s2")])
    down = SendUnavailable("timeout (ReadTimeout)")
    sender = FakeSender({url("s1"): [down, down, down], url("s2"): [SendRejected("HTTP 410")]})
    feed, timers = feed_of(store, sender)
    await feed.on_public_event(EventMeta.new(posted(), "zhumeng/requests"), posted())
    await feed.drain()
    first, second = timers.armed
    assert store.deliveries[second]["status"] == "dead_lettered"
    assert store.deliveries[second]["last_error"] == "rejected: HTTP 410"
    with pytest.raises(RetryLater):
        await feed.deliver(timer(first, 1))  # attempt 2 of 3
    await feed.deliver(timer(first, 2))  # attempt 3 of 3: no more retries
    assert store.deliveries[first]["status"] == "dead_lettered"
    assert store.deliveries[first]["attempts"] == 3
    assert store.deliveries[first]["last_error"].startswith("gave up")


async def test_a_deleted_subscription_cancels_its_pending_deliveries() -> None:
    store = FakeStore([sub("s1")])
    sender = FakeSender({url("s1"): [SendUnavailable("HTTP 503")]})
    feed, timers = feed_of(store, sender)
    await feed.on_public_event(EventMeta.new(posted(), "zhumeng/requests"), posted())
    await feed.drain()
    del store.subs["s1"]  # unsubscribed while the delivery waits for its retry
    await feed.deliver(timer(timers.armed[0]))
    assert store.deliveries[timers.armed[0]]["status"] == "cancelled"
    assert len(sender.posts) == 1


async def test_a_replay_redelivers_the_matching_events_marked_with_its_id() -> None:
    target = sub("s1", (), ("pl_longxun",))
    store = FakeStore([target])
    metas = [EventMeta.new(posted(f"req_{i}"), "zhumeng/requests") for i in range(2)]
    records = [FakeRecord(wire_message(m, posted(f"req_{i}"))[0]) for i, m in enumerate(metas)]
    other = posted("req_x", "pl_gaide")
    records.append(FakeRecord(wire_message(EventMeta.new(other, "zhumeng/requests"), other)[0]))
    records.append(FakeRecord(b"{not json"))
    sender = FakeSender()
    feed, _ = feed_of(store, sender, records)
    replay = await feed.start_replay(target, NOW - timedelta(hours=1))
    await feed.run_replay(replay["_id"])
    await feed.drain()
    assert store.replays[replay["_id"]]["state"] == "done"
    assert store.replays[replay["_id"]]["matched"] == 2
    assert sorted(p[1] for p in sender.posts) == sorted(m.id for m in metas)
    assert all(p[3] == {REPLAY_HEADER: replay["_id"]} for p in sender.posts)
    assert sorted(p[2] for p in sender.posts) == sorted(r.value for r in records[:2])


async def test_a_replay_whose_scan_fails_is_scanned_again_and_sends_each_event_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = sub("s1", (), ("pl_longxun",))
    store = FakeStore([target])
    metas = [EventMeta.new(posted(f"req_{i}"), "zhumeng/requests") for i in range(3)]
    records = [FakeRecord(wire_message(m, posted(f"req_{i}"))[0]) for i, m in enumerate(metas)]
    sender = FakeSender()
    feed, _ = feed_of(store, sender)
    scans = 0

    async def flaky_history(since: datetime, until: Offsets) -> AsyncIterator[Any]:
        nonlocal scans
        scans += 1
        for i, record in enumerate(records):
            if scans == 1 and i == 2:
                raise ConnectionError("the broker went away mid-scan")
            yield record

    async def no_pause(_: float) -> None:
        return None

    monkeypatch.setattr(feed, "_history", flaky_history)
    monkeypatch.setattr("zhumeng_notify.app.agency_feed.asyncio.sleep", no_pause)
    replay = await feed.start_replay(target, NOW - timedelta(hours=1))
    await feed.run_replay(replay["_id"])
    await feed.drain()
    assert scans == 2 and store.replays[replay["_id"]]["state"] == "done"
    # the two events enqueued by the failed scan are not sent again by the second one
    assert sorted(p[1] for p in sender.posts) == sorted(m.id for m in metas)


def test_urls_must_be_http_and_internal_hosts_need_the_setting() -> None:
    assert check_url("https://agency.example.org/hook", allow_loopback=False)
    for bad in ("ftp://x.org/a", "https:///nohost", "https://user:pw@x.org/"):
        with pytest.raises(UrlNotAllowed):
            check_url(bad, allow_loopback=True)
    for internal in (
        "http://localhost:9000/",
        "http://127.0.0.1/",
        "http://10.1.2.3/",
        "http://[::1]/",
    ):
        with pytest.raises(UrlNotAllowed):
            check_url(internal, allow_loopback=False)
        assert check_url(internal, allow_loopback=True)


def test_subscription_input_is_validated() -> None:
    with pytest.raises(ValueError, match="not public event types"):
        SubscriptionIn(url="https://a.org/h", event_types=["zhumeng.request.posted.v1"])
    with pytest.raises(ValueError):
        SubscriptionIn(url="https://a.org/h", secret="short")
    ok = SubscriptionIn(url="https://a.org/h", townships=["b", "a", "a"])
    assert ok.townships == ["a", "b"] and ok.secret is None


def test_settings_refuse_internal_webhooks_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUMENG_ENVIRONMENT", "production")
    monkeypatch.setenv("ZHUMENG_AGENCY_SECRETS_KEYS", Fernet.generate_key().decode())
    assert not AgencyFeedSettings().loopback_allowed
    monkeypatch.setenv("ZHUMENG_AGENCY_WEBHOOK_ALLOW_LOOPBACK", "true")
    with pytest.raises(ValueError, match="production"):
        AgencyFeedSettings()
    monkeypatch.setenv("ZHUMENG_ENVIRONMENT", "test")
    assert AgencyFeedSettings().loopback_allowed


def sender_answering(status: int | Exception, seen: list[httpx.Request]) -> WebhookSender:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(status, Exception):
            raise status
        return httpx.Response(status)

    return WebhookSender(transport=httpx.MockTransport(handle), clock=lambda: datetime.now(UTC))


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, SendUnavailable),
        (503, SendUnavailable),
        (429, SendUnavailable),
        (400, SendRejected),
        (404, SendRejected),
        (httpx.ConnectTimeout("t"), SendUnavailable),
        (httpx.ConnectError("refused"), SendUnavailable),
    ],
)
async def test_the_sender_maps_answers_to_retry_or_reject(
    status: int | Exception, error: type[Exception]
) -> None:
    seen: list[httpx.Request] = []
    sender = sender_answering(status, seen)
    with pytest.raises(error) as raised:
        await sender.post("https://a.example.org/hook", SECRET, "e1", b"{}")
    assert "example.org" not in str(raised.value)  # no address in errors
    await sender.close()


async def test_the_webhook_channel_posts_a_signed_notification() -> None:
    seen: list[httpx.Request] = []
    sender = sender_answering(200, seen)
    channel = WebhookChannel(sender, "https://ops.example.org/hook", SECRET)
    message = Message(
        delivery_id="e1|vol_1|webhook",
        channel="webhook",
        recipient=Recipient("vol_1", "volunteer", "Lin", phone="13900001234"),
        address=None,
        rendered=Rendered("subject", "body"),
        cause=Cause("e1", "zhumeng.volunteer.assigned.v1", "req_1"),
        locale="zh-CN",
    )
    receipt = await channel.send(message)
    assert receipt.channel == "webhook" and receipt.reference.startswith("webhook:200:")
    [request] = seen
    assert verify(dict(request.headers), request.content, SECRET) == "e1|vol_1|webhook"
    payload = json.loads(request.content)
    assert payload["recipient_id"] == "vol_1" and "13900001234" not in request.content.decode()
    await sender.close()

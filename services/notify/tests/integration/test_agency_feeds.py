"""Agency feeds on the real platform (four services, Kafka, the document server): an agency
subscribes, a request goes through its lifecycle, a local receiver over TCP gets the public
events — every signature verified with `zhumeng_kit.webhooks.verify`, no personal data; a
receiver that answers 500 first gets each event once; replay from a point in time."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pymongo import AsyncMongoClient

from zhumeng_contracts.events import (
    AssignmentCompleted,
    CheckedIn,
    PublicAssignmentCompleted,
    PublicAssignmentMade,
    PublicRequestPosted,
    PublicRequestStatusChanged,
    RequestCompleted,
)
from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import bearer, eventually, publish, request_body
from zhumeng_kit.webhooks import Received, WebhookReceiver
from zhumeng_notify.adapters.secret_box import SEALED, SecretBox
from zhumeng_notify.adapters.subscription_store import SUBSCRIPTIONS, MongoSubscriptionStore

pytestmark = pytest.mark.integration

AGENCY = bearer("agency_it_civil", "agency")
RESIDENT = bearer("res_it_feeds", "resident")
REQUESTER_NAME, REQUESTER_PHONE, REQUESTER_EMAIL = "林秀英", "13900001234", "lin.feeds@example.org"
WANTED = [
    PublicRequestPosted.TYPE,
    PublicRequestStatusChanged.TYPE,
    PublicAssignmentMade.TYPE,
    PublicAssignmentCompleted.TYPE,
]


async def receiver(answer: Callable[[Received], int] | None = None) -> WebhookReceiver:
    hook = WebhookReceiver(answer=answer)
    await hook.start()
    return hook


@pytest.fixture
async def notify(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.url("notify"), timeout=10) as api:
        yield api


async def subscribe(api: httpx.AsyncClient, hook: WebhookReceiver, **body: Any) -> str:
    created = await api.post("/v1/subscriptions", json={"url": hook.url, **body}, headers=AGENCY)
    assert created.status_code == 201, created.text
    hook.secret = created.json()["secret"]  # generated, shown this once
    assert hook.secret.startswith("whsec_")
    return str(created.json()["id"])


def events_of(
    hook: WebhookReceiver, request_id: str, replayed: bool = False
) -> list[dict[str, Any]]:
    """The CloudEvents the receiver accepted for one request (live or replayed ones)."""
    out = []
    for r in hook.accepted():
        ce = json.loads(r.body)
        if ce["subject"] == request_id and ("zhumeng-replay-id" in r.headers) == replayed:
            out.append(ce)
    return out


async def post_request(platform: Platform, key: str) -> str:
    body = request_body("haircut", "pl_longxun_v1", email=REQUESTER_EMAIL)
    body["requester"].update(name=REQUESTER_NAME, phone=REQUESTER_PHONE)
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as api:
        created = await api.post(
            "/v1/requests", json=body, headers={**RESIDENT, "Idempotency-Key": key}
        )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def request_doc(platform: Platform, request_id: str, status: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as api:

        async def reached() -> dict[str, Any] | None:
            doc = (await api.get(f"/v1/requests/{request_id}", headers=RESIDENT)).json()
            return doc if doc["status"] == status else None

        return await eventually(reached, within=90, what=f"request {status}")


async def serve_request(platform: Platform, request_id: str) -> None:
    """Assigned -> checked in -> checked out -> completed -> rated. Check-in opens two hours
    before tomorrow's window, so the test plays matching's lifecycle events for the real
    assignment (as the requests service's own integration test does)."""
    doc = await request_doc(platform, request_id, "assigned")
    (assignment,) = doc["assignments"]
    asg_id, volunteer_id = assignment["assignment_id"], assignment["volunteer_id"]
    now = datetime.now(UTC)
    bootstrap = platform.kafka.bootstrap
    await publish(
        bootstrap,
        CheckedIn(
            request_id=request_id,
            assignment_id=asg_id,
            volunteer_id=volunteer_id,
            checked_in_at=now,
        ),
    )
    await request_doc(platform, request_id, "in_progress")
    done = now + timedelta(hours=1)
    await publish(
        bootstrap,
        AssignmentCompleted(
            request_id=request_id,
            assignment_id=asg_id,
            volunteer_id=volunteer_id,
            service_type_id="haircut",
            checked_in_at=now,
            checked_out_at=done,
            hours=1.0,
        ),
    )
    await publish(
        bootstrap, RequestCompleted(request_id=request_id, hours_total=1.0, completed_at=done)
    )
    await request_doc(platform, request_id, "completed")
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=10) as api:
        rated = await api.post(
            f"/v1/requests/{request_id}/rating", json={"stars": 5}, headers=RESIDENT
        )
    assert rated.status_code == 200, rated.text


def assert_no_personal_data(hook: WebhookReceiver) -> None:
    for r in hook.received:
        text = r.body.decode()
        for pii in (REQUESTER_NAME, REQUESTER_PHONE, REQUESTER_EMAIL, "checkin_code"):
            assert pii not in text


async def test_an_agency_follows_a_request_through_its_lifecycle(
    platform: Platform, notify: httpx.AsyncClient
) -> None:
    longxun, gaide = await receiver(), await receiver()
    try:
        sub_id = await subscribe(
            notify, longxun, event_types=WANTED, townships=["pl_longxun"], description="civil"
        )
        await subscribe(notify, gaide, townships=["pl_gaide"])  # another township: nothing
        before = datetime.now(UTC)
        request_id = await post_request(platform, "it-feeds-1")
        await serve_request(platform, request_id)

        expected = {
            (PublicRequestPosted.TYPE, None),
            *((PublicRequestStatusChanged.TYPE, s) for s in ("assigned", "in_progress")),
            *((PublicRequestStatusChanged.TYPE, s) for s in ("completed", "rated")),
            (PublicAssignmentMade.TYPE, None),
            (PublicAssignmentCompleted.TYPE, None),
        }

        async def all_arrived() -> list[dict[str, Any]] | None:
            got = events_of(longxun, request_id)
            return got if len(got) >= len(expected) else None

        got = await eventually(all_arrived, within=120, what="the lifecycle's public events")
        assert {(e["type"], e["data"].get("status")) for e in got} == expected
        assert len({e["id"] for e in got}) == len(got)  # each event once
        # every request the receiver got carried a valid, fresh, first-seen signature
        assert longxun.received and all(r.error is None for r in longxun.received)
        for r in longxun.accepted():
            ce = json.loads(r.body)
            assert r.headers["webhook-id"] == ce["id"]
            assert r.headers["content-type"] == "application/cloudevents+json"
            assert ce["specversion"] == "1.0" and ce["data"]["township_id"] == "pl_longxun"
        assert_no_personal_data(longxun)
        assert not events_of(gaide, request_id)

        # the delivery records, visible to the agency (and to no other agency)
        page = (await notify.get(f"/v1/subscriptions/{sub_id}/deliveries", headers=AGENCY)).json()
        mine = [d for d in page["items"] if d["request_id"] == request_id]
        assert len(mine) == len(expected) and {d["status"] for d in mine} == {"delivered"}
        other = bearer("agency_it_other", "agency")
        assert (
            await notify.get(f"/v1/subscriptions/{sub_id}/deliveries", headers=other)
        ).status_code == 404

        # replay from before the request: every event again, marked, signed anew
        replay = await notify.post(
            f"/v1/subscriptions/{sub_id}/replay",
            json={"since": before.isoformat()},
            headers=AGENCY,
        )
        assert replay.status_code == 202, replay.text
        replay_id = replay.json()["replay_id"]

        async def replayed() -> list[dict[str, Any]] | None:
            again = events_of(longxun, request_id, replayed=True)
            return again if len(again) >= len(expected) else None

        try:
            again = await eventually(replayed, within=240, what="the replayed events")
        except AssertionError as exc:  # say where the replay stands
            page = await notify.get(f"/v1/subscriptions/{sub_id}/deliveries", headers=AGENCY)
            states = [
                (d.get("replay_id"), d.get("status"), d.get("attempts"))
                for d in page.json()["items"]
                if d["request_id"] == request_id
            ]
            raise AssertionError(f"{exc}; deliveries of this request: {states}") from None
        assert sorted(e["id"] for e in again) == sorted(e["id"] for e in got)
        assert {
            r.headers["zhumeng-replay-id"]
            for r in longxun.accepted()
            if "zhumeng-replay-id" in r.headers
        } == {replay_id}
        assert all(r.error is None for r in longxun.received)
        done = (
            await notify.get(f"/v1/subscriptions/{sub_id}/replays/{replay_id}", headers=AGENCY)
        ).json()
        assert done["state"] == "done" and done["matched"] >= len(expected)

        # a replay from now on finds none of those events
        later = await notify.post(
            f"/v1/subscriptions/{sub_id}/replay",
            json={"since": datetime.now(UTC).isoformat()},
            headers=AGENCY,
        )

        async def finished() -> dict[str, Any] | None:
            doc = (
                await notify.get(
                    f"/v1/subscriptions/{sub_id}/replays/{later.json()['replay_id']}",
                    headers=AGENCY,
                )
            ).json()
            return doc if doc["state"] == "done" else None

        assert (await eventually(finished, within=60, what="the later replay"))["matched"] == 0
    finally:
        await longxun.stop()
        await gaide.stop()


async def test_a_receiver_failing_first_gets_each_event_once(
    platform: Platform, notify: httpx.AsyncClient
) -> None:
    failed_once: set[str] = set()

    def flaky(r: Received) -> int:
        msg_id = r.headers["webhook-id"]
        if msg_id not in failed_once:
            failed_once.add(msg_id)
            return 500
        return 200

    hook = await receiver(flaky)
    try:
        sub_id = await subscribe(
            notify,
            hook,
            event_types=[PublicRequestPosted.TYPE, PublicRequestStatusChanged.TYPE],
            townships=["pl_longxun"],
        )
        request_id = await post_request(platform, "it-feeds-flaky")
        await request_doc(platform, request_id, "assigned")

        async def both() -> list[dict[str, Any]] | None:
            got = events_of(hook, request_id)
            return got if len(got) >= 2 else None

        got = await eventually(both, within=120, what="posted and assigned, after a 500")
        assert sorted(e["type"] for e in got) == [
            PublicRequestPosted.TYPE,
            PublicRequestStatusChanged.TYPE,
        ]
        ids = [e["id"] for e in got]
        assert len(set(ids)) == len(ids)  # accepted exactly once each
        mine = [r for r in hook.received if json.loads(r.body)["subject"] == request_id]
        assert sorted(r.status for r in mine) == [200, 200, 500, 500]
        assert all(r.error is None for r in hook.received)
        # retries are signed anew: a new timestamp each time, the same webhook-id
        for msg_id in ids:
            stamps = {
                r.headers["webhook-timestamp"] for r in mine if r.headers["webhook-id"] == msg_id
            }
            assert len(stamps) == 2  # the backoff is >= 2 s

        async def delivered() -> list[dict[str, Any]] | None:
            page = (
                await notify.get(f"/v1/subscriptions/{sub_id}/deliveries", headers=AGENCY)
            ).json()
            items = [d for d in page["items"] if d["request_id"] == request_id]
            return items if all(d["status"] == "delivered" for d in items) else None

        items = await eventually(delivered, within=30, what="delivered records")
        assert {(d["attempts"], d["status_code"]) for d in items} == {(2, 200)}
        assert {d["last_error"] for d in items} == {"HTTP 500"}
    finally:
        await hook.stop()


async def stored_subscription(platform: Platform, sub_id: str) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(platform.mongo.uri)
    try:
        coll = client[f"{platform.config.db_prefix}_notify"][SUBSCRIPTIONS]
        doc = await coll.find_one({"_id": sub_id})
        assert doc is not None
        return doc
    finally:
        await client.close()


async def test_subscription_api_guards_input_and_never_returns_the_secret(
    notify: httpx.AsyncClient, platform: Platform
) -> None:
    assert (await notify.get("/v1/subscriptions")).status_code == 401
    assert (
        await notify.get("/v1/subscriptions", headers=bearer("res_1", "resident"))
    ).status_code == 403
    for bad in (
        {"url": "ftp://agency.example.org/hook"},
        {"url": "https://agency.example.org/hook", "event_types": ["zhumeng.request.posted.v1"]},
        {"url": "https://agency.example.org/hook", "secret": "too-short"},
        {"url": "https://agency.example.org/hook", "unknown": 1},
    ):
        refused = await notify.post("/v1/subscriptions", json=bad, headers=AGENCY)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
    own_secret = "a-secret-of-the-agency-own-choosing-123"
    created = await notify.post(
        "/v1/subscriptions",
        json={"url": "https://agency.example.org/hook", "secret": own_secret},
        headers=AGENCY,
    )
    assert created.status_code == 201 and created.json()["secret"] is None
    sub_id = created.json()["id"]
    stored = await stored_subscription(platform, sub_id)  # sealed at rest, never plain
    assert stored["secret"].startswith(SEALED) and own_secret not in str(stored)
    listed = await notify.get("/v1/subscriptions", headers=AGENCY)
    assert sub_id in {s["id"] for s in listed.json()}
    assert own_secret not in listed.text and "secret" not in listed.json()[0]
    bad_replay = await notify.post(
        f"/v1/subscriptions/{sub_id}/replay", json={"since": "yesterday"}, headers=AGENCY
    )
    assert bad_replay.status_code == 422
    assert (await notify.delete(f"/v1/subscriptions/{sub_id}", headers=AGENCY)).status_code == 204
    assert (await notify.get(f"/v1/subscriptions/{sub_id}", headers=AGENCY)).status_code == 404
    spec = (await notify.get("/v1/feeds/asyncapi.json")).json()
    assert set(spec["channels"]) == {"public.requests.v1", "public.assignments.v1"}


async def test_start_up_seals_plain_and_retired_key_secrets_and_stops_on_unknown_ones(
    platform: Platform,
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(platform.mongo.uri)
    try:
        db = client[f"seal_{secrets.token_hex(4)}"]
        base = {
            "owner": "agency_x",
            "url": "https://a.example.org/h",
            "created_at": datetime.now(UTC),
        }
        await db[SUBSCRIPTIONS].insert_many(
            [
                {"_id": "sub_plain", **base, "secret": "whsec_plain", "deleted_at": None},
                {
                    "_id": "sub_old",
                    **base,
                    "secret": SecretBox([old]).seal("whsec_old"),
                    "deleted_at": None,
                },
            ]
        )
        store = MongoSubscriptionStore(db, SecretBox([new, old]))
        await store.seal_secrets()
        stored = {d["_id"]: d["secret"] async for d in db[SUBSCRIPTIONS].find()}
        only_new = SecretBox([new])
        assert {k: only_new.open(v) for k, v in stored.items()} == {
            "sub_plain": "whsec_plain",
            "sub_old": "whsec_old",
        }
        assert "whsec_" not in "".join(stored.values())
        assert [s.secret for s in await store.active()] == ["whsec_old", "whsec_plain"]
        with pytest.raises(RuntimeError, match="sub_"):  # a key was lost: stop, do not guess
            await MongoSubscriptionStore(db, SecretBox([old])).seal_secrets()
    finally:
        await client.close()

"""`GET /v1/stream` served by uvicorn over TCP, read by a real HTTP client, on the real local
document server (no Kafka needed): live events to every open stream of the person, resume
after Last-Event-ID from the stored deliveries, catch-up of what another process sent,
heartbeats, and 401 problems without a token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pymongo.asynchronous.collection import AsyncCollection

from zhumeng_devstack.infra import FerretDBServer, free_port
from zhumeng_devstack.testing import bearer, eventually
from zhumeng_kit.auth import principal_dependency
from zhumeng_kit.ids import new_id
from zhumeng_kit.mongo import Doc, make_client
from zhumeng_kit.problems import install_problem_handlers
from zhumeng_notify.adapters.channels import InAppChannel, InAppFeed, InAppHub
from zhumeng_notify.adapters.mongo import MongoDeliveryRepository
from zhumeng_notify.domain.model import Cause, Delivery, Message, Recipient, Rendered
from zhumeng_notify.entrypoints import stream_http
from zhumeng_notify.settings import NotifySettings

pytestmark = pytest.mark.integration

WAIT = 60.0  # a safety limit on a loaded machine, not a speed assertion


class Service:
    def __init__(self, url: str, hub: InAppHub, coll: AsyncCollection[Doc]) -> None:
        self.url = url
        self.hub = hub
        self.coll = coll
        self.deliveries = MongoDeliveryRepository(coll)
        self.channel = InAppChannel(hub)


@pytest.fixture(scope="module")
async def service(docdb: FerretDBServer) -> AsyncIterator[Service]:
    client = make_client(docdb.uri, "notify-sse-test")
    coll: AsyncCollection[Doc] = client["zt_notify_sse"]["deliveries"]
    await MongoDeliveryRepository(coll).ensure_indexes()
    hub = InAppHub()
    app = FastAPI()
    install_problem_handlers(app)
    current = principal_dependency(NotifySettings())
    app.include_router(
        stream_http.router(hub, InAppFeed(coll), current, heartbeat_s=0.5, poll_s=0.3)
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await eventually(started, within=WAIT, interval=0.05, what="uvicorn to listen")
    try:
        yield Service(f"http://127.0.0.1:{port}", hub, coll)
    finally:
        server.should_exit = True
        await task
        await client.close()


def message(person: str, n: int) -> Message:
    return Message(
        delivery_id=f"evt_{n}|{person}|inapp",
        channel="inapp",
        recipient=Recipient(person, "requester", "王秀英"),
        address=None,
        rendered=Rendered(f"通知 {n}", f"第 {n} 条通知的正文\n第二行"),
        cause=Cause(f"evt_{n}", "zhumeng.volunteer.assigned.v1", f"req_{n}"),
        locale="zh-CN",
    )


async def store(service: Service, msg: Message, sent: bool = True) -> None:
    """What the delivery pipeline writes: claim (pending), then sent."""
    now = datetime.now(UTC)
    await service.deliveries.claim(Delivery.of(msg), now, timedelta(seconds=30))
    if sent:
        await service.coll.update_one({"_id": msg.delivery_id}, {"$set": {"status": "sent"}})


class Stream:
    """One open SSE connection, read event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, comments: bool = False) -> dict[str, str]:
        return await asyncio.wait_for(self._next(comments), WAIT)

    async def _next(self, comments: bool) -> dict[str, str]:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line == "":
                if fields:
                    return fields
            elif line.startswith(":"):
                if comments:
                    return {"comment": line[1:].strip()}
            else:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    async def notification(self) -> tuple[str, dict[str, Any]]:
        while True:
            event = await self.next()
            if event.get("event") == "notification":
                return event["id"], json.loads(event["data"])


async def open_stream(
    client: httpx.AsyncClient, stack: AsyncExitStack, person: str, last: str | None = None
) -> Stream:
    headers = bearer(person, "resident")
    if last:
        headers["Last-Event-ID"] = last
    response = await stack.enter_async_context(client.stream("GET", "/v1/stream", headers=headers))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    stream = Stream(response)
    assert (await stream.next())["retry"]  # the first frame: the stream is subscribed
    return stream


@pytest.fixture
async def client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url, timeout=WAIT) as c:
        yield c


async def test_live_events_reach_every_stream_of_the_person_only(
    service: Service, client: httpx.AsyncClient
) -> None:
    person, other = f"res_{new_id('p')}", f"res_{new_id('p')}"
    async with AsyncExitStack() as stack:
        first = await open_stream(client, stack, person)
        second = await open_stream(client, stack, person)
        theirs = await open_stream(client, stack, other)
        assert service.hub.streams(person) == 2

        mine = message(person, 1)
        await store(service, mine, sent=False)
        receipt = await service.channel.send(mine)
        assert receipt.reference == f"inapp:{mine.delivery_id}"
        for stream in (first, second):
            event_id, data = await stream.notification()
            assert event_id == mine.delivery_id
            assert data["subject"] == "通知 1" and data["body"] == "第 1 条通知的正文\n第二行"
            assert data["request_id"] == "req_1"

        # the other person's stream: its first notification is its own
        for_other = message(other, 2)
        await store(service, for_other, sent=False)
        await service.channel.send(for_other)
        event_id, _ = await theirs.notification()
        assert event_id == for_other.delivery_id


async def test_last_event_id_resumes_from_stored_deliveries(
    service: Service, client: httpx.AsyncClient
) -> None:
    person = f"res_{new_id('p')}"
    sent = [message(person, n) for n in (11, 12, 13)]
    for msg in sent:
        await store(service, msg)
    async with AsyncExitStack() as stack:
        stream = await open_stream(client, stack, person, last=sent[0].delivery_id)
        assert [(await stream.notification())[0] for _ in range(2)] == [
            sent[1].delivery_id,
            sent[2].delivery_id,
        ]
        # then live ones (no stored history is repeated before them)
        live = message(person, 14)
        await store(service, live, sent=False)
        await service.channel.send(live)
        assert (await stream.notification())[0] == live.delivery_id


async def test_deliveries_sent_elsewhere_arrive_by_the_stored_catch_up(
    service: Service, client: httpx.AsyncClient
) -> None:
    person = f"res_{new_id('p')}"
    old = message(person, 21)
    await store(service, old)  # history: not repeated on a fresh stream
    async with AsyncExitStack() as stack:
        stream = await open_stream(client, stack, person)
        elsewhere = message(person, 22)  # stored by another replica, not in this hub
        await store(service, elsewhere)
        assert (await stream.notification())[0] == elsewhere.delivery_id


async def test_idle_streams_get_heartbeats(service: Service, client: httpx.AsyncClient) -> None:
    async with AsyncExitStack() as stack:
        stream = await open_stream(client, stack, f"res_{new_id('p')}")
        assert await stream.next(comments=True) == {"comment": "heartbeat"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}])
async def test_a_stream_needs_a_valid_token(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/v1/stream", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")

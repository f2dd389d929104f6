"""Agency feeds benchmark: webhook deliveries per second through a local receiver, and the
time from a public event's publication to its arrival at the receiver (p50/p99), next to a
bare floor. It prints figures; it is not a test.

    uv run python bench/feeds_bench.py                    # N=500 events, R=3 runs, burst
    uv run python bench/feeds_bench.py --events 300 --rate 50   # open loop, latency w/o queues

Set-up: its own Kafka and document server on free ports (a temp dir) and one notify process
(`running_infra`, `running_service`). An agency subscribes to every public event type with
the receiver's URL (`zhumeng_kit.webhooks.WebhookReceiver`, in this process, which verifies
every signature).

Platform run: N `PublicRequestPosted` are published onto `public.requests.v1` as the requests
service would (structured CloudEvents, idempotent producer); notify consumes them, records a
delivery per event, arms a durable timer and POSTs the signed CloudEvent. Latency = arrival at
the receiver - the producer's acknowledged send time of that event.

Floor run: the same N events onto a bench topic; a bare aiokafka consumer reads them and POSTs
each, signed, with httpx (same concurrency as notify's webhook sender), with no delivery
record, no timer, no retry — what an at-most-once forwarder would cost. Same clock points.

Figures are the median over R runs of each side; the ratio is platform / floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import PublicRequestPosted
from zhumeng_devstack.testing import Infra, bearer, running_infra, running_service
from zhumeng_kit.kafka import all_partitions
from zhumeng_kit.outbox import wire_message
from zhumeng_kit.webhooks import WebhookReceiver, signed_headers

FLOOR_TOPIC = "bench.feeds.floor"
CONCURRENCY = 32  # notify's default webhook concurrency (ZHUMENG_AGENCY_WEBHOOK_CONCURRENCY)


def say(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


@dataclass
class Run:
    per_s: float
    p50_ms: float
    p99_ms: float


def events(n: int) -> list[tuple[EventMeta, PublicRequestPosted]]:
    start = datetime.now(UTC) + timedelta(days=1)
    out = []
    for _ in range(n):
        event = PublicRequestPosted(
            request_id=f"req_bench_{secrets.token_hex(6)}",
            service_type_id="haircut",
            township_id="pl_longxun",
            place_id="pl_longxun_v1",
            window={"start": start, "end": start + timedelta(hours=3)},
            slots=1,
            posted_at=datetime.now(UTC),
        )
        out.append((EventMeta.new(event, "zhumeng/bench"), event))
    return out


async def produce(
    bootstrap: str, batch: list[tuple[EventMeta, PublicRequestPosted]], topic: str, rate: float
) -> dict[str, float]:
    """Publish; returns each event id's acknowledged send time (time.time())."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    sent: dict[str, float] = {}
    try:

        async def one(meta: EventMeta, event: PublicRequestPosted) -> None:
            value, headers = wire_message(meta, event)
            await producer.send_and_wait(
                topic,
                value,
                key=event.key().encode(),
                headers=[(k, v.encode()) for k, v in headers.items()],
            )
            sent[meta.id] = time.time()

        if rate <= 0:
            await asyncio.gather(*(one(m, e) for m, e in batch))
        else:
            tasks = []
            for meta, event in batch:
                tasks.append(asyncio.create_task(one(meta, event)))
                await asyncio.sleep(1 / rate)
            await asyncio.gather(*tasks)
    finally:
        await producer.stop()
    return sent


async def arrivals(receiver: WebhookReceiver, ids: set[str], wait_s: float) -> dict[str, float]:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        got = {
            r.headers["webhook-id"]: r.at
            for r in receiver.accepted()
            if r.headers["webhook-id"] in ids
        }
        if len(got) >= len(ids):
            return got
        await asyncio.sleep(0.05)
    raise SystemExit(f"only {len(got)}/{len(ids)} deliveries arrived within {wait_s}s")


def figures(sent: dict[str, float], arrived: dict[str, float]) -> Run:
    lat = sorted((arrived[i] - sent[i]) * 1000 for i in sent)
    span = max(arrived.values()) - min(sent.values())
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return Run(len(lat) / span, statistics.median(lat), p99)


async def platform_run(
    infra: Infra, receiver: WebhookReceiver, n: int, rate: float, wait_s: float
) -> Run:
    batch = events(n)
    ids = {m.id for m, _ in batch}
    waiting = asyncio.create_task(arrivals(receiver, ids, wait_s))
    sent = await produce(infra.kafka.bootstrap, batch, PublicRequestPosted.TOPIC, rate)
    return figures(sent, await waiting)


async def floor_run(
    infra: Infra, receiver: WebhookReceiver, n: int, rate: float, wait_s: float
) -> Run:
    batch = events(n)
    ids = {m.id for m, _ in batch}
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka.bootstrap, group_id=None)
    await consumer.start()
    parts = await all_partitions(consumer, [FLOOR_TOPIC])
    consumer.assign(parts)
    await consumer.seek_to_end()
    for tp in parts:  # resolve the end now, before the events are produced
        await consumer.position(tp)
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY), timeout=10)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def post(value: bytes) -> None:
        async with gate:
            msg_id = json.loads(value)["id"]
            headers = {
                "content-type": "application/cloudevents+json",
                **signed_headers(msg_id, value, receiver.secret),
            }
            await client.post(receiver.url, content=value, headers=headers)

    async def forward() -> None:
        pending: set[asyncio.Task[None]] = set()
        async for record in consumer:
            task = asyncio.create_task(post(record.value))
            pending.add(task)
            task.add_done_callback(pending.discard)

    forwarder = asyncio.create_task(forward())
    try:
        waiting = asyncio.create_task(arrivals(receiver, ids, wait_s))
        sent = await produce(infra.kafka.bootstrap, batch, FLOOR_TOPIC, rate)
        return figures(sent, await waiting)
    finally:
        forwarder.cancel()
        await asyncio.gather(forwarder, return_exceptions=True)
        await client.aclose()
        await consumer.stop()


async def create_floor_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if FLOOR_TOPIC not in await admin.list_topics():
            await admin.create_topics([NewTopic(FLOOR_TOPIC, 3, 1)])
    finally:
        await admin.close()


async def bench(infra: Infra, notify_url: str, args: argparse.Namespace) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    await create_floor_topic(infra.kafka.bootstrap)
    async with httpx.AsyncClient(base_url=notify_url, timeout=10) as api:
        created = await api.post(
            "/v1/subscriptions",
            json={"url": receiver.url, "description": "bench"},
            headers=bearer("agency_bench", "agency"),
        )
        created.raise_for_status()
        receiver.secret = created.json()["secret"]
    say("warming up")
    await platform_run(infra, receiver, 20, 0, args.wait_s)
    await floor_run(infra, receiver, 20, 0, args.wait_s)
    platform: list[Run] = []
    floor: list[Run] = []
    for i in range(args.runs):
        receiver.received.clear()
        platform.append(await platform_run(infra, receiver, args.events, args.rate, args.wait_s))
        receiver.received.clear()
        floor.append(await floor_run(infra, receiver, args.events, args.rate, args.wait_s))
        say(f"run {i + 1}/{args.runs}: platform {platform[-1]}  floor {floor[-1]}")
    bad = [r for r in receiver.received if r.error]
    await receiver.stop()

    def med(runs: list[Run], field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in runs))

    mode = "burst (all events at once)" if args.rate <= 0 else f"open loop, {args.rate:g} events/s"
    print(f"\nAgency feeds: {args.events} events x {args.runs} runs, {mode}; medians of runs")
    print(f"{'':28}{'platform':>12}{'floor':>12}{'ratio':>9}")
    for label, field in (
        ("deliveries/s", "per_s"),
        ("event -> receiver p50 ms", "p50_ms"),
        ("event -> receiver p99 ms", "p99_ms"),
    ):
        p, f = med(platform, field), med(floor, field)
        print(f"{label:28}{p:12.1f}{f:12.1f}{p / f:9.2f}")
    print(f"signatures that failed verification: {len(bad)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500, help="events per run")
    parser.add_argument("--runs", type=int, default=3, help="platform + floor run pairs")
    parser.add_argument("--rate", type=float, default=0, help="events/s (0: burst)")
    parser.add_argument("--wait-s", type=float, default=300, help="seconds to wait per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="feeds-bench-") as tmp:
        say("starting Kafka, the document server and notify")
        with (
            running_infra(Path(tmp)) as infra,
            running_service(
                "notify", infra, f"fb{secrets.token_hex(3)}", ZHUMENG_LOG_LEVEL="WARNING"
            ) as notify,
        ):
            asyncio.run(bench(infra, notify.url, args))


if __name__ == "__main__":
    main()

"""Notify benchmark: deliveries per second through the log channel, and the time from an
event's publish to its delivery being recorded, beside a bare floor on the same broker and
database. Prints figures; asserts nothing.

* **notify**: the real service (`python -m zhumeng_notify`, a process of its own) on a local
  Kafka broker and document server started here (`zhumeng_devstack.testing.running_infra`),
  with only the log channel (in-app off; `--channel inapp` measures in-app instead) and
  quiet hours off. The bench publishes N `RequestUnmatched` events to `matching.events.v1`
  (their requester contacts were published before notify started), each due one
  notification. *Publish time* is taken just before each send; the
  *delivery time* is the `delivered_at` notify stamps when it records the delivery as sent
  (the same clock: one machine), read from `notify.events.v1` by a plain consumer positioned
  at the end of the topic before the run.
* **floor**: the least any consumer of these events must do on the same broker and database:
  an aiokafka consumer group on `bench.floor.events` (6 partitions, like
  matching.events.v1) that, per polled batch, inserts one delivery document per event with
  one `insert_many`, then commits the offsets; its *delivery time* is stamped just before
  that insert. No envelope decoding, no claim/complete pair, no channel, no outbox, no relay.

Runs alternate (notify, floor, floor, notify, ...) R times; the figures are the median of the
runs per column, and the ratio notify/floor.

    uv run python bench/notify_bench.py [--events N] [--runs R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

from zhumeng_contracts.envelope import EventMeta, encode
from zhumeng_contracts.events import Event, RequesterContact, RequestUnmatched, ServiceTypeRecord
from zhumeng_devstack.infra import free_port
from zhumeng_devstack.stack import ServiceProcess
from zhumeng_devstack.testing import Infra, running_infra, service_env
from zhumeng_kit.kafka import all_partitions

FLOOR_TOPIC = "bench.floor.events"
NOTIFY_TOPIC = "notify.events.v1"


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Run:
    kind: str
    n: int
    published: dict[str, float]  # event id -> publish time (epoch s)
    delivered: dict[str, float]  # event id -> delivery recorded (epoch s)

    def figures(self) -> dict[str, float]:
        done = [k for k in self.published if k in self.delivered]
        lat = [(self.delivered[k] - self.published[k]) * 1000 for k in done]
        span = max(self.delivered[k] for k in done) - min(self.published.values())
        return {
            "done": len(done),
            "per_s": len(done) / span if span > 0 else 0.0,
            "p50": pct(lat, 50),
            "p95": pct(lat, 95),
            "p99": pct(lat, 99),
        }


def row(label: str, kind: str, f: dict[str, float], n: int) -> str:
    return (
        f"{label:>3} {kind:<7} {int(f['done']):>6}/{n:<6} {f['per_s']:>9.1f}"
        f" {f['p50']:>9.1f} {f['p95']:>9.1f} {f['p99']:>9.1f}"
    )


HEADER = "run kind      done/N    deliv/s   p50(ms)   p95(ms)   p99(ms)"


Item = tuple[str, Event, list[tuple[str, bytes]]]  # topic, event, CloudEvents headers


def item(topic: str, event: Event) -> Item:
    return (topic, event, EventMeta.new(event, "zhumeng/bench").to_headers())


async def produce(bootstrap: str, items: Sequence[Item]) -> dict[str, float]:
    """Publish (topic, event, headers) as fast as the producer takes them; returns the
    publish time per event id (the ce_id header)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    published: dict[str, float] = {}
    try:
        pending = []
        for topic, event, headers in items:
            ce_id = dict(headers)["ce_id"].decode()
            published[ce_id] = time.time()
            pending.append(
                await producer.send(topic, encode(event), key=event.key().encode(), headers=headers)
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return published


async def end_positioned(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    parts = await all_partitions(consumer, [topic])
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for tp in parts:
        await consumer.position(tp)
    return consumer


async def collect(
    consumer: AIOKafkaConsumer, wanted: set[str], timeout_s: float
) -> dict[str, float]:
    """cause event id -> delivered_at (epoch s) of `sent` NotificationDelivered events."""
    got: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(got) < len(wanted) and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
            for r in records:
                body = json.loads(r.value)
                if body.get("status") == "sent" and body["cause_event_id"] in wanted:
                    at = datetime.fromisoformat(body["delivered_at"]).timestamp()
                    got.setdefault(body["cause_event_id"], at)
    return got


def unmatched(request_id: str) -> RequestUnmatched:
    return RequestUnmatched(
        request_id=request_id,
        service_type_id="st_bench",
        reasons={"too_far": 1},
        candidates_considered=1,
        decided_at=datetime.now(UTC),
    )


async def notify_run(bootstrap: str, request_ids: list[str], timeout_s: float) -> Run:
    reader = await end_positioned(bootstrap, NOTIFY_TOPIC)
    try:
        events = [unmatched(rid) for rid in request_ids]
        items = [item(e.TOPIC, e) for e in events]
        published = await produce(bootstrap, items)
        delivered = await collect(reader, set(published), timeout_s)
    finally:
        await reader.stop()
    return Run("notify", len(request_ids), published, delivered)


async def floor_run(bootstrap: str, mongo_uri: str, n: int, run: int, timeout_s: float) -> Run:
    """A bare consumer group: per polled batch, one insert_many, then commit."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    coll = mongo["bench_floor"][f"deliveries_{run}"]
    group = f"bench-floor-{run}-{os.getpid()}"
    consumer = AIOKafkaConsumer(
        FLOOR_TOPIC,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        max_poll_records=500,
    )
    await consumer.start()
    delivered: dict[str, float] = {}
    try:
        while not consumer.assignment():  # joined: then "latest" means from now on
            await consumer.getmany(timeout_ms=200)
        for tp in consumer.assignment():
            await consumer.seek_to_end(tp)
            await consumer.position(tp)
        events = [unmatched(f"floor_{run}_{i}") for i in range(n)]
        items = [item(FLOOR_TOPIC, e) for e in events]
        producing = asyncio.create_task(produce(bootstrap, items))
        deadline = time.monotonic() + timeout_s
        while len(delivered) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            records = [r for rs in batch.values() for r in rs]
            if not records:
                continue
            now = time.time()
            docs = []
            for r in records:
                ce_id = dict(r.headers)["ce_id"].decode()
                docs.append({"_id": ce_id, "status": "sent", "delivered_at": now})
                delivered.setdefault(ce_id, now)
            await coll.insert_many(docs, ordered=False)
            await consumer.commit()
        published = await producing
    finally:
        await consumer.stop()
        await mongo.close()
    return Run("floor", n, published, delivered)


async def create_floor_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.create_topics([NewTopic(FLOOR_TOPIC, 6, 1)])
    finally:
        await admin.close()


async def seed(bootstrap: str, request_ids: list[str]) -> None:
    service = ServiceTypeRecord(
        id="st_bench",
        name_zh="义剪",
        name_en="Free haircut",
        category="care",
        default_duration_min=60,
        target_claim_min=30,
        version=1,
    )
    contacts: list[Event] = [
        RequesterContact(
            request_id=rid, requester_id=f"res_{rid}", name="测试居民", phone="13900000000"
        )
        for rid in request_ids
    ]
    items = [item(e.TOPIC, e) for e in [service, *contacts]]
    await produce(bootstrap, items)


def start_notify(infra: Infra, data: Path, batch: int, channel: str) -> ServiceProcess:
    port = free_port()
    env = service_env(
        infra,
        port,
        "bench",
        ZHUMENG_NOTIFY_QUIET_HOURS="off",
        # the residents have a phone but no SMS provider is configured: in-app, if enabled,
        # comes before the log channel
        ZHUMENG_INAPP_ENABLED=str(channel == "inapp").lower(),
        ZHUMENG_NOTIFY_BATCH_MAX_RECORDS=str(batch),
        ZHUMENG_RELAY_POLL_MS="200",
    )
    svc = ServiceProcess("notify", port, env, data / "notify.log")
    svc.start()
    svc.wait_ready(180)
    return svc


async def measure(infra: Infra, data: Path, args: argparse.Namespace) -> list[Run]:
    bootstrap = infra.kafka.bootstrap
    ids = [[f"b{r}_{i}" for i in range(args.events)] for r in range(args.runs + 1)]
    await create_floor_topic(bootstrap)
    log(f"· seeding {sum(len(x) for x in ids)} requester contacts")
    await seed(bootstrap, [rid for run in ids for rid in run])
    log("· starting notify")
    svc = await asyncio.to_thread(start_notify, infra, data, args.batch, args.channel)
    runs: list[Run] = []
    try:
        log("· warm-up (not measured)")
        await notify_run(bootstrap, ids[-1][: min(200, args.events)], args.timeout)
        for r in range(args.runs):
            order = ("notify", "floor") if r % 2 == 0 else ("floor", "notify")
            for kind in order:
                log(f"· run {r + 1}: {kind}")
                if kind == "notify":
                    result = await notify_run(bootstrap, ids[r], args.timeout)
                else:
                    result = await floor_run(
                        bootstrap, infra.mongo.uri, args.events, r, args.timeout
                    )
                print(row(str(r + 1), kind, result.figures(), result.n), flush=True)
                runs.append(result)
    finally:
        await asyncio.to_thread(svc.stop)
    return runs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=5000, help="events per run (default 5000)")
    ap.add_argument("--runs", type=int, default=3, help="notify + floor run pairs (default 3)")
    ap.add_argument(
        "--batch", type=int, default=2000, help="notify's max records per poll and per flush"
    )
    ap.add_argument(
        "--channel",
        choices=("log", "inapp"),
        default="log",
        help="the channel notify delivers on (default log)",
    )
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait per run")
    ap.add_argument("--keep-data", action="store_true", help="keep the data dir and logs")
    args = ap.parse_args(argv)
    print(f"machine (start): nproc={os.cpu_count()} load average {os.getloadavg()}")
    print(
        f"N={args.events} events per run, R={args.runs} runs, {args.channel} channel; latency: "
        "event publish -> delivery recorded"
    )
    data = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    print(HEADER, flush=True)
    with running_infra(data) as infra:
        runs = asyncio.run(measure(infra, data, args))
    med: dict[str, dict[str, float]] = {}
    print("\nmedian of the runs:")
    print(HEADER)
    for kind in ("notify", "floor"):
        figs = [r.figures() for r in runs if r.kind == kind]
        med[kind] = {k: statistics.median(f[k] for f in figs) for k in figs[0]}
        print(row("med", kind, med[kind], args.events))
    n, f = med["notify"], med["floor"]
    print("\nratio notify/floor:")
    print(f"  throughput  {n['per_s'] / f['per_s']:.2f}x  (below 1 = slower)")
    print(f"  p50 / p99   {n['p50'] / f['p50']:.1f}x / {n['p99'] / f['p99']:.1f}x")
    print(f"target: >= 1,000 deliveries/s on the log channel; measured {n['per_s']:.0f}/s")
    print(f"machine (end): load average {os.getloadavg()}")
    if args.keep_data:
        print(f"data kept in {data}")
    else:
        import shutil

        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()

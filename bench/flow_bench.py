"""Flow benchmark: how fast does a posted request turn into a notification, and how far is the
platform from a bare-hands floor doing the same hops on the same broker and database?

What is measured (per run, N requests sent by C concurrent closed-loop clients):

* **Platform run.** N requests are POSTed to the requests service (`/v1/requests`, a real JWT
  per requester, an `Idempotency-Key` each, a requester email so notify mails through the
  real SMTP sink). For each request the bench notes the wall-clock time just before the POST
  and when its response arrived (POST latency). The notification time is the
  `NotificationDelivered.delivered_at` that notify stamps when it records the delivery
  (the same clock: everything runs on this machine). The bench reads `matching.events.v1`
  (to learn which request each decision event belongs to, and whether 1 or 2 notifications
  are due: unmatched = requester only, assigned = requester and volunteer) and
  `notify.events.v1` with a plain aiokafka consumer without a group. The reader only has to
  keep up; its own delay does not enter the figures because the timestamps are notify's.
* **Floor run.** The same hops with bare aiokafka + pymongo, no framework, in this process:
  intake inserts a request document with an embedded outbox; a relay publishes it with an
  idempotent producer (acks=all) to `bench.floor.requests` and clears the outbox; a
  "matching" consumer does one conditional `find_one_and_update` on a volunteer-load
  document and inserts a decision document with an outbox; its relay publishes to
  `bench.floor.decisions`; a "notify" consumer inserts a delivery document, whose
  `delivered_at` is the notification time. Separate topics (6 partitions) and database.

Figures: throughput = requests fully notified / (last notification - first POST); latency
percentiles of the POST (floor: the intake insert) and of POST -> first notification.
Platform and floor runs alternate R times (order swapped every run, so noise hits both);
the bench prints each run, the median of the runs and the ratios platform/floor.

Between platform runs the matching service's volunteer loads are cleared and matching is
restarted (it caches loads), so every run sees the same free capacity; a few warm-up
requests (not measured) precede every run.

    uv run python bench/flow_bench.py [--requests N] [--runs R] [--concurrency C] [--rate X]

`--rate X` offers X requests/s instead of a closed loop: latency without queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from zhumeng_contracts.envelope import EventMeta, decode
from zhumeng_contracts.events import NotificationDelivered, VolunteerAssigned
from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import bearer, isolated_stack_config, request_body
from zhumeng_kit.kafka import all_partitions

Doc = dict[str, Any]
SERVICE_TYPES = ("haircut", "neighbour_help", "care_visit", "culture_event")
ADMIN = bearer("admin_bench", "admin")
MATCHING_TOPIC = "matching.events.v1"
NOTIFY_TOPIC = "notify.events.v1"
FLOOR_DB = "bench_floor"
FLOOR_REQUESTS = "bench.floor.requests"
FLOOR_DECISIONS = "bench.floor.decisions"
FLOOR_PARTITIONS = 6
FLOOR_VOLUNTEERS = 200
RELAY_POLL_S = 0.2  # the platform's default relay poll (ZHUMENG_RELAY_POLL_MS=200)
WARMUP = 5


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ---- figures -----------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Sent:
    """One request as the load generator saw it (epoch seconds)."""

    sent: float
    acked: float
    request_id: str | None  # None: the intake refused it


@dataclass
class RunResult:
    kind: str  # platform | floor
    run: int
    sent: list[Sent]
    first_note: dict[str, float]  # request id -> first notification recorded
    last_note: dict[str, float]  # request id -> last due notification recorded
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def accepted(self) -> list[Sent]:
        return [s for s in self.sent if s.request_id]

    @property
    def done(self) -> list[Sent]:
        return [s for s in self.accepted if s.request_id in self.last_note]

    @property
    def throughput(self) -> float:
        done = self.done
        if not done:
            return 0.0
        start = min(s.sent for s in self.sent)
        end = max(self.last_note[str(s.request_id)] for s in done)
        return len(done) / (end - start)

    @property
    def post_ms(self) -> list[float]:
        return [(s.acked - s.sent) * 1000 for s in self.accepted]

    @property
    def note_ms(self) -> list[float]:
        return [
            (self.first_note[str(s.request_id)] - s.sent) * 1000
            for s in self.accepted
            if s.request_id in self.first_note
        ]

    def figures(self) -> dict[str, float]:
        post, note = self.post_ms, self.note_ms
        return {
            "thr": self.throughput,
            "post50": pct(post, 50),
            "post95": pct(post, 95),
            "post99": pct(post, 99),
            "note50": pct(note, 50),
            "note95": pct(note, 95),
            "note99": pct(note, 99),
        }


HEADER = (
    f"{'run':>3} {'kind':<8} {'ok/N':>9} {'notified':>8} {'req/s':>7} "
    f"{'POST p50':>9} {'p95':>7} {'p99':>7} {'→notif p50':>11} {'p95':>7} {'p99':>7}  "
    "outcomes"
)


def row(label: str, kind: str, ok: str, notified: str, f: dict[str, float], extra: str = "") -> str:
    return (
        f"{label:>3} {kind:<8} {ok:>9} {notified:>8} {f['thr']:>7.1f} "
        f"{f['post50']:>9.1f} {f['post95']:>7.1f} {f['post99']:>7.1f} "
        f"{f['note50']:>11.1f} {f['note95']:>7.1f} {f['note99']:>7.1f}  {extra}"
    )


def result_row(r: RunResult) -> str:
    outcomes = " ".join(f"{k}={v}" for k, v in sorted(r.outcomes.items()))
    return row(
        str(r.run),
        r.kind,
        f"{len(r.accepted)}/{len(r.sent)}",
        str(len(r.done)),
        r.figures(),
        outcomes,
    )


def summary(results: list[RunResult]) -> list[str]:
    medians: dict[str, dict[str, float]] = {}
    for kind in ("platform", "floor"):
        runs = [r.figures() for r in results if r.kind == kind and r.done]
        if runs:
            medians[kind] = {k: statistics.median(f[k] for f in runs) for k in runs[0]}
    lines = ["", "median of the runs (latencies in ms):", HEADER]
    lines += [row("med", kind, "", "", f) for kind, f in medians.items()]
    if len(medians) == 2:
        p, f = medians["platform"], medians["floor"]
        lines += [
            "",
            "ratio platform/floor:",
            f"  throughput         {p['thr'] / f['thr']:.2f}x  (below 1 = slower)",
            f"  POST p50 / p95     {p['post50'] / f['post50']:.1f}x / "
            f"{p['post95'] / f['post95']:.1f}x",
            f"  →notif p50 / p95   {p['note50'] / f['note50']:.1f}x / "
            f"{p['note95'] / f['note95']:.1f}x",
        ]
    return lines


# ---- load generation and waiting (shared by both runs) ------------------------------------

Submit = Callable[[int], Awaitable[str | None]]


async def drive(n: int, concurrency: int, submit: Submit, rate: float = 0) -> list[Sent]:
    """C clients send requests 0..n-1, each as soon as its previous one was answered (closed
    loop) or, with a rate, request i not before i/rate seconds (unless C are outstanding)."""
    out: list[Sent | None] = [None] * n
    counter = iter(range(n))
    start = time.monotonic()

    async def client() -> None:
        for i in counter:
            if rate > 0:
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            sent = time.time()
            request_id = await submit(i)
            out[i] = Sent(sent, time.time(), request_id)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return [s for s in out if s is not None]


async def wait_for(done: Callable[[], bool], wait_s: float, what: str) -> bool:
    deadline = time.monotonic() + wait_s
    while not done():
        if time.monotonic() > deadline:
            log(f"  ! timed out after {wait_s:.0f}s waiting for {what}")
            return False
        await asyncio.sleep(0.05)
    return True


# ---- platform run -------------------------------------------------------------------------


class NotificationWatch:
    """Reads matching decisions and delivery outcomes from the end of their topics."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        self._task: asyncio.Task[None] | None = None
        self.decisions: dict[str, tuple[str, str]] = {}  # event id -> (request id, type)
        self.deliveries: dict[str, list[tuple[float, str]]] = {}  # cause id -> (time, status)

    async def start(self) -> None:
        await self._consumer.start()
        parts = await all_partitions(self._consumer, [MATCHING_TOPIC, NOTIFY_TOPIC])
        self._consumer.assign(parts)
        await self._consumer.seek_to_end(*parts)
        for tp in parts:  # resolve the end offsets now, before anything is posted
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    self._take(record)

    def _take(self, record: Any) -> None:
        meta = EventMeta.from_headers(record.headers or [])
        event = decode(meta, record.value or b"")
        if isinstance(event, NotificationDelivered):
            at = event.delivered_at.timestamp()
            self.deliveries.setdefault(event.cause_event_id, []).append((at, event.status))
        elif record.topic == MATCHING_TOPIC:
            self.decisions[meta.id] = (getattr(event, "request_id", ""), meta.type)

    def notes(self) -> tuple[dict[str, float], dict[str, float], Counter[str]]:
        """first and last (all due) notification per request, and the outcome mix."""
        first: dict[str, float] = {}
        last: dict[str, float] = {}
        outcomes: Counter[str] = Counter()
        for event_id, (request_id, kind) in self.decisions.items():
            assigned = kind == VolunteerAssigned.TYPE
            outcomes["assigned" if assigned else "unmatched"] += 1
            got = self.deliveries.get(event_id, [])
            outcomes.update(status for _, status in got if status != "sent")
            if got:
                first[request_id] = min(t for t, _ in got)
            if len(got) >= (2 if assigned else 1):
                last[request_id] = max(t for t, _ in got)
        return first, last, outcomes


class PlatformTarget:
    def __init__(self, platform: Platform, concurrency: int, rate: float) -> None:
        self.platform = platform
        self.concurrency = concurrency
        self.rate = rate
        self.villages: list[str] = []

    async def setup(self) -> None:
        async with httpx.AsyncClient(base_url=self.platform.url("catalog"), timeout=10) as api:
            page = await api.get(
                "/v1/places", params={"kind": "village", "limit": 100}, headers=ADMIN
            )
            page.raise_for_status()
            self.villages = [p["id"] for p in page.json()["items"]]
        log(f"  platform: {len(self.villages)} villages, service types {SERVICE_TYPES}")

    async def revive(self) -> list[str]:
        """Restart any service that is no longer running (on a shared machine something else
        may have killed it); returns their names."""
        dead = [
            name
            for name, svc in self.platform.services.items()
            if svc.proc is None or svc.proc.poll() is not None
        ]
        for name in dead:
            log(f"  ! {name} is not running; restarting it")
            await asyncio.to_thread(self.platform.restart, name)
        return dead

    async def reset(self) -> None:
        """Give every volunteer their capacity back (matching caches loads: restart it)."""
        await self.revive()
        client: AsyncMongoClient[Doc] = AsyncMongoClient(self.platform.mongo.uri)
        try:
            await client[f"{self.platform.config.db_prefix}_matching"]["loads"].delete_many({})
        finally:
            await client.close()
        await asyncio.to_thread(self.platform.restart, "matching")

    async def run(self, n: int, run: int, wait_s: float) -> RunResult:
        rng = random.Random(run)
        tag = uuid.uuid4().hex[:8]
        plan = [
            (
                bearer(f"res_bench_{tag}_{i}", "resident"),
                request_body(
                    rng.choice(SERVICE_TYPES),
                    rng.choice(self.villages),
                    email=f"bench.{tag}.{i}@example.org",
                ),
            )
            for i in range(n)
        ]
        watch = NotificationWatch(self.platform.kafka.bootstrap)
        await watch.start()
        limits = httpx.Limits(max_connections=self.concurrency)
        try:
            async with httpx.AsyncClient(
                base_url=self.platform.url("requests"), timeout=30, limits=limits
            ) as api:

                async def submit(i: int) -> str | None:
                    token, body = plan[i]
                    try:
                        res = await api.post(
                            "/v1/requests",
                            json=body,
                            headers={**token, "Idempotency-Key": f"{tag}-{i}"},
                        )
                    except httpx.HTTPError as exc:
                        log(f"  ! POST {i} failed: {exc!r}")
                        return None
                    if res.status_code != 201:
                        log(f"  ! POST {i} answered {res.status_code}: {res.text[:200]}")
                        return None
                    return str(res.json()["id"])

                sent = await drive(n, self.concurrency, submit, self.rate)
            wanted = {s.request_id for s in sent if s.request_id}
            await wait_for(
                lambda: wanted <= set(watch.notes()[1]), wait_s, "platform notifications"
            )
            first, last, outcomes = watch.notes()
        finally:
            await watch.stop()
        return RunResult("platform", run, sent, first, last, outcomes)


# ---- floor run: the same hops by hand ------------------------------------------------------


async def create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-floor")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(t, FLOOR_PARTITIONS, 1) for t in names if t not in existing]
        if new:
            await admin.create_topics(new)
        for _ in range(150):  # until every partition has a leader
            described = await admin.describe_topics(names)
            if all(
                t.get("partitions") and all(p.get("leader", -1) >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


class Relay:
    """Publishes the outbox of a collection, then clears it (bare version of the kit's)."""

    def __init__(
        self, db: AsyncDatabase[Doc], collection: str, producer: AIOKafkaProducer, topic: str
    ) -> None:
        self.coll = db[collection]
        self.producer = producer
        self.topic = topic
        self.wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            self.wake.clear()  # before the read: a wake during the pass is not lost
            docs = await self.coll.find({"has_outbox": True}, {"outbox": 1}).limit(200).to_list()
            if not docs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), RELAY_POLL_S)
                continue
            futures = [
                await self.producer.send(self.topic, e["body"].encode(), key=e["key"].encode())
                for d in docs
                for e in d["outbox"]
            ]
            await asyncio.gather(*futures)  # acked by the broker (acks=all)
            await self.coll.update_many(
                {"_id": {"$in": [d["_id"] for d in docs]}},
                {"$set": {"outbox": [], "has_outbox": False}},
            )


def with_outbox(doc: Doc, key: str, body: Doc) -> Doc:
    return {**doc, "outbox": [{"key": key, "body": json.dumps(body)}], "has_outbox": True}


class Floor:
    def __init__(self, bootstrap: str, mongo_uri: str, concurrency: int, rate: float) -> None:
        self.bootstrap = bootstrap
        self.concurrency = concurrency
        self.rate = rate
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_uri, tz_aware=True)
        self.db = self.client[FLOOR_DB]
        self.producers: list[AIOKafkaProducer] = []
        self.consumers: list[AIOKafkaConsumer] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.delivered: dict[str, float] = {}
        self.intake_relay: Relay | None = None
        self.decision_relay: Relay | None = None

    def _producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, enable_idempotence=True, acks="all"
        )
        self.producers.append(producer)
        return producer

    def _consumer(self, topic: str, group: str) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.consumers.append(consumer)
        return consumer

    async def start(self) -> None:
        await create_topics(self.bootstrap, [FLOOR_REQUESTS, FLOOR_DECISIONS])
        for name in ("requests", "decisions"):  # as the platform's outbox index
            await self.db[name].create_index("has_outbox")
        self.intake_relay = Relay(self.db, "requests", self._producer(), FLOOR_REQUESTS)
        self.decision_relay = Relay(self.db, "decisions", self._producer(), FLOOR_DECISIONS)
        matching = self._consumer(FLOOR_REQUESTS, "bench-floor-matching")
        notify = self._consumer(FLOOR_DECISIONS, "bench-floor-notify")
        for client in (*self.producers, *self.consumers):
            await client.start()
        for loop in (
            self.intake_relay.run(),
            self.decision_relay.run(),
            self._consume(matching, self._match),
            self._consume(notify, self._notify),
        ):
            self.tasks.append(asyncio.create_task(loop))
        await wait_for(
            lambda: all(c.assignment() for c in self.consumers), 60, "floor consumer groups"
        )

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in (*self.consumers, *self.producers):
            with contextlib.suppress(Exception):
                await client.stop()
        await self.client.close()

    async def reset(self) -> None:
        for name in ("requests", "decisions", "deliveries"):
            await self.db[name].delete_many({})
        await self.db["loads"].delete_many({})
        await self.db["loads"].insert_many(
            [{"_id": f"vol_{v:04d}", "n": 0, "capacity": 10**9} for v in range(FLOOR_VOLUNTEERS)]
        )
        self.delivered.clear()

    @staticmethod
    async def _consume(
        consumer: AIOKafkaConsumer, handle: Callable[[Doc], Awaitable[None]]
    ) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    await handle(json.loads(record.value))
            if batches:
                await consumer.commit()  # after processing

    async def _match(self, request: Doc) -> None:
        volunteer = f"vol_{int(request['n']) % FLOOR_VOLUNTEERS:04d}"
        load = await self.db["loads"].find_one_and_update(
            {"_id": volunteer, "n": {"$lt": 10**9}},
            {"$inc": {"n": 1}},
            return_document=ReturnDocument.AFTER,
        )
        decision = {
            "request_id": request["id"],
            "volunteer_id": volunteer,
            "assigned": load is not None,
        }
        try:
            await self.db["decisions"].insert_one(
                with_outbox({"_id": request["id"], **decision}, request["id"], decision)
            )
        except DuplicateKeyError:
            return  # redelivered
        assert self.decision_relay is not None
        self.decision_relay.wake.set()

    async def _notify(self, decision: Doc) -> None:
        now = datetime.now(UTC)
        with contextlib.suppress(DuplicateKeyError):
            await self.db["deliveries"].insert_one(
                {"_id": decision["request_id"], "status": "sent", "delivered_at": now}
            )
            self.delivered[decision["request_id"]] = now.timestamp()

    async def run(self, n: int, run: int, wait_s: float) -> RunResult:
        tag = uuid.uuid4().hex[:8]
        assert self.intake_relay is not None
        relay = self.intake_relay

        async def submit(i: int) -> str | None:
            request_id = f"freq_{tag}_{i:05d}"
            body = {"id": request_id, "n": i, "service_type_id": SERVICE_TYPES[i % 4]}
            await self.db["requests"].insert_one(
                with_outbox({"_id": request_id, **body, "status": "posted"}, request_id, body)
            )
            relay.wake.set()
            return request_id

        sent = await drive(n, self.concurrency, submit, self.rate)
        wanted = {s.request_id for s in sent}
        await wait_for(lambda: wanted <= self.delivered.keys(), wait_s, "floor deliveries")
        notes = {k: v for k, v in self.delivered.items() if k in wanted}
        return RunResult("floor", run, sent, notes, dict(notes), Counter(delivered=len(notes)))


# ---- the whole benchmark ----------------------------------------------------------------


def machine(when: str) -> str:
    one, five, fifteen = os.getloadavg()
    return (
        f"machine ({when}): nproc={os.cpu_count()} load average {one:.2f} {five:.2f} {fifteen:.2f}"
    )


async def measure(platform: Platform, args: argparse.Namespace) -> list[RunResult]:
    target = PlatformTarget(platform, args.concurrency, args.rate)
    await target.setup()
    floor = Floor(platform.kafka.bootstrap, platform.mongo.uri, args.concurrency, args.rate)
    await floor.start()
    results: list[RunResult] = []
    try:
        for run in range(1, args.runs + 1):
            order = ("platform", "floor") if run % 2 else ("floor", "platform")
            for kind in order:
                if kind == "platform":
                    await target.reset()
                    await target.run(WARMUP, -run, args.timeout)
                    result = await target.run(args.requests, run, args.timeout)
                    if died := await target.revive():
                        log(f"  ! run {run}: {', '.join(died)} died during the run")
                else:
                    await floor.reset()
                    await floor.run(WARMUP, -run, args.timeout)
                    result = await floor.run(args.requests, run, args.timeout)
                results.append(result)
                print(result_row(result), flush=True)
    finally:
        await floor.stop()
    return results


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=200, help="requests per run (N)")
    ap.add_argument("--runs", type=int, default=3, help="platform+floor run pairs (R)")
    ap.add_argument("--concurrency", type=int, default=8, help="concurrent clients (C)")
    ap.add_argument(
        "--rate",
        type=float,
        default=0,
        help="requests per second to offer (default 0: closed loop, as fast as "
        "the C clients get answers); a low rate shows latency without queues",
    )
    ap.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for the notifications of a run"
    )
    ap.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the platform's data dir and logs (its path is printed)",
    )
    return ap.parse_args(argv)


def show_service_tails(platform: Platform) -> None:
    for svc in platform.services.values():
        state = "running" if svc.proc and svc.proc.poll() is None else "EXITED"
        log(f"--- {svc.name} ({state}) log tail ---\n{svc.tail(2000)}")


class Cleanup:
    """Stops the platform and removes its data, once, whether the bench ends, fails or is
    interrupted. A signal (Ctrl-C, SIGTERM) cleans up right in its handler and exits: waiting
    for asyncio to unwind every task can hang on a client that does not cancel promptly."""

    def __init__(self, platform: Platform, data: Path, keep: bool) -> None:
        self.platform = platform
        self.data = data
        self.keep = keep
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut this short
            signal.signal(sig, signal.SIG_IGN)
        self.platform.stop()
        for svc in self.platform.services.values():  # one (re)started meanwhile
            svc.kill()
        print(machine("end"), flush=True)
        if self.keep:
            log(f"platform data and logs kept in {self.data}")
        else:
            shutil.rmtree(self.data, ignore_errors=True)

    def on_signal(self, signum: int, frame: Any) -> None:
        log(f"signal {signum}: stopping the platform")
        self()
        os._exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    data = Path(tempfile.mkdtemp(prefix="zhumeng-bench-"))
    platform = Platform(isolated_stack_config(data), log=lambda line: log("  " + line))
    cleanup = Cleanup(platform, data, args.keep_data)
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (`&`)
        signal.signal(sig, cleanup.on_signal)
    print(machine("start"), flush=True)
    pacing = f"offered {args.rate:g} req/s" if args.rate > 0 else "closed loop"
    print(
        f"N={args.requests} requests per run, R={args.runs} runs, C={args.concurrency} "
        f"concurrent clients, {pacing}; latencies in ms",
        flush=True,
    )
    try:
        log(f"starting an isolated platform in {data}")
        platform.start_infra()
        platform.start_services()
        print(HEADER, flush=True)
        results = asyncio.run(measure(platform, args))
        print("\n".join(summary(results)), flush=True)
    except Exception:
        show_service_tails(platform)
        raise
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Replay dead letters after a fix: `zhumeng-dlq replay <topic>.dlq` (DESIGN §4).

Each dead letter goes back to the topic it came from (`dlq-origin-topic`) with its key, value
and original headers (the `dlq-*` ones removed), so consumers see the event as it was first
published — with the same `ce_id`, which their idempotency relies on. Progress is committed in
the consumer group `zhumeng-dlq-replay`, so a dead letter is replayed once.
"""

from __future__ import annotations

import argparse
import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from .kafka import all_partitions
from .settings import ServiceSettings

REPLAY_GROUP = "zhumeng-dlq-replay"


async def replay(bootstrap: str, dlq_topic: str, dry_run: bool = False) -> int:
    """Re-publish every dead letter not replayed yet; returns how many."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=REPLAY_GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await consumer.start()
    await producer.start()
    replayed = 0
    try:
        parts = await all_partitions(consumer, [dlq_topic])
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for rec in records:
                    if rec.offset >= ends[tp]:
                        continue  # arrived after we started: the next replay takes it
                    headers = [(k, v) for k, v in rec.headers if not k.startswith("dlq-")]
                    origin = dict(rec.headers).get("dlq-origin-topic", b"").decode()
                    if not origin:
                        continue
                    if not dry_run:
                        await producer.send_and_wait(
                            origin, rec.value, key=rec.key, headers=headers
                        )
                    replayed += 1
                if not dry_run and records:
                    await consumer.commit({tp: min(records[-1].offset + 1, ends[tp])})
        return replayed
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="zhumeng-dlq", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("replay", help="re-publish a dead-letter topic's records to their origin")
    p.add_argument("topic", help="the dead-letter topic, e.g. matching.events.v1.dlq")
    p.add_argument("--bootstrap", default=None, help="default: ZHUMENG_KAFKA_BOOTSTRAP")
    p.add_argument("--dry-run", action="store_true", help="count, publish nothing")
    args = parser.parse_args()
    bootstrap = args.bootstrap or ServiceSettings().kafka_bootstrap
    count = asyncio.run(replay(bootstrap, args.topic, args.dry_run))
    print(
        f"{'would replay' if args.dry_run else 'replayed'} {count} dead letter(s) from {args.topic}"
    )

"""Create Zhumeng's topics on a production cluster: replication factor 3, min.insync.replicas 2.

Run once per cluster (compose job `topics-init`, Kubernetes Job `zhumeng-topics-init`) from any
service image: `python /app/create_topics.py`. The topic list, partition counts and configs come
from the registry in `zhumeng_contracts.topics` and `zhumeng_kit.kafka.DLQ_CONFIG`, exactly as
`zhumeng_kit.kafka.ensure_topics()` uses them.

Why not `ensure_topics()` itself: it creates topics with replication factor 1 (right for the
single-broker development cluster). On a 3-broker cluster an RF-1 partition lives on one broker
only: losing that broker loses or blocks the partition, and the cluster's min.insync.replicas=2
does not help, because Kafka caps the effective min ISR at the replication factor (checked on
Kafka 4.4.0: an acks=all send to an RF-1 topic succeeds with min.insync.replicas=2). Once
ensure_topics() accepts a replication factor this script can shrink to a call of it.

Environment: KAFKA_BOOTSTRAP (default: ZHUMENG_KAFKA_BOOTSTRAP), TOPIC_REPLICATION_FACTOR (3),
TOPIC_MIN_INSYNC_REPLICAS (2). Idempotent: existing topics are left alone, but one whose
replication factor is below the wanted one fails the job (fix it with
kafka-reassign-partitions.sh; the job never silently accepts an under-replicated topic).
"""

from __future__ import annotations

import asyncio
import os
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from zhumeng_contracts.topics import TOPICS
from zhumeng_kit.kafka import DLQ_CONFIG, TOPIC_ALREADY_EXISTS


def wanted_topics(rf: int, min_isr: int) -> list[NewTopic]:
    isr = {"min.insync.replicas": str(min_isr)}
    topics = []
    for spec in TOPICS:
        configs = {**spec.config(), **isr}
        topics.append(NewTopic(spec.name, spec.partitions, rf, topic_configs=configs))
        topics.append(NewTopic(spec.dlq, 1, rf, topic_configs={**DLQ_CONFIG, **isr}))
    return topics


async def main() -> int:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP") or os.environ["ZHUMENG_KAFKA_BOOTSTRAP"]
    rf = int(os.environ.get("TOPIC_REPLICATION_FACTOR", "3"))
    min_isr = int(os.environ.get("TOPIC_MIN_INSYNC_REPLICAS", "2"))
    if not 1 <= min_isr <= rf:
        print(f"min.insync.replicas {min_isr} must be between 1 and the RF {rf}", file=sys.stderr)
        return 2

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="zhumeng-topics-init")
    for _ in range(30):  # brokers may still be electing a controller
        try:
            await admin.start()
            break
        except Exception as exc:
            print(f"waiting for Kafka at {bootstrap}: {exc}", file=sys.stderr)
            await asyncio.sleep(2)
    else:
        return 1
    try:
        wanted = wanted_topics(rf, min_isr)
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            resp = await admin.create_topics(missing)
            for name, code, *rest in resp.topic_errors:
                if code == 0:
                    print(f"created {name}")
                elif code != TOPIC_ALREADY_EXISTS:
                    print(f"creating {name} failed: code {code} {rest}", file=sys.stderr)
                    return 1

        # every topic: present, a leader per partition, replicated enough
        names = [t.name for t in wanted]
        bad: list[str] = []
        for _ in range(150):
            bad = []
            for t in await admin.describe_topics(names):
                parts = t.get("partitions") or []
                if t.get("error_code", 0) != 0 or not parts:
                    bad.append(f"{t.get('topic')}: not ready")
                elif any(p.get("leader", -1) < 0 for p in parts):
                    bad.append(f"{t['topic']}: partition without leader")
                elif min(len(p.get("replicas", [])) for p in parts) < rf:
                    bad.append(f"{t['topic']}: replication factor below {rf}")
            if not bad or all("replication factor" in b for b in bad):
                break
            await asyncio.sleep(0.2)
        if bad:
            print("topics not usable:\n  " + "\n  ".join(bad), file=sys.stderr)
            return 1
        print(f"{len(names)} topics ready (RF {rf}, min.insync.replicas {min_isr})")
        return 0
    finally:
        await admin.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

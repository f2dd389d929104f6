"""A dead letter goes back to its origin topic once, as it was first published."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer

from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import read_topic
from zhumeng_kit.dlq import replay

pytestmark = pytest.mark.integration


async def test_replay_republishes_each_dead_letter_once(platform: Platform) -> None:
    bootstrap = platform.kafka.bootstrap
    origin, dlq = "notify.events.v1", "notify.events.v1.dlq"
    marker = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            dlq,
            b'{"x": 1}',
            key=marker,
            headers=[
                ("ce_id", marker),
                ("ce_type", b"zhumeng.notification.delivered.v1"),
                ("dlq-reason", b"handler-failed"),
                ("dlq-origin-topic", origin.encode()),
            ],
        )
    finally:
        await producer.stop()

    assert await replay(bootstrap, dlq, dry_run=True) >= 1
    assert not [r for r in await read_topic(bootstrap, origin) if r.key == marker]
    await replay(bootstrap, dlq)
    await replay(bootstrap, dlq)  # a second replay finds nothing new
    back = [r for r in await read_topic(bootstrap, origin) if r.key == marker]
    assert len(back) == 1
    headers = dict(back[0].headers)
    assert headers["ce_id"] == marker and back[0].value == b'{"x": 1}'
    assert not [k for k in headers if k.startswith("dlq-")]

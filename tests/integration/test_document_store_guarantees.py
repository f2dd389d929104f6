"""The guarantees our code takes from the document store, proven against the server the
project runs (ADR 0003). They are MongoDB's single-document atomicity; a server without it
would hide real races in every other test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from zhumeng_devstack.stack import Platform

pytestmark = pytest.mark.integration


@pytest.fixture
async def coll(platform: Platform) -> AsyncIterator[AsyncCollection[dict[str, object]]]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(platform.mongo.uri)
    collection = client["zt_guarantees"]["docs"]
    await collection.delete_many({})
    yield collection
    await client.close()


async def test_conditional_update_has_exactly_as_many_winners_as_room(
    coll: AsyncCollection[dict[str, object]],
) -> None:
    for trial in range(3):
        await coll.insert_one({"_id": f"slots{trial}", "taken": 0})
        results = await asyncio.gather(
            *(
                coll.find_one_and_update(
                    {"_id": f"slots{trial}", "taken": {"$lt": 3}},
                    {"$inc": {"taken": 1}},
                    return_document=ReturnDocument.AFTER,
                )
                for _ in range(50)
            )
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 3
        assert sorted(int(str(r["taken"])) for r in winners) == [1, 2, 3]
        assert (await coll.find_one({"_id": f"slots{trial}"}) or {})["taken"] == 3


async def test_push_is_not_lost_beside_a_concurrent_compare_and_set(
    coll: AsyncCollection[dict[str, object]],
) -> None:
    """The outbox relay clears published entries with a compare-and-set on `_v` while commands
    push new entries and bump `_v`: no pushed entry may vanish."""
    await coll.insert_one({"_id": "agg", "_v": 0, "outbox": []})

    async def command(i: int) -> None:
        await coll.update_one({"_id": "agg"}, {"$push": {"outbox": i}, "$inc": {"_v": 1}})

    async def relay() -> int:
        cleared = 0
        for _ in range(30):
            doc = await coll.find_one({"_id": "agg"}) or {}
            sent = list(doc.get("outbox", []))  # type: ignore[call-overload]
            res = await coll.update_one({"_id": "agg", "_v": doc["_v"]}, {"$set": {"outbox": []}})
            cleared += len(sent) if res.modified_count else 0
            await asyncio.sleep(0)
        return cleared

    relay_task = asyncio.create_task(relay())
    await asyncio.gather(*(command(i) for i in range(100)))
    cleared = await relay_task
    left = len((await coll.find_one({"_id": "agg"}) or {}).get("outbox", []))  # type: ignore[arg-type]
    assert cleared + left == 100


async def test_one_winner_per_unique_key(coll: AsyncCollection[dict[str, object]]) -> None:
    await coll.create_index("claim", unique=True)

    async def claim(i: int) -> bool:
        try:
            await coll.insert_one({"claim": "request-1", "by": i})
            return True
        except DuplicateKeyError:
            return False

    assert sum(await asyncio.gather(*(claim(i) for i in range(30)))) == 1


async def test_guarded_upsert_creates_once_and_never_bypasses_the_guard(
    coll: AsyncCollection[dict[str, object]],
) -> None:
    """Matching takes capacity with an upsert guarded by `n < capacity`: the first call creates
    the document; on an existing document the guard decides (a full one raises a duplicate key,
    it is never overwritten)."""

    async def take(request: str) -> bool:
        try:
            doc = await coll.find_one_and_update(
                {"_id": "vol", "n": {"$lt": 2}, "active": {"$ne": request}},
                {"$inc": {"n": 1}, "$push": {"active": request}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return False
        return doc is not None

    results = await asyncio.gather(*(take(f"r{i}") for i in range(20)))
    assert sum(results) == 2
    doc = await coll.find_one({"_id": "vol"}) or {}
    assert doc["n"] == 2 and len(doc["active"]) == 2  # type: ignore[arg-type]

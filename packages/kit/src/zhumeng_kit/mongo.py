"""MongoDB through PyMongo's async API. Only single-document atomic operations are used, so the
same code runs on a replica set, a sharded cluster and MongoDB-compatible servers."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

Doc = dict[str, Any]


def make_client(uri: str, app_name: str) -> AsyncMongoClient[Doc]:
    return AsyncMongoClient(
        uri,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=3000,
    )


async def ping(db: AsyncDatabase[Doc]) -> bool:
    try:
        await db.command("ping")
        return True
    except Exception:
        return False

"""MongoDB through PyMongo's async API. Only single-document atomic operations are used, so the
same code runs on a replica set, a sharded cluster and MongoDB-compatible servers."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

Doc = dict[str, Any]


# Below every idle limit we know of (SecantusDB 300 s; cloud load balancers 240-350 s)
MAX_IDLE_S = 120


def make_client(uri: str, app_name: str, max_idle_s: float = MAX_IDLE_S) -> AsyncMongoClient[Doc]:
    """The driver closes a pooled connection idle for `max_idle_s` instead of writing on it:
    PyMongo's async pool does not notice a connection the server (or a balancer, or NAT) has
    dropped, and the next operation on it fails with AutoReconnect (ADR 0003 addendum)."""
    return AsyncMongoClient(
        uri,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=3000,
        maxIdleTimeMS=int(max_idle_s * 1000),
    )


async def ping(db: AsyncDatabase[Doc]) -> bool:
    try:
        await db.command("ping")
        return True
    except Exception:
        return False

"""Notify's own directory of coordinators (collection ``coordinators``): the catalog's
contacts are volunteers only. One document per coordinator, looked up by township; the county
centre's coordinators have no township. Contacts are never logged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from zhumeng_kit.mongo import Doc

from ..domain.model import Recipient
from ..domain.recipients import Coordinator

COORDINATORS = "coordinators"
log = logging.getLogger("zhumeng.notify.coordinators")


def _to_doc(c: Coordinator, now: datetime) -> Doc:
    return {
        "name": c.name,
        "township_id": c.township_id,
        "scope": c.scope,
        "locale": c.locale,
        "phone": c.phone,
        "email": c.email,
        "updated_at": now,
    }


def _from_doc(doc: Doc) -> Coordinator:
    return Coordinator(
        id=str(doc["_id"]),
        name=str(doc["name"]),
        township_id=doc.get("township_id"),
        locale=doc.get("locale", "zh-CN"),
        phone=doc.get("phone"),
        email=doc.get("email"),
    )


class MongoCoordinatorStore:
    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        self._coll = collection

    async def ensure_indexes(self) -> None:
        await self._coll.create_index(
            [("township_id", ASCENDING), ("_id", ASCENDING)], name="township"
        )

    async def put(self, coordinator: Coordinator, now: datetime | None = None) -> bool:
        """Create or replace; True when it was created."""
        now = now or datetime.now(UTC)
        res = await self._coll.update_one(
            {"_id": coordinator.id},
            {"$set": _to_doc(coordinator, now), "$setOnInsert": {"created_at": now}},
            upsert=True,
        )
        created = res.upserted_id is not None
        log.info(
            "coordinator %s %s (%s)",
            coordinator.id,
            "created" if created else "updated",
            coordinator.township_id or "county centre",
        )
        return created

    async def get(self, coordinator_id: str) -> Coordinator | None:
        doc = await self._coll.find_one({"_id": coordinator_id})
        return None if doc is None else _from_doc(doc)

    async def of_township(self, township_id: str | None) -> list[Coordinator]:
        """The coordinators of a township, or (None) of the county centre, in id order."""
        docs = await self._coll.find({"township_id": township_id}).sort("_id", 1).to_list()
        return [_from_doc(d) for d in docs]

    async def coordinators(self, township_id: str | None) -> list[Recipient]:
        return [c.recipient() for c in await self.of_township(township_id)]


# Demo coordinators for the devstack (`make run`): one for each demo township of the catalog
# (ids pl_<slug>) and two at the county centre. Fictitious contacts on the reserved
# example.org domain; no phone numbers, so nothing can reach a real person.
_DEMO_TOWNSHIPS = {
    "longxun": "龙浔镇",
    "xunzhong": "浔中镇",
    "gaide": "盖德镇",
    "leifeng": "雷峰镇",
    "shuikou": "水口镇",
    "chishui": "赤水镇",
    "shangyong": "上涌镇",
    "gekeng": "葛坑镇",
    "sanban": "三班镇",
    "longmentan": "龙门滩镇",
    "meihu": "美湖镇",
    "nancheng": "南埕镇",
    "guobao": "国宝乡",
    "daming": "大铭乡",
    "chunmei": "春美乡",
    "tangtou": "汤头乡",
    "yangmei": "杨梅乡",
    "guiyang": "桂阳乡",
}
DEMO_COORDINATORS: tuple[Coordinator, ...] = (
    *(
        Coordinator(
            f"coord_{slug}", f"{name}协调员", f"pl_{slug}", email=f"{slug}.coord@example.org"
        )
        for slug, name in _DEMO_TOWNSHIPS.items()
    ),
    Coordinator("coord_county_1", "县志愿服务中心值班员", None, email="county.centre@example.org"),
    Coordinator("coord_county_2", "Grace Wu", None, locale="en", email="county.duty@example.org"),
)


async def seed_demo_coordinators(store: MongoCoordinatorStore) -> int:
    """Put the demo coordinators (idempotent: a re-run only refreshes them); how many were new."""
    created = 0
    for coordinator in DEMO_COORDINATORS:
        created += await store.put(coordinator)
    return created

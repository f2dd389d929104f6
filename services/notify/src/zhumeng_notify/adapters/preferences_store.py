"""People's preferences and SMS opt-outs in the notify database, served from memory.

The dispatcher reads preferences for every delivery, so they are held in memory: loaded at
start-up and refreshed every `refresh_s` from the documents changed since (with an overlap,
so a write committed late on another replica is not missed). A write through this replica is
seen at once.

`sms_optouts` keeps what is known of a phone that replied TD/STOP while no contact had that
number: a keyed SHA-256 of it, never the number itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from zhumeng_contracts.events import ContactRecord, RequesterContact
from zhumeng_kit.mongo import Doc
from zhumeng_kit.views import View

from ..domain.preferences import ChannelName, Preferences, normalise_phone, phone_hash

log = logging.getLogger("zhumeng.notify.preferences")

PREFERENCES = "preferences"
SMS_OPTOUTS = "sms_optouts"
_OVERLAP = timedelta(seconds=5)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PreferenceStore:
    def __init__(
        self,
        db: AsyncDatabase[Doc],
        pepper: str,
        refresh_s: float = 1.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._prefs = db[PREFERENCES]
        self._optouts = db[SMS_OPTOUTS]
        self._pepper = pepper
        self._refresh_s = refresh_s
        self._clock = clock
        self._cache: dict[str, Preferences] = {}
        self._blocked: set[str] = set()
        self._since: datetime | None = None

    # ---- the PreferenceSource port (memory only) ---------------------------------------------

    def get(self, person_id: str) -> Preferences | None:
        return self._cache.get(person_id)

    def sms_blocked(self, phone: str | None) -> bool:
        return bool(phone) and phone_hash(phone or "", self._pepper) in self._blocked

    # ---- reads and writes --------------------------------------------------------------------

    async def refresh(self) -> int:
        """Load what changed since the last refresh; returns how many documents were read."""
        started = self._clock()
        query: Doc = {} if self._since is None else {"updated_at": {"$gte": self._since - _OVERLAP}}
        docs = await self._prefs.find(query).to_list()
        for doc in docs:
            self._cache[doc["_id"]] = Preferences.model_validate(_fields(doc))
        blocked = await self._optouts.find(query, {"_id": 1}).to_list()
        self._blocked.update(str(d["_id"]) for d in blocked)
        self._since = started
        return len(docs) + len(blocked)

    async def run(self) -> None:
        """Keep the cache fresh (hand it to ServiceRuntime.in_background)."""
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("refreshing preferences failed; retrying", exc_info=True)
            await asyncio.sleep(self._refresh_s)

    async def load(self, person_id: str) -> Preferences | None:
        doc = await self._prefs.find_one({"_id": person_id})
        return None if doc is None else Preferences.model_validate(_fields(doc))

    async def put(self, person_id: str, prefs: Preferences) -> Preferences:
        await self._prefs.update_one(
            {"_id": person_id},
            {"$set": {**prefs.model_dump(), "updated_at": self._clock()}},
            upsert=True,
        )
        self._cache[person_id] = prefs
        return prefs

    async def opt_out(self, person_id: str, channel: ChannelName) -> Preferences:
        """Add one channel to the person's opt-outs (their other choices stay as they were)."""
        # $addToSet keeps it idempotent and safe against a concurrent PUT of other fields
        base = (await self.load(person_id)) or Preferences()
        await self._prefs.update_one(
            {"_id": person_id},
            {
                "$setOnInsert": {k: v for k, v in base.model_dump().items() if k != "opted_out"},
                "$addToSet": {"opted_out": channel},
                "$set": {"updated_at": self._clock()},
            },
            upsert=True,
        )
        prefs = (await self.load(person_id)) or base.opt_out(channel)
        self._cache[person_id] = prefs
        return prefs

    async def block_phone(self, phone: str, provider: str) -> None:
        key = phone_hash(phone, self._pepper)
        await self._optouts.update_one(
            {"_id": key},
            {"$set": {"updated_at": self._clock(), "provider": provider}},
            upsert=True,
        )
        self._blocked.add(key)


def _fields(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k in Preferences.model_fields}


class ViewPhoneBook:
    """Who has this phone number: volunteers (catalog contacts) and requesters (request
    contacts). A linear scan of the in-memory views: inbound SMS are rare."""

    def __init__(self, volunteers: View[ContactRecord], requesters: View[RequesterContact]) -> None:
        self._volunteers = volunteers
        self._requesters = requesters

    def _all(self) -> Iterator[tuple[str, str | None]]:
        for v in list(self._volunteers.items.values()):
            yield v.id, v.phone
        for r in list(self._requesters.items.values()):
            yield r.requester_id, r.phone

    def people(self, phone: str) -> set[str]:
        wanted = normalise_phone(phone)
        if not wanted:
            return set()
        return {pid for pid, p in self._all() if p and normalise_phone(p) == wanted}

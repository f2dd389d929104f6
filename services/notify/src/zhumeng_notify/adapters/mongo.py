"""Notify's delivery store: claims, outcomes and the history, written for insert-heavy bulk.

Three collections, each written as little as possible (a MongoDB-compatible server, and the
local SecantusDB above all, pays far more for an updated document than an inserted one):

- `deliveries_claims` (`_id` only): the claim of a delivery, inserted when it is first seen
  (`_id` = (event id, recipient, channel), so a redelivered event finds it), with its content
  and the lease (`lease_until`, fenced by `attempts`) that says who may send. A claim that is
  sent at once is never updated again.
- `deliveries_outcomes`: one document per flushed batch: every outcome of the batch and the
  batch's `NotificationDelivered` events in its own outbox, inserted in one write (the
  outcome and its event are atomic without multi-document transactions). The relay clears
  its outbox with one update.
- `deliveries` (the history API, receipts, the in-app catch-up): one document per delivery,
  inserted once in its final state from the batch's claims and outcomes. A batch's outbox
  is released to the relay only after its history documents are in; a crash in between is
  repaired from the outcome document (`repair`), before anything is sent again.

The rare paths (a takeover after a crash, a retry, a deferral, an admin's replay, a resumed
send, a lease too short for the batch path) write the claim and the history document one at a
time, the history document carrying its own event in its outbox as before; the claim is closed
together with its outcome and event, so that a crash before the history document is written is
finished from the claim. A delivery is final when its history document says so - or when a
closed claim or an unreleased outcome batch holds its outcome, which the next look at the
delivery (`_final`: a redelivered event, a timer) writes to the history before anything else.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pymongo import ASCENDING, DESCENDING, InsertOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from zhumeng_contracts.events import NotificationDelivered
from zhumeng_kit.ids import new_id
from zhumeng_kit.mongo import Doc
from zhumeng_kit.outbox import append_events, ensure_outbox_index, new_document, outbox_entry

from ..app.ports import Completion, NewDelivery
from ..domain.model import FINAL, INAPP_CHANNEL, Claim, Delivery, Final, Receipt

log = logging.getLogger("zhumeng.notify.store")

SOURCE = "zhumeng/notify"
COLLECTION = "deliveries"
CLAIMS = f"{COLLECTION}_claims"
OUTCOMES = f"{COLLECTION}_outcomes"
DUPLICATE = 11000
LEASE_MARGIN = timedelta(seconds=5)  # clock skew between replicas, well inside the lease
REPAIR_AFTER = timedelta(seconds=10)  # an unreleased batch this old lost its writer
KEEP_OUTCOMES = timedelta(hours=1)  # published outcome documents, for inspection
BACKFILLED = "migration:claims"  # marker (in the outcomes) of `backfill_claims`
CACHED_CLAIMS = 20_000  # claims kept in memory until their outcome (bounded)
ReceiptResult = Literal["recorded", "duplicate", "unknown"]
# channels whose history document is written when claimed, pending: the in-app stream resumes
# from stored pending and sent in-app deliveries (a reconnecting client names the last one)
HISTORY_AT_CLAIM = frozenset({INAPP_CHANNEL})

# what a claim carries besides the lease: enough to resend it and to write its history
CONTENT = (
    "recipient_id",
    "role",
    "channel",
    "address",
    "locale",
    "subject",
    "body",
    "short",
    "urgent",
    "cause_event_id",
    "cause_event_type",
    "request_id",
    "created_at",
)


def _duplicates(exc: BulkWriteError) -> set[int]:
    """The indexes of the duplicate-key errors of a bulk write; re-raises any other error."""
    errors = exc.details.get("writeErrors", [])
    if any(e.get("code") != DUPLICATE for e in errors):
        raise exc
    return {int(e["index"]) for e in errors}


def event_id(c: Completion) -> str:
    """The CloudEvents id of an outcome's event, derived from the outcome, so that two
    writers of the same outcome (a sender that outlived its lease, a repair) announce it
    once to consumers that drop repeated ids. A dead letter can follow an admin's replay,
    so its id names the attempt too."""
    key = f"{c.delivery_id}|{c.status}"
    if c.status == "dead_lettered":
        key += f"|{c.attempt}"
    return hashlib.sha256(key.encode()).hexdigest()[:28]


def _deferral_id(claim: Doc) -> str:
    return hashlib.sha256(f"{claim['_id']}|deferred".encode()).hexdigest()[:28]


def _attempt(c: Completion) -> Doc:
    return {"n": c.attempt, "at": c.at, "outcome": c.status, "error": c.error}


def _outcome_fields(c: Completion) -> Doc:
    return {
        "status": c.status,
        "attempts": c.attempt,
        "updated_at": c.at,
        "sent_at": c.at if c.status == "sent" else None,
        "provider_message_id": c.receipt.reference if c.receipt else None,
        "error": c.error,
        "lease_until": None,
    }


_OUTCOME_KEYS = (
    "status",
    "attempts",
    "updated_at",
    "sent_at",
    "provider_message_id",
    "error",
    "lease_until",
)


def _outcome_update(doc: Doc) -> UpdateOne:
    """A history document that exists already gets a history document's outcome - unless it
    is final (a repair, or a sender that outlived its lease, wrote it first: both announced it
    under the same event id)."""
    return UpdateOne(
        {"_id": doc["_id"], "status": {"$nin": sorted(FINAL)}},
        {
            "$set": {k: doc[k] for k in _OUTCOME_KEYS},
            "$push": {"attempt_log": {"$each": doc["attempt_log"]}},
        },
    )


def _upserted(claim: Doc) -> Doc:
    """What a history document written by an upsert starts with (`$setOnInsert`)."""
    return {
        **{k: claim.get(k) for k in CONTENT},
        "seq": new_id("dlv"),
        "deferred_until": claim.get("deferred_until"),
        "receipts": [],
        "receipt_status": None,
    }


def _history_doc(claim: Doc, fields: Doc, attempt_log: list[Doc], entries: list[Doc]) -> Doc:
    content = {k: claim.get(k) for k in CONTENT}
    return new_document(
        {
            "_id": claim["_id"],
            "seq": new_id("dlv"),  # time-ordered: the listing's sort key and cursor
            **content,
            "deferred_until": claim.get("deferred_until"),
            **fields,
            "attempt_log": attempt_log,
            "receipts": [],
            "receipt_status": None,
        },
        entries,
    )


class MongoDeliveryRepository:
    def __init__(
        self, collection: AsyncCollection[Doc], on_events: Callable[[], None] | None = None
    ) -> None:
        self._coll = collection  # the history
        self._claims: AsyncCollection[Doc] = collection.database[f"{collection.name}_claims"]
        self._outcomes: AsyncCollection[Doc] = collection.database[f"{collection.name}_outcomes"]
        self._on_events = on_events or (lambda: None)
        # claims inserted here and sent at once: their outcome is written from memory
        self._fresh: OrderedDict[str, Doc] = OrderedDict()
        self._history: asyncio.Task[None] | None = None  # the last batch's history being written

    async def ensure_indexes(self) -> None:
        await ensure_outbox_index(self._coll)  # deferrals and the rare paths' events
        await ensure_outbox_index(self._outcomes)
        await self._outcomes.create_index([("released", ASCENDING)], name="released")
        await self._coll.create_index([("seq", DESCENDING)], name="seq")
        await self._coll.create_index(
            [("recipient_id", ASCENDING), ("seq", DESCENDING)], name="recipient_seq"
        )
        await self._coll.create_index(
            [("request_id", ASCENDING), ("seq", DESCENDING)], name="request_seq"
        )
        await self._coll.create_index([("provider_message_id", ASCENDING)], name="receipt_ref")

    # ---- claiming ---------------------------------------------------------------------------

    @staticmethod
    def _claim_doc(item: NewDelivery, now: datetime, lease: timedelta) -> Doc:
        d = item.delivery
        deferred = item.due_at is not None
        return {
            "_id": d.id,
            "recipient_id": d.recipient_id,
            "role": d.role,
            "channel": d.channel,
            "address": d.masked_address,
            "locale": d.locale,
            "subject": d.subject,
            "body": d.body,
            "short": d.short,
            "urgent": d.urgent,
            "cause_event_id": d.cause.event_id,
            "cause_event_type": d.cause.event_type,
            "request_id": d.cause.request_id,
            "status": "deferred" if deferred else "pending",
            "attempts": 0 if deferred else 1,
            "lease_until": item.due_at if deferred else now + lease,
            "deferred_until": item.due_at,
            "created_at": now,
        }

    async def _write_deferrals(self, items: list[tuple[NewDelivery, Doc]]) -> None:
        """The history documents of deferred deliveries, with their `deferred` event. Written
        after their claims (a claim decides whose history it is) and again when a redelivered
        event finds its claim still deferred: a crash in between loses no event."""
        docs = []
        for item, claim in items:
            fields = {
                "status": "deferred",
                "attempts": 0,
                "updated_at": claim["created_at"],
                "sent_at": None,
                "provider_message_id": None,
                "error": None,
                "lease_until": item.due_at,
            }
            event = item.deferred_event
            entries = (
                [outbox_entry(event, source=SOURCE, event_id=_deferral_id(claim))] if event else []
            )
            docs.append(_history_doc(claim, fields, [], entries))
        if not docs:
            return
        try:
            await self._coll.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            _duplicates(exc)  # written before
        self._on_events()

    async def claim(self, delivery: Delivery, now: datetime, lease: timedelta) -> Claim:
        return (await self.claim_many([NewDelivery(delivery)], now, lease))[0]

    async def claim_many(
        self, items: list[NewDelivery], now: datetime, lease: timedelta
    ) -> list[Claim]:
        if not items:
            return []
        docs = [self._claim_doc(item, now, lease) for item in items]
        duplicates: set[int] = set()
        try:
            await self._claims.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            duplicates = _duplicates(exc)
        claims: list[Claim] = []
        deferrals: list[tuple[NewDelivery, Doc]] = []
        for i, (item, doc) in enumerate(zip(items, docs, strict=True)):
            if i in duplicates:
                claim = await self._existing(item.delivery, now, lease)
                if claim.status == "deferred" and item.due_at is not None:
                    deferrals.append((item, doc))
                claims.append(claim)
            elif item.due_at is not None:
                deferrals.append((item, doc))
                claims.append(Claim("deferred", 0, "deferred", item.due_at))
            else:
                self._remember(doc)
                claims.append(Claim("send", 1, "pending", doc["lease_until"]))
        await self._write_deferrals(deferrals)
        await self._write_pending([d for i, d in enumerate(docs) if i not in duplicates])
        return claims

    async def _write_pending(self, claims: list[Doc]) -> None:
        """The pending history documents of fresh claims on a HISTORY_AT_CLAIM channel."""
        docs = []
        for claim in claims:
            if claim["channel"] in HISTORY_AT_CLAIM and claim["status"] == "pending":
                claim["history"] = True  # (in memory only) its outcome updates it
                fields = {k: claim.get(k) for k in _OUTCOME_KEYS} | {
                    "updated_at": claim["created_at"]
                }
                docs.append(_history_doc(claim, fields, [], []))
        if docs:
            await self._insert_history(docs)

    def _remember(self, doc: Doc) -> None:
        self._fresh[doc["_id"]] = doc
        while len(self._fresh) > CACHED_CLAIMS:  # lost sends: their outcome takes a read
            self._fresh.popitem(last=False)

    async def _final(self, delivery_id: str) -> Doc | None:
        """The delivery's final state, or None. An outcome that is durable but whose history
        a crash left unwritten (a closed claim, an unreleased batch) is written here first,
        so that it is neither lost nor handed to a sender again (rare paths only)."""
        doc = await self._coll.find_one(
            {"_id": delivery_id}, {"status": 1, "attempts": 1, "last_attempt": 1}
        )
        if doc is not None and doc["status"] in FINAL:
            return doc
        claim = await self._claims.find_one({"_id": delivery_id})
        if claim is not None and claim["status"] in FINAL and "outcome" in claim:
            await self._record(claim, claim["outcome"])
            return {k: claim.get(k) for k in ("_id", "status", "attempts", "last_attempt")}
        batch = await self._outcomes.find_one(
            {"released": False, "outcomes.delivery_id": delivery_id}
        )
        if batch is None:
            return None
        await self._repair_batch(batch)
        outcome = next(o for o in batch["outcomes"] if o["delivery_id"] == delivery_id)
        return {"_id": delivery_id, "status": outcome["status"], "attempts": outcome["attempts"]}

    async def _existing(self, delivery: Delivery, now: datetime, lease: timedelta) -> Claim:
        """A delivery claimed before (a redelivered event): done if its history is final;
        taken over if its lease ran out (a crash mid-send) - unless it was deferred, which
        its timer resumes; else busy."""
        final = await self._final(delivery.id)
        if final is not None:
            return Claim("done", int(final["attempts"]), final["status"])
        taken = await self._claims.find_one_and_update(
            {"_id": delivery.id, "status": "pending", "lease_until": {"$lte": now}},
            {"$set": {"lease_until": now + lease}, "$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if taken is not None:
            return Claim("send", int(taken["attempts"]), "pending", now + lease)
        current = await self.state(delivery.id)
        if current is None:  # removed meanwhile (not done by this service): start afresh
            return await self.claim(delivery, now, lease)
        if current["status"] in FINAL:
            return Claim("done", int(current["attempts"]), current["status"])
        return Claim(
            "busy", int(current["attempts"]), current["status"], current.get("lease_until")
        )

    async def take(self, delivery_id: str, now: datetime, lease: timedelta) -> Doc | None:
        if await self._final(delivery_id) is not None:
            return None
        # (no projection: FerretDB v1 does not implement findAndModify's "fields")
        return await self._claims.find_one_and_update(
            {
                "_id": delivery_id,
                "status": {"$in": ["pending", "deferred"]},
                "lease_until": {"$lte": now},
            },
            {"$set": {"status": "pending", "lease_until": now + lease}, "$inc": {"attempts": 1}},
            projection=None,
            return_document=ReturnDocument.AFTER,
        )

    async def state(self, delivery_id: str) -> Doc | None:
        final = await self._final(delivery_id)
        if final is not None:
            return final
        fields = {"status": 1, "attempts": 1, "lease_until": 1, "last_attempt": 1}
        claim = await self._claims.find_one({"_id": delivery_id}, fields)
        if claim is not None:
            return claim
        return await self._coll.find_one({"_id": delivery_id}, fields)

    async def backfill_claims(self) -> None:
        """Deliveries recorded before claims had a collection of their own get their claim,
        so that a redelivered old event still finds its delivery. Once per database (run
        again, idempotently, if a crash came first)."""
        if await self._outcomes.find_one({"_id": BACKFILLED}) is not None:
            return
        keep = (*CONTENT, "status", "attempts", "lease_until", "deferred_until", "last_attempt")
        claims: list[Doc] = []
        async for doc in self._coll.find({}, {k: 1 for k in keep}):
            claims.append({k: doc.get(k) for k in ("_id", *keep)})
            if len(claims) >= 1000:
                await self._insert_claims(claims)
                claims = []
        await self._insert_claims(claims)
        await self._outcomes.insert_one({"_id": BACKFILLED, "released": True, "has_outbox": False})

    async def _insert_claims(self, claims: list[Doc]) -> None:
        if not claims:
            return
        try:
            await self._claims.insert_many(claims, ordered=False)
        except BulkWriteError as exc:
            _duplicates(exc)

    # ---- outcomes ---------------------------------------------------------------------------

    @staticmethod
    def _live(c: Completion) -> bool:
        """The sender's lease has clearly not run out: nobody else can hold the delivery."""
        return c.lease_until is not None and c.at + LEASE_MARGIN < c.lease_until

    @classmethod
    def _held(cls, c: Completion) -> Doc:
        """The claim's filter for a completion: fenced by the attempt number - unless the
        sender's lease has clearly not run out, when `_id` alone will do."""
        if cls._live(c):
            return {"_id": c.delivery_id}
        return {"_id": c.delivery_id, "status": "pending", "attempts": c.attempt}

    async def complete_many(self, items: list[Completion]) -> int:
        if not items:
            return 0
        batch: list[tuple[Completion, Doc]] = []
        single: list[Completion] = []
        for c in items:
            claim = self._fresh.pop(c.delivery_id, None)
            if claim is not None and c.attempt == 1 and self._live(c):
                batch.append((c, claim))
            else:
                single.append(c)
        held = await self._complete_batch(batch) if batch else 0
        single_held = sum(await asyncio.gather(*(self._complete_one(c) for c in single)))
        return held + single_held  # (`_record` woke the relay for each event it queued)

    async def _complete_batch(self, batch: list[tuple[Completion, Doc]]) -> int:
        """One outcome document (the outcomes and their events), one insert of the history
        documents, then the outcome document is released to the relay: O(1) round trips and
        no updated delivery document. The outcomes are durable once the outcome document is
        in, so the history is written while the caller goes on with its next batch (one
        batch's history at a time; a crash before it is repaired from the outcomes)."""
        await self.settled()
        outcome_id = new_id("out")
        doc = new_document(
            {
                "_id": outcome_id,
                "written_at": datetime.now(UTC),  # the real clock, for `repair`
                "released": False,
                "outcomes": [
                    {
                        "delivery_id": c.delivery_id,
                        **_outcome_fields(c),
                        "attempt_log": [_attempt(c)],
                    }
                    for c, _ in batch
                ],
            },
            [outbox_entry(c.event, source=SOURCE, event_id=event_id(c)) for c, _ in batch],
        )
        doc["has_outbox"] = False  # the relay waits for the history documents
        await self._outcomes.insert_one(doc)
        history = [_history_doc(claim, _outcome_fields(c), [_attempt(c)], []) for c, claim in batch]
        written = {claim["_id"] for _, claim in batch if claim.get("history")}
        self._history = asyncio.create_task(self._write_history(outcome_id, history, written))
        return len(batch)

    async def _write_history(self, outcome_id: str, docs: list[Doc], written: set[str]) -> None:
        await self._insert_history(docs, written)
        await self._release(outcome_id)
        self._on_events()

    async def settled(self) -> None:
        """Wait for the history of the outcomes recorded so far (a failure is logged: the
        repair writes it later)."""
        task, self._history = self._history, None
        if task is None:
            return
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            log.error("writing a batch's history failed; repaired later", exc_info=task.exception())

    async def _insert_history(
        self, docs: list[Doc], written: frozenset[str] | set[str] = frozenset()
    ) -> None:
        """History documents in one bulk write: inserted, or (`written`, or found to exist)
        updated with their outcome."""
        ops: list[InsertOne[Doc] | UpdateOne] = [
            _outcome_update(d) if d["_id"] in written else InsertOne(d) for d in docs
        ]
        try:
            await self._coll.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            again = [_outcome_update(docs[i]) for i in _duplicates(exc)]
            await self._coll.bulk_write(again, ordered=False)

    async def _release(self, outcome_id: str) -> None:
        await self._outcomes.update_one(
            {"_id": outcome_id}, {"$set": {"released": True, "has_outbox": True}}
        )

    async def _complete_one(self, c: Completion) -> int:
        """A rare path: the claim is closed under its fence *with* its outcome and event, then
        the history document is written from them. A crash in between leaves a closed claim
        that `_final` finishes when the delivery is next looked at (the redelivered event, a
        timer): the history is never lost behind a claim that says "done"."""
        outcome = {
            "fields": _outcome_fields(c),
            "attempt": _attempt(c),
            "event": outbox_entry(c.event, source=SOURCE, event_id=event_id(c)),
        }
        claim = await self._claims.find_one_and_update(
            self._held(c),
            {"$set": {"status": c.status, "lease_until": None, "outcome": outcome}},
            return_document=ReturnDocument.AFTER,
        )
        if claim is None:
            return 0
        await self._record(claim, outcome)
        return 1

    async def _record(self, claim: Doc, outcome: Doc) -> None:
        """The history document of a closed claim, with its event in its own outbox; once
        (a history that is final already was written by the first of two writers)."""
        update = append_events(
            {
                "$setOnInsert": _upserted(claim),
                "$set": outcome["fields"],
                "$push": {"attempt_log": outcome["attempt"]},
            },
            [outcome["event"]],
        )
        try:
            await self._coll.update_one(
                {"_id": claim["_id"], "status": {"$nin": sorted(FINAL)}}, update, upsert=True
            )
        except DuplicateKeyError:
            return  # final already (the upsert's insert met the existing document)
        self._on_events()

    async def complete(
        self,
        delivery_id: str,
        attempt: int,
        status: Final,
        now: datetime,
        receipt: Receipt | None,
        error: str | None,
        event: NotificationDelivered,
    ) -> bool:
        done = await self.complete_many(
            [Completion(delivery_id, attempt, status, now, event, receipt, error)]
        )
        return done == 1

    async def repair(self, older_than: timedelta = timedelta(0)) -> None:
        """Write the history documents of outcome batches whose writer stopped before it
        released them (a crash), and release them. Runs before the subscribers start, and
        from time to time for the batches of other replicas."""
        cutoff = datetime.now(UTC) - older_than
        repaired = 0
        query = {"released": False, "written_at": {"$lte": cutoff}}
        async for batch in self._outcomes.find(query):
            await self._repair_batch(batch)
            repaired += 1
        if repaired:
            log.warning("repaired %d unreleased outcome batches", repaired)

    async def _repair_batch(self, batch: Doc) -> None:
        """The history documents of an outcome batch (idempotent), then its release."""
        ids = [o["delivery_id"] for o in batch["outcomes"]]
        claims = {c["_id"]: c async for c in self._claims.find({"_id": {"$in": ids}})}
        docs = [
            _history_doc(
                claims[o["delivery_id"]],
                {k: v for k, v in o.items() if k not in ("delivery_id", "attempt_log")},
                o["attempt_log"],
                [],
            )
            for o in batch["outcomes"]
            if o["delivery_id"] in claims
        ]
        if docs:
            await self._insert_history(docs)
        await self._release(batch["_id"])
        self._on_events()

    async def prune(self, older_than: timedelta = KEEP_OUTCOMES) -> None:
        """Outcome documents that are released and published say nothing the history does
        not: they are removed after a while."""
        cutoff = datetime.now(UTC) - older_than
        await self._outcomes.delete_many(
            {"released": True, "has_outbox": False, "written_at": {"$lt": cutoff}}
        )

    async def repair_forever(self, every_s: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.repair(REPAIR_AFTER)
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outcome repair failed; trying again")

    async def retry_later(
        self, delivery_id: str, attempt: int, now: datetime, retry_at: datetime, error: str
    ) -> bool:
        self._fresh.pop(delivery_id, None)
        claim = await self._claims.find_one_and_update(
            {"_id": delivery_id, "status": "pending", "attempts": attempt},
            {"$set": {"lease_until": retry_at}},
            return_document=ReturnDocument.AFTER,
        )
        if claim is None:
            return False
        await self._coll.update_one(
            {"_id": delivery_id},
            {
                "$setOnInsert": _upserted(claim)
                | {
                    "sent_at": None,
                    "provider_message_id": None,
                    "_v": 1,
                    "outbox": [],
                    "has_outbox": False,
                },
                "$set": {
                    "status": "pending",
                    "attempts": attempt,
                    "lease_until": retry_at,
                    "updated_at": now,
                    "error": error,
                },
                "$push": {
                    "attempt_log": {"n": attempt, "at": now, "outcome": "retry", "error": error}
                },
            },
            upsert=True,
        )
        return True

    async def replay(self, delivery_id: str, now: datetime, budget: int) -> Doc | None:
        """A dead-lettered delivery back to pending with `budget` more attempts (admin)."""
        current = await self.state(delivery_id)
        if current is None or current["status"] != "dead_lettered":
            return None
        last_attempt = int(current["attempts"]) + budget
        doc = await self._coll.find_one_and_update(
            {"_id": delivery_id, "status": "dead_lettered"},
            {
                "$set": {
                    "status": "pending",
                    "lease_until": now,
                    "updated_at": now,
                    "last_attempt": last_attempt,
                },
                "$push": {
                    "attempt_log": {"n": current["attempts"], "at": now, "outcome": "replay"}
                },
            },
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        await self._claims.update_one(
            {"_id": delivery_id},
            {
                "$set": {
                    "status": "pending",
                    "lease_until": now,
                    "last_attempt": last_attempt,
                    "attempts": int(current["attempts"]),
                }
            },
        )
        return doc

    async def record_receipt(self, provider: str, reference: str, entry: Doc) -> ReceiptResult:
        """A provider's delivery report, once: matched by the provider's message id."""
        key = f"{provider}:{reference}:{entry['status']}"
        res = await self._coll.update_one(
            {"provider_message_id": reference, "receipts.key": {"$ne": key}},
            {
                "$push": {"receipts": {**entry, "key": key, "provider": provider}},
                "$set": {"receipt_status": entry["status"]},
            },
        )
        if res.matched_count:
            return "recorded"
        known = await self._coll.find_one({"provider_message_id": reference}, {"_id": 1})
        return "duplicate" if known is not None else "unknown"

    # ---- queries for the HTTP API -----------------------------------------------------------

    async def get(self, delivery_id: str) -> Doc | None:
        doc = await self._coll.find_one({"_id": delivery_id}, {"outbox": 0})
        if doc is not None:
            return doc
        # claimed and being sent: its history document follows its outcome
        claim = await self._claims.find_one({"_id": delivery_id})
        if claim is None:
            return None
        return {**claim, "updated_at": claim["created_at"], "attempt_log": [], "receipts": []}

    async def page(
        self,
        recipient_id: str | None,
        request_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[Doc], str | None]:
        query: dict[str, Any] = {}
        if recipient_id is not None:
            query["recipient_id"] = recipient_id
        if request_id is not None:
            query["request_id"] = request_id
        if cursor:
            query["seq"] = {"$lt": cursor}
        docs = (
            await self._coll.find(query, {"outbox": 0})
            .sort("seq", DESCENDING)
            .limit(limit + 1)
            .to_list()
        )
        next_cursor = docs[limit - 1]["seq"] if len(docs) > limit else None
        return docs[:limit], next_cursor

"""Use cases of the requests service."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from zhumeng_contracts.events import (
    PlaceRecord,
    RequestCancelled,
    RequesterContact,
    RequestPosted,
    RequestRated,
    ServiceTypeRecord,
)
from zhumeng_kit.auth import Principal
from zhumeng_kit.consumer import PermanentError
from zhumeng_kit.ids import new_id
from zhumeng_kit.outbox import append_events, new_document, outbox_entry
from zhumeng_kit.problems import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
)

from ..domain import public_feed
from ..domain.lifecycle import LifecycleEvent, RequestState, transition
from ..domain.model import NewRequest, RatingIn, Status, can_cancel, cancellable_statuses
from .ports import Catalog, Doc, Page, RequestRepository

SOURCE = "zhumeng/requests"
MAX_RACES = 10  # compare-and-set attempts of one consumed event before the consumer retries
log = logging.getLogger("zhumeng.requests")


@dataclass(frozen=True)
class Posted:
    doc: Doc
    replayed: bool


def slots_of(body: NewRequest, service_type: ServiceTypeRecord) -> int:
    """A service type with slot roles fixes the number of slots (the sum of its roles'
    counts): the requester need not give it, and may not give another."""
    if not service_type.slot_roles:
        return body.slots
    total = sum(r.count for r in service_type.slot_roles)
    if "slots" in body.model_fields_set and body.slots != total:
        raise Unprocessable(
            f"{service_type.id} requests have {total} slots (one per role member), "
            f"not {body.slots}",
            field="slots",
        )
    return total


def roles_field(service_type: ServiceTypeRecord) -> dict[str, Any]:
    """Which slots each role takes (slots 1..c1 the first role, ...), kept on the request."""
    if not service_type.slot_roles:
        return {}
    out, first = [], 1
    for r in service_type.slot_roles:
        slots = list(range(first, first + r.count))
        out.append({"role": r.role, "name_zh": r.name_zh, "name_en": r.name_en, "slots": slots})
        first += r.count
    return {"slot_roles": out}


class RequestService:
    def __init__(self, repo: RequestRepository, catalog: Catalog, on_events: Any = None) -> None:
        self._repo = repo
        self._catalog = catalog
        self._on_events = on_events or (lambda: None)

    async def post(
        self, who: Principal, body: NewRequest, idempotency_key: str, now: datetime | None = None
    ) -> Posted:
        now = now or datetime.now(UTC)
        scoped_key = f"{who.subject}:{idempotency_key}"
        fingerprint = body.fingerprint()
        # The common case is a new key: validate and insert, and only look the key up when
        # the insert says it is taken (or when validation fails: a replay of a request the
        # catalog no longer accepts still returns the original).
        await self._catalog_up_to_date(body)
        try:
            service_type, place = self._validate(body, now)
            dropoff = self._validate_dropoff(body, service_type)
            slots = slots_of(body, service_type)
        except Unprocessable:
            existing = await self._repo.by_idempotency_key(scoped_key)
            if existing is not None:
                return self._replay(existing, fingerprint)
            raise

        request_id = new_id("req")
        township_id = place.township_id or place.id
        contact = RequesterContact(
            request_id=request_id,
            requester_id=who.subject,
            name=body.requester.name,
            phone=body.requester.phone,
            email=body.requester.email,
            locale=body.requester.locale,
        )
        posted = RequestPosted(
            request_id=request_id,
            service_type_id=service_type.id,
            place_id=place.id,
            township_id=township_id,
            location=place.location,
            window=body.window,
            slots=slots,
            language=body.language,
            posted_at=now,
            dropoff_place_id=dropoff.id if dropoff else None,
            dropoff=dropoff.location if dropoff else None,
            seats=body.seats,
            cargo_kg=body.cargo_kg,
        )
        posted_entry = outbox_entry(posted, SOURCE)
        doc = new_document(
            {
                "_id": request_id,
                "idempotency_key": scoped_key,
                "fingerprint": fingerprint,
                "requester_id": who.subject,
                "requester": body.requester.model_dump(mode="json"),
                "service_type_id": service_type.id,
                "place_id": place.id,
                "township_id": township_id,
                "window": body.window.model_dump(mode="json"),
                "slots": slots,
                **roles_field(service_type),
                "language": body.language,
                "notes": body.notes,
                **carry_fields(body),
                "status": Status.POSTED.value,
                "created_at": now,
                "updated_at": now,
                "applied": [],
            },
            # contact first: by the time matching reacts to the request, notify can reach them
            [outbox_entry(contact, SOURCE), posted_entry, _public_posted(posted, posted_entry)],
        )
        if not await self._repo.insert(doc):
            raced = await self._repo.by_idempotency_key(scoped_key)
            if raced is None:
                raise Conflict("the idempotency key is in use; retry")
            return self._replay(raced, fingerprint)
        self._on_events()
        return Posted(doc, replayed=False)

    async def _catalog_up_to_date(self, body: NewRequest) -> None:
        """A service type or place created a moment ago may not have reached this view yet:
        read the catalog up to now once before calling an id unknown (ADR 0015)."""
        places = [body.place_id] + ([body.dropoff_place_id] if body.dropoff_place_id else [])
        known = self._catalog.service_type(body.service_type_id) is not None and all(
            self._catalog.place(p) is not None for p in places
        )
        if known:
            return
        try:
            await self._catalog.catch_up()
        except (TimeoutError, ConnectionError) as exc:
            raise ServiceUnavailable("the catalog could not be read; retry") from exc

    def _validate(self, body: NewRequest, now: datetime) -> tuple[ServiceTypeRecord, PlaceRecord]:
        service_type = self._catalog.service_type(body.service_type_id)
        if service_type is None:
            raise Unprocessable(
                f"unknown service type {body.service_type_id!r}", field="service_type_id"
            )
        place = self._catalog.place(body.place_id)
        if place is None or place.kind == "county":
            raise Unprocessable(f"unknown village or township {body.place_id!r}", field="place_id")
        try:
            body.check_window(now)
        except ValueError as exc:
            raise Unprocessable(str(exc), field="window") from exc
        return service_type, place

    def _validate_dropoff(
        self, body: NewRequest, service_type: ServiceTypeRecord
    ) -> PlaceRecord | None:
        """Trip pooling: the drop-off is a village or township of the catalog."""
        try:
            body.check_carry(service_type.matching_mode == "trip")
        except ValueError as exc:
            raise Unprocessable(str(exc), field="dropoff_place_id") from exc
        if body.dropoff_place_id is None:
            return None
        dropoff = self._catalog.place(body.dropoff_place_id)
        if dropoff is None or dropoff.kind == "county":
            raise Unprocessable(
                f"unknown village or township {body.dropoff_place_id!r}", field="dropoff_place_id"
            )
        return dropoff

    @staticmethod
    def _replay(existing: Doc, fingerprint: str) -> Posted:
        if existing["fingerprint"] != fingerprint:
            raise Conflict("this Idempotency-Key was used with a different request body")
        return Posted(existing, replayed=True)

    async def get(self, who: Principal, request_id: str) -> Doc:
        doc = await self._repo.get(request_id)
        if doc is None or not can_see(who, doc):
            raise NotFound(f"no request {request_id!r}")
        return doc

    async def list(
        self, who: Principal, filters: dict[str, str | None], limit: int, cursor: str | None
    ) -> Page:
        query: Doc = {k: v for k, v in filters.items() if v}
        if not who.is_staff:
            query["requester_id"] = who.subject
        elif who.township and not who.has("admin"):
            if query.get("township_id", who.township) != who.township:
                raise Forbidden("a township coordinator sees only their township")
            query["township_id"] = who.township
        return await self._repo.list(query, limit, cursor)

    async def cancel(self, who: Principal, request_id: str, now: datetime | None = None) -> Doc:
        """The requester, or a coordinator in scope, withdraws the request.

        Not replayable: cancelling a cancelled request is a 409 (`already cancelled`, with
        `request_status`), so a client that retries after a lost response treats that 409 as
        done. One guarded single-document update sets the status and appends
        `RequestCancelled` to the outbox (matching releases the volunteers).
        """
        now = now or datetime.now(UTC)
        doc = await self.get(who, request_id)
        if not can_cancel(doc["status"]):
            raise _cannot_cancel(doc)
        by: Literal["requester", "coordinator"] = (
            "requester" if who.subject == doc["requester_id"] else "coordinator"
        )
        event = RequestCancelled(request_id=request_id, by=by, cancelled_at=now)
        fields = {
            "status": Status.CANCELLED.value,
            "cancelled": {"by": by, "by_id": who.subject, "at": now},
            "updated_at": now,
        }
        entry = outbox_entry(event, SOURCE)
        update = append_events(
            {"$set": fields}, [*_public_status(doc, fields, entry["id"], now), entry]
        )
        guard = {"status": {"$in": cancellable_statuses()}}
        after = await self._repo.update_if(request_id, guard, update)
        if after is None:  # it changed meanwhile (completed, unfulfilled, cancelled by another)
            raise _cannot_cancel(await self._current(request_id))
        self._on_events()
        return after

    async def rate(
        self, who: Principal, request_id: str, rating: RatingIn, now: datetime | None = None
    ) -> Doc:
        """The requester rates a completed request, once. `RequestRated` carries the stars
        only; the comment stays here."""
        now = now or datetime.now(UTC)
        doc = await self.get(who, request_id)
        if doc["requester_id"] != who.subject:
            raise Forbidden("only the requester can rate a request")
        if doc["status"] != Status.COMPLETED:
            raise _cannot_rate(doc)
        event = RequestRated(request_id=request_id, stars=rating.stars, rated_at=now)
        fields = {
            "status": Status.RATED.value,
            "rating": {"stars": rating.stars, "comment": rating.comment, "rated_at": now},
            "updated_at": now,
        }
        entry = outbox_entry(event, SOURCE)
        update = append_events(
            {"$set": fields}, [*_public_status(doc, fields, entry["id"], now), entry]
        )
        guard = {"status": Status.COMPLETED.value, "requester_id": who.subject}
        after = await self._repo.update_if(request_id, guard, update)
        if after is None:  # rated by a concurrent call
            raise _cannot_rate(await self._current(request_id))
        self._on_events()
        return after

    async def _current(self, request_id: str) -> Doc:
        doc = await self._repo.get(request_id)
        if doc is None:
            raise NotFound(f"no request {request_id!r}")
        return doc

    async def on_event(
        self, event_id: str, event: LifecycleEvent, now: datetime | None = None
    ) -> bool:
        """Apply one of matching's lifecycle events, once (idempotent by event id).

        Returns whether it changed the request. An event that does not fit the request's status
        (a late event for a cancelled request) is recorded as applied and changes nothing: never
        an error. Only an event for a request that does not exist is dead-lettered.

        The change is computed from the document as read and written with a compare-and-set on
        its version, so a concurrent cancel or rating is never overwritten (on a lost race the
        event is re-evaluated against the new state).
        """
        for _ in range(MAX_RACES):
            doc = await self._repo.get(event.request_id)
            if doc is None:
                raise PermanentError(f"{event.TYPE} for unknown request {event.request_id}")
            if event_id in (doc.get("applied") or []):
                return False
            change = transition(RequestState.of(doc), event)
            fields = None
            if change is not None:
                fields = {**change.to_set(), "updated_at": now or datetime.now(UTC)}
            if await self._apply(doc, event_id, fields):
                if change is None:
                    log.info(
                        "%s %s ignored: request %s is %s",
                        event.TYPE,
                        event_id,
                        event.request_id,
                        doc["status"],
                    )
                return change is not None
        # the request kept changing under us: let the consumer retry with backoff
        raise RuntimeError(f"request {event.request_id} changed {MAX_RACES} times; retry")

    async def _apply(self, doc: Doc, event_id: str, fields: Doc | None) -> bool:
        """Record a consumed event (and its change). A status change also carries its public
        event, in the same single-document update (outbox)."""
        public = _public_status(doc, fields, event_id, fields["updated_at"]) if fields else []
        if not public:
            return await self._repo.apply_event(doc["_id"], event_id, doc["_v"], fields)
        # the compare-and-set on `_v` also guards `applied`: read above without this event
        applied = {"applied": {"$each": [event_id]}}
        update = append_events({"$set": fields, "$push": applied}, public)
        if await self._repo.update_if(doc["_id"], {"_v": doc["_v"]}, update) is None:
            return False
        self._on_events()
        return True


def _public_posted(posted: RequestPosted, posted_entry: Doc) -> Doc:
    event_id = public_feed.public_id(posted_entry["id"], "posted")
    return outbox_entry(public_feed.posted(posted), SOURCE, event_id=event_id)


def _public_status(doc: Doc, fields: Doc, source_event_id: str, at: datetime) -> list[Doc]:
    """`PublicRequestStatusChanged` when `fields` change the status of `doc` (else nothing);
    its id derives from the event that caused the change."""
    event = public_feed.status_changed(doc, fields, at)
    if event is None:
        return []
    event_id = public_feed.public_id(source_event_id, "status")
    return [outbox_entry(event, SOURCE, event_id=event_id)]


def _cannot_cancel(doc: Doc) -> Conflict:
    status = doc["status"]
    detail = (
        "already cancelled"
        if status == Status.CANCELLED
        else f"a request {status} cannot be cancelled"
    )
    return Conflict(detail, request_status=status)


def _cannot_rate(doc: Doc) -> Conflict:
    status = doc["status"]
    detail = (
        "already rated"
        if status == Status.RATED
        else f"only a completed request can be rated (it is {status})"
    )
    return Conflict(detail, request_status=status)


def carry_fields(body: NewRequest) -> Doc:
    """What a trip-pooled request carries, stored only when asked for."""
    if body.dropoff_place_id is None and not body.seats and not body.cargo_kg:
        return {}
    return {
        "dropoff_place_id": body.dropoff_place_id,
        "seats": body.seats,
        "cargo_kg": body.cargo_kg,
    }


def can_see(who: Principal, doc: Doc) -> bool:
    if who.has("admin"):
        return True
    if who.has("coordinator"):
        return who.township is None or who.township == doc.get("township_id")
    return bool(doc.get("requester_id") == who.subject)

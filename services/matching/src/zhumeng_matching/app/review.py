"""A coordinator's review of requests that need it, and the coordinators' queue (ADR 0009).

A request of a service type with `needs_review` is held (`ReviewRequired`, state in_review)
when it is posted. A coordinator of its township (or the county) approves it — matching then
starts as for any request, and the escalation clock starts at the approval — or rejects it
(terminal). Both are one compare-and-set on the match with `RequestReviewed` in its outbox.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from zhumeng_contracts.events import RequestPosted
from zhumeng_kit.auth import Principal
from zhumeng_kit.problems import NotFound

from ..domain import lifecycle as lc
from .escalation import EscalationService
from .lifecycle_service import LifecycleService, decode, in_scope
from .ports import DecisionStore, Doc

QUEUE_KINDS = ("in_review", "unmatched", "escalated")
HUMAN_LEVELS = ("township_liaison", "county_centre")


class QueueStore(Protocol):
    async def queue(self, township_id: str | None, limit: int) -> list[Doc]:
        """Decisions in review, unmatched, or escalated to people and still open, oldest
        first; only one township's when given."""
        ...


class ReviewService:
    def __init__(
        self,
        lifecycle: LifecycleService,
        escalation: EscalationService,
        decisions: DecisionStore,
        queue_store: QueueStore,
    ) -> None:
        self._lifecycle = lifecycle
        self._escalation = escalation
        self._decisions = decisions
        self._queue = queue_store

    async def review(
        self,
        who: Principal,
        request_id: str,
        decision: Literal["approved", "rejected"],
        note: str | None,
    ) -> lc.Match:
        doc = await self._decisions.get(request_id)
        if doc is None or "lifecycle" not in doc or not in_scope(who, doc):
            raise NotFound(f"no request {request_id!r} to review")
        now = datetime.now(UTC)
        request = RequestPosted.model_validate(doc["posted"])
        if decision == "approved":
            # the clock first: a crash after the approval still escalates (and so searches)
            await self._escalation.arm(request, now)
        match = await self._lifecycle.apply(
            request_id, lambda m: lc.review(m, decision, who.subject, note, now)
        )
        if decision == "approved":
            return await self.start(match)
        return match

    async def start(self, match: lc.Match) -> lc.Match:
        """Matching starts as for a request that needed no review."""
        rid = match.request_id
        if match.mode == "auto_offer":
            started = await self._lifecycle.offer_next(rid)
        elif match.mode == "open_claim":
            started = await self._lifecycle.invite(rid)
        else:
            started = await self._lifecycle.fill_direct(rid)
        return started or match

    async def queue(self, who: Principal, limit: int) -> list[dict[str, Any]]:
        township = None if (who.has("admin") or not who.township) else who.township
        now = datetime.now(UTC)
        docs = await self._queue.queue(township, limit)
        return [queue_item(d) for d in docs if not _over(d, now)]


def _over(doc: Doc, now: datetime) -> bool:
    """An unmatched request whose window has ended needs nobody any more."""
    end = ((doc.get("posted") or {}).get("window") or {}).get("end")
    return end is not None and datetime.fromisoformat(end) <= now


def queue_item(doc: Doc) -> dict[str, Any]:
    """One line of the coordinators' queue: what it is, where, and why it is there."""
    posted = doc.get("posted") or {}
    match = decode(doc["lifecycle"]) if "lifecycle" in doc else None
    if match is not None and match.state is lc.State.IN_REVIEW:
        kind = "in_review"
    elif match is not None and match.escalation_level in HUMAN_LEVELS:
        kind = "escalated"
    else:
        kind = "unmatched"
    item: dict[str, Any] = {
        "request_id": doc["_id"],
        "kind": kind,
        "service_type_id": posted.get("service_type_id"),
        "township_id": posted.get("township_id"),
        "place_id": posted.get("place_id"),
        "window": posted.get("window"),
        "slots": posted.get("slots", 1),
        "state": match.state.value if match else doc.get("state"),
    }
    if match is not None:
        item["filled_slots"] = len(match.live_assignments)
        item["escalation"] = {
            "step": match.escalation_step,
            "level": match.escalation_level,
            "radius_factor": match.radius_factor,
        }
    if doc.get("reasons"):
        item["reasons"] = doc["reasons"]
    return item

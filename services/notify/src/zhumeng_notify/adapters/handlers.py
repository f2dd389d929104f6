"""Kafka handlers: the kit's runner calls these with the decoded event (retries, dead letters).

From matching.events.v1: the match decision and its lifecycle; from requests.events.v1:
`RequestPosted` (the other request events there are not notify's: ignored). With reminders,
an assignment arms its reminder timer and its end (cancelled, completed, checked in) disarms
it, each before the people are told: a retry of the telling re-runs an idempotent step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    ClaimOpened,
    Event,
    OfferExpired,
    OfferMade,
    RequestCompleted,
    RequestEscalated,
    RequestPosted,
    RequestReviewed,
    RequestUnfulfilled,
    RequestUnmatched,
    ReviewRequired,
    VolunteerAssigned,
)
from zhumeng_kit.consumer import Handler, PermanentError

from ..app.notify import NotifyOnEvent
from ..app.reminders import Reminders

E = TypeVar("E", bound=Event)
Step = Callable[[EventMeta, E], Awaitable[Any]]


def _typed(model: type[E], *steps: Step[E]) -> Handler:
    """One handler running the steps in order (the first failure stops and is retried)."""

    async def handler(meta: EventMeta, event: Event) -> None:
        if not isinstance(event, model):
            raise PermanentError(f"expected {model.__name__}, got {type(event).__name__}")
        for step in steps:
            await step(meta, event)

    return handler


def matching_handlers(
    use_case: NotifyOnEvent, reminders: Reminders | None = None
) -> dict[type[Event], Handler]:
    """The match decision and its lifecycle, on matching.events.v1 (with reminders: armed by
    an assignment, disarmed by its end)."""
    arm: list[Step[VolunteerAssigned]] = [reminders.on_assigned] if reminders else []
    disarm: list[Step[Any]] = [reminders.on_ended] if reminders else []
    return {
        VolunteerAssigned: _typed(VolunteerAssigned, *arm, use_case.volunteer_assigned),
        RequestUnmatched: _typed(RequestUnmatched, use_case.request_unmatched),
        CheckedIn: _typed(CheckedIn, *disarm, use_case.checked_in),
        AssignmentCompleted: _typed(AssignmentCompleted, *disarm, use_case.assignment_completed),
        AssignmentCancelled: _typed(AssignmentCancelled, *disarm, use_case.assignment_cancelled),
        RequestCompleted: _typed(RequestCompleted, use_case.request_completed),
        RequestUnfulfilled: _typed(RequestUnfulfilled, use_case.request_unfulfilled),
    }


def notify_handlers(
    use_case: NotifyOnEvent, reminders: Reminders | None = None
) -> dict[type[Event], Handler]:
    """Every event notify acts on, on both topics it consumes (ADR 0012): the lifecycle above,
    review, escalation, offers and claims, and `RequestPosted` from requests.events.v1."""
    return {
        **matching_handlers(use_case, reminders),
        RequestPosted: _typed(RequestPosted, use_case.request_posted),
        ReviewRequired: _typed(ReviewRequired, use_case.review_required),
        RequestReviewed: _typed(RequestReviewed, use_case.request_reviewed),
        RequestEscalated: _typed(RequestEscalated, use_case.request_escalated),
        OfferMade: _typed(OfferMade, use_case.offer_made),
        OfferExpired: _typed(OfferExpired, use_case.offer_expired),
        ClaimOpened: _typed(ClaimOpened, use_case.claim_opened),
    }

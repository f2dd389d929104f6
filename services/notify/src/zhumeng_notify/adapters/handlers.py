"""Kafka handlers: the kit's runner calls these with the decoded event (retries, dead letters).

All of them arrive on matching.events.v1: the match decision and its lifecycle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    Event,
    RequestCompleted,
    RequestUnfulfilled,
    RequestUnmatched,
    VolunteerAssigned,
)
from zhumeng_kit.consumer import Handler, PermanentError

from ..app.notify import NotifyOnEvent

E = TypeVar("E", bound=Event)


def _typed(model: type[E], handle: Callable[[EventMeta, E], Awaitable[Any]]) -> Handler:
    async def handler(meta: EventMeta, event: Event) -> None:
        if not isinstance(event, model):
            raise PermanentError(f"expected {model.__name__}, got {type(event).__name__}")
        await handle(meta, event)

    return handler


def matching_handlers(use_case: NotifyOnEvent) -> dict[type[Event], Handler]:
    return {
        VolunteerAssigned: _typed(VolunteerAssigned, use_case.volunteer_assigned),
        RequestUnmatched: _typed(RequestUnmatched, use_case.request_unmatched),
        CheckedIn: _typed(CheckedIn, use_case.checked_in),
        AssignmentCompleted: _typed(AssignmentCompleted, use_case.assignment_completed),
        AssignmentCancelled: _typed(AssignmentCancelled, use_case.assignment_cancelled),
        RequestCompleted: _typed(RequestCompleted, use_case.request_completed),
        RequestUnfulfilled: _typed(RequestUnfulfilled, use_case.request_unfulfilled),
    }

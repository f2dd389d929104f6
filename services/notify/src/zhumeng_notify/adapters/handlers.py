"""Kafka handlers: the kit's runner calls these with the decoded event (retries, dead letters)."""

from __future__ import annotations

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import Event, RequestUnmatched, VolunteerAssigned
from zhumeng_kit.consumer import Handler, PermanentError

from ..app.notify import NotifyOnEvent


def matching_handlers(use_case: NotifyOnEvent) -> dict[type[Event], Handler]:
    async def on_assigned(meta: EventMeta, event: Event) -> None:
        if not isinstance(event, VolunteerAssigned):
            raise PermanentError(f"expected VolunteerAssigned, got {type(event).__name__}")
        await use_case.volunteer_assigned(meta, event)

    async def on_unmatched(meta: EventMeta, event: Event) -> None:
        if not isinstance(event, RequestUnmatched):
            raise PermanentError(f"expected RequestUnmatched, got {type(event).__name__}")
        await use_case.request_unmatched(meta, event)

    return {VolunteerAssigned: on_assigned, RequestUnmatched: on_unmatched}

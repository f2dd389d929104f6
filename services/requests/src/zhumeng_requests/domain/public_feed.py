"""The request's public projection (`public.requests.v1`): what other agencies may know of a
request — service, village, township, window, slots and status — and nothing about the
requester. Pure: no I/O.

Every public event is derived from one internal event; its id is a UUIDv5 of that event's id,
so re-deriving it (a redelivered matching event) gives the same id and subscribers drop it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, get_args

from zhumeng_contracts.events import (
    PublicRequestPosted,
    PublicRequestStatusChanged,
    RequestPosted,
)
from zhumeng_contracts.events.public import PublicStatus

from .lifecycle import Assignment

NAMESPACE = uuid.UUID("5b7c1f0e-8a52-4a8e-9a7e-2d1c0f3e6b11")
PUBLIC_STATUSES = frozenset(get_args(PublicStatus))


def public_id(source_event_id: str, kind: str) -> str:
    """The public event's id: the same for the same source event and kind, always."""
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{source_event_id}"))


def posted(event: RequestPosted) -> PublicRequestPosted:
    return PublicRequestPosted(
        request_id=event.request_id,
        service_type_id=event.service_type_id,
        township_id=event.township_id,
        place_id=event.place_id,
        window=event.window,
        slots=event.slots,
        posted_at=event.posted_at,
    )


def filled_slots(assignments: Iterable[Mapping[str, Any] | Assignment]) -> int:
    live = (a if isinstance(a, Assignment) else Assignment.model_validate(a) for a in assignments)
    return len({a.slot for a in live if a.live})


def status_changed(
    request: Mapping[str, Any], new: Mapping[str, Any], at: datetime
) -> PublicRequestStatusChanged | None:
    """The public event for a status change of `request` (the stored document) by the fields
    `new` sets, or None when the status did not change (or is not a public one)."""
    status = str(new.get("status", request["status"]))
    if status == request["status"] or status not in PUBLIC_STATUSES:
        return None
    slots = int(request.get("slots", 1))
    assignments = new.get("assignments", request.get("assignments") or [])
    return PublicRequestStatusChanged(
        request_id=request["_id"],
        service_type_id=request["service_type_id"],
        township_id=request["township_id"],
        status=status,  # checked against PublicStatus above
        filled_slots=min(filled_slots(assignments), slots),
        slots=slots,
        changed_at=at,
    )

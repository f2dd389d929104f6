"""What matching's use cases need from storage."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from ..domain.policy import Load

Doc = dict[str, Any]


class Reservation(Enum):
    """What `LoadStore.reserve` did. Falsy only when full, so `if not await reserve(...)`
    reads as before; only a call that TOOK the unit may give it back on failure (a HELD one
    may be a racing attempt's — a double-tapped claim, two runs of one batch window)."""

    TAKEN = "taken"  # this call took one unit of capacity
    HELD = "held"  # the request already held one: a repeat, a racing or a crashed attempt
    FULL = "full"

    def __bool__(self) -> bool:
        return self is not Reservation.FULL


class LoadStore(Protocol):
    """Volunteers' capacity, changed only by atomic conditional single-document updates."""

    def cached(self) -> dict[str, Load]:
        """The last known loads (may be stale; `reserve` is the authority)."""
        ...

    async def reserve(self, volunteer_id: str, request_id: str, capacity: int) -> Reservation:
        """Take one unit of capacity for this request, unless full. Idempotent per request."""
        ...

    async def holders_of(self, request_id: str) -> list[str]:
        """Volunteers already holding capacity for this request (after a crash)."""
        ...

    async def release(self, volunteer_id: str, request_id: str) -> bool:
        """Give back the capacity this request held; idempotent."""
        ...


class DecisionStore(Protocol):
    async def begin(self, request_id: str, event_id: str, posted: Doc) -> tuple[Doc, bool]:
        """Create the decision document if new; returns its current state and whether it was
        created now (if not, an earlier attempt may have reserved capacity already)."""
        ...

    async def finish(self, request_id: str, state: str, fields: Doc, entries: list[Doc]) -> bool:
        """Record the outcome and its events in one write, once."""
        ...

    async def get(self, request_id: str) -> Doc | None: ...

    async def save_lifecycle(
        self, request_id: str, version: int, lifecycle: Doc, entries: list[Doc]
    ) -> bool: ...


class Timers(Protocol):
    """Durable timers (the kit's `Scheduler` in service)."""

    async def schedule(
        self, kind: str, key: str, due_at: datetime, payload: Doc | None = None
    ) -> str: ...


class OfferCascade(Protocol):
    async def offer_next(self, request_id: str) -> Any: ...

    async def invite(self, request_id: str) -> Any: ...

"""What the use cases need from the outside world."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from zhumeng_contracts.events import PlaceRecord, ServiceTypeRecord

Doc = dict[str, Any]


class Catalog(Protocol):
    """The requests service's view of the catalog (fed from the compacted topics)."""

    def service_type(self, id: str) -> ServiceTypeRecord | None: ...

    def place(self, id: str) -> PlaceRecord | None: ...

    async def catch_up(self) -> None:
        """Read every catalog record written before now (raises TimeoutError when it can't)."""
        ...


@dataclass(frozen=True)
class Page:
    items: list[Doc]
    next_cursor: str | None


class RequestRepository(Protocol):
    async def insert(self, doc: Doc) -> bool:
        """Insert a new request; False when its idempotency key is taken."""
        ...

    async def by_idempotency_key(self, key: str) -> Doc | None: ...

    async def get(self, request_id: str) -> Doc | None: ...

    async def list(self, filters: Doc, limit: int, after: str | None) -> Page: ...

    async def apply_event(
        self, request_id: str, event_id: str, version: int, change: Doc | None
    ) -> bool:
        """Record a consumed event as applied and `$set` its change (if any) in one update,
        only if the request is still at `version` (`_v`) and the event is not applied yet;
        the update bumps `_v`. False if either guard failed."""
        ...

    async def update_if(self, request_id: str, guard: Doc, update: Doc) -> Doc | None:
        """One guarded single-document update (a command's state change and its outbox
        entries); the document after it, or None if nothing matched `{_id, **guard}`."""
        ...

    async def exists(self, request_id: str) -> bool: ...

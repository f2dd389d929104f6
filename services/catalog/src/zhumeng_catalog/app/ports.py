"""What the use cases need from storage. The MongoDB adapter and the in-memory fake implement it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from zhumeng_contracts.events import Event

from ..domain.rules import Query

Kind = Literal["service_types", "places", "volunteers", "teams"]
KINDS: tuple[Kind, ...] = ("service_types", "places", "volunteers", "teams")


@dataclass(frozen=True)
class Stored:
    """An entity's state as stored, with the store's revision (for compare-and-set)."""

    state: dict[str, Any]
    rev: int


class CatalogRepository(Protocol):
    async def get(self, kind: Kind, entity_id: str) -> Stored | None:
        """The current state, or None."""

    async def get_many(self, kind: Kind, ids: list[str]) -> dict[str, Stored]:
        """The states of those ids that exist."""

    async def insert(self, kind: Kind, state: dict[str, Any], events: list[Event]) -> bool:
        """Store a new entity and its events in one write; False if the id is taken."""

    async def update(
        self, kind: Kind, entity_id: str, rev: int, state: dict[str, Any], events: list[Event]
    ) -> bool:
        """Replace the state and append events in one write, only if the revision is still
        `rev` (compare-and-set); False when another write came first."""

    async def find(
        self, kind: Kind, query: Query, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """States matching `query` with id > `after`, in id order, at most `limit`."""

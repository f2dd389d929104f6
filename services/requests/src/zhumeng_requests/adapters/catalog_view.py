"""The catalog as the requests service sees it: views of two compacted catalog topics."""

from __future__ import annotations

from zhumeng_contracts.events import PlaceRecord, ServiceTypeRecord
from zhumeng_kit.views import CompactedTopicsReader, View


class CatalogViews:
    def __init__(self) -> None:
        self.service_types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
        self.places: View[PlaceRecord] = View(PlaceRecord)
        self.reader: CompactedTopicsReader | None = None  # set by the composition root

    def topics(self) -> dict[str, View[ServiceTypeRecord] | View[PlaceRecord]]:
        return {
            ServiceTypeRecord.TOPIC: self.service_types,
            PlaceRecord.TOPIC: self.places,
        }

    def service_type(self, id: str) -> ServiceTypeRecord | None:
        return self.service_types.get(id)

    def place(self, id: str) -> PlaceRecord | None:
        return self.places.get(id)

    async def catch_up(self) -> None:
        if self.reader is not None:
            await self.reader.caught_up(*self.topics())

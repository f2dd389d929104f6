"""The catalog as the requests service sees it: views of two compacted catalog topics."""

from __future__ import annotations

from zhumeng_contracts.events import PlaceRecord, ServiceTypeRecord
from zhumeng_kit.views import View


class CatalogViews:
    def __init__(self) -> None:
        self.service_types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
        self.places: View[PlaceRecord] = View(PlaceRecord)

    def topics(self) -> dict[str, View[ServiceTypeRecord] | View[PlaceRecord]]:
        return {
            ServiceTypeRecord.TOPIC: self.service_types,
            PlaceRecord.TOPIC: self.places,
        }

    def service_type(self, id: str) -> ServiceTypeRecord | None:
        return self.service_types.get(id)

    def place(self, id: str) -> PlaceRecord | None:
        return self.places.get(id)

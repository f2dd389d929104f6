"""The Directory port over the in-memory views of the compacted topics, plus the coordinators
of notify's own directory (a Mongo collection: they are not on any topic)."""

from __future__ import annotations

from zhumeng_contracts.events import ContactRecord, RequesterContact, ServiceTypeRecord
from zhumeng_kit.views import View

from ..domain.model import Locale, Recipient
from .coordinator_store import MongoCoordinatorStore


class ViewDirectory:
    def __init__(
        self,
        volunteers: View[ContactRecord],
        requesters: View[RequesterContact],
        service_types: View[ServiceTypeRecord],
        coordinator_store: MongoCoordinatorStore | None = None,
    ) -> None:
        self.volunteers = volunteers
        self.requesters = requesters
        self.service_types = service_types
        self.coordinator_store = coordinator_store

    async def coordinators(self, township_id: str | None) -> list[Recipient]:
        """A township's coordinators (None: the county's); none without a store."""
        if self.coordinator_store is None:
            return []
        return await self.coordinator_store.coordinators(township_id)

    def requester(self, request_id: str) -> Recipient | None:
        c = self.requesters.get(request_id)
        if c is None:
            return None
        return Recipient(
            id=c.requester_id,
            role="requester",
            name=c.name,
            locale=c.locale,
            email=str(c.email) if c.email else None,
            phone=c.phone,
        )

    def volunteer(self, volunteer_id: str) -> Recipient | None:
        c = self.volunteers.get(volunteer_id)
        if c is None:
            return None
        return Recipient(
            id=c.id,
            role="volunteer",
            name=c.name,
            locale=c.locale,
            email=str(c.email) if c.email else None,
            phone=c.phone,
        )

    def service_name(self, service_type_id: str, locale: Locale) -> str | None:
        st = self.service_types.get(service_type_id)
        if st is None:
            return None
        return st.name_zh if locale == "zh-CN" else st.name_en

"""In-memory stand-ins for matching's stores, for unit tests (the real ones are in
`adapters.mongo_stores`)."""

from typing import Any

from .app.ports import Reservation
from .domain.policy import Load


class FakeLoads:
    def __init__(self) -> None:
        self.active: dict[str, list[str]] = {}
        self.total: dict[str, int] = {}

    def cached(self) -> dict[str, Load]:
        return {k: Load(len(v), self.total.get(k, 0)) for k, v in self.active.items()}

    async def reserve(self, volunteer_id: str, request_id: str, capacity: int) -> Reservation:
        held = self.active.setdefault(volunteer_id, [])
        if request_id in held:
            return Reservation.HELD
        if len(held) >= capacity:
            return Reservation.FULL
        held.append(request_id)
        self.total[volunteer_id] = self.total.get(volunteer_id, 0) + 1
        return Reservation.TAKEN

    async def holders_of(self, request_id: str) -> list[str]:
        return sorted(v for v, reqs in self.active.items() if request_id in reqs)

    async def release(self, volunteer_id: str, request_id: str) -> bool:
        held = self.active.get(volunteer_id, [])
        if request_id not in held:
            return False
        held.remove(request_id)
        return True


class FakeDecisions:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.fail_next_finish = False

    async def begin(
        self, request_id: str, event_id: str, posted: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        created = request_id not in self.docs
        return self.docs.setdefault(request_id, {"state": "deciding", "outbox": []}), created

    async def finish(
        self, request_id: str, state: str, fields: dict[str, Any], entries: list[dict[str, Any]]
    ) -> bool:
        if self.fail_next_finish:
            self.fail_next_finish = False
            raise ConnectionError("database went away")
        doc = self.docs[request_id]
        if doc["state"] != "deciding":
            return False
        doc.update(state=state, **fields)
        doc["outbox"].extend(entries)
        return True

    async def get(self, request_id: str) -> dict[str, Any] | None:
        return self.docs.get(request_id)

    async def save_lifecycle(
        self, request_id: str, version: int, lifecycle: dict[str, Any], entries: list[Any]
    ) -> bool:
        raise NotImplementedError("not used by the matcher")

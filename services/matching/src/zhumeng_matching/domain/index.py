"""The in-memory read model of volunteers: a spatial grid plus a skill index, so that a
decision looks only at volunteers near the request who have the skills (DESIGN §6)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from zhumeng_contracts.events import VolunteerRecord

from .geo import Cell, cell_of, cells_within


class VolunteerIndex:
    def __init__(self) -> None:
        self._by_id: dict[str, VolunteerRecord] = {}
        self._cells: dict[Cell, set[str]] = defaultdict(set)
        self._skills: dict[str, set[str]] = defaultdict(set)
        self._cell_of: dict[str, Cell] = {}
        self.max_radius_km = 0.0

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, volunteer_id: str) -> VolunteerRecord | None:
        return self._by_id.get(volunteer_id)

    def put(self, vol: VolunteerRecord) -> None:
        self.remove(vol.id)
        self._by_id[vol.id] = vol
        cell = cell_of(vol.home.lat, vol.home.lon)
        self._cell_of[vol.id] = cell
        self._cells[cell].add(vol.id)
        for skill in vol.skills:
            self._skills[skill].add(vol.id)
        # radii only grow here; a stale larger maximum just widens the search slightly
        self.max_radius_km = max(self.max_radius_km, vol.radius_km)

    def remove(self, volunteer_id: str) -> None:
        old = self._by_id.pop(volunteer_id, None)
        if old is None:
            return
        cell = self._cell_of.pop(volunteer_id)
        self._cells[cell].discard(volunteer_id)
        if not self._cells[cell]:
            del self._cells[cell]
        for skill in old.skills:
            self._skills[skill].discard(volunteer_id)

    def on_change(self, key: str, record: VolunteerRecord | None) -> None:
        """Listener for the catalog view."""
        if record is None:
            self.remove(key)
        else:
            self.put(record)

    def nearby(
        self, lat: float, lon: float, required_skills: Iterable[str]
    ) -> list[VolunteerRecord]:
        """Volunteers in cells within the largest radius of the point, holding every
        required skill. Exact distance and the volunteer's own radius are checked later."""
        skill_sets = [self._skills.get(s, set()) for s in required_skills]
        skilled: set[str] | None = None
        if skill_sets:
            skill_sets.sort(key=len)
            skilled = set(skill_sets[0]).intersection(*skill_sets[1:])
            if not skilled:
                return []
        found: list[VolunteerRecord] = []
        for cell in cells_within(lat, lon, self.max_radius_km):
            ids = self._cells.get(cell)
            if not ids:
                continue
            for vid in ids if skilled is None else ids & skilled:
                found.append(self._by_id[vid])
        return found

    def all(self) -> list[VolunteerRecord]:
        return list(self._by_id.values())

"""Volunteers' histories: the stored document as the policy sees it, and the service's two
events applied in either order (an in-memory store with the Mongo store's guards)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from zhumeng_contracts.events import AssignmentCompleted, RequestRated
from zhumeng_matching.app.volunteer_stats import VolunteerStatsService, stats_of
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.examples import request, service, volunteer

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def test_recent_hours_count_only_the_last_30_days() -> None:
    doc = {
        "completed": 4,
        "by_type": {"haircut": 3, "care\uff0evisit": 1},
        "recent": [
            {"at": NOW - timedelta(days=40), "h": 5.0},
            {"at": (NOW - timedelta(days=29)).replace(tzinfo=None), "h": 2.5},  # stored naive
            {"at": NOW - timedelta(hours=1), "h": 1.25},
        ],
        "stars_sum": 9,
        "stars_n": 2,
    }
    st = stats_of(doc, NOW)
    assert st.recent_hours == 3.75
    assert st.completed == 4 and st.by_type == {"haircut": 3, "care.visit": 1}
    assert (st.stars_sum, st.stars_n) == (9.0, 2)
    assert stats_of(doc, NOW + timedelta(days=30)).recent_hours == 0.0


class MemoryStats:
    """The Mongo store's contract in memory: guarded by event id and by request id."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.completers: dict[str, dict[str, Any]] = {}

    def _doc(self, vid: str) -> dict[str, Any]:
        return self.docs.setdefault(
            vid,
            {
                "_id": vid,
                "completed": 0,
                "by_type": {},
                "recent": [],
                "applied": [],
                "rated": [],
                "stars_sum": 0,
                "stars_n": 0,
            },
        )

    async def add_completion(
        self, event_id: str, volunteer_id: str, service_type_id: str, hours: float, at: datetime
    ) -> dict[str, Any]:
        doc = self._doc(volunteer_id)
        if event_id not in doc["applied"]:
            doc["applied"].append(event_id)
            doc["completed"] += 1
            doc["by_type"][service_type_id] = doc["by_type"].get(service_type_id, 0) + 1
            doc["recent"].append({"at": at, "h": hours})
        return doc

    async def add_rating(self, volunteer_id: str, request_id: str, stars: int) -> dict[str, Any]:
        doc = self._doc(volunteer_id)
        if request_id not in doc["rated"]:
            doc["rated"].append(request_id)
            doc["stars_sum"] += stars
            doc["stars_n"] += 1
        return doc

    async def add_completer(self, request_id: str, volunteer_id: str) -> int | None:
        c = self.completers.setdefault(request_id, {"volunteers": []})
        if volunteer_id not in c["volunteers"]:
            c["volunteers"].append(volunteer_id)
        stars = c.get("stars")
        return int(stars) if stars is not None else None

    async def rate(self, request_id: str, stars: int) -> tuple[int, list[str]]:
        c = self.completers.setdefault(request_id, {"volunteers": []})
        c.setdefault("stars", stars)
        return int(c["stars"]), list(c["volunteers"])

    async def changed_since(self, since: datetime | None) -> list[dict[str, Any]]:
        return list(self.docs.values())


def completed(vid: str, request_id: str = "r1") -> AssignmentCompleted:
    return AssignmentCompleted(
        request_id=request_id,
        assignment_id=f"a_{vid}",
        volunteer_id=vid,
        service_type_id="haircut",
        checked_in_at=NOW - timedelta(hours=2),
        checked_out_at=NOW,
        hours=2.0,
    )


@pytest.mark.parametrize("rating_first", [False, True])
async def test_a_rating_reaches_everyone_who_completed_once_in_either_order(
    rating_first: bool,
) -> None:
    index = VolunteerIndex()
    index.put(volunteer("a"))
    svc = VolunteerStatsService(MemoryStats(), index, clock=lambda: NOW)
    rated = RequestRated(request_id="r1", stars=5, rated_at=NOW)
    steps = [
        lambda: svc.on_completed("e1", completed("a")),
        lambda: svc.on_completed("e2", completed("b")),
        lambda: svc.on_rated("e3", rated),
    ]
    if rating_first:
        steps.reverse()
    for step in steps + steps:  # everything delivered twice
        await step()
    for vid in ("a", "b"):
        st = index.stats_of(vid)
        assert (st.completed, st.recent_hours, st.stars_sum, st.stars_n) == (1, 2.0, 5.0, 1)
        assert st.experience("haircut") == 1
    # the index scores "a" with the new history: one completion, one 5-star
    (best,) = index.best(request(), service(), index.loads, 1).candidates
    figures = {p.criterion: p.value for p in best.parts}
    assert figures["newcomer"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["experience"] == 0.2
    assert figures["rating"] == pytest.approx(((4 * 5 + 5) / 6 - 1) / 4, abs=1e-4)
    assert figures["recent_hours"] == 0.9

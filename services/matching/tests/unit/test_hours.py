"""The hours ledger: totals by volunteer, team, township and service type, and CSV."""

import csv
import io
from datetime import datetime, timedelta

import pytest

from zhumeng_matching.adapters.match_codec import decode, encode
from zhumeng_matching.app.hours import credits_of, to_csv, totals
from zhumeng_matching.domain import lifecycle as lc
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.domain.policy import Candidate, Load, score
from zhumeng_matching.examples import WINDOW, request, volunteer

pytestmark = pytest.mark.unit


def served(request_id: str, township: str, *volunteers: tuple[str, float]) -> dict[str, object]:
    """A decision document whose volunteers each served `hours`."""
    m = lc.new_match(request_id, "haircut", WINDOW, len(volunteers), "direct")
    for vid, _ in volunteers:
        total, parts = score(volunteer(vid), request(), Load(), 1.0)
        m, _ = lc.assign(m, Candidate(volunteer(vid), 1.0, total, parts), WINDOW.start)
    for a, (_, hours) in zip(m.assignments, volunteers, strict=True):
        m, _ = lc.check_in(m, a.assignment_id, a.volunteer_id, a.checkin_code, WINDOW.start)
        end = WINDOW.start + timedelta(hours=hours)
        m, _ = lc.check_out(m, a.assignment_id, a.volunteer_id, end)
    return {"_id": request_id, "township_id": township, "lifecycle": encode(m)}


def test_codec_round_trip_keeps_the_match() -> None:
    doc = served("r1", "pl_longxun", ("v1", 2.0), ("v2", 1.5))
    m = decode(doc["lifecycle"])  # type: ignore[arg-type]
    assert m.state is lc.State.COMPLETED and encode(m) == doc["lifecycle"]


def test_totals_by_each_dimension_and_csv() -> None:
    docs = [
        served("r1", "pl_longxun", ("v1", 2.0), ("v2", 1.5)),
        served("r2", "pl_gaide", ("v1", 1.0)),
        {"_id": "r3", "township_id": "pl_gaide"},  # unmatched: no lifecycle, no hours
    ]
    credits = credits_of(docs)
    index = VolunteerIndex()
    index.put(volunteer("v1", team_ids=["team_barbers"]))
    index.put(volunteer("v2", team_ids=["team_barbers", "team_youth"]))
    assert totals(credits, "volunteer", index) == {
        "v1": {"hours": 3.0, "assignments": 2},
        "v2": {"hours": 1.5, "assignments": 1},
    }
    assert totals(credits, "township", index) == {
        "pl_gaide": {"hours": 1.0, "assignments": 1},
        "pl_longxun": {"hours": 3.5, "assignments": 2},
    }
    assert totals(credits, "team", index) == {
        "team_barbers": {"hours": 4.5, "assignments": 3},
        "team_youth": {"hours": 1.5, "assignments": 1},
    }
    assert totals(credits, "service_type", index) == {"haircut": {"hours": 4.5, "assignments": 3}}
    rows = list(csv.DictReader(io.StringIO(to_csv(credits))))
    assert len(rows) == 3 and {r["volunteer_id"] for r in rows} == {"v1", "v2"}
    assert sum(float(r["hours"]) for r in rows) == 4.5
    assert all(datetime.fromisoformat(r["completed_at"]).tzinfo is not None for r in rows)

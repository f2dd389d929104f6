"""The hours ledger: hours credited by completed assignments, per volunteer, team, township
or service type, and as CSV. Read from the decision documents (the source of truth)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..domain.index import VolunteerIndex
from .ports import Doc

GroupBy = Literal["volunteer", "team", "township", "service_type"]


@dataclass(frozen=True)
class Credit:
    request_id: str
    assignment_id: str
    volunteer_id: str
    township_id: str
    service_type_id: str
    hours: float
    completed_at: datetime


def credits_of(docs: list[Doc]) -> list[Credit]:
    out = []
    for doc in docs:
        lifecycle = doc.get("lifecycle") or {}
        for a in lifecycle.get("assignments", []):
            if a.get("status") == "completed":
                out.append(
                    Credit(
                        request_id=doc["_id"],
                        assignment_id=a["assignment_id"],
                        volunteer_id=a["volunteer_id"],
                        township_id=doc.get("township_id", ""),
                        service_type_id=lifecycle.get("service_type_id", ""),
                        hours=float(a.get("hours", 0.0)),
                        completed_at=a["checked_out_at"],
                    )
                )
    return out


def totals(
    credits: list[Credit], by: GroupBy, index: VolunteerIndex
) -> dict[str, dict[str, float]]:
    """key -> {"hours": total, "assignments": count}; a volunteer in two teams counts for both."""
    acc: dict[str, dict[str, float]] = defaultdict(lambda: {"hours": 0.0, "assignments": 0})
    for c in credits:
        if by == "volunteer":
            keys = [c.volunteer_id]
        elif by == "township":
            keys = [c.township_id]
        elif by == "service_type":
            keys = [c.service_type_id]
        else:
            vol = index.get(c.volunteer_id)
            keys = list(vol.team_ids) if vol and vol.team_ids else ["(no team)"]
        for key in keys:
            acc[key]["hours"] += c.hours
            acc[key]["assignments"] += 1
    return dict(sorted(acc.items()))


def to_csv(credits: list[Credit]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(
        [
            "request_id",
            "assignment_id",
            "volunteer_id",
            "township_id",
            "service_type_id",
            "hours",
            "completed_at",
        ]
    )
    for c in sorted(credits, key=lambda c: (c.completed_at, c.assignment_id)):
        writer.writerow(
            [
                c.request_id,
                c.assignment_id,
                c.volunteer_id,
                c.township_id,
                c.service_type_id,
                f"{c.hours:.2f}",
                c.completed_at.isoformat(),
            ]
        )
    return buf.getvalue()

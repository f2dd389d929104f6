"""A `Match` as it is stored inside the decision document (field `lifecycle`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from zhumeng_contracts.events.common import TimeWindow

from ..domain.lifecycle import Assignment, Match, Offer

Doc = dict[str, Any]


def encode(m: Match) -> Doc:
    return {
        "request_id": m.request_id,
        "service_type_id": m.service_type_id,
        "window": m.window.model_dump(mode="json"),
        "slots": m.slots,
        "mode": m.mode,
        "offers": [vars(o).copy() for o in m.offers],
        "assignments": [vars(a).copy() for a in m.assignments],
        "invited": sorted(m.invited),
        "declined_until": [{"volunteer_id": v, "until": t} for v, t in m.declined_until],
        "cancelled": m.cancelled,
        "unfulfilled": m.unfulfilled,
        "state": m.state.value,  # derived; stored for queries and dashboards
    }


def decode(d: Doc) -> Match:
    return Match(
        request_id=d["request_id"],
        service_type_id=d["service_type_id"],
        window=TimeWindow.model_validate(d["window"]),
        slots=d["slots"],
        mode=d["mode"],
        offers=tuple(Offer(**o) for o in d.get("offers", [])),
        assignments=tuple(Assignment(**a) for a in d.get("assignments", [])),
        invited=frozenset(d.get("invited", [])),
        declined_until=tuple(
            (x["volunteer_id"], _dt(x["until"])) for x in d.get("declined_until", [])
        ),
        cancelled=d.get("cancelled", False),
        unfulfilled=d.get("unfulfilled", False),
    )


def _dt(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)

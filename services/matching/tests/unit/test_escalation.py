"""The escalation ladder with fixed clocks: rungs in order, office hours, the duty desk, the
appointment window, and the widened search."""

from datetime import datetime, timedelta

import pytest

from zhumeng_matching.domain.escalation import (
    Climb,
    Ladder,
    Stop,
    Wait,
    decide,
    widened_candidates,
)
from zhumeng_matching.domain.office_hours import ALWAYS, LOCAL, TOWNSHIP_OFFICE
from zhumeng_matching.examples import request, service, volunteer

pytestmark = pytest.mark.unit
GAP = timedelta(minutes=60)
LADDER = Ladder(GAP)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=LOCAL)  # 2026-11-30 is a Monday


def test_the_rungs_climb_in_order_then_the_ladder_is_exhausted() -> None:
    now, window_start = local(30, 8), local(30, 8) + timedelta(days=2)  # all in office hours
    steps = []
    climbed = 0
    while True:
        d = decide(LADDER, climbed, now, window_start, anyone_assigned=False)
        if not isinstance(d, Climb):
            break
        steps.append((d.step, d.level, d.radius_factor, d.next_at - now))
        climbed, now = d.step, d.next_at
    assert steps == [
        (1, "wider_radius", 1.5, GAP),
        (2, "wider_radius", 2.0, GAP),
        (3, "township_liaison", 2.0, GAP),
        (4, "county_centre", 2.0, GAP),
    ]
    assert d == Stop("escalation_exhausted")


def test_a_human_rung_out_of_hours_waits_for_the_office_to_open() -> None:
    saturday = local(28, 10)
    d = decide(LADDER, 2, saturday, local(30, 15), anyone_assigned=False)
    assert d == Wait(local(30, 8))  # Monday 08:00, before the appointment at 15:00
    d = decide(LADDER, 2, local(30, 8), local(30, 15), anyone_assigned=False)
    assert isinstance(d, Climb) and d.level == "township_liaison" and not d.duty_desk


def test_out_of_hours_before_an_early_appointment_goes_to_the_duty_desk() -> None:
    saturday = local(28, 10)
    d = decide(LADDER, 2, saturday, local(29, 9), anyone_assigned=False)  # Sunday 09:00
    assert isinstance(d, Climb)
    assert (d.step, d.level, d.duty_desk) == (4, "county_centre", True)
    assert d.next_at == saturday + GAP


def test_the_lunch_break_waits_when_the_appointment_is_after_it() -> None:
    d = decide(LADDER, 2, local(30, 12, 10), local(30, 16), anyone_assigned=False)
    assert d == Wait(local(30, 14, 30))
    d = decide(LADDER, 2, local(30, 12, 10), local(30, 14), anyone_assigned=False)
    assert isinstance(d, Climb) and d.duty_desk


def test_radius_rungs_ignore_office_hours() -> None:
    d = decide(LADDER, 0, local(28, 23), local(30, 9), anyone_assigned=False)
    assert isinstance(d, Climb) and d.level == "wider_radius" and d.radius_factor == 1.5


def test_the_next_step_never_lies_beyond_the_appointment() -> None:
    start = local(30, 9, 30)
    d = decide(LADDER, 0, local(30, 9), start, anyone_assigned=False)
    assert isinstance(d, Climb) and d.next_at == start
    assert LADDER.first_due(local(30, 9), start) == start
    assert LADDER.first_due(local(30, 7), start) == local(30, 8)


def test_the_appointment_starting_unfilled_ends_the_request() -> None:
    start = local(30, 9)
    assert decide(LADDER, 1, start, start, anyone_assigned=False) == Stop("window_passed")
    assert decide(LADDER, 1, start, start, anyone_assigned=True) == Stop(None)
    assert decide(LADDER, 4, local(30, 8), start, anyone_assigned=True) == Stop(None)


def test_always_open_office_never_waits() -> None:
    ladder = Ladder(GAP, (1.25,), ALWAYS)
    d = decide(ladder, 1, local(29, 3), local(30, 9), anyone_assigned=False)
    assert isinstance(d, Climb) and d.level == "township_liaison" and d.radius_factor == 1.25
    assert TOWNSHIP_OFFICE != ALWAYS


def test_widened_search_finds_a_volunteer_just_beyond_their_radius() -> None:
    near = volunteer("v_near", radius_km=20)
    far = volunteer("v_far", lat=25.49 + 0.25, radius_km=20)  # ~28 km north
    svc, req = service(), request()
    assert [c.volunteer.id for c in widened_candidates([near, far], req, svc, {}, 1.0)] == [
        "v_near"
    ]
    found = widened_candidates([near, far], req, svc, {}, 1.5)
    assert [c.volunteer.id for c in found] == ["v_near", "v_far"]
    assert found[1].volunteer.radius_km == 30 and far.radius_km == 20  # a scaled copy

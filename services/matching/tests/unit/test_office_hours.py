"""Office hours as data: open or closed at a fixed local time, and the next opening."""

from datetime import datetime

import pytest

from zhumeng_matching.domain.office_hours import ALWAYS, LOCAL, TOWNSHIP_OFFICE, parse

pytestmark = pytest.mark.unit


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=LOCAL)  # 2026-11-30 is a Monday


@pytest.mark.parametrize(
    ("at", "open_"),
    [
        (local(30, 8), True),
        (local(30, 11, 59), True),
        (local(30, 12), False),  # lunch
        (local(30, 14, 29), False),
        (local(30, 14, 30), True),
        (local(30, 17, 30), False),
        (local(30, 7, 59), False),
        (local(28, 10), False),  # Saturday
    ],
)
def test_township_office_is_open_on_weekdays_in_two_sessions(at: datetime, open_: bool) -> None:
    assert TOWNSHIP_OFFICE.is_open(at) is open_


def test_next_opening_after_lunch_the_evening_and_the_weekend() -> None:
    assert TOWNSHIP_OFFICE.next_opening(local(30, 12, 5)) == local(30, 14, 30)
    assert TOWNSHIP_OFFICE.next_opening(local(30, 18)) == datetime(2026, 12, 1, 8, tzinfo=LOCAL)
    assert TOWNSHIP_OFFICE.next_opening(local(28, 10)) == local(30, 8)  # Saturday -> Monday
    assert TOWNSHIP_OFFICE.next_opening(local(30, 9)) == local(30, 9)  # open: now


def test_times_in_utc_are_read_in_shanghai() -> None:
    utc_monday_1am = datetime.fromisoformat("2026-11-30T01:00:00+00:00")  # 09:00 local
    assert TOWNSHIP_OFFICE.is_open(utc_monday_1am)


def test_always_open_and_a_saturday_morning() -> None:
    assert ALWAYS.is_open(local(29, 3))
    hours = parse("mon-fri 08:00-12:00; sat 09:00-12:00")
    assert hours.is_open(local(28, 10)) and not hours.is_open(local(29, 10))


@pytest.mark.parametrize(
    "spec",
    ["", "mon-fri", "mon-fri 8-12", "fri-mon 08:00-12:00", "xyz 08:00-12:00", "mon 12:00-08:00"],
)
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse(spec)

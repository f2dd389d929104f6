"""Example records for tests, benchmarks and docs: a haircut in Longxun on a Monday morning."""

from datetime import UTC, datetime, time, timedelta

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord, SlotRole, VolunteerRecord
from zhumeng_contracts.events.common import GeoPoint, TimeWindow, WeeklySlot

# Monday 2026-11-30, 09:00-11:00 Asia/Shanghai == 01:00-03:00 UTC
MONDAY_9 = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
WINDOW = TimeWindow(start=MONDAY_9, end=MONDAY_9 + timedelta(hours=2))
EVERY_DAY = [WeeklySlot(weekday=d, start=time(8), end=time(20)) for d in range(7)]
# on call day and night: for tests whose window opens within the hour, whatever the hour
ROUND_THE_CLOCK = [WeeklySlot(weekday=d, start=time(0), end=time(23, 59)) for d in range(7)]
# a small clinic's slots: two barbers (the haircut skill) and a dentist (a licence)
BARBERS_AND_DENTIST = [
    SlotRole(
        role="barber", name_zh="理发师", name_en="Barber", required_skills=["haircut"], count=2
    ),
    SlotRole(
        role="dentist",
        name_zh="牙医",
        name_en="Dentist",
        required_certifications=["dentist_license"],
    ),
]


def service(**kw: object) -> ServiceTypeRecord:
    base: dict[str, object] = dict(
        id="haircut",
        name_zh="理发",
        name_en="Haircut",
        category="care",
        required_skills=["haircut"],
        default_duration_min=60,
        target_claim_min=180,
        version=1,
    )
    base.update(kw)
    return ServiceTypeRecord.model_validate(base)


def volunteer(vid: str, lat: float = 25.49, lon: float = 118.24, **kw: object) -> VolunteerRecord:
    base: dict[str, object] = dict(
        id=vid,
        display_name=vid,
        skills=["haircut"],
        home_place_id="p",
        township_id="t",
        home=GeoPoint(lat=lat, lon=lon),
        radius_km=20,
        availability=EVERY_DAY,
        capacity=2,
        version=1,
    )
    base.update(kw)
    return VolunteerRecord.model_validate(base)


def request(lat: float = 25.49, lon: float = 118.24, **kw: object) -> RequestPosted:
    base: dict[str, object] = dict(
        request_id="req_1",
        service_type_id="haircut",
        place_id="v",
        township_id="t",
        location=GeoPoint(lat=lat, lon=lon),
        window=WINDOW,
        posted_at=MONDAY_9 - timedelta(days=1),
    )
    base.update(kw)
    return RequestPosted.model_validate(base)

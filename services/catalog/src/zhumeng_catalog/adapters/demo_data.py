"""Demo catalog for Dehua county (德化县), Fujian: places, service types, volunteers, teams.

Deterministic (fixed random seed): the same ids and values on every run. Everything is
loaded through the app's use cases, so it is validated and goes out through the outbox like
any other change. Loading is idempotent: an entity whose id exists is skipped (neither
duplicated nor re-published).

The township coordinates are APPROXIMATE (placed by hand near where each town lies relative
to the county seat, all within ~35 km of it); the village names and positions are synthetic.
The people are fictitious: phones 1380000xxxx, emails at a reserved demo domain.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import time
from typing import Any

from zhumeng_contracts.events.common import GeoPoint, Language, Locale, WeeklySlot

from ..app.scope import SYSTEM
from ..app.use_cases import Catalog
from ..domain.models import (
    PlaceCreate,
    ServiceTypeCreate,
    SlotRoleSpec,
    TeamCreate,
    VolunteerCreate,
    WiredMode,
)

SEED = 20240601
COUNTY_SEAT = (25.492, 118.243)
VOLUNTEER_COUNT = 200
# The brief asked for `volNNNN@volunteers.zhumeng.test`, but the contracts' EmailStr (via
# email-validator) rejects the special-use `.test` TLD, so ContactRecord could not carry it.
# `.example` is reserved for documentation too (RFC 2606) and passes validation.
DEMO_EMAIL_DOMAIN = "volunteers.zhumeng.example"
# a doctor's visit is offered to one volunteer at a time, who accepts or declines; hearing
# tests in a village are open to claim (抢单) by the qualified volunteers; a village health
# check is taken by individuals or by a team's lead for its members; rides go along trips
# volunteers already plan; help selling produce is routine and decided in batch windows
MODES: dict[str, WiredMode] = {
    "doctor_visit": "auto_offer",
    "hearing_test": "open_claim",
    "health_check": "team",
    "village_clinic": "team",
    "ride_to_relatives": "trip",
    "produce_sale": "batch",
}
# a clinic in a village needs people of different kinds: each role's requirements replace the
# service type's (none) for its slots
SLOT_ROLES: dict[str, list[SlotRoleSpec]] = {
    "village_clinic": [
        SlotRoleSpec(
            role="barber", name_zh="理发师", name_en="Barber", required_skills=["haircut"], count=2
        ),
        SlotRoleSpec(
            role="audiologist",
            name_zh="听力师",
            name_en="Audiologist",
            required_certifications=["audiology"],
        ),
        SlotRoleSpec(
            role="dentist",
            name_zh="牙医",
            name_en="Dentist",
            required_certifications=["dentist_license"],
        ),
    ]
}
# a doctor's visit at home is checked by the township's coordinator before anyone is asked
NEEDS_REVIEW = frozenset({"doctor_visit"})

# id suffix, Chinese name, English name, lat, lon — approximate positions.
TOWNSHIPS: tuple[tuple[str, str, str, float, float], ...] = (
    ("longxun", "龙浔镇", "Longxun", 25.492, 118.243),
    ("xunzhong", "浔中镇", "Xunzhong", 25.468, 118.262),
    ("gaide", "盖德镇", "Gaide", 25.432, 118.198),
    ("leifeng", "雷峰镇", "Leifeng", 25.531, 118.297),
    ("shuikou", "水口镇", "Shuikou", 25.708, 118.326),
    ("chishui", "赤水镇", "Chishui", 25.652, 118.279),
    ("shangyong", "上涌镇", "Shangyong", 25.566, 118.127),
    ("gekeng", "葛坑镇", "Gekeng", 25.688, 118.083),
    ("sanban", "三班镇", "Sanban", 25.441, 118.331),
    ("longmentan", "龙门滩镇", "Longmentan", 25.372, 118.378),
    ("meihu", "美湖镇", "Meihu", 25.352, 118.291),
    ("nancheng", "南埕镇", "Nancheng", 25.581, 118.418),
    ("guobao", "国宝乡", "Guobao", 25.585, 117.995),
    ("daming", "大铭乡", "Daming", 25.531, 118.012),
    ("chunmei", "春美乡", "Chunmei", 25.452, 118.402),
    ("tangtou", "汤头乡", "Tangtou", 25.648, 118.004),
    ("yangmei", "杨梅乡", "Yangmei", 25.602, 118.052),
    ("guiyang", "桂阳乡", "Guiyang", 25.628, 118.198),
)
_VILLAGE_WORDS = (
    ("东", "East"),
    ("西", "West"),
    ("南", "South"),
    ("北", "North"),
    ("上", "Upper"),
    ("下", "Lower"),
    ("新", "New"),
    ("溪", "Creek"),
)

# id, zh, en, category, skills, certifications, duration (min), target claim (min)
SERVICE_TYPES: tuple[tuple[str, str, str, str, list[str], list[str], int, int], ...] = (
    ("haircut", "义务理发", "Free haircut", "personal_care", ["haircut"], [], 45, 60),
    ("hearing_test", "听力检测", "Hearing test", "health", [], ["audiology"], 60, 240),
    ("dental_clinic", "口腔义诊", "Dental clinic", "health", [], ["dentist_license"], 180, 1440),
    ("parcel_delivery", "包裹代送", "Parcel delivery", "logistics", ["driving"], [], 60, 120),
    ("doctor_visit", "医生出诊", "Doctor visit", "health", [], ["medical_license"], 60, 240),
    ("ride_to_relatives", "探亲搭车", "Ride to relatives", "transport", ["driving"], [], 120, 180),
    ("produce_sale", "助农销售", "Help selling produce", "livelihood", ["ecommerce"], [], 120, 720),
    ("neighbour_help", "邻里互助", "Neighbour help", "community", [], [], 60, 60),
    ("care_visit", "关爱探访", "Care visit", "care", ["companionship"], [], 60, 240),
    (
        "culture_event",
        "文体活动",
        "Culture and sports event",
        "culture",
        ["event_organising"],
        [],
        120,
        1440,
    ),
    ("health_check", "健康体检", "Health check", "health", [], ["nursing"], 90, 480),
    ("resource_sharing", "资源共享", "Resource sharing", "community", [], [], 30, 720),
    ("village_clinic", "义诊下乡", "Village clinic", "health", [], [], 240, 1440),
)

_SURNAMES = (
    ("林", "Lin"),
    ("陈", "Chen"),
    ("郑", "Zheng"),
    ("黄", "Huang"),
    ("王", "Wang"),
    ("李", "Li"),
    ("张", "Zhang"),
    ("刘", "Liu"),
    ("苏", "Su"),
    ("徐", "Xu"),
    ("赖", "Lai"),
    ("曾", "Zeng"),
    ("颜", "Yan"),
    ("连", "Lian"),
    ("涂", "Tu"),
)
_GIVEN = (
    ("美华", "Meihua"),
    ("志强", "Zhiqiang"),
    ("丽娟", "Lijuan"),
    ("建国", "Jianguo"),
    ("秀英", "Xiuying"),
    ("伟", "Wei"),
    ("芳", "Fang"),
    ("明", "Ming"),
    ("静", "Jing"),
    ("海峰", "Haifeng"),
    ("晓燕", "Xiaoyan"),
    ("俊杰", "Junjie"),
    ("春梅", "Chunmei"),
    ("文辉", "Wenhui"),
    ("雅婷", "Yating"),
    ("国平", "Guoping"),
    ("桂兰", "Guilan"),
    ("宏", "Hong"),
    ("婷婷", "Tingting"),
    ("德福", "Defu"),
)
# common skills with the share of volunteers who have them
_COMMON_SKILLS = (
    ("companionship", 0.7),
    ("errands", 0.6),
    ("cleaning", 0.35),
    ("cooking", 0.3),
    ("event_organising", 0.2),
    ("repair", 0.15),
    ("tutoring", 0.15),
    ("photography", 0.1),
)
# certified specialists: (certification, count); volunteers are picked deterministically
_SPECIALISTS = (("dentist_license", 5), ("audiology", 5), ("medical_license", 8), ("nursing", 12))


@dataclass
class DemoCatalog:
    places: list[PlaceCreate] = field(default_factory=list)
    service_types: list[ServiceTypeCreate] = field(default_factory=list)
    volunteers: list[VolunteerCreate] = field(default_factory=list)
    teams: list[TeamCreate] = field(default_factory=list)


def _places(rng: random.Random) -> list[PlaceCreate]:
    lat0, lon0 = COUNTY_SEAT
    out = [
        PlaceCreate(
            id="pl_county",
            kind="county",
            name_zh="德化县",
            name_en="Dehua County",
            location=GeoPoint(lat=lat0, lon=lon0),
        )
    ]
    for slug, zh, en, lat, lon in TOWNSHIPS:
        tid = f"pl_{slug}"
        out.append(
            PlaceCreate(
                id=tid,
                kind="township",
                name_zh=zh,
                name_en=en,
                parent_id="pl_county",
                location=GeoPoint(lat=lat, lon=lon),
            )
        )
        words = rng.sample(_VILLAGE_WORDS, rng.choice((2, 3)))
        for n, (wzh, wen) in enumerate(words, start=1):
            vlat = lat + rng.uniform(-0.03, 0.03)
            vlon = lon + rng.uniform(-0.03, 0.03)
            out.append(
                PlaceCreate(
                    id=f"{tid}_v{n}",
                    kind="village",
                    name_zh=f"{zh.rstrip('镇乡')}{wzh}村",
                    name_en=f"{en} {wen} Village",
                    parent_id=tid,
                    location=GeoPoint(lat=round(vlat, 5), lon=round(vlon, 5)),
                )
            )
    return out


def _service_types() -> list[ServiceTypeCreate]:
    return [
        ServiceTypeCreate(
            id=sid,
            name_zh=zh,
            name_en=en,
            category=cat,
            required_skills=skills,
            required_certifications=certs,
            default_duration_min=dur,
            target_claim_min=claim,
            matching_mode=MODES.get(sid, "direct"),
            needs_review=sid in NEEDS_REVIEW,
            slot_roles=SLOT_ROLES.get(sid, []),
        )
        for sid, zh, en, cat, skills, certs, dur, claim in SERVICE_TYPES
    ]


def _availability(rng: random.Random) -> list[WeeklySlot]:
    roll = rng.random()
    if roll < 0.6:  # broad: most days, daytime
        days = range(7) if rng.random() < 0.5 else range(6)
        return [WeeklySlot(weekday=d, start=time(8), end=time(20)) for d in days]
    if roll < 0.8:  # weekday evenings and weekends
        evenings = [WeeklySlot(weekday=d, start=time(18), end=time(21, 30)) for d in range(5)]
        return evenings + [WeeklySlot(weekday=d, start=time(9), end=time(18)) for d in (5, 6)]
    return [WeeklySlot(weekday=d, start=time(8, 30), end=time(19)) for d in (5, 6)]


def _volunteers(rng: random.Random, places: list[PlaceCreate]) -> list[VolunteerCreate]:
    villages = [p.id for p in places if p.kind == "village" and p.id]
    towns = [p.id for p in places if p.kind == "township" and p.id]
    certified: dict[int, list[str]] = {}
    pool = list(range(1, VOLUNTEER_COUNT + 1))
    rng.shuffle(pool)
    at = 0
    for cert, count in _SPECIALISTS:
        for n in pool[at : at + count]:
            certified.setdefault(n, []).append(cert)
        at += count
    out = []
    for n in range(1, VOLUNTEER_COUNT + 1):
        (szh, sen), (gzh, gen) = rng.choice(_SURNAMES), rng.choice(_GIVEN)
        locale: Locale = "en" if rng.random() < 0.08 else "zh-CN"
        skills = [s for s, share in _COMMON_SKILLS if rng.random() < share]
        if rng.random() < 0.3:
            skills.append("driving")
        if rng.random() < 0.15:
            skills.append("haircut")
        if rng.random() < 0.12:
            skills.append("ecommerce")
        certs = certified.get(n, [])
        if certs:
            skills.append("first_aid")
        languages: list[Language] = ["mandarin"]
        if rng.random() < 0.7:
            languages.append("minnan")
        if locale == "en" or rng.random() < 0.05:
            languages.append("english")
        home = rng.choice(villages) if rng.random() < 0.7 else rng.choice(towns)
        out.append(
            VolunteerCreate(
                id=f"vol_{n:04d}",
                name=f"{sen} {gen}" if locale == "en" else f"{szh}{gzh}",
                display_name=gen if locale == "en" else gzh,
                phone=f"1380000{n:04d}",
                email=f"vol{n:04d}@{DEMO_EMAIL_DOMAIN}",
                locale=locale,
                skills=skills,
                certifications=certs,
                home_place_id=home,
                radius_km=float(rng.choice((5, 10, 15, 20, 25, 30, 40))),
                availability=_availability(rng),
                capacity=rng.choice((1, 1, 2, 2, 3)),
                languages=languages,
            )
        )
    return out


def _teams(rng: random.Random, volunteers: list[VolunteerCreate]) -> list[TeamCreate]:
    def ids(pred: Any, at_most: int) -> list[str]:
        return [v.id for v in volunteers if v.id and pred(v)][:at_most]

    barbers = ids(lambda v: "haircut" in v.skills, 12)
    medical = ids(lambda v: bool(v.certifications), 20)
    drivers = ids(lambda v: "driving" in v.skills, 25)
    youth = sorted(rng.sample([v.id for v in volunteers if v.id], 15))
    return [
        TeamCreate(
            id="team_barbers",
            name="爱心理发队 Barbers' team",
            township_id="pl_longxun",
            lead_volunteer_id=barbers[0],
            member_ids=barbers,
            skills=["haircut"],
        ),
        TeamCreate(
            id="team_medical",
            name="医疗志愿服务队 Medical team",
            lead_volunteer_id=medical[0],
            member_ids=medical,
            skills=["first_aid"],
        ),
        TeamCreate(
            id="team_drivers",
            name="邮路爱心车队 Drivers' team",
            lead_volunteer_id=drivers[0],
            member_ids=drivers,
            skills=["driving"],
        ),
        TeamCreate(
            id="team_youth",
            name="青年志愿者服务队 Youth League team",
            township_id="pl_xunzhong",
            lead_volunteer_id=youth[0],
            member_ids=youth,
        ),
    ]


def demo_catalog(seed: int = SEED) -> DemoCatalog:
    rng = random.Random(seed)
    places = _places(rng)
    volunteers = _volunteers(rng, places)
    return DemoCatalog(places, _service_types(), volunteers, _teams(rng, volunteers))


async def load_demo(catalog: Catalog, demo: DemoCatalog | None = None) -> dict[str, int]:
    """Create what is missing; returns how many of each kind were created."""
    demo = demo or demo_catalog()
    created = {"places": 0, "service_types": 0, "volunteers": 0, "teams": 0}
    for p in demo.places:
        if p.id and not await catalog.exists("places", p.id):
            await catalog.create_place(p, by=SYSTEM)
            created["places"] += 1
    for s in demo.service_types:
        if s.id and not await catalog.exists("service_types", s.id):
            await catalog.create_service_type(s, by=SYSTEM)
            created["service_types"] += 1
    for v in demo.volunteers:
        if v.id and not await catalog.exists("volunteers", v.id):
            await catalog.create_volunteer(v, by=SYSTEM)
            created["volunteers"] += 1
    for t in demo.teams:
        if t.id and not await catalog.exists("teams", t.id):
            await catalog.create_team(t, by=SYSTEM)
            created["teams"] += 1
    return created

"""Who hears what (ADR 0012): the new handlers, the coordinators, the reminders, on fakes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    ClaimOpened,
    ContactRecord,
    Event,
    OfferExpired,
    OfferMade,
    RequesterContact,
    RequestEscalated,
    RequestPosted,
    RequestReviewed,
    ReviewRequired,
    ServiceTypeRecord,
    VolunteerAssigned,
)
from zhumeng_kit.timers import Timer
from zhumeng_kit.views import View
from zhumeng_notify.adapters.directory import ViewDirectory
from zhumeng_notify.adapters.handlers import matching_handlers, notify_handlers
from zhumeng_notify.app.notify import ContactMissing, NotifyOnEvent
from zhumeng_notify.app.reminders import REMINDER, register_reminders, reminder_due
from zhumeng_notify.domain.model import Recipient
from zhumeng_notify.domain.preferences import Preferences
from zhumeng_notify.domain.recipients import (
    Coordinator,
    escalation_audience,
    in_quiet_hours,
    offer_is_urgent,
)
from zhumeng_notify.fakes import (
    Clock,
    FakeChannel,
    FakeDirectory,
    FakePreferences,
    FakeRepo,
    FakeTimers,
    notify_on_fakes,
)

pytestmark = pytest.mark.unit

T0 = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)  # 10:00 in Dehua
WINDOW = {"start": T0 + timedelta(days=1), "end": T0 + timedelta(days=1, hours=2)}
REQUESTER = Recipient("res_1", "requester", "王秀英", "zh-CN", email="xy@example.org")
VOL = {
    f"vol_{i}": Recipient(f"vol_{i}", "volunteer", f"Lin Xiao{i}", "en", email=f"v{i}@example.org")
    for i in (1, 2, 3)
}
COORDS = [
    Coordinator("coord_lx", "郑丽华", "pl_longxun", email="lx@example.org"),
    Coordinator("coord_cty", "Grace Wu", None, "en", email="county@example.org"),
]
SERVICES = {"st_hear": {"zh-CN": "听力筛查", "en": "Hearing test"}}


def people(coordinators: list[Coordinator] | None = None) -> FakeDirectory:
    """The requester of req_1, three volunteers, the coordinators (default: Longxun's and
    the county centre's)."""
    coords = COORDS if coordinators is None else coordinators
    return FakeDirectory({"req_1": REQUESTER}, VOL, coords, SERVICES)


@dataclass
class Notify:
    use_case: NotifyOnEvent
    outbox: FakeChannel  # the email channel: everybody here has an address
    repo: FakeRepo
    directory: FakeDirectory
    timers: FakeTimers
    clock: Clock


def build(
    directory: FakeDirectory | None = None, preferences: FakePreferences | None = None
) -> Notify:
    directory, outbox, clock = directory or people(), FakeChannel("email"), Clock(T0)
    channels = {"log": FakeChannel("log"), "email": outbox}
    use_case, repo, timers = notify_on_fakes(channels, directory, clock, preferences=preferences)
    return Notify(use_case, outbox, repo, directory, timers, clock)


def make(
    directory: FakeDirectory | None = None,
) -> tuple[NotifyOnEvent, FakeChannel, FakeRepo, FakeDirectory]:
    n = build(directory)
    return n.use_case, n.outbox, n.repo, n.directory


def meta(event: Event) -> EventMeta:
    return EventMeta.new(event, "zhumeng/test")


def assigned(mode: str = "direct", assignment: str = "asg_1", **kw: Any) -> VolunteerAssigned:
    return VolunteerAssigned(
        request_id="req_1",
        assignment_id=assignment,
        volunteer_id="vol_1",
        volunteer_display_name="Xiao1",
        service_type_id="st_hear",
        window=kw.pop("window", WINDOW),
        distance_km=1.0,
        score=0.5,
        explanation=[],
        candidates_considered=1,
        assigned_at=T0,
        mode=mode,
        checkin_code="123456",
        **kw,
    )


# ---- the requester --------------------------------------------------------------------------


async def test_a_posted_request_is_confirmed_to_the_requester() -> None:
    use_case, outbox, _, _ = make()
    posted = RequestPosted(
        request_id="req_1",
        service_type_id="st_hear",
        place_id="pl_longxun_v1",
        township_id="pl_longxun",
        location={"lat": 25.5, "lon": 118.2},
        window=WINDOW,
        posted_at=T0,
    )
    [outcome] = await use_case.request_posted(meta(posted), posted)
    [message] = outbox.sent
    assert outcome.result == "sent" and message.recipient.id == "res_1"
    assert "已收到您的“听力筛查”请求" in message.rendered.subject
    assert message.rendered.short and "6月2日10:00-12:00" in message.rendered.short


@pytest.mark.parametrize(("decision", "text"), [("approved", "已通过"), ("rejected", "未通过")])
async def test_the_review_decision_reaches_the_requester(decision: str, text: str) -> None:
    use_case, outbox, _, _ = make()
    reviewed = RequestReviewed(
        request_id="req_1",
        decision=decision,
        coordinator_id="coord_lx",
        note="请带上身份证",
        reviewed_at=T0,
    )
    await use_case.request_reviewed(meta(reviewed), reviewed)
    [message] = outbox.sent
    assert text in message.rendered.subject and "请带上身份证" in message.rendered.body


def escalated(level: str) -> RequestEscalated:
    return RequestEscalated(
        request_id="req_1",
        step=2,
        level=level,
        township_id="pl_longxun",
        open_slots=1,
        escalated_at=T0,
    )


@pytest.mark.parametrize(
    ("level", "coordinators"),
    [
        ("wider_radius", []),
        ("township_liaison", ["coord_lx"]),
        ("county_centre", ["coord_cty"]),
    ],
)
async def test_an_escalation_tells_the_requester_and_the_rungs_coordinators(
    level: str, coordinators: list[str]
) -> None:
    use_case, outbox, repo, _ = make()
    event = escalated(level)
    await use_case.request_escalated(meta(event), event)
    assert sorted(m.recipient.id for m in outbox.sent) == sorted(["res_1", *coordinators])
    [to_requester] = outbox.to("res_1")
    assert "仍在为您寻找志愿者" in to_requester.rendered.subject
    for message in outbox.sent:
        if message.recipient.role == "coordinator":
            assert "escalated" in message.rendered.subject or "升级" in message.rendered.subject
    roles = {e.recipient_role for e in repo.events}
    assert roles == ({"requester", "coordinator"} if coordinators else {"requester"})


async def test_an_escalation_without_the_requesters_contact_tells_coordinators_then_retries() -> (
    None
):
    directory = people()
    directory.requesters = {}
    use_case, outbox, _, _ = make(directory)
    event = escalated("township_liaison")
    m = meta(event)
    with pytest.raises(ContactMissing):
        await use_case.request_escalated(m, event)
    directory.requesters = {"req_1": REQUESTER}
    await use_case.request_escalated(m, event)  # the retry
    assert sorted(x.recipient.id for x in outbox.sent) == ["coord_lx", "res_1"]


# ---- coordinators ---------------------------------------------------------------------------


def review(township: str = "pl_longxun") -> ReviewRequired:
    return ReviewRequired(
        request_id="req_1", service_type_id="st_hear", township_id=township, held_at=T0
    )


async def test_a_review_reaches_the_townships_coordinators_only() -> None:
    use_case, outbox, _, directory = make()
    event = review()
    await use_case.review_required(meta(event), event)
    [message] = outbox.sent
    assert message.recipient.id == "coord_lx" and message.recipient.role == "coordinator"
    assert message.rendered.subject == "【筑梦】待审核：听力筛查"
    assert directory.asked == ["pl_longxun"]


async def test_a_township_without_coordinators_falls_back_to_the_county_centre() -> None:
    use_case, outbox, _, directory = make()
    event = review("pl_gaide")
    await use_case.review_required(meta(event), event)
    assert [m.recipient.id for m in outbox.sent] == ["coord_cty"]
    assert outbox.sent[0].locale == "en" and "review needed" in outbox.sent[0].rendered.subject
    assert directory.asked == ["pl_gaide", None]


async def test_a_coordinators_chosen_locale_reaches_the_template() -> None:
    prefs = FakePreferences()
    prefs.people["coord_lx"] = Preferences(locale="en")
    n = build(preferences=prefs)
    event = review()
    await n.use_case.review_required(meta(event), event)
    [message] = n.outbox.sent
    assert message.recipient.id == "coord_lx" and message.locale == "en"
    assert "review needed" in message.rendered.subject


async def test_no_coordinator_anywhere_tells_nobody_and_does_not_fail() -> None:
    use_case, outbox, _, _ = make(people(coordinators=[]))
    event = review()
    assert await use_case.review_required(meta(event), event) == []
    assert outbox.sent == []


def views_only() -> ViewDirectory:
    """The directory of the views only (no coordinator store), knowing the requester."""
    requesters = View(RequesterContact)
    contact = RequesterContact(
        request_id="req_1", requester_id="res_1", name="王秀英", email="xy@example.org"
    )
    requesters.apply("req_1", contact)
    return ViewDirectory(View(ContactRecord), requesters, View(ServiceTypeRecord))


async def test_a_directory_without_coordinators_tells_only_the_requester() -> None:
    outbox = FakeChannel("email")
    channels = {"log": FakeChannel("log"), "email": outbox}
    use_case, _, _ = notify_on_fakes(channels, views_only(), Clock(T0))
    event = review()
    assert await use_case.review_required(meta(event), event) == []
    later = escalated("county_centre")
    await use_case.request_escalated(meta(later), later)
    assert [m.recipient.id for m in outbox.sent] == ["res_1"]


def test_escalation_audience() -> None:
    assert escalation_audience("wider_radius") is None
    assert escalation_audience("township_liaison") == "township"
    assert escalation_audience("county_centre") == "county"


# ---- volunteers -----------------------------------------------------------------------------


def offer(expires_at: datetime) -> OfferMade:
    return OfferMade(
        request_id="req_1",
        offer_id="off_1",
        volunteer_id="vol_2",
        volunteer_display_name="Xiao2",
        service_type_id="st_hear",
        window=WINDOW,
        slot=1,
        expires_at=expires_at,
        distance_km=4.25,
        score=0.7,
        explanation=[],
        made_at=T0,
    )


@pytest.mark.parametrize(
    ("expires_local_hour", "urgent"), [(10, False), (21, False), (22, True), (3, True), (7, False)]
)
async def test_an_offer_is_urgent_when_it_expires_in_the_quiet_hours(
    expires_local_hour: int, urgent: bool
) -> None:
    use_case, outbox, _, _ = make()
    expires = datetime(2025, 6, 1, expires_local_hour, 0, tzinfo=UTC) - timedelta(hours=8)
    event = offer(expires)
    await use_case.offer_made(meta(event), event)
    [message] = outbox.sent
    assert message.recipient.id == "vol_2" and message.rendered.urgent is urgent
    assert f"{expires_local_hour:02d}:00" in message.rendered.subject
    assert "4.2 km" in message.rendered.body or "4.3 km" in message.rendered.body


def test_quiet_hours_wrap_midnight() -> None:
    at = datetime(2025, 6, 1, 14, 30, tzinfo=UTC)  # 22:30 local
    assert in_quiet_hours(at) and not in_quiet_hours(at - timedelta(hours=1))
    assert offer_is_urgent(at) and not offer_is_urgent(at + timedelta(hours=9))


async def test_an_expired_offer_is_told_to_its_volunteer() -> None:
    use_case, outbox, _, _ = make()
    event = OfferExpired(request_id="req_1", offer_id="off_1", volunteer_id="vol_2", expired_at=T0)
    await use_case.offer_expired(meta(event), event)
    [message] = outbox.sent
    assert message.recipient.id == "vol_2" and message.rendered.subject == (
        "Zhumeng: the offer lapsed"
    )


def claim_opened(invited: list[str]) -> ClaimOpened:
    return ClaimOpened(
        request_id="req_1",
        service_type_id="st_hear",
        window=WINDOW,
        open_slots=2,
        invited_volunteer_ids=invited,
        opened_at=T0,
    )


async def test_a_claim_invitation_reaches_each_invited_volunteer_once() -> None:
    use_case, outbox, _, _ = make()
    event = claim_opened(["vol_1", "vol_2", "vol_3", "vol_2"])
    m = meta(event)
    await use_case.claim_opened(m, event)
    await use_case.claim_opened(m, event)  # redelivered
    assert sorted(x.recipient.id for x in outbox.sent) == ["vol_1", "vol_2", "vol_3"]
    assert all("open to claim" in x.rendered.subject for x in outbox.sent)
    assert all("2 places" in (x.rendered.short or "") for x in outbox.sent)


async def test_a_claim_invitation_waits_for_a_missing_contact_but_sends_the_others_once() -> None:
    directory = people()
    del directory.volunteers["vol_3"]
    use_case, outbox, _, _ = make(directory)
    event = claim_opened(["vol_1", "vol_3"])
    m = meta(event)
    with pytest.raises(ContactMissing, match="1 invited"):
        await use_case.claim_opened(m, event)
    directory.volunteers["vol_3"] = VOL["vol_3"]
    await use_case.claim_opened(m, event)
    assert sorted(x.recipient.id for x in outbox.sent) == ["vol_1", "vol_3"]


@pytest.mark.parametrize(
    ("mode", "subject"),
    [
        ("open_claim", "Zhumeng: you got it, Hearing test"),
        ("team", "Zhumeng: your team took it, Hearing test"),
        ("direct", "Zhumeng: new task, Hearing test"),
    ],
)
async def test_a_won_claim_says_you_got_it(mode: str, subject: str) -> None:
    use_case, outbox, _, _ = make()
    event = assigned(mode)
    await use_case.volunteer_assigned(meta(event), event)
    [to_volunteer] = outbox.to("vol_1")
    assert to_volunteer.rendered.subject == subject
    assert "123456" not in to_volunteer.rendered.body + (to_volunteer.rendered.short or "")
    [to_requester] = outbox.to("res_1")
    assert "123456" in (to_requester.rendered.short or "")


# ---- reminders ------------------------------------------------------------------------------


def test_reminder_due() -> None:
    start = T0 + timedelta(hours=5)
    assert reminder_due(start, timedelta(hours=2), T0) == T0 + timedelta(hours=3)
    assert reminder_due(start, timedelta(hours=5), T0) is None
    assert reminder_due(start, timedelta(hours=6), T0) is None


def with_reminders() -> tuple[dict[type[Event], Any], Notify]:
    """The handlers with reminders on the use case's own timers, as `bootstrap.build`."""
    n = build()
    reminders = register_reminders(n.timers, n.use_case, lead=timedelta(hours=2))
    reminders._clock = n.clock
    return notify_handlers(n.use_case, reminders), n


async def test_an_assignment_arms_a_reminder_that_fires_once_for_both_people() -> None:
    handlers, n = with_reminders()
    timers, outbox = n.timers, n.outbox
    event = assigned()
    m = meta(event)
    await handlers[VolunteerAssigned](m, event)
    await handlers[VolunteerAssigned](m, event)  # redelivered: one timer
    assert list(timers.timers) == [f"{REMINDER}:asg_1"]
    due = timers.timers[f"{REMINDER}:asg_1"]["due"]
    assert due == WINDOW["start"] - timedelta(hours=2)
    before = len(outbox.sent)
    n.clock.now = due - timedelta(seconds=1)
    assert await timers.fire_due() == 0
    n.clock.now = due
    assert await timers.fire_due() == 1
    reminders = outbox.sent[before:]
    assert sorted(x.recipient.id for x in reminders) == ["res_1", "vol_1"]
    [to_requester] = [x for x in reminders if x.recipient.id == "res_1"]
    assert "提醒" in to_requester.rendered.subject and "志愿者Lin" in to_requester.rendered.body
    assert "123456" not in to_requester.rendered.body  # the code is not kept in the timer
    [to_volunteer] = [x for x in reminders if x.recipient.id == "vol_1"]
    assert to_volunteer.rendered.subject == "Zhumeng: reminder, Hearing test"
    assert "秀英" in to_volunteer.rendered.body and "王秀英" not in to_volunteer.rendered.body
    assert to_volunteer.cause.event_id == f"{REMINDER}:asg_1"
    n.clock.now = due + timedelta(hours=1)
    assert await timers.fire_due() == 0


async def test_a_reminder_run_twice_sends_once() -> None:
    handlers, n = with_reminders()
    event = assigned()
    await handlers[VolunteerAssigned](meta(event), event)
    doc = n.timers.timers[f"{REMINDER}:asg_1"]
    timer = Timer(f"{REMINDER}:asg_1", REMINDER, "asg_1", doc["due"], doc["payload"])
    before = len(n.outbox.sent)
    await n.timers.handlers[REMINDER](timer)
    await n.timers.handlers[REMINDER](timer)  # a replica crashed after sending: run again
    assert len(n.outbox.sent) == before + 2


@pytest.mark.parametrize(
    "ending",
    [
        AssignmentCancelled(
            request_id="req_1",
            assignment_id="asg_1",
            volunteer_id="vol_1",
            by="requester",
            reason="request_cancelled",
            cancelled_at=T0,
        ),
        AssignmentCompleted(
            request_id="req_1",
            assignment_id="asg_1",
            volunteer_id="vol_1",
            service_type_id="st_hear",
            checked_in_at=T0,
            checked_out_at=T0,
            hours=1,
        ),
        CheckedIn(
            request_id="req_1", assignment_id="asg_1", volunteer_id="vol_1", checked_in_at=T0
        ),
    ],
    ids=["cancelled", "completed", "checked-in"],
)
async def test_no_reminder_after_the_assignment_ended(ending: Event) -> None:
    handlers, n = with_reminders()
    event = assigned()
    await handlers[VolunteerAssigned](meta(event), event)
    await handlers[type(ending)](meta(ending), ending)
    await handlers[VolunteerAssigned](meta(event), event)  # a late redelivery cannot re-arm it
    sent = len(n.outbox.sent)
    n.clock.now = T0 + timedelta(days=2)
    assert await n.timers.fire_due() == 0
    assert len(n.outbox.sent) == sent


async def test_no_reminder_when_the_appointment_is_too_close() -> None:
    handlers, n = with_reminders()
    soon = {"start": T0 + timedelta(hours=1), "end": T0 + timedelta(hours=2)}
    event = assigned(window=soon)
    await handlers[VolunteerAssigned](meta(event), event)
    assert n.timers.timers == {}


async def test_the_handlers_cover_every_event_notify_acts_on() -> None:
    use_case, _, _, _ = make()
    assert set(matching_handlers(use_case)) < set(handlers := notify_handlers(use_case))
    for model in (RequestPosted, ReviewRequired, RequestReviewed, RequestEscalated, OfferMade):
        assert model in handlers
    assert {OfferExpired, ClaimOpened, VolunteerAssigned, AssignmentCancelled} <= set(handlers)

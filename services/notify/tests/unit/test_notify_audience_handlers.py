"""Who hears what (ADR 0012): the new handlers, the coordinators, the reminders, on fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    ClaimOpened,
    Event,
    NotificationDelivered,
    OfferExpired,
    OfferMade,
    RequestEscalated,
    RequestPosted,
    RequestReviewed,
    ReviewRequired,
    VolunteerAssigned,
)
from zhumeng_kit.mongo import Doc
from zhumeng_kit.timers import ScheduleResult, Timer, TimerHandler, TimerState
from zhumeng_notify.adapters.handlers import matching_handlers, notify_handlers
from zhumeng_notify.app.notify import ContactMissing, NotifyOnEvent
from zhumeng_notify.app.reminders import REMINDER, register_reminders, reminder_due
from zhumeng_notify.domain.model import Claim, Delivery, Final, Locale, Message, Receipt, Recipient
from zhumeng_notify.domain.recipients import (
    Coordinator,
    escalation_audience,
    in_quiet_hours,
    offer_is_urgent,
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


class Repo:
    """Deliveries by id: a second claim of a finished one is "done"."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.events: list[NotificationDelivered] = []

    async def claim(self, delivery: Delivery, now: datetime, lease: timedelta) -> Claim:
        if delivery.id in self.status:
            return Claim("done", 1, "sent")
        self.status[delivery.id] = "pending"
        return Claim("send", 1, "pending", now + lease)

    async def complete(
        self,
        delivery_id: str,
        attempt: int,
        status: Final,
        now: datetime,
        receipt: Receipt | None,
        error: str | None,
        event: NotificationDelivered,
    ) -> bool:
        self.status[delivery_id] = status
        self.events.append(event)
        return True

    async def release(self, delivery_id: str, attempt: int, now: datetime, error: str) -> None:
        self.status.pop(delivery_id, None)


class Outbox:
    name = "email"

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def send(self, message: Message) -> Receipt:
        self.sent.append(message)
        return Receipt("email", str(len(self.sent)), T0)

    def to(self, recipient_id: str) -> list[Message]:
        return [m for m in self.sent if m.recipient.id == recipient_id]


class Directory:
    def __init__(self, coordinators: list[Coordinator] | None = None) -> None:
        self.requesters = {"req_1": REQUESTER}
        self.volunteers = dict(VOL)
        self.coords = COORDS if coordinators is None else coordinators
        self.asked: list[str | None] = []

    def requester(self, request_id: str) -> Recipient | None:
        return self.requesters.get(request_id)

    def volunteer(self, volunteer_id: str) -> Recipient | None:
        return self.volunteers.get(volunteer_id)

    def service_name(self, service_type_id: str, locale: Locale) -> str | None:
        return {"zh-CN": "听力筛查", "en": "Hearing test"}[locale]

    async def coordinators(self, township_id: str | None) -> list[Recipient]:
        self.asked.append(township_id)
        return [c.recipient() for c in self.coords if c.township_id == township_id]


class Timers:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.handlers: dict[str, TimerHandler] = {}

    def register(self, kind: str, handler: TimerHandler) -> None:
        self.handlers[kind] = handler

    async def schedule(
        self, kind: str, key: str, due_at: datetime, payload: Doc | None = None
    ) -> ScheduleResult:
        doc = self.docs.setdefault(f"{kind}:{key}", {"state": "pending", "key": key})
        if doc["state"] != "pending":
            state: ScheduleResult = doc["state"]
            return state
        doc.update(due_at=due_at, payload=payload or {})
        return "scheduled"

    async def cancel(self, kind: str, key: str) -> TimerState | None:
        doc = self.docs.get(f"{kind}:{key}")
        if doc is None:
            return None
        before: TimerState = doc["state"]
        if before in ("pending", "leased"):
            doc["state"] = "cancelled"
        return before

    async def fire_due(self, now: datetime) -> int:
        fired = 0
        for tid, doc in self.docs.items():
            if doc["state"] == "pending" and doc["due_at"] <= now:
                kind = tid.split(":", 1)[0]
                timer = Timer(tid, kind, doc["key"], doc["due_at"], doc["payload"])
                await self.handlers[kind](timer)
                doc["state"] = "fired"
                fired += 1
        return fired


def make(directory: Directory | None = None) -> tuple[NotifyOnEvent, Outbox, Repo, Directory]:
    repo, outbox, directory = Repo(), Outbox(), directory or Directory()
    use_case = NotifyOnEvent(repo, {"log": Outbox(), "email": outbox}, directory, clock=lambda: T0)
    return use_case, outbox, repo, directory


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
    directory = Directory()
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


async def test_no_coordinator_anywhere_tells_nobody_and_does_not_fail() -> None:
    use_case, outbox, _, _ = make(Directory(coordinators=[]))
    event = review()
    assert await use_case.review_required(meta(event), event) == []
    assert outbox.sent == []


class PlainDirectory:
    """A directory of the views only (no coordinator store)."""

    def requester(self, request_id: str) -> Recipient | None:
        return REQUESTER

    def volunteer(self, volunteer_id: str) -> Recipient | None:
        return None

    def service_name(self, service_type_id: str, locale: Locale) -> str | None:
        return None


async def test_a_directory_without_coordinators_tells_only_the_requester() -> None:
    outbox = Outbox()
    use_case = NotifyOnEvent(Repo(), {"log": Outbox(), "email": outbox}, PlainDirectory())
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
    directory = Directory()
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


def with_reminders() -> tuple[dict[type[Event], Any], Timers, Outbox]:
    use_case, outbox, _, _ = make()
    timers = Timers()
    reminders = register_reminders(timers, use_case, lead=timedelta(hours=2))
    reminders._clock = lambda: T0
    return notify_handlers(use_case, reminders), timers, outbox


async def test_an_assignment_arms_a_reminder_that_fires_once_for_both_people() -> None:
    handlers, timers, outbox = with_reminders()
    event = assigned()
    m = meta(event)
    await handlers[VolunteerAssigned](m, event)
    await handlers[VolunteerAssigned](m, event)  # redelivered: one timer
    assert list(timers.docs) == [f"{REMINDER}:asg_1"]
    due = timers.docs[f"{REMINDER}:asg_1"]["due_at"]
    assert due == WINDOW["start"] - timedelta(hours=2)
    before = len(outbox.sent)
    assert await timers.fire_due(due - timedelta(seconds=1)) == 0
    assert await timers.fire_due(due) == 1
    reminders = outbox.sent[before:]
    assert sorted(x.recipient.id for x in reminders) == ["res_1", "vol_1"]
    [to_requester] = [x for x in reminders if x.recipient.id == "res_1"]
    assert "提醒" in to_requester.rendered.subject and "志愿者Lin" in to_requester.rendered.body
    assert "123456" not in to_requester.rendered.body  # the code is not kept in the timer
    [to_volunteer] = [x for x in reminders if x.recipient.id == "vol_1"]
    assert to_volunteer.rendered.subject == "Zhumeng: reminder, Hearing test"
    assert "秀英" in to_volunteer.rendered.body and "王秀英" not in to_volunteer.rendered.body
    assert to_volunteer.cause.event_id == f"{REMINDER}:asg_1"
    assert await timers.fire_due(due + timedelta(hours=1)) == 0


async def test_a_reminder_run_twice_sends_once() -> None:
    handlers, timers, outbox = with_reminders()
    event = assigned()
    await handlers[VolunteerAssigned](meta(event), event)
    doc = timers.docs[f"{REMINDER}:asg_1"]
    timer = Timer(f"{REMINDER}:asg_1", REMINDER, "asg_1", doc["due_at"], doc["payload"])
    before = len(outbox.sent)
    await timers.handlers[REMINDER](timer)
    await timers.handlers[REMINDER](timer)  # a replica crashed after sending: run again
    assert len(outbox.sent) == before + 2


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
    handlers, timers, outbox = with_reminders()
    event = assigned()
    await handlers[VolunteerAssigned](meta(event), event)
    await handlers[type(ending)](meta(ending), ending)
    await handlers[VolunteerAssigned](meta(event), event)  # a late redelivery cannot re-arm it
    sent = len(outbox.sent)
    assert await timers.fire_due(T0 + timedelta(days=2)) == 0
    assert len(outbox.sent) == sent


async def test_no_reminder_when_the_appointment_is_too_close() -> None:
    handlers, timers, _ = with_reminders()
    soon = {"start": T0 + timedelta(hours=1), "end": T0 + timedelta(hours=2)}
    event = assigned(window=soon)
    await handlers[VolunteerAssigned](meta(event), event)
    assert timers.docs == {}


async def test_the_handlers_cover_every_event_notify_acts_on() -> None:
    use_case, _, _, _ = make()
    assert set(matching_handlers(use_case)) < set(handlers := notify_handlers(use_case))
    for model in (RequestPosted, ReviewRequired, RequestReviewed, RequestEscalated, OfferMade):
        assert model in handlers
    assert {OfferExpired, ClaimOpened, VolunteerAssigned, AssignmentCancelled} <= set(handlers)

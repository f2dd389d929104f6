from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    Event,
    RequestCompleted,
    RequestUnfulfilled,
    RequestUnmatched,
    VolunteerAssigned,
)
from zhumeng_kit.consumer import PermanentError
from zhumeng_notify.adapters.channels import LogChannel, SmtpChannel
from zhumeng_notify.adapters.handlers import matching_handlers
from zhumeng_notify.app.delivery import REPLAY, DeliveryPolicy, EventReplay
from zhumeng_notify.app.notify import ContactMissing, NotifyOnEvent
from zhumeng_notify.app.ports import SendUnavailable
from zhumeng_notify.domain.backoff import RetryPolicy
from zhumeng_notify.domain.model import (
    Cause,
    Delivery,
    Locale,
    Message,
    Receipt,
    Recipient,
    Rendered,
    message_id,
)
from zhumeng_notify.domain.preferences import Preferences
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

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
REQUESTER = Recipient(
    "res_1", "requester", "王秀英", "zh-CN", email="xiuying@example.org", phone="13812345678"
)
VOLUNTEER = Recipient(
    "vol_1", "volunteer", "Lin Xiaoming", "en", email="lin@example.org", phone="13987654321"
)


SERVICES: dict[str, dict[Locale, str]] = {"st_cut": {"zh-CN": "义剪", "en": "Free haircut"}}


def people(
    requester: Recipient | None = REQUESTER, volunteer: Recipient | None = VOLUNTEER
) -> FakeDirectory:
    """The requester of req_1 and the volunteer vol_1 (None: not in the views yet)."""
    return FakeDirectory(
        {"req_1": requester} if requester else {},
        {"vol_1": volunteer} if volunteer else {},
        services=SERVICES,
    )


ASSIGNED = VolunteerAssigned(
    request_id="req_1",
    assignment_id="asg_1",
    volunteer_id="vol_1",
    volunteer_display_name="小林",
    service_type_id="st_cut",
    window={"start": T0 + timedelta(days=1), "end": T0 + timedelta(days=1, hours=2)},
    distance_km=3.2,
    score=0.8,
    explanation=[],
    candidates_considered=4,
    assigned_at=T0,
)
UNMATCHED = RequestUnmatched(
    request_id="req_1",
    service_type_id="st_cut",
    reasons={"too_far": 3},
    candidates_considered=3,
    decided_at=T0,
)


def policy(max_send_attempts: int = 3) -> DeliveryPolicy:
    retry = RetryPolicy(max_attempts=max_send_attempts, base_s=2.0, cap_s=60.0)
    return DeliveryPolicy(lease=timedelta(seconds=30), retry=retry)


def make(
    email: FakeChannel | None = None,
    directory: FakeDirectory | None = None,
    max_send_attempts: int = 3,
) -> tuple[NotifyOnEvent, FakeRepo, FakeChannel, FakeChannel, Clock]:
    clock = Clock(T0)
    log_ch, email_ch = FakeChannel("log"), email or FakeChannel("email")
    use_case, repo, _ = notify_on_fakes(
        {"log": log_ch, "email": email_ch},
        directory or people(),
        clock,
        policy=policy(max_send_attempts),
    )
    return use_case, repo, log_ch, email_ch, clock


def timers_of(use_case: NotifyOnEvent) -> FakeTimers:
    timers = use_case.dispatcher._timers
    assert isinstance(timers, FakeTimers)
    return timers


async def test_assignment_tells_requester_and_volunteer_in_their_locales() -> None:
    use_case, repo, log_ch, email_ch, _ = make()
    meta = EventMeta.new(ASSIGNED, "zhumeng/matching")
    outcomes = await use_case.volunteer_assigned(meta, ASSIGNED)
    assert [o.result for o in outcomes] == ["sent", "sent"]
    to_requester, to_volunteer = email_ch.sent
    assert to_requester.delivery_id == f"{meta.id}|res_1|email"
    assert to_requester.address == "xiuying@example.org"
    assert "小林" in to_requester.rendered.body and "义剪" in to_requester.rendered.subject
    assert to_volunteer.locale == "en" and "Free haircut" in to_volunteer.rendered.subject
    assert "秀英" in to_volunteer.rendered.body
    for pii in ("王秀英", "13812345678", "xiuying@example.org"):
        assert pii not in to_volunteer.rendered.body
    assert not log_ch.sent
    assert [(e.recipient_role, e.status, e.channel) for e in repo.events] == [
        ("requester", "sent", "email"),
        ("volunteer", "sent", "email"),
    ]


async def test_the_same_event_handled_twice_sends_once() -> None:
    use_case, repo, _, email_ch, _ = make()
    meta = EventMeta.new(ASSIGNED, "zhumeng/matching")
    await use_case.volunteer_assigned(meta, ASSIGNED)
    again = await use_case.volunteer_assigned(meta, ASSIGNED)
    assert [o.result for o in again] == ["skipped", "skipped"]
    assert len(email_ch.sent) == 2 and len(repo.events) == 2


async def test_a_pending_delivery_past_its_lease_is_sent_again() -> None:
    use_case, repo, _, email_ch, clock = make()
    timers = timers_of(use_case)
    meta = EventMeta.new(UNMATCHED, "zhumeng/matching")
    did = f"{meta.id}|res_1|email"
    # a previous process claimed it and crashed mid-send: redelivered, the event finds it
    # busy, is acknowledged, and a timer watches the lease
    await use_case.request_unmatched(meta, UNMATCHED)
    repo.docs[did].update(status="pending", attempts=1, lease_until=T0 + timedelta(seconds=30))
    email_ch.sent.clear()
    outcomes = await use_case.request_unmatched(meta, UNMATCHED)
    assert [o.result for o in outcomes] == ["busy"]
    assert timers.pending() == [(f"{did}#b1", T0 + timedelta(seconds=30))]
    assert await timers.fire_due() == 0  # not yet
    clock.now = T0 + timedelta(seconds=31)
    assert await timers.fire_due() == 1
    assert len(email_ch.sent) == 1 and repo.docs[did]["attempts"] == 2
    assert repo.docs[did]["status"] == "sent"


async def test_a_failing_channel_retries_with_backoff_then_dead_letters() -> None:
    email = FakeChannel("email", fail_times=99)
    use_case, repo, _, _, clock = make(email=email, max_send_attempts=3)
    timers = timers_of(use_case)
    meta = EventMeta.new(UNMATCHED, "zhumeng/matching")
    did = f"{meta.id}|res_1|email"
    # the handler returns at once (the event is acknowledged): no in-line retry
    assert [o.result for o in await use_case.request_unmatched(meta, UNMATCHED)] == ["retrying"]
    assert "xiuying@example.org" not in str(repo.docs[did]["error"])
    [(key, due)] = timers.pending()
    assert key == f"{did}#r1" and T0 + timedelta(seconds=1) <= due <= T0 + timedelta(seconds=2)
    clock.now = due
    await timers.fire_due()
    [(key, due2)] = timers.pending()
    assert key == f"{did}#r2" and due2 - due <= timedelta(seconds=4)
    assert due2 - due >= timedelta(seconds=2)  # doubled, less at most half of it as jitter
    clock.now = due2
    await timers.fire_due()
    doc = repo.docs[did]
    assert doc["status"] == "dead_lettered" and doc["attempts"] == 3
    assert doc["log"] == [(1, "retry"), (2, "retry"), (3, "dead_lettered")]
    assert "ConnectionRefusedError" in str(doc["error"])
    [event] = repo.events
    assert (event.status, event.attempt) == ("dead_lettered", 3)
    assert timers.pending() == []
    # a redelivery does not try again; an admin's replay does, with a fresh budget
    assert [o.result for o in await use_case.request_unmatched(meta, UNMATCHED)] == ["skipped"]
    email.fail_times = 0
    assert await use_case.dispatcher.replay(did) is not None
    await timers.fire_due()
    assert repo.docs[did]["status"] == "sent" and len(email.sent) == 1


async def test_a_transient_failure_then_success_sends_exactly_once() -> None:
    email = FakeChannel("email", fail_times=1)
    use_case, repo, _, _, clock = make(email=email)
    timers = timers_of(use_case)
    meta = EventMeta.new(UNMATCHED, "zhumeng/matching")
    assert [o.result for o in await use_case.request_unmatched(meta, UNMATCHED)] == ["retrying"]
    clock.now = T0 + timedelta(minutes=1)
    await timers.fire_due()
    await timers.fire_due()  # nothing left to do
    assert len(email.sent) == 1 and [e.status for e in repo.events] == ["sent"]
    assert repo.events[0].attempt == 2


async def test_a_rejected_send_fails_at_once() -> None:
    use_case, repo, _, _, _ = make(email=FakeChannel("email", reject=True))
    meta = EventMeta.new(UNMATCHED, "zhumeng/matching")
    assert [o.result for o in await use_case.request_unmatched(meta, UNMATCHED)] == ["failed"]
    assert [e.status for e in repo.events] == ["failed"]
    assert timers_of(use_case).pending() == []


async def test_send_unavailable_is_retried() -> None:
    class Busy(FakeChannel):
        async def send(self, message: Message) -> Receipt:
            raise SendUnavailable("HTTP 503")

    use_case, _, _, _, _ = make(email=Busy("email"))
    meta = EventMeta.new(UNMATCHED, "zhumeng/matching")
    assert [o.result for o in await use_case.request_unmatched(meta, UNMATCHED)] == ["retrying"]


async def test_missing_requester_contact_is_retried_and_the_volunteer_told_once() -> None:
    directory = people(requester=None)
    use_case, _, _, email_ch, _ = make(directory=directory)
    meta = EventMeta.new(ASSIGNED, "zhumeng/matching")
    with pytest.raises(ContactMissing, match="requester of request req_1"):
        await use_case.volunteer_assigned(meta, ASSIGNED)
    assert [m.recipient.id for m in email_ch.sent] == ["vol_1"]
    directory.requesters["req_1"] = REQUESTER  # the contact topic caught up
    await use_case.volunteer_assigned(meta, ASSIGNED)
    assert [m.recipient.id for m in email_ch.sent] == ["vol_1", "res_1"]
    with pytest.raises(ContactMissing):
        await use_case.request_unmatched(meta, UNMATCHED.model_copy(update={"request_id": "x"}))


async def test_without_email_the_log_channel_is_used() -> None:
    no_mail = people(requester=replace(REQUESTER, email=None))
    use_case, _, log_ch, email_ch, _ = make(directory=no_mail)
    await use_case.request_unmatched(EventMeta.new(UNMATCHED, "m"), UNMATCHED)
    assert [m.channel for m in log_ch.sent] == ["log"] and not email_ch.sent
    assert log_ch.sent[0].address == "13812345678"


async def test_unknown_service_type_falls_back_to_its_id() -> None:
    use_case, _, _, email_ch, _ = make()
    event = UNMATCHED.model_copy(update={"service_type_id": "st_new"})
    await use_case.request_unmatched(EventMeta.new(event, "m"), event)
    assert "st_new" in email_ch.sent[0].rendered.subject


async def test_no_personal_data_in_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    failing = FakeChannel("email", fail_times=1)
    use_case, _, _ = notify_on_fakes(
        {"log": LogChannel(), "email": failing},
        people(volunteer=replace(VOLUNTEER, email=None)),
        Clock(T0),
        policy=policy(max_send_attempts=1),
    )
    meta = EventMeta.new(ASSIGNED, "zhumeng/matching")
    outcomes = await use_case.volunteer_assigned(meta, ASSIGNED)
    # email failed on its only attempt; the log channel went through
    assert [o.result for o in outcomes] == ["dead_lettered", "sent"]
    text = caplog.text
    assert f"{meta.id}|vol_1|log" in text and "139****4321" in text
    for pii in (
        "13987654321",
        "xiuying@example.org",
        "13812345678",
        "王秀英",
        "Lin Xiaoming",
        "Hello",
        "您好",
    ):
        assert pii not in text, pii


def test_smtp_message_has_a_stable_message_id() -> None:
    channel = SmtpChannel("127.0.0.1", 25, "noreply@zhumeng.test", clock=lambda: T0)
    msg = Message(
        "e1|res_1|email",
        "email",
        REQUESTER,
        REQUESTER.email,
        Rendered("【筑梦】主题", "正文 body"),
        Cause("e1", "t", "req_1"),
        "zh-CN",
    )
    mail = channel.build(msg)
    assert mail["Message-ID"] == message_id("e1|res_1|email")
    parsed = message_from_bytes(mail.as_bytes(), policy=default_policy)
    assert parsed["Subject"] == "【筑梦】主题" and parsed["To"] == "xiuying@example.org"
    assert parsed.get_content().strip() == "正文 body"


# ---- the lifecycle after the assignment --------------------------------------------------

CODE = "204815"
ASSIGNED_WITH_CODE = ASSIGNED.model_copy(update={"checkin_code": CODE, "slot": 1, "slots": 2})
CHECKED_IN = CheckedIn(
    request_id="req_1", assignment_id="asg_1", volunteer_id="vol_1", checked_in_at=T0
)
ASSIGNMENT_COMPLETED = AssignmentCompleted(
    request_id="req_1",
    assignment_id="asg_1",
    volunteer_id="vol_1",
    service_type_id="st_cut",
    checked_in_at=T0,
    checked_out_at=T0 + timedelta(hours=1, minutes=30),
    hours=1.5,
)
REQUEST_COMPLETED = RequestCompleted(request_id="req_1", hours_total=3.0, completed_at=T0)
UNFULFILLED = RequestUnfulfilled(
    request_id="req_1", reason="window_passed", filled_slots=0, slots=1, decided_at=T0
)


def cancelled(reason: str) -> AssignmentCancelled:
    return AssignmentCancelled(
        request_id="req_1",
        assignment_id="asg_1",
        volunteer_id="vol_1",
        by="coordinator",
        reason=reason,
        cancelled_at=T0,
    )


async def test_the_checkin_code_goes_to_the_requester_only() -> None:
    use_case, repo, log_ch, email_ch, _ = make()
    await use_case.volunteer_assigned(EventMeta.new(ASSIGNED_WITH_CODE, "m"), ASSIGNED_WITH_CODE)
    to_requester, to_volunteer = email_ch.sent
    assert to_requester.recipient.id == "res_1"
    assert f"签到码：{CODE}" in to_requester.rendered.body  # zh-CN requester
    assert "共需2位志愿者，这是第1位" in to_requester.rendered.body
    assert to_volunteer.recipient.id == "vol_1"
    assert CODE not in to_volunteer.rendered.body and CODE not in to_volunteer.rendered.subject
    # nor in what is stored for the volunteer (the history API shows the body)
    stored = [d["delivery"] for d in repo.docs.values()]
    bodies = {d.recipient_id: d.body for d in stored if isinstance(d, Delivery)}
    assert CODE in bodies["res_1"] and CODE not in bodies["vol_1"]
    assert not log_ch.sent


async def test_the_checkin_code_stays_off_the_volunteer_on_the_log_channel_too() -> None:
    both_en = people(requester=replace(REQUESTER, email=None, locale="en"))
    use_case, _, log_ch, email_ch, _ = make(directory=both_en)
    await use_case.volunteer_assigned(EventMeta.new(ASSIGNED_WITH_CODE, "m"), ASSIGNED_WITH_CODE)
    [to_requester] = log_ch.sent
    [to_volunteer] = email_ch.sent
    assert f"Check-in code: {CODE}" in to_requester.rendered.body
    assert CODE not in to_volunteer.rendered.body


LIFECYCLE: list[tuple[str, object, str, str, str]] = [
    # (use-case method, event, recipient, subject fragment, body fragment)
    ("checked_in", CHECKED_IN, "res_1", "志愿者Lin已到达并签到", "到达并完成签到"),
    ("request_completed", REQUEST_COMPLETED, "res_1", "欢迎评价", "共服务3 小时"),
    ("request_unfulfilled", UNFULFILLED, "res_1", "未能按时", "原因：服务时间已过"),
    (
        "assignment_completed",
        ASSIGNMENT_COMPLETED,
        "vol_1",
        "1.5 hours credited for Free haircut",
        "Thank you",
    ),
    (
        "assignment_cancelled",
        cancelled("request_cancelled"),
        "vol_1",
        "task cancelled",
        "you are released",
    ),
    (
        "assignment_cancelled",
        cancelled("no_show"),
        "vol_1",
        "marked as not having come",
        "given to another volunteer",
    ),
    ("assignment_cancelled", cancelled("reassigned"), "vol_1", "reassigned", "released"),
]


@pytest.mark.parametrize(
    ("method", "event", "recipient", "subject", "body"),
    LIFECYCLE,
    ids=[f"{m}-{getattr(e, 'reason', '')}" for m, e, *_ in LIFECYCLE],
)
async def test_a_lifecycle_event_handled_twice_tells_its_recipient_once(
    method: str, event: Event, recipient: str, subject: str, body: str
) -> None:
    use_case, repo, log_ch, email_ch, _ = make()
    handle = getattr(use_case, method)
    meta = EventMeta.new(event, "zhumeng/matching")
    first = await handle(meta, event)
    again = await handle(meta, event)
    assert [o.result for o in first] == ["sent"] and [o.result for o in again] == ["skipped"]
    [message] = email_ch.sent
    assert message.recipient.id == recipient
    assert message.delivery_id == f"{meta.id}|{recipient}|email"
    assert message.locale == ("zh-CN" if recipient == "res_1" else "en")
    assert subject in message.rendered.subject and body in message.rendered.body
    assert CODE not in message.rendered.body
    [delivered] = repo.events
    assert (delivered.recipient_id, delivered.status, delivered.cause_event_id) == (
        recipient,
        "sent",
        meta.id,
    )
    assert delivered.cause_event_type == event.TYPE
    assert not log_ch.sent


async def test_a_volunteers_own_withdrawal_tells_nobody() -> None:
    use_case, repo, log_ch, email_ch, _ = make()
    event = cancelled("withdrawn")
    assert await use_case.assignment_cancelled(EventMeta.new(event, "m"), event) == []
    assert not email_ch.sent and not log_ch.sent and not repo.docs


async def test_checked_in_without_the_volunteer_contact_still_tells_the_requester() -> None:
    use_case, _, _, email_ch, _ = make(directory=people(volunteer=None))
    await use_case.checked_in(EventMeta.new(CHECKED_IN, "m"), CHECKED_IN)
    [message] = email_ch.sent
    assert message.rendered.subject == "【筑梦】您的志愿者已到达并签到"


@pytest.mark.parametrize(
    ("method", "event", "who"),
    [
        ("checked_in", CHECKED_IN, "requester"),
        ("request_completed", REQUEST_COMPLETED, "requester"),
        ("request_unfulfilled", UNFULFILLED, "requester"),
        ("assignment_completed", ASSIGNMENT_COMPLETED, "volunteer"),
        ("assignment_cancelled", cancelled("no_show"), "volunteer"),
    ],
)
async def test_a_missing_contact_is_retried_then_sent_once(
    method: str, event: Event, who: str
) -> None:
    directory = people(requester=None, volunteer=None)
    use_case, _, _, email_ch, _ = make(directory=directory)
    handle = getattr(use_case, method)
    meta = EventMeta.new(event, "m")
    with pytest.raises(ContactMissing, match=f"{who} of request req_1"):
        await handle(meta, event)
    assert not email_ch.sent
    directory.requesters["req_1"] = REQUESTER  # the contact topics caught up
    directory.volunteers["vol_1"] = VOLUNTEER
    await handle(meta, event)
    await handle(meta, event)
    assert len(email_ch.sent) == 1


async def test_the_whole_lifecycle_of_one_request() -> None:
    """Assigned (with the code) -> checked in -> assignment completed -> request completed,
    each delivered twice (at-least-once): 3 messages to the requester, 2 to the volunteer."""
    use_case, repo, _, email_ch, _ = make()
    steps: list[tuple[object, Event]] = [
        (use_case.volunteer_assigned, ASSIGNED_WITH_CODE),
        (use_case.checked_in, CHECKED_IN),
        (use_case.assignment_completed, ASSIGNMENT_COMPLETED),
        (use_case.request_completed, REQUEST_COMPLETED),
    ]
    for handle, event in steps:
        meta = EventMeta.new(event, "zhumeng/matching")
        for _ in range(2):
            await handle(meta, event)  # type: ignore[operator]
    by = [(m.recipient.id, m.cause.event_type) for m in email_ch.sent]
    assert by == [
        ("res_1", VolunteerAssigned.TYPE),
        ("vol_1", VolunteerAssigned.TYPE),
        ("res_1", CheckedIn.TYPE),
        ("vol_1", AssignmentCompleted.TYPE),
        ("res_1", RequestCompleted.TYPE),
    ]
    with_code = [m for m in email_ch.sent if CODE in m.rendered.body]
    assert [m.recipient.id for m in with_code] == ["res_1"]
    assert len(repo.events) == 5


async def test_handlers_dispatch_every_lifecycle_event() -> None:
    use_case, _, _, email_ch, _ = make()
    handlers = matching_handlers(use_case)
    assert set(handlers) == {
        VolunteerAssigned,
        RequestUnmatched,
        CheckedIn,
        AssignmentCompleted,
        AssignmentCancelled,
        RequestCompleted,
        RequestUnfulfilled,
    }
    for event in (CHECKED_IN, ASSIGNMENT_COMPLETED, cancelled("request_cancelled")):
        await handlers[type(event)](EventMeta.new(event, "m"), event)
    assert [m.cause.event_type for m in email_ch.sent] == [
        CheckedIn.TYPE,
        AssignmentCompleted.TYPE,
        AssignmentCancelled.TYPE,
    ]
    with pytest.raises(PermanentError, match="expected CheckedIn"):
        await handlers[CheckedIn](EventMeta.new(REQUEST_COMPLETED, "m"), REQUEST_COMPLETED)


# ---- quiet hours, preferences and waiting contacts -----------------------------------------


def make_with_sms(prefs: FakePreferences) -> tuple[NotifyOnEvent, FakeRepo, FakeChannel, Clock]:
    clock, sms = Clock(T0), FakeChannel("sms")
    use_case, repo, _ = notify_on_fakes(
        {"log": FakeChannel("log"), "sms": sms, "email": FakeChannel("email")},
        people(),
        clock,
        preferences=prefs,
        policy=policy(),
    )
    return use_case, repo, sms, clock


async def test_quiet_hours_defer_a_message_then_a_timer_sends_it() -> None:
    use_case, repo, sms, clock = make_with_sms(FakePreferences())
    timers = timers_of(use_case)
    clock.now = datetime(2025, 6, 1, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    meta = EventMeta.new(UNMATCHED, "zhumeng/matching")
    assert [o.result for o in await use_case.request_unmatched(meta, UNMATCHED)] == ["deferred"]
    did = f"{meta.id}|res_1|sms"
    seven = datetime(2025, 6, 1, 23, 0, tzinfo=UTC)  # 07:00 in Shanghai
    assert timers.pending() == [(f"{did}#d", seven)]
    assert [e.status for e in repo.events] == ["deferred"] and not sms.sent
    # redelivered at night: still one delivery, still deferred
    assert [o.result for o in await use_case.request_unmatched(meta, UNMATCHED)] == ["busy"]
    clock.now = seven
    await timers.fire_due()
    assert len(sms.sent) == 1 and [e.status for e in repo.events] == ["deferred", "sent"]
    # an urgent message goes out at night
    clock.now = datetime(2025, 6, 2, 15, 30, tzinfo=UTC)
    urgent = Rendered("s", "b", urgent=True)
    outcome = await use_case._deliver(REQUESTER, urgent, Cause("e2", "t", "req_1"))
    assert outcome.result == "sent" and len(sms.sent) == 2


async def test_an_opt_out_before_the_morning_suppresses_sms_and_uses_the_next_channel() -> None:
    prefs = FakePreferences()
    use_case, repo, sms, clock = make_with_sms(prefs)
    timers = timers_of(use_case)
    clock.now = datetime(2025, 6, 1, 15, 30, tzinfo=UTC)
    meta = EventMeta.new(UNMATCHED, "zhumeng/matching")
    await use_case.request_unmatched(meta, UNMATCHED)
    prefs.people["res_1"] = Preferences(opted_out=["sms"])  # replied TD at night
    clock.now = datetime(2025, 6, 1, 23, 0, tzinfo=UTC)
    await timers.fire_due()
    assert not sms.sent
    assert repo.docs[f"{meta.id}|res_1|sms"]["status"] == "suppressed"
    assert repo.docs[f"{meta.id}|res_1|email"]["status"] == "sent"
    # a phone that said TD before anyone had it is not texted either
    prefs.people.clear()
    prefs.blocked.add(REQUESTER.phone or "")
    later = EventMeta.new(UNMATCHED, "zhumeng/matching")
    await use_case.request_unmatched(later, UNMATCHED)
    assert repo.docs[f"{later.id}|res_1|email"]["status"] == "sent" and not sms.sent


async def test_a_chosen_locale_reaches_the_template() -> None:
    prefs = FakePreferences()
    prefs.people["res_1"] = Preferences(locale="en", channels=["email"])
    use_case, _, _, _ = make_with_sms(prefs)
    await use_case.request_unmatched(EventMeta.new(UNMATCHED, "m"), UNMATCHED)
    [message] = use_case.dispatcher.channels["email"].sent  # type: ignore[attr-defined]
    assert message.locale == "en" and message.rendered.subject.startswith("Zhumeng:")


async def test_an_event_without_its_contact_waits_in_a_timer_and_is_handled_later() -> None:
    directory = people(requester=None)
    use_case, _, _, email_ch, clock = make(directory=directory)
    timers = timers_of(use_case)
    replay = EventReplay(timers, timedelta(seconds=2), clock)
    handler = replay.wrap(matching_handlers(use_case))[RequestUnmatched]
    meta = EventMeta.new(UNMATCHED, "zhumeng/matching")
    await handler(meta, UNMATCHED)  # returns: the partition moves on
    [kept] = timers.timers.values()
    assert (kept["kind"], kept["key"], kept["due"]) == (REPLAY, meta.id, T0 + timedelta(seconds=2))
    with pytest.raises(ContactMissing):  # still missing: the timer retries with backoff
        await replay.on_timer(kept["key"], kept["payload"])
    directory.requesters["req_1"] = REQUESTER
    await replay.on_timer(kept["key"], kept["payload"])
    [message] = email_ch.sent
    assert message.delivery_id == f"{meta.id}|res_1|email"


async def test_an_event_whose_wait_already_gave_up_is_retried_in_line() -> None:
    use_case, _, _, _, clock = make(directory=people(requester=None))
    timers = timers_of(use_case)
    replay = EventReplay(timers, timedelta(seconds=2), clock)
    handler = replay.wrap(matching_handlers(use_case))[RequestUnmatched]
    meta = EventMeta.new(UNMATCHED, "zhumeng/matching")
    await handler(meta, UNMATCHED)
    timers.timers[f"{REPLAY}:{meta.id}"]["state"] = "failed"  # its retries ran out
    with pytest.raises(ContactMissing):  # the runner's retries, then the dead-letter topic
        await handler(meta, UNMATCHED)

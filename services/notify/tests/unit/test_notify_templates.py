from __future__ import annotations

import inspect
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from zhumeng_notify.domain import sms_text, templates
from zhumeng_notify.domain.model import (
    Locale,
    Recipient,
    Rendered,
    delivery_id,
    mask_address,
    message_id,
)
from zhumeng_notify.domain.recipients import first_name

pytestmark = pytest.mark.unit

# 01:00-03:00 UTC is 09:00-11:00 in Dehua (UTC+8); 2025-06-03 is a Tuesday.
START = datetime(2025, 6, 3, 1, 0, tzinfo=UTC)
END = START + timedelta(hours=2)
FACTS = templates.AssignedFacts(
    request_id="req_1",
    service="义剪",
    window_start=START,
    window_end=END,
    volunteer_name="小林",
    requester_first_name="秀英",
)


def test_window_is_shown_in_shanghai_time_in_both_locales() -> None:
    assert templates.format_window(START, END, "zh-CN") == (
        "2025年6月3日（周二）09:00–11:00（北京时间）"
    )
    assert templates.format_window(START, END, "en") == (
        "Tue 3 Jun 2025, 09:00–11:00 (China Standard Time)"
    )


def test_window_from_another_zone_and_across_midnight() -> None:
    berlin = timezone(timedelta(hours=2))
    s = datetime(2025, 6, 3, 15, 0, tzinfo=berlin)  # 21:00 Shanghai
    e = s + timedelta(hours=4)  # 01:00 next day
    assert templates.format_window(s, e, "zh-CN") == (
        "2025年6月3日（周二）21:00 至 6月4日（周三）01:00（北京时间）"
    )
    assert templates.format_window(s, e, "en") == (
        "Tue 3 Jun 2025 21:00 – Wed 4 Jun 2025 01:00 (China Standard Time)"
    )


def test_assigned_to_requester_zh_and_en() -> None:
    zh = templates.assigned_to_requester("zh-CN", "王秀英", FACTS)
    assert "义剪" in zh.subject and zh.subject.startswith("【筑梦】")
    assert "王秀英，您好" in zh.body and "志愿者小林" in zh.body and "09:00–11:00" in zh.body
    en = templates.assigned_to_requester("en", "Alice Smith", FACTS)
    assert en.subject.startswith("Zhumeng:")
    assert "Hello Alice Smith" in en.body and "小林 has accepted" in en.body
    assert "09:00–11:00" in en.body and "req_1" in en.body


def test_assigned_to_volunteer_names_the_requester_by_first_name_only() -> None:
    zh = templates.assigned_to_volunteer("zh-CN", "林小明", FACTS)
    assert "新任务" in zh.subject and "为秀英提供" in zh.body and "王秀英" not in zh.body
    en = templates.assigned_to_volunteer("en", "Lin", FACTS)
    assert "help 秀英 with 义剪" in en.body and "09:00–11:00" in en.body


def test_unmatched_to_requester_mentions_the_coordinator() -> None:
    facts = templates.UnmatchedFacts(request_id="req_9", service="Hearing test")
    zh = templates.unmatched_to_requester("zh-CN", "王秀英", facts)
    assert "暂未找到志愿者" in zh.subject and "协调员" in zh.body and "req_9" in zh.body
    en = templates.unmatched_to_requester("en", "Alice", facts)
    assert "no volunteer" in en.subject and "coordinator" in en.body


@pytest.mark.parametrize(
    ("full", "first"),
    [
        ("王秀英", "秀英"),
        ("欧阳娜娜", "娜娜"),
        ("Alice  Smith", "Alice"),
        ("Bob", "Bob"),
        ("李明", "明"),
        ("", ""),
    ],
)
def test_first_name(full: str, first: str) -> None:
    assert first_name(full) == first


def test_ids_and_masks() -> None:
    did = delivery_id("e1", "u1", "email")
    assert did == "e1|u1|email"
    assert message_id(did) == message_id("e1|u1|email") != message_id("e2|u1|email")
    assert message_id(did).startswith("<") and message_id(did).endswith("@notify.zhumeng>")
    assert mask_address("alice@example.org") == "a***@example.org"
    assert mask_address("13800138000") == "138****8000"
    assert "a@example.org" not in repr(Recipient("u", "requester", "A", email="a@example.org"))


# ---- the lifecycle: every (event, role, locale) --------------------------------------------

CODE = "204815"


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_assigned_to_requester_carries_the_checkin_code(locale: Locale) -> None:
    with_code = templates.assigned_to_requester(locale, "王秀英", FACTS, CODE)
    without = templates.assigned_to_requester(locale, "王秀英", FACTS)
    assert CODE in with_code.body and CODE not in with_code.subject
    assert "签到码" not in without.body and "Check-in code" not in without.body
    if locale == "zh-CN":
        assert f"签到码：{CODE}" in with_code.body
        assert "志愿者小林到达时，请把这个签到码出示给志愿者" in with_code.body
    else:
        assert f"Check-in code: {CODE}" in with_code.body
        assert "When 小林 arrives, show them this code" in with_code.body


def test_the_volunteer_template_cannot_take_the_code() -> None:
    params = inspect.signature(templates.assigned_to_volunteer).parameters
    assert not any("code" in p for p in params)
    assert not any("code" in f.name for f in fields(templates.AssignedFacts))


def test_assigned_names_the_slot_of_a_multi_volunteer_request() -> None:
    two = replace(FACTS, slot=2, slots=3)
    assert "共需3位志愿者，这是第2位" in templates.assigned_to_requester("zh-CN", "王", two).body
    assert "(volunteer 2 of 3)" in templates.assigned_to_requester("en", "A", two).body
    assert "volunteer 1 of 1" not in templates.assigned_to_requester("en", "A", FACTS).body


ARRIVED = templates.CheckedInFacts(
    request_id="req_1",
    volunteer_first_name="Xiaoming",
    checked_in_at=datetime(2025, 6, 3, 1, 5, tzinfo=UTC),  # 09:05 in Dehua
)


def test_checked_in_to_requester_zh_and_en() -> None:
    zh = templates.checked_in_to_requester("zh-CN", "王秀英", ARRIVED)
    assert zh.subject == "【筑梦】志愿者Xiaoming已到达并签到"
    assert "王秀英，您好" in zh.body and "6月3日（周二）09:05到达并完成签到" in zh.body
    assert "req_1" in zh.body and "协调员" in zh.body
    en = templates.checked_in_to_requester("en", "Alice", ARRIVED)
    assert en.subject == "Zhumeng: Xiaoming has arrived"
    assert "Xiaoming has arrived and checked in at 09:05 on Tue 3 Jun 2025" in en.body


def test_checked_in_without_the_volunteers_name() -> None:
    anonymous = replace(ARRIVED, volunteer_first_name=None)
    assert "您的志愿者已到达" in templates.checked_in_to_requester("zh-CN", "王", anonymous).subject
    en = templates.checked_in_to_requester("en", "Alice", anonymous)
    assert en.subject == "Zhumeng: Your volunteer has arrived" and "None" not in en.body


@pytest.mark.parametrize(
    ("hours", "zh", "en"),
    [
        (2.0, "2 小时", "2 hours"),
        (1.0, "1 小时", "1 hour"),
        (1.25, "1.25 小时", "1.25 hours"),
        (0.5, "0.5 小时", "0.5 hours"),
        (0.0, "0 小时", "0 hours"),
        (10.75, "10.75 小时", "10.75 hours"),
    ],
)
def test_format_hours(hours: float, zh: str, en: str) -> None:
    assert templates.format_hours(hours, "zh-CN") == zh
    assert templates.format_hours(hours, "en") == en


def test_request_completed_thanks_and_invites_a_rating() -> None:
    facts = templates.RequestCompletedFacts(request_id="req_1", hours_total=3.5)
    zh = templates.request_completed_to_requester("zh-CN", "王秀英", facts)
    assert "服务已完成" in zh.subject and "评价" in zh.subject
    assert "共服务3.5 小时" in zh.body and "打分" in zh.body and "感谢" in zh.body
    assert "req_1" in zh.body
    en = templates.request_completed_to_requester("en", "Alice", facts)
    assert "rate" in en.subject
    assert "3.5 hours in all" in en.body and "Please rate the service" in en.body
    assert "Thank you" in en.body


def test_assignment_completed_thanks_the_volunteer_with_the_hours() -> None:
    facts = templates.AssignmentCompletedFacts(request_id="req_1", service="义剪", hours=1.75)
    zh = templates.assignment_completed_to_volunteer("zh-CN", "林小明", facts)
    assert zh.subject == "【筑梦】感谢您的服务：义剪，已记录1.75 小时"
    assert "志愿服务时长1.75 小时" in zh.body and "谢谢" in zh.body
    en = templates.assignment_completed_to_volunteer(
        "en", "Lin", replace(facts, service="Free haircut", hours=1.0)
    )
    assert en.subject == "Zhumeng: thank you, 1 hour credited for Free haircut"
    assert "1 hour of volunteer service have been credited" in en.body


@pytest.mark.parametrize(
    ("reason", "zh", "en"),
    [
        ("request_cancelled", "已被取消，您无需再前往", "has been cancelled. You need not go"),
        ("no_show", "被记录为未到场，该名额已改派给其他志愿者", "marked as not having come"),
        ("reassigned", "改派给其他志愿者，您无需再前往", "given this task to another volunteer"),
    ],
)
def test_cancelled_to_volunteer_by_reason(reason: str, zh: str, en: str) -> None:
    facts = templates.CancelledFacts(request_id="req_1", reason=reason)  # type: ignore[arg-type]
    zh_msg = templates.cancelled_to_volunteer("zh-CN", "林小明", facts)
    assert zh in zh_msg.body and zh_msg.subject.startswith("【筑梦】") and "req_1" in zh_msg.body
    en_msg = templates.cancelled_to_volunteer("en", "Lin", facts)
    assert en in en_msg.body and en_msg.subject.startswith("Zhumeng:")


def test_no_show_message_says_so_in_both_subjects() -> None:
    facts = templates.CancelledFacts(request_id="req_1", reason="no_show")
    assert "未到场" in templates.cancelled_to_volunteer("zh-CN", "林", facts).subject
    en = templates.cancelled_to_volunteer("en", "Lin", facts)
    assert "not having come" in en.subject and "released" not in en.body
    cancelled = templates.CancelledFacts(request_id="req_1", reason="request_cancelled")
    assert "released" in templates.cancelled_to_volunteer("en", "Lin", cancelled).body


def test_a_volunteers_own_withdrawal_has_no_message() -> None:
    facts = templates.CancelledFacts(request_id="req_1", reason="withdrawn")
    with pytest.raises(ValueError, match="withdrawn"):
        templates.cancelled_to_volunteer("en", "Lin", facts)


@pytest.mark.parametrize(
    ("reason", "zh", "en"),
    [
        ("window_passed", "服务时间已过", "the time you asked for has passed"),
        ("escalation_exhausted", "已多次扩大范围", "we widened the search"),
        ("no_candidates", "附近暂时没有符合条件的志愿者", "there is no suitable volunteer nearby"),
    ],
)
def test_unfulfilled_to_requester_gives_the_reason(reason: str, zh: str, en: str) -> None:
    facts = templates.UnfulfilledFacts(
        request_id="req_1",
        reason=reason,  # type: ignore[arg-type]
        filled_slots=0,
        slots=1,
    )
    zh_msg = templates.unfulfilled_to_requester("zh-CN", "王秀英", facts)
    assert f"原因：{zh}" in zh_msg.body and "协调员会尽快与您联系" in zh_msg.body
    assert "未能按时" in zh_msg.subject and "只安排到" not in zh_msg.body
    en_msg = templates.unfulfilled_to_requester("en", "Alice", facts)
    assert f"Reason: {en}" in en_msg.body and "A coordinator will contact you" in en_msg.body
    assert "in time" in en_msg.subject


def test_unfulfilled_partly_says_who_still_comes() -> None:
    facts = templates.UnfulfilledFacts("req_1", "window_passed", filled_slots=1, slots=3)
    assert (
        "需要3位志愿者，目前只安排到1位"
        in templates.unfulfilled_to_requester("zh-CN", "王", facts).body
    )
    assert (
        "asked for 3 volunteers and 1 could be arranged"
        in templates.unfulfilled_to_requester("en", "A", facts).body
    )


# ---- every message x locale fits ONE SMS segment, also with worst-case inputs ---------------

LONG_ZH = "乡村老年人听力筛查、助听器适配与后续上门随访综合服务（含交通接送及家属陪同）"
LONG_EN = (
    "Hearing screening, hearing-aid fitting and follow-up home visits for elderly villagers"
    " (with transport)"
)
LONG_NAME = "Maximiliano-Alexander"
LATE = datetime(2025, 12, 31, 14, 30, tzinfo=UTC)  # 22:30 in Dehua, the window ends next year


def _service(locale: Locale, worst: bool) -> str:
    if not worst:
        return "义剪" if locale == "zh-CN" else "Free haircut"
    return LONG_ZH if locale == "zh-CN" else LONG_EN


def all_messages(locale: Locale, worst: bool) -> dict[str, Rendered]:
    """Every template the service renders, by name, for one locale."""
    service = _service(locale, worst)
    name = LONG_NAME if worst else "小林"
    start, end = (LATE, LATE + timedelta(hours=20)) if worst else (START, END)
    assigned = replace(
        FACTS,
        service=service,
        volunteer_name=name,
        requester_first_name=name,
        window_start=start,
        window_end=end,
        slot=20 if worst else 1,
        slots=20 if worst else 1,
    )
    partial = 19 if worst else 0
    reminder = templates.ReminderFacts("req_1", service, start, end, name, name)
    escalated = templates.EscalatedFacts("req_1", "county_centre", 99 if worst else 2, 20)
    out: dict[str, Rendered] = {
        "posted": templates.posted_to_requester(
            locale, "王秀英", templates.PostedFacts("req_1", service, start, end, 20)
        ),
        "assigned_requester": templates.assigned_to_requester(locale, "王", assigned, CODE),
        "assigned_requester_no_code": templates.assigned_to_requester(locale, "王", assigned),
        "unmatched": templates.unmatched_to_requester(
            locale, "王", templates.UnmatchedFacts("req_1", service)
        ),
        "checked_in": templates.checked_in_to_requester(
            locale, "王", replace(ARRIVED, volunteer_first_name=name, checked_in_at=start)
        ),
        "checked_in_anonymous": templates.checked_in_to_requester(
            locale, "王", replace(ARRIVED, volunteer_first_name=None)
        ),
        "request_completed": templates.request_completed_to_requester(
            locale, "王", templates.RequestCompletedFacts("req_1", 123.75 if worst else 2)
        ),
        "assignment_completed": templates.assignment_completed_to_volunteer(
            locale, "林", templates.AssignmentCompletedFacts("req_1", service, 23.75)
        ),
        "reviewed_approved": templates.reviewed_to_requester(
            locale, "王", templates.ReviewedFacts("req_1", "approved", "好" * 500)
        ),
        "reviewed_rejected": templates.reviewed_to_requester(
            locale, "王", templates.ReviewedFacts("req_1", "rejected")
        ),
        "still_looking": templates.still_looking_to_requester(locale, "王", escalated),
        "still_looking_wider": templates.still_looking_to_requester(
            locale, "王", replace(escalated, level="wider_radius")
        ),
        "reminder_requester": templates.reminder_to_requester(locale, "王", reminder),
        "reminder_volunteer": templates.reminder_to_volunteer(locale, "林", reminder),
        "offer": templates.offer_to_volunteer(
            locale,
            "林",
            templates.OfferFacts("req_1", service, start, end, end, 1234.56 if worst else 3),
        ),
        "offer_expired": templates.offer_expired_to_volunteer(
            locale, "林", templates.OfferExpiredFacts("req_1")
        ),
        "claim": templates.claim_invitation_to_volunteer(
            locale, "林", templates.ClaimFacts("req_1", service, start, end, 20 if worst else 1)
        ),
        "review_required": templates.review_required_to_coordinator(
            locale, "周", templates.ReviewFacts("req_1", service, "pl_longxun", start)
        ),
        "escalated_township": templates.escalated_to_coordinator(
            locale, "周", replace(escalated, level="township_liaison")
        ),
        "escalated_county": templates.escalated_to_coordinator(locale, "周", escalated),
        "unfulfilled": templates.unfulfilled_to_requester(
            locale,
            "王",
            templates.UnfulfilledFacts("req_1", "escalation_exhausted", partial, 20),
        ),
    }
    for mode in ("direct", "open_claim", "team"):
        out[f"assigned_volunteer_{mode}"] = templates.assigned_to_volunteer(
            locale, "林", replace(assigned, mode=mode)
        )
    for reason in sorted(templates.VOLUNTEER_CANCEL_REASONS):
        out[f"cancelled_{reason}"] = templates.cancelled_to_volunteer(
            locale,
            "林",
            templates.CancelledFacts("req_1", reason),  # type: ignore[arg-type]
        )
    return out


@pytest.mark.parametrize("worst", [False, True], ids=["typical", "worst-case"])
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_every_message_has_an_sms_text_within_one_segment(locale: Locale, worst: bool) -> None:
    for name, rendered in all_messages(locale, worst).items():
        assert rendered.short, name
        units = sms_text.segment_units(locale, rendered.short)
        assert units <= sms_text.segment_limit(locale), (name, units, rendered.short)
        if locale == "zh-CN":
            assert units == len(sms_text.ZH_SIGNATURE + rendered.short), name
            assert not rendered.short.startswith(sms_text.ZH_SIGNATURE), name
        else:
            assert rendered.short.startswith("Zhumeng"), name
        assert "req_1" not in rendered.short  # ids are for the app and the email
        assert "{" not in rendered.short and "None" not in rendered.short, name


def test_the_limits_are_the_providers() -> None:
    assert sms_text.ZH_SIGNATURE == "【筑梦志愿】"
    assert (sms_text.ZH_SEGMENT, sms_text.EN_SEGMENT) == (70, 160)
    assert sms_text.fits("zh-CN", "字" * 64) and not sms_text.fits("zh-CN", "字" * 65)
    assert sms_text.fits("en", "a" * 160) and not sms_text.fits("en", "a" * 161)
    assert sms_text.gsm7_units("€[") == 4 and not sms_text.fits("en", "a" * 79 + "€" * 41)
    assert sms_text.gsm7_units("小林") is None and not sms_text.fits("en", "Hi 小林")
    assert sms_text.segment_units("zh-CN", "𠀀") == 8  # outside the BMP: two units


def test_a_long_service_name_is_cut_gracefully_and_the_code_never() -> None:
    facts = replace(FACTS, service=LONG_ZH, volunteer_name=LONG_NAME)
    short = templates.assigned_to_requester("zh-CN", "王", facts, CODE).short
    assert short is not None and CODE in short and "…" in short
    assert short.startswith("您的“乡村老年人") and "”已由志愿者" in short
    en = templates.assigned_to_requester("en", "A", replace(facts, service=LONG_EN), CODE).short
    assert en is not None and CODE in en and "..." in en and "Hearing screening" in en


def test_english_sms_stays_gsm7_with_chinese_names() -> None:
    # a Chinese first name would turn the SMS into UCS-2 (70 per segment): a generic word instead
    short = templates.assigned_to_requester("en", "A", replace(FACTS, service="Haircut")).short
    assert short is not None and sms_text.gsm7_units(short) is not None
    assert short.startswith("Zhumeng: a volunteer will help with your Haircut request")
    assert sms_text.gsm7("O’Neil – Lee", "x") == "O'Neil - Lee"
    assert sms_text.gsm7("小林", "your volunteer") == "your volunteer"


def test_a_too_long_fixed_text_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        sms_text.compose("zh-CN", "字" * 70)


@pytest.mark.parametrize("worst", [False, True], ids=["typical", "worst-case"])
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_no_contact_details_and_the_code_only_to_the_requester(locale: Locale, worst: bool) -> None:
    for name, rendered in all_messages(locale, worst).items():
        text = rendered.subject + rendered.body + (rendered.short or "")
        for pii in ("13812345678", "@example.org", "王秀英"):
            if name == "posted" and pii == "王秀英":
                continue  # the requester's own name, in their own message
            assert pii not in text, (name, pii)
        if name != "assigned_requester":
            assert CODE not in text, name


def test_the_volunteer_hears_a_won_claim_as_such() -> None:
    won = replace(FACTS, mode="open_claim")
    assert "抢单成功" in templates.assigned_to_volunteer("zh-CN", "林", won).subject
    en = templates.assigned_to_volunteer("en", "Lin", won)
    assert en.subject == "Zhumeng: you got it, 义剪" and "You got it!" in en.body
    team = templates.assigned_to_volunteer("en", "Lin", replace(FACTS, mode="team"))
    assert "Your team took this task for you." in team.body
    direct = templates.assigned_to_volunteer("en", "Lin", FACTS)
    assert "got it" not in direct.body and direct.subject.startswith("Zhumeng: new task")


def test_an_offer_is_urgent_only_when_told_so_and_names_its_deadline() -> None:
    facts = templates.OfferFacts("req_1", "义剪", START, END, START - timedelta(hours=1), 3.0)
    zh = templates.offer_to_volunteer("zh-CN", "林", facts)
    assert not zh.urgent and "6月3日（周二）08:00前" in zh.body and "3公里" in (zh.short or "")
    assert templates.offer_to_volunteer("en", "Lin", replace(facts, urgent=True)).urgent


def test_review_and_escalation_texts() -> None:
    rejected = templates.ReviewedFacts("req_1", "rejected", "不在服务范围")
    zh = templates.reviewed_to_requester("zh-CN", "王秀英", rejected)
    assert "未通过审核" in zh.subject and "协调员留言：不在服务范围" in zh.body
    assert "不在服务范围" not in (zh.short or "")
    esc = templates.EscalatedFacts("req_1", "township_liaison", 2, 1)
    assert "乡镇联络员" in templates.escalated_to_coordinator("zh-CN", "周", esc).subject
    assert "asked a coordinator" in templates.still_looking_to_requester("en", "A", esc).body

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from zhumeng_notify.domain import templates
from zhumeng_notify.domain.model import (
    EMAIL_CHANNEL,
    LOG_CHANNEL,
    Recipient,
    delivery_id,
    mask_address,
    message_id,
)
from zhumeng_notify.domain.recipients import choose_channel, first_name

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


def test_channel_choice() -> None:
    with_mail = Recipient("u1", "requester", "A", email="a@example.org")
    phone_only = Recipient("u2", "requester", "B", phone="13800138000")
    assert choose_channel(with_mail, email_enabled=True) == EMAIL_CHANNEL
    assert choose_channel(with_mail, email_enabled=False) == LOG_CHANNEL
    assert choose_channel(phone_only, email_enabled=True) == LOG_CHANNEL


def test_ids_and_masks() -> None:
    did = delivery_id("e1", "u1", "email")
    assert did == "e1|u1|email"
    assert message_id(did) == message_id("e1|u1|email") != message_id("e2|u1|email")
    assert message_id(did).startswith("<") and message_id(did).endswith("@notify.zhumeng>")
    assert mask_address("alice@example.org") == "a***@example.org"
    assert mask_address("13800138000") == "138****8000"
    assert "a@example.org" not in repr(Recipient("u", "requester", "A", email="a@example.org"))

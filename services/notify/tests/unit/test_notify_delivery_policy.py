"""Pure delivery policy: quiet hours, backoff, channel choice, opt-out words; and the settings
that configure them."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from pydantic import ValidationError

from zhumeng_notify.domain.backoff import RetryPolicy
from zhumeng_notify.domain.model import Recipient
from zhumeng_notify.domain.preferences import (
    DEFAULTS,
    Preferences,
    apply,
    choose_channel,
    is_opt_out,
    normalise_phone,
    phone_hash,
)
from zhumeng_notify.domain.quiet_hours import SHANGHAI, QuietHours, send_at
from zhumeng_notify.settings import NotifySettings

pytestmark = pytest.mark.unit

QUIET = QuietHours()


def shanghai(hour: int, minute: int = 0, day: int = 3) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("at", "quiet"),
    [
        (shanghai(21, 59), False),
        (shanghai(22, 0), True),
        (shanghai(23, 30), True),
        (shanghai(0, 0), True),
        (shanghai(6, 59), True),
        (shanghai(7, 0), False),
        (shanghai(12, 0), False),
    ],
)
def test_quiet_hours_wrap_past_midnight(at: datetime, quiet: bool) -> None:
    assert QUIET.contains(at) is quiet
    assert QUIET.contains(at.astimezone(UTC)) is quiet  # whatever zone the moment is in


def test_a_message_at_night_is_held_until_seven() -> None:
    night = shanghai(23, 10)
    assert send_at(night, QUIET, urgent=False, person_wants_quiet=True) == shanghai(7, day=4)
    assert send_at(shanghai(3, 0), QUIET, False, True) == shanghai(7)
    # urgent, a person who wants no quiet hours, or quiet hours off: now
    assert send_at(night, QUIET, urgent=True, person_wants_quiet=True) == night
    assert send_at(night, QUIET, urgent=False, person_wants_quiet=False) == night
    assert send_at(night, None, urgent=False, person_wants_quiet=True) == night
    assert send_at(shanghai(9), QUIET, False, True) == shanghai(9)


def test_quiet_hours_parse() -> None:
    assert QuietHours.parse("22:00-07:00") == QUIET
    assert QuietHours.parse("13:00 - 14:30") == QuietHours(time(13), time(14, 30))
    assert QuietHours.parse("off") is None and QuietHours.parse("") is None
    for bad in ("22-7", "22:00", "07:00-07:00"):
        with pytest.raises(ValueError):
            QuietHours.parse(bad)
    daytime = QuietHours(time(13), time(14))
    assert daytime.contains(shanghai(13, 30)) and not daytime.contains(shanghai(14))
    assert daytime.ends_after(shanghai(13, 30)) == shanghai(14)


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(max_attempts=5, base_s=2, cap_s=10, jitter=0.5)
    assert [policy.delay_s(n, lambda: 0.0) for n in range(1, 6)] == [2, 4, 8, 10, 10]
    assert [policy.delay_s(n, lambda: 1.0) for n in range(1, 4)] == [1, 2, 4]
    assert not policy.exhausted(4) and policy.exhausted(5)
    assert not policy.exhausted(5, last_attempt=8) and policy.exhausted(8, last_attempt=8)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_s=10, cap_s=5)


PERSON = Recipient("res_1", "requester", "王秀英", email="x@example.org", phone="13812345678")
ALL = ("sms", "email", "wechat", "inapp", "log")


def test_channel_choice_follows_preferences_then_falls_back() -> None:
    assert choose_channel(PERSON, DEFAULTS, ALL) == "sms"  # no WeChat bound
    bound = apply(PERSON, Preferences(wechat_openid="oAbc123_xyz"))
    assert choose_channel(bound, DEFAULTS, ALL) == "wechat"
    email_first = Preferences(channels=["email", "sms"])
    assert choose_channel(PERSON, email_first, ALL) == "email"
    assert choose_channel(PERSON, email_first, ("sms", "log")) == "sms"  # email not configured
    no_sms = Preferences(opted_out=["sms"])
    assert choose_channel(PERSON, no_sms, ("sms", "email", "log")) == "email"
    assert choose_channel(PERSON, DEFAULTS, ("sms", "email", "log"), sms_blocked=True) == "email"
    nothing = Recipient("res_2", "requester", "A")
    assert choose_channel(nothing, Preferences(channels=["sms", "email"]), ALL) == "log"


def test_preferences_validate_and_shape_the_recipient() -> None:
    with pytest.raises(ValidationError):
        Preferences.model_validate({"channels": ["fax"]})
    with pytest.raises(ValidationError):
        Preferences(channels=["sms", "sms"])
    with pytest.raises(ValidationError):
        Preferences(channels=[])
    english = apply(PERSON, Preferences(locale="en"))
    assert english.locale == "en" and english.phone == PERSON.phone
    assert apply(PERSON, None) is PERSON
    assert Preferences().opt_out("sms").opt_out("sms").opted_out == ["sms"]


@pytest.mark.parametrize("text", ["TD", "td", " Td ", "STOP", "stop!", "退订", "退订。", "T D"])
def test_opt_out_words(text: str) -> None:
    assert is_opt_out(text)


@pytest.mark.parametrize("text", ["", "谢谢", "TDD", "stop by at 5", "好的"])
def test_other_replies_are_not_opt_outs(text: str) -> None:
    assert not is_opt_out(text)


def test_phones_compare_in_one_form_and_hash_with_a_key() -> None:
    assert normalise_phone("+86 138-1234-5678") == "13812345678"
    assert normalise_phone("008613812345678") == normalise_phone("13812345678")
    assert phone_hash("+8613812345678", "k") == phone_hash("13812345678", "k")
    assert phone_hash("13812345678", "k") != phone_hash("13812345678", "other")
    assert "13812345678" not in phone_hash("13812345678", "k")


def test_settings_validate_the_delivery_block() -> None:
    assert NotifySettings(environment="development").notify_quiet_hours == "22:00-07:00"
    assert NotifySettings(environment="test").notify_quiet_hours == "off"
    with pytest.raises(ValidationError):
        NotifySettings(notify_quiet_hours="late")
    with pytest.raises(ValidationError):
        NotifySettings(notify_retry_base_s=10, notify_retry_cap_s=5)
    with pytest.raises(ValidationError, match="tests only"):
        NotifySettings(
            environment="production",
            jwt_secret="x" * 40,
            notify_clock_offset_file="/tmp/offset",
        )


def test_retry_delay_is_a_timedelta_friendly_float() -> None:
    delay = RetryPolicy().delay_s(3)
    assert isinstance(delay, float) and timedelta(seconds=delay) <= timedelta(seconds=8)


def test_a_completion_is_fenced_unless_its_lease_clearly_holds() -> None:
    from zhumeng_contracts.events import NotificationDelivered
    from zhumeng_notify.adapters.mongo import MongoDeliveryRepository
    from zhumeng_notify.app.ports import Completion

    now = datetime(2026, 6, 1, tzinfo=UTC)
    event = NotificationDelivered(
        delivery_id="d",
        cause_event_id="e",
        cause_event_type="t",
        recipient_id="res_1",
        recipient_role="requester",
        channel="log",
        status="sent",
        delivered_at=now,
    )
    fenced = {"_id": "d", "status": "pending", "attempts": 2}
    for lease_until in (None, now + timedelta(seconds=4), now - timedelta(seconds=1)):
        done = Completion("d", 2, "sent", now, event, lease_until=lease_until)
        assert MongoDeliveryRepository._held(done) == fenced
    safe = Completion("d", 2, "sent", now, event, lease_until=now + timedelta(seconds=30))
    assert MongoDeliveryRepository._held(safe) == {"_id": "d"}

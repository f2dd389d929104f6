"""Pure parts of the provider channels: error-code mapping, template tables, value limits, the
provider settings' start-up checks and which channels they build."""

from __future__ import annotations

import json
from typing import Any

import pytest

from zhumeng_notify.adapters.channels import (
    TemplateTable,
    alibaba_sms,
    build_channels,
    tencent_sms,
    wechat,
)
from zhumeng_notify.adapters.channels.base import ChannelSettingsError
from zhumeng_notify.adapters.channels.inapp import InAppHub
from zhumeng_notify.app.ports import SendRejected
from zhumeng_notify.domain.model import Cause, Message, Recipient, Rendered
from zhumeng_notify.settings import NotifySettings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("code", "permanent"),
    [
        ("isv.MOBILE_NUMBER_ILLEGAL", True),
        ("isv.BLACK_KEY_CONTROL_LIMIT", True),
        ("isv.SMS_TEMPLATE_ILLEGAL", True),
        ("isv.AMOUNT_NOT_ENOUGH", True),
        ("SignatureDoesNotMatch", True),
        ("InvalidAccessKeyId.NotFound", True),
        ("isv.BUSINESS_LIMIT_CONTROL", False),
        ("isp.SYSTEM_ERROR", False),
        ("Throttling.User", False),
        ("InvalidTimeStamp.Expired", False),
        ("SignatureNonceUsed", False),
        ("SomethingNew", False),
    ],
)
def test_alibaba_codes(code: str, permanent: bool) -> None:
    assert alibaba_sms.is_permanent(code) is permanent


@pytest.mark.parametrize(
    ("code", "permanent"),
    [
        ("InvalidParameterValue.IncorrectPhoneNumber", True),
        ("FailedOperation.PhoneNumberInBlacklist", True),
        ("FailedOperation.TemplateIncorrectOrUnapproved", True),
        ("LimitExceeded.PhoneNumberDailyLimit", True),
        ("AuthFailure.SignatureFailure", True),
        ("AuthFailure.SecretIdNotFound", True),
        ("AuthFailure.SignatureExpire", False),
        ("LimitExceeded.PhoneNumberThirtySecondLimit", False),
        ("InternalError.Timeout", False),
        ("RequestLimitExceeded", False),
        ("SomethingNew", False),
    ],
)
def test_tencent_codes(code: str, permanent: bool) -> None:
    assert tencent_sms.is_permanent(code) is permanent


def test_tencent_numbers_are_e164() -> None:
    assert tencent_sms.e164("138 1234-5678") == "+8613812345678"
    assert tencent_sms.e164("+85291234567") == "+85291234567"


def test_wechat_values_fit_their_key_types() -> None:
    assert wechat.fit("thing1", "一" * 25) == "一" * 19 + "…"
    assert wechat.fit("character_string2", "x" * 40) == "x" * 32
    assert wechat.fit("thing1", "短") == "短"
    assert wechat.fit("custom", "y" * 99) == "y" * 99


def msg(event_type: str = "zhumeng.checked.in.v1", locale: Any = "en") -> Message:
    return Message(
        delivery_id="e|r|sms",
        channel="sms",
        recipient=Recipient("r", "volunteer", "Lin Xiaoming", locale),
        address="13812345678",
        rendered=Rendered("Subject line", "body", short="short text"),
        cause=Cause("e", event_type, "req_9"),
        locale=locale,
    )


TABLE = {
    "zhumeng.checked.in.v1/volunteer": {"zh-CN": {"id": "T_ROLE", "params": {"a": "name"}}},
    "zhumeng.checked.in.v1": {"en": {"id": "T_EVENT", "params": {"r": "request_id"}}},
    "*": {"zh-CN": {"id": "T_ANY", "params": {"t": "text", "s": "subject"}}},
}


def test_templates_by_kind_then_event_then_fallback() -> None:
    table = TemplateTable.parse(TABLE)
    # the role-specific entry has no English template: falls back to its zh-CN one
    role = table.for_message(msg(locale="en"))
    assert role.id == "T_ROLE" and role.values(msg()) == [("a", "Lin")]
    other = table.for_message(msg("zhumeng.request.completed.v1"))
    assert other.id == "T_ANY"
    assert other.values(msg()) == [("t", "short text"), ("s", "Subject line")]


def test_template_kind_without_a_match_is_rejected() -> None:
    table = TemplateTable.parse({"zhumeng.x.v1": {"zh-CN": {"id": "T"}}})
    with pytest.raises(SendRejected, match="no provider template"):
        table.for_message(msg())


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"*": {}}, "expected"),
        ({"*": {"zh-CN": {"params": {}}}}, "non-empty 'id'"),
        ({"*": {"zh-CN": {"id": "T", "params": {"x": "phone"}}}}, "unknown fields"),
    ],
)
def test_bad_template_tables_are_refused(raw: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        TemplateTable.parse(raw)


SECRET = "very-secret-value-1234"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's ZHUMENG_* shell settings must not leak into these tests."""
    import os

    for key in [k for k in os.environ if k.startswith("ZHUMENG_")]:
        monkeypatch.delenv(key)


def env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key, value in values.items():
        monkeypatch.setenv(f"ZHUMENG_{key.upper()}", value)


def test_an_enabled_provider_without_keys_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    env(monkeypatch, sms_provider="tencent", tencent_sms_secret_key=SECRET)
    with pytest.raises(ChannelSettingsError, match="ZHUMENG_TENCENT_SMS_SECRET_ID") as err:
        NotifySettings()
    assert SECRET not in str(err.value)


def test_templates_are_required_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    env(
        monkeypatch,
        wechat_enabled="true",
        wechat_app_id="wx1",
        wechat_app_secret=SECRET,
    )
    with pytest.raises(ChannelSettingsError, match="ZHUMENG_WECHAT_TEMPLATES"):
        NotifySettings()
    monkeypatch.setenv("ZHUMENG_WECHAT_TEMPLATES", json.dumps({"*": {"zh-CN": {"id": ""}}}))
    with pytest.raises(ChannelSettingsError, match="non-empty 'id'"):
        NotifySettings()


def test_production_needs_https_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    env(
        monkeypatch,
        environment="production",
        jwt_secret="x" * 40,
        sms_provider="alibaba",
        alibaba_sms_access_key_id="LTAI1",
        alibaba_sms_access_key_secret=SECRET,
        alibaba_sms_sign_name="筑梦",
        alibaba_sms_endpoint="http://127.0.0.1:9",
        sms_templates=json.dumps(TABLE),
    )
    with pytest.raises(ChannelSettingsError, match="https"):
        NotifySettings()


def test_channels_follow_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sorted(build_channels(NotifySettings())) == ["log"]
    assert sorted(build_channels(NotifySettings(), InAppHub())) == ["inapp", "log"]
    env(
        monkeypatch,
        sms_provider="alibaba",
        alibaba_sms_access_key_id="LTAI1",
        alibaba_sms_access_key_secret=SECRET,
        alibaba_sms_sign_name="筑梦",
        sms_templates=json.dumps(TABLE),
        smtp_host="127.0.0.1",
        inapp_enabled="false",
    )
    channels = build_channels(NotifySettings(), InAppHub())
    assert sorted(channels) == ["email", "log", "sms"]
    assert isinstance(channels["sms"], alibaba_sms.AlibabaSmsChannel)

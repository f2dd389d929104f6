"""Each provider channel against its local provider server over TCP: the server recomputes the
signature as the provider documents it, so an accepted message proves the signing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from zhumeng_devstack.fake_providers import (
    ALIBABA_KEY_ID,
    ALIBABA_SECRET,
    ALIBABA_SIGN_NAME,
    TENCENT_APP_ID,
    TENCENT_SECRET_ID,
    TENCENT_SECRET_KEY,
    TENCENT_SIGN_NAME,
    WECHAT_APP_ID,
    WECHAT_SECRET,
    FakeAlibabaSms,
    FakeTencentSms,
    FakeWeChat,
)
from zhumeng_devstack.infra import free_port
from zhumeng_devstack.provider_fixtures import (
    SMS_TEMPLATES,
    WECHAT_TEMPLATES,
    notify_env,
    provider_fixture,
)
from zhumeng_notify.adapters.channels import (
    AlibabaSmsChannel,
    TemplateTable,
    TencentSmsChannel,
    WeChatSubscribeChannel,
    build_channels,
    close_channels,
)
from zhumeng_notify.app.ports import SendRejected, SendUnavailable
from zhumeng_notify.domain.model import Cause, Message, Recipient, Rendered
from zhumeng_notify.settings import NotifySettings

pytestmark = pytest.mark.integration

alibaba = provider_fixture(FakeAlibabaSms)
tencent = provider_fixture(FakeTencentSms)
wechat = provider_fixture(FakeWeChat)

PHONE = "13812345678"
OPENID = "oZhumeng_test_openid_0001"


def message(
    address: str | None = PHONE,
    channel: str = "sms",
    subject: str = "【筑梦】您的“义剪”请求已有志愿者接单",
) -> Message:
    recipient = Recipient(
        "res_1", "requester", "王秀英", "zh-CN", phone=PHONE, wechat_openid=OPENID
    )
    return Message(
        delivery_id=f"evt_1|res_1|{channel}",
        channel=channel,
        recipient=recipient,
        address=address,
        rendered=Rendered(subject, "正文", short="志愿者小林明早9点到，签到码 123456"),
        cause=Cause("evt_1", "zhumeng.volunteer.assigned.v1", "req_1"),
        locale="zh-CN",
    )


def late(minutes: int) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) - timedelta(minutes=minutes)


@pytest.fixture
async def closing() -> AsyncIterator[list[Any]]:
    """Channels a test opens, closed after it."""
    opened: list[Any] = []
    yield opened
    for channel in opened:
        await channel.aclose()


# ---- Alibaba Cloud SMS --------------------------------------------------------------------------


def ali(
    fake: FakeAlibabaSms, closing: list[Any], secret: str = ALIBABA_SECRET, **kw: Any
) -> AlibabaSmsChannel:
    channel = AlibabaSmsChannel(
        ALIBABA_KEY_ID,
        secret,
        ALIBABA_SIGN_NAME,
        TemplateTable.parse(SMS_TEMPLATES),
        endpoint=fake.url,
        **kw,
    )
    closing.append(channel)
    return channel


async def test_alibaba_accepts_a_signed_send_sms(
    alibaba: FakeAlibabaSms, closing: list[Any]
) -> None:
    receipt = await ali(alibaba, closing).send(message())
    got = alibaba.received()[-1]
    assert receipt.channel == "sms" and receipt.reference == got.reference
    assert got.to == PHONE and got.sign_name == ALIBABA_SIGN_NAME
    assert got.template == "SMS_900001"
    assert got.params == {"name": "秀英", "text": "志愿者小林明早9点到，签到码 123456"}
    assert got.extra["OutId"] == "evt_1|res_1|sms"


async def test_alibaba_refuses_a_wrong_secret(alibaba: FakeAlibabaSms, closing: list[Any]) -> None:
    before = len(alibaba.received())
    with pytest.raises(SendRejected, match="SignatureDoesNotMatch") as err:
        await ali(alibaba, closing, secret="not-the-secret").send(message())
    assert PHONE not in str(err.value)
    assert len(alibaba.received()) == before


async def test_alibaba_stale_timestamp_is_retried(
    alibaba: FakeAlibabaSms, closing: list[Any]
) -> None:
    with pytest.raises(SendUnavailable, match=r"InvalidTimeStamp\.Expired"):
        await ali(alibaba, closing, clock=late(20)).send(message())


async def test_alibaba_5xx_is_unavailable_then_sends(
    alibaba: FakeAlibabaSms, closing: list[Any]
) -> None:
    channel = ali(alibaba, closing)
    alibaba.fail_next(1, status=503)
    with pytest.raises(SendUnavailable, match="HTTP 503"):
        await channel.send(message())
    receipt = await channel.send(message())
    assert receipt.reference == alibaba.received()[-1].reference


async def test_alibaba_illegal_number_is_rejected(
    alibaba: FakeAlibabaSms, closing: list[Any]
) -> None:
    with pytest.raises(SendRejected, match=r"isv\.MOBILE_NUMBER_ILLEGAL"):
        await ali(alibaba, closing).send(message(address="12345"))


async def test_unreachable_provider_is_unavailable(closing: list[Any]) -> None:
    channel = AlibabaSmsChannel(
        ALIBABA_KEY_ID,
        ALIBABA_SECRET,
        ALIBABA_SIGN_NAME,
        TemplateTable.parse(SMS_TEMPLATES),
        endpoint=f"http://127.0.0.1:{free_port()}",
    )
    closing.append(channel)
    with pytest.raises(SendUnavailable, match="unreachable"):
        await channel.send(message())


# ---- Tencent Cloud SMS ----------------------------------------------------------------------


def tc(
    fake: FakeTencentSms, closing: list[Any], secret: str = TENCENT_SECRET_KEY, **kw: Any
) -> TencentSmsChannel:
    channel = TencentSmsChannel(
        TENCENT_SECRET_ID,
        secret,
        TENCENT_APP_ID,
        TENCENT_SIGN_NAME,
        TemplateTable.parse(SMS_TEMPLATES),
        endpoint=fake.url,
        **kw,
    )
    closing.append(channel)
    return channel


async def test_tencent_accepts_a_signed_send_sms(
    tencent: FakeTencentSms, closing: list[Any]
) -> None:
    receipt = await tc(tencent, closing).send(message())
    got = tencent.received()[-1]
    assert receipt.reference == got.reference and got.reference.startswith("2028:")
    assert got.to == "+86" + PHONE and got.template == "SMS_900001"
    assert got.params == ["秀英", "志愿者小林明早9点到，签到码 123456"]  # in the table's order
    assert got.extra["SessionContext"] == "evt_1|res_1|sms"


async def test_tencent_refuses_a_wrong_secret(tencent: FakeTencentSms, closing: list[Any]) -> None:
    with pytest.raises(SendRejected, match=r"AuthFailure\.SignatureFailure"):
        await tc(tencent, closing, secret="not-the-key").send(message())
    assert tencent.refused[-1] == "AuthFailure.SignatureFailure"


async def test_tencent_stale_timestamp_is_retried(
    tencent: FakeTencentSms, closing: list[Any]
) -> None:
    with pytest.raises(SendUnavailable, match=r"AuthFailure\.SignatureExpire"):
        await tc(tencent, closing, clock=late(6)).send(message())


async def test_tencent_5xx_is_unavailable(tencent: FakeTencentSms, closing: list[Any]) -> None:
    tencent.fail_next(2, status=502)
    channel = tc(tencent, closing)
    for _ in range(2):
        with pytest.raises(SendUnavailable, match="HTTP 502"):
            await channel.send(message())
    await channel.send(message())


async def test_tencent_bad_number_is_rejected(tencent: FakeTencentSms, closing: list[Any]) -> None:
    with pytest.raises(SendRejected, match="IncorrectPhoneNumber"):
        await tc(tencent, closing).send(message(address="555"))


# ---- WeChat subscription messages -----------------------------------------------------------


def wx(fake: FakeWeChat, closing: list[Any], secret: str = WECHAT_SECRET) -> WeChatSubscribeChannel:
    channel = WeChatSubscribeChannel(
        WECHAT_APP_ID,
        secret,
        TemplateTable.parse(WECHAT_TEMPLATES),
        api_base=fake.url,
        page="pages/request/detail?id={request_id}",
    )
    closing.append(channel)
    return channel


async def test_wechat_sends_with_one_cached_token(wechat: FakeWeChat, closing: list[Any]) -> None:
    channel = wx(wechat, closing)
    issued = wechat.tokens_issued
    first = await channel.send(message(OPENID, "wechat"))
    await channel.send(message(OPENID, "wechat"))
    assert wechat.tokens_issued == issued + 1
    got = wechat.received()[-2]
    assert first.reference == got.reference and got.to == OPENID
    assert got.template == "tpl-zhumeng-status"
    assert got.extra["page"] == "pages/request/detail?id=req_1"
    assert got.params["character_string2"] == "req_1" and got.params["name3"] == "秀英"
    assert len(got.params["thing1"]) <= 20  # the subject, cut to the key type's limit


async def test_concurrent_wechat_sends_share_one_token_fetch(
    wechat: FakeWeChat, closing: list[Any]
) -> None:
    channel = wx(wechat, closing)
    issued = wechat.tokens_issued
    await asyncio.gather(*(channel.send(message(OPENID, "wechat")) for _ in range(5)))
    assert wechat.tokens_issued == issued + 1


@pytest.mark.parametrize("invalidate", ["expire_tokens", "revoke_tokens"])
async def test_wechat_refreshes_a_refused_token(
    wechat: FakeWeChat, closing: list[Any], invalidate: str
) -> None:
    channel = wx(wechat, closing)
    await channel.send(message(OPENID, "wechat"))
    issued = wechat.tokens_issued
    getattr(wechat, invalidate)()
    await channel.send(message(OPENID, "wechat"))
    assert wechat.tokens_issued == issued + 1
    assert wechat.refused[-1] in ("42001", "40001")


async def test_wechat_wrong_secret_is_rejected(wechat: FakeWeChat, closing: list[Any]) -> None:
    with pytest.raises(SendRejected, match="40125"):
        await wx(wechat, closing, secret="not-the-secret").send(message(OPENID, "wechat"))


async def test_wechat_user_refusal_is_rejected(wechat: FakeWeChat, closing: list[Any]) -> None:
    wechat.refusing.add("o_refusing")
    with pytest.raises(SendRejected, match="43101"):
        await wx(wechat, closing).send(message("o_refusing", "wechat"))


async def test_wechat_5xx_is_unavailable(wechat: FakeWeChat, closing: list[Any]) -> None:
    channel = wx(wechat, closing)
    await channel.send(message(OPENID, "wechat"))  # token cached
    wechat.fail_next(1, status=500)
    with pytest.raises(SendUnavailable, match="HTTP 500"):
        await channel.send(message(OPENID, "wechat"))


# ---- from settings ------------------------------------------------------------------------


async def test_settings_build_working_channels(
    alibaba: FakeAlibabaSms, wechat: FakeWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in notify_env(alibaba=alibaba, wechat=wechat).items():
        monkeypatch.setenv(key, value)
    channels = build_channels(NotifySettings())
    try:
        assert sorted(channels) == ["log", "sms", "wechat"]
        await channels["sms"].send(message())
        await channels["wechat"].send(message(OPENID, "wechat"))
    finally:
        await close_channels(channels)

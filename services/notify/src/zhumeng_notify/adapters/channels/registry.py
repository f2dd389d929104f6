"""Which channels this process has: the log channel always, the others as settings enable
them (the settings have already checked that an enabled provider has its keys)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from ...app.ports import Channel
from ...settings import NotifySettings
from .alibaba_sms import AlibabaSmsChannel
from .base import utcnow
from .inapp import InAppChannel, InAppHub
from .log import LogChannel
from .smtp import SmtpChannel
from .templates import TemplateTable
from .tencent_sms import TencentSmsChannel
from .wechat import WeChatSubscribeChannel


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value or "")


def _text(value: str | None) -> str:
    return value or ""


def build_channels(
    settings: NotifySettings,
    inapp_hub: InAppHub | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> dict[str, Channel]:
    """Channels by name. In-app needs the hub the stream endpoint reads from; the clock stamps
    the receipts of the log and email channels (tests move it)."""
    s = settings
    channels: dict[str, Channel] = {"log": LogChannel(clock)}
    if s.smtp_host:
        channels["email"] = SmtpChannel(
            s.smtp_host, s.smtp_port, s.smtp_from, s.smtp_timeout_s, clock
        )
    if s.sms_provider == "alibaba":
        channels["sms"] = AlibabaSmsChannel(
            _text(s.alibaba_sms_access_key_id),
            _secret(s.alibaba_sms_access_key_secret),
            _text(s.alibaba_sms_sign_name),
            TemplateTable.parse(s.sms_templates),
            endpoint=s.alibaba_sms_endpoint,
            timeout_s=s.provider_timeout_s,
        )
    elif s.sms_provider == "tencent":
        channels["sms"] = TencentSmsChannel(
            _text(s.tencent_sms_secret_id),
            _secret(s.tencent_sms_secret_key),
            _text(s.tencent_sms_sdk_app_id),
            _text(s.tencent_sms_sign_name),
            TemplateTable.parse(s.sms_templates),
            region=s.tencent_sms_region,
            endpoint=s.tencent_sms_endpoint,
            timeout_s=s.provider_timeout_s,
        )
    if s.wechat_enabled:
        channels["wechat"] = WeChatSubscribeChannel(
            _text(s.wechat_app_id),
            _secret(s.wechat_app_secret),
            TemplateTable.parse(s.wechat_templates),
            api_base=s.wechat_api_base,
            page=s.wechat_page,
            miniprogram_state=s.wechat_miniprogram_state,
            timeout_s=s.provider_timeout_s,
        )
    if s.inapp_enabled and inapp_hub is not None:
        channels["inapp"] = InAppChannel(inapp_hub)
    return channels


async def close_channels(channels: Mapping[str, Channel]) -> None:
    """Close the providers' HTTP clients (at shutdown)."""
    for channel in channels.values():
        aclose = getattr(channel, "aclose", None)
        if aclose is not None:
            await aclose()

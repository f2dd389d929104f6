"""A person's notification preferences and the channel they lead to. Pure.

A person is a requester (their requester id) or a volunteer (their volunteer id). Without
stored preferences everyone gets the defaults below.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .model import (
    EMAIL_CHANNEL,
    INAPP_CHANNEL,
    LOG_CHANNEL,
    SMS_CHANNEL,
    WECHAT_CHANNEL,
    Locale,
    Recipient,
)

ChannelName = Literal["sms", "email", "wechat", "inapp", "log"]
# WeChat first when it is bound (free, read at once), then SMS (everyone has a phone), email.
DEFAULT_CHANNELS: tuple[ChannelName, ...] = ("wechat", "sms", "email", "inapp", "log")


class Preferences(BaseModel):
    """What a person chose. Stored per person; the defaults apply to anyone who chose nothing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: list[ChannelName] = Field(
        default_factory=lambda: list(DEFAULT_CHANNELS), min_length=1, max_length=5
    )
    locale: Locale | None = None  # None: the locale of the contact record
    wechat_openid: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{6,64}$")
    quiet_hours: bool = True  # False: also woken at night
    opted_out: list[ChannelName] = Field(default_factory=list, max_length=5)

    @field_validator("channels", "opted_out")
    @classmethod
    def _unique(cls, value: list[ChannelName]) -> list[ChannelName]:
        if len(set(value)) != len(value):
            raise ValueError("a channel may appear only once")
        return value

    def opt_out(self, channel: ChannelName) -> Preferences:
        if channel in self.opted_out:
            return self
        return self.model_copy(update={"opted_out": [*self.opted_out, channel]})


DEFAULTS = Preferences()


def has_address(recipient: Recipient, channel: str) -> bool:
    if channel == EMAIL_CHANNEL:
        return bool(recipient.email)
    if channel == SMS_CHANNEL:
        return bool(recipient.phone)
    if channel == WECHAT_CHANNEL:
        return bool(recipient.wechat_openid)
    return channel in (INAPP_CHANNEL, LOG_CHANNEL)


def choose_channel(
    recipient: Recipient,
    prefs: Preferences,
    enabled: Collection[str],
    sms_blocked: bool = False,
) -> str:
    """The first preferred channel that is configured, not opted out and has an address;
    else the log channel (never nothing: the delivery is recorded and visible in history).

    `sms_blocked`: the phone replied TD/STOP before the person was known by it."""
    for channel in prefs.channels:
        if channel not in enabled or channel in prefs.opted_out:
            continue
        if channel == SMS_CHANNEL and sms_blocked:
            continue
        if has_address(recipient, channel):
            return channel
    return LOG_CHANNEL


def apply(recipient: Recipient, prefs: Preferences | None) -> Recipient:
    """The recipient as their preferences shape them (locale, WeChat binding)."""
    if prefs is None:
        return recipient
    changes: dict[str, object] = {}
    if prefs.locale and prefs.locale != recipient.locale:
        changes["locale"] = prefs.locale
    if prefs.wechat_openid and not recipient.wechat_openid:
        changes["wechat_openid"] = prefs.wechat_openid
    if not changes:
        return recipient
    return replace(recipient, **changes)  # type: ignore[arg-type]


_STOP_WORDS = frozenset({"TD", "STOP", "退订", "UNSUBSCRIBE"})


def is_opt_out(text: str) -> bool:
    """An inbound SMS that asks to stop: TD / STOP / 退订, any case, spaces and punctuation
    ignored ("td", " Stop! ", "退订。")."""
    cleaned = re.sub(r"[\s\W_]+", "", text, flags=re.UNICODE).upper()
    return cleaned in _STOP_WORDS


def normalise_phone(phone: str) -> str:
    """Mainland numbers in one form: digits only, without the +86 / 0086 / 86 prefix."""
    digits = re.sub(r"\D", "", phone)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            return digits[len(prefix) :]
    return digits


def phone_hash(phone: str, pepper: str) -> str:
    """What is kept of a phone that opted out before anyone knew it: a keyed hash."""
    return hashlib.sha256(f"{pepper}:{normalise_phone(phone)}".encode()).hexdigest()

"""Notify's settings (env prefix ZHUMENG_, validated at start-up)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from zhumeng_kit.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ZHUMENG_", extra="ignore", populate_by_name=True)

    http_port: int = Field(default=8004, ge=1, le=65535)
    # A requester's contact travels on another topic and may lag the matching event by a
    # moment, and a crashed sender's lease must run out: 8 attempts, 0.3 s doubling = ~38 s.
    consumer_max_attempts: int = Field(default=8, ge=1, le=20)
    consumer_backoff_ms: int = Field(default=300, ge=1, le=60_000)

    smtp_host: str | None = Field(
        default=None, validation_alias=AliasChoices("ZHUMENG_NOTIFY_SMTP_HOST", "ZHUMENG_SMTP_HOST")
    )
    smtp_port: int = Field(
        default=25,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("ZHUMENG_NOTIFY_SMTP_PORT", "ZHUMENG_SMTP_PORT"),
    )
    smtp_from: str = Field(
        default="noreply@zhumeng.test",
        validation_alias=AliasChoices("ZHUMENG_NOTIFY_SMTP_FROM", "ZHUMENG_SMTP_FROM"),
    )
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=60)
    delivery_lease_s: float = Field(
        default=30.0, gt=0, le=3600, description="a pending delivery older than this is resent"
    )
    max_send_attempts: int = Field(
        default=3, ge=1, le=10, description="channel failures before a delivery is failed"
    )

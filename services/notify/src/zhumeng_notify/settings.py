"""Notify's settings (env prefix ZHUMENG_, validated at start-up)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from zhumeng_kit.settings import ServiceSettings

from .domain.quiet_hours import QuietHours


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

    # ---- channels: SMS, WeChat and in-app providers (adapters/channels, ADR 0011) ----------
    # Template tables are JSON: {kind: {locale: {"id": ..., "params": {param: field}}}}, see
    # adapters/channels/templates.py. No key or secret has a default.
    sms_provider: Literal["alibaba", "tencent"] | None = None
    sms_templates: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    alibaba_sms_access_key_id: str | None = None
    alibaba_sms_access_key_secret: SecretStr | None = None
    alibaba_sms_sign_name: str | None = None
    alibaba_sms_endpoint: str = Field(
        default="https://dysmsapi.aliyuncs.com", pattern=r"^https?://"
    )
    tencent_sms_secret_id: str | None = None
    tencent_sms_secret_key: SecretStr | None = None
    tencent_sms_sdk_app_id: str | None = None
    tencent_sms_sign_name: str | None = None
    tencent_sms_region: str = "ap-guangzhou"
    tencent_sms_endpoint: str = Field(
        default="https://sms.tencentcloudapi.com", pattern=r"^https?://"
    )
    wechat_enabled: bool = False
    wechat_app_id: str | None = None
    wechat_app_secret: SecretStr | None = None
    wechat_templates: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    wechat_api_base: str = Field(default="https://api.weixin.qq.com", pattern=r"^https?://")
    wechat_page: str | None = Field(default=None, description="mini-program page; {request_id}")
    wechat_miniprogram_state: Literal["developer", "trial", "formal"] = "formal"
    provider_timeout_s: float = Field(default=5.0, gt=0, le=60)
    inapp_enabled: bool = True
    inapp_heartbeat_s: float = Field(default=15.0, gt=0, le=300)
    inapp_poll_s: float = Field(default=5.0, gt=0, le=300, description="stored-delivery catch-up")

    @model_validator(mode="after")
    def _channel_providers_configured(self) -> NotifySettings:
        """An enabled provider needs its keys and a valid template table, or start-up fails."""
        from .adapters.channels.base import ChannelSettingsError
        from .adapters.channels.templates import TemplateTable

        def need(prefix: str, names: list[str]) -> None:
            values = {n: getattr(self, n) for n in names}
            plain = {
                n: v.get_secret_value() if isinstance(v, SecretStr) else v
                for n, v in values.items()
            }
            missing = [f"ZHUMENG_{n.upper()}" for n, v in plain.items() if not str(v or "").strip()]
            if missing:
                raise ChannelSettingsError(f"{prefix} is enabled but {', '.join(missing)} not set")

        def table(name: str, raw: dict[str, dict[str, dict[str, Any]]]) -> None:
            if not raw:
                raise ChannelSettingsError(f"ZHUMENG_{name.upper()} must name a template")
            try:
                TemplateTable.parse(raw)
            except ValueError as exc:
                raise ChannelSettingsError(f"ZHUMENG_{name.upper()}: {exc}") from None

        if self.sms_provider == "alibaba":
            need(
                "Alibaba Cloud SMS",
                [
                    "alibaba_sms_access_key_id",
                    "alibaba_sms_access_key_secret",
                    "alibaba_sms_sign_name",
                ],
            )
        if self.sms_provider == "tencent":
            need(
                "Tencent Cloud SMS",
                [
                    "tencent_sms_secret_id",
                    "tencent_sms_secret_key",
                    "tencent_sms_sdk_app_id",
                    "tencent_sms_sign_name",
                ],
            )
        if self.sms_provider:
            table("sms_templates", self.sms_templates)
        if self.wechat_enabled:
            need("WeChat", ["wechat_app_id", "wechat_app_secret"])
            table("wechat_templates", self.wechat_templates)
        endpoints = {
            "alibaba": self.alibaba_sms_endpoint,
            "tencent": self.tencent_sms_endpoint,
            "wechat": self.wechat_api_base,
        }
        enabled = {self.sms_provider, "wechat" if self.wechat_enabled else None}
        plain_http = [k for k, url in endpoints.items() if k in enabled and url.startswith("http:")]
        if self.environment == "production" and plain_http:
            raise ChannelSettingsError(
                f"production needs https endpoints for {', '.join(plain_http)}"
            )
        return self

    # ---- who hears what (ADR 0012) ----------------------------------------------------------
    reminder_lead_min: int = Field(
        default=120, ge=1, le=7 * 24 * 60, description="appointment reminder, minutes before"
    )
    seed_demo_coordinators: bool = Field(
        default=False,
        validation_alias=AliasChoices("ZHUMENG_NOTIFY_SEED_DEMO", "ZHUMENG_SEED_DEMO_COORDINATORS"),
    )

    # ---- delivery semantics (ADR 0013) ----------------------------------------------------
    notify_quiet_hours: str = Field(
        default="22:00-07:00",
        description="nightly span (Asia/Shanghai) holding non-urgent messages; '' or off: none",
    )
    notify_retry_base_s: float = Field(default=2.0, gt=0, le=3600)
    notify_retry_cap_s: float = Field(default=600.0, gt=0, le=86_400)
    notify_contact_wait_s: float = Field(
        default=2.0, gt=0, le=3600, description="first wait for a contact that lags its event"
    )
    notify_contact_wait_attempts: int = Field(default=10, ge=1, le=30)
    notify_timer_poll_s: float = Field(default=0.5, gt=0, le=60)
    # records per poll, and deliveries per flush (one claims insert, one outcome document of
    # ~1.1 KB per delivery: 5000 stay far below the 16 MB document limit). 2000 rather than 500
    # took the log channel from 646-899/s to ~1,600/s (bench/README.md).
    notify_batch_max_records: int = Field(default=2000, ge=1, le=5000)
    notify_batch_timeout_ms: int = Field(default=20, ge=1, le=5000)
    notify_preferences_refresh_s: float = Field(default=1.0, gt=0, le=300)
    notify_callback_token: str | None = Field(
        default=None,
        min_length=16,
        description="if set, provider callbacks must carry ?token=<this>",
    )
    # Test-only: a file holding seconds to add to the clock (quiet hours, timers), re-read
    # when it changes. Refused in production.
    notify_clock_offset_file: Path | None = None

    @model_validator(mode="after")
    def _valid_delivery_settings(self) -> NotifySettings:
        QuietHours.parse(self.notify_quiet_hours)  # raises on a bad span
        if self.environment == "test" and "notify_quiet_hours" not in self.model_fields_set:
            # test stacks must not hold messages back depending on the hour they run at
            self.notify_quiet_hours = "off"
        if self.notify_retry_cap_s < self.notify_retry_base_s:
            raise ValueError("ZHUMENG_NOTIFY_RETRY_CAP_S must be >= ZHUMENG_NOTIFY_RETRY_BASE_S")
        if self.environment == "production" and self.notify_clock_offset_file is not None:
            raise ValueError("ZHUMENG_NOTIFY_CLOCK_OFFSET_FILE is for tests only")
        return self

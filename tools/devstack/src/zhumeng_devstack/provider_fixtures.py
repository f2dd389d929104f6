"""Pytest fixtures of the local provider servers (fake_providers.py), and the settings that
point notify at them.

    from zhumeng_devstack.provider_fixtures import provider_fixture
    alibaba = provider_fixture(FakeAlibabaSms)          # module-scoped, started, stopped

    def test_x(alibaba: FakeAlibabaSms) -> None:
        alibaba.fail_next(2)                            # the next two calls get a 503
        ...
        assert alibaba.received()[0].template == "SMS_1"
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal, TypeVar

from .fake_providers import (
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
    FakeProvider,
    FakeTencentSms,
    FakeWeChat,
)

P = TypeVar("P", bound=FakeProvider)

# A catch-all template per provider: enough for every kind of message in tests.
SMS_TEMPLATES: dict[str, Any] = {
    "*": {
        "zh-CN": {"id": "SMS_900001", "params": {"name": "name", "text": "text"}},
        "en": {"id": "SMS_900002", "params": {"name": "name", "text": "text"}},
    }
}
WECHAT_TEMPLATES: dict[str, Any] = {
    "*": {
        "zh-CN": {
            "id": "tpl-zhumeng-status",
            "params": {"thing1": "subject", "character_string2": "request_id", "name3": "name"},
        }
    }
}


def provider_fixture(
    kind: type[P], scope: Literal["session", "module"] = "module", **options: Any
) -> Any:
    """A pytest fixture that runs one fake provider (name it by the module attribute)."""
    import pytest

    @pytest.fixture(scope=scope)
    def fake() -> Iterator[P]:
        server = kind(**options)
        server.start()
        try:
            yield server
        finally:
            server.stop()

    return fake


def notify_env(
    alibaba: FakeAlibabaSms | None = None,
    tencent: FakeTencentSms | None = None,
    wechat: FakeWeChat | None = None,
) -> dict[str, str]:
    """ZHUMENG_* settings that point a notify process at the fakes (for `running_service`)."""
    env: dict[str, str] = {}
    if alibaba is not None:
        env.update(
            ZHUMENG_SMS_PROVIDER="alibaba",
            ZHUMENG_ALIBABA_SMS_ENDPOINT=alibaba.url,
            ZHUMENG_ALIBABA_SMS_ACCESS_KEY_ID=ALIBABA_KEY_ID,
            ZHUMENG_ALIBABA_SMS_ACCESS_KEY_SECRET=ALIBABA_SECRET,
            ZHUMENG_ALIBABA_SMS_SIGN_NAME=ALIBABA_SIGN_NAME,
            ZHUMENG_SMS_TEMPLATES=json.dumps(SMS_TEMPLATES),
        )
    elif tencent is not None:
        env.update(
            ZHUMENG_SMS_PROVIDER="tencent",
            ZHUMENG_TENCENT_SMS_ENDPOINT=tencent.url,
            ZHUMENG_TENCENT_SMS_SECRET_ID=TENCENT_SECRET_ID,
            ZHUMENG_TENCENT_SMS_SECRET_KEY=TENCENT_SECRET_KEY,
            ZHUMENG_TENCENT_SMS_SDK_APP_ID=TENCENT_APP_ID,
            ZHUMENG_TENCENT_SMS_SIGN_NAME=TENCENT_SIGN_NAME,
            ZHUMENG_SMS_TEMPLATES=json.dumps(SMS_TEMPLATES),
        )
    if wechat is not None:
        env.update(
            ZHUMENG_WECHAT_ENABLED="true",
            ZHUMENG_WECHAT_API_BASE=wechat.url,
            ZHUMENG_WECHAT_APP_ID=WECHAT_APP_ID,
            ZHUMENG_WECHAT_APP_SECRET=WECHAT_SECRET,
            ZHUMENG_WECHAT_TEMPLATES=json.dumps(WECHAT_TEMPLATES),
        )
    return env

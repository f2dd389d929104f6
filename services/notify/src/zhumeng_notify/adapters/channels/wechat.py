"""WeChat subscription messages (小程序订阅消息): `POST /cgi-bin/message/subscribe/send`.

The access token comes from `GET /cgi-bin/token?grant_type=client_credential` and is cached
until shortly before it expires; errcode 40001 (invalid) or 42001 (expired) drop it and the
send is tried once more with a fresh one. Concurrent senders share one token fetch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from ...app.ports import SendRejected, SendUnavailable
from ...domain.model import WECHAT_CHANNEL, Message, Receipt
from .base import ProviderHttp, utcnow
from .templates import TemplateTable

log = logging.getLogger("zhumeng.notify.channels")

API_BASE = "https://api.weixin.qq.com"
TOKEN_INVALID = frozenset({40001, 42001})
# -1 system busy, 45009 / 45011 rate limits: retried; every other errcode is permanent
# (43101 the user refused or used up their subscription, 40003 bad openid, 40037 bad
# template, 47003 a parameter does not fit the template, 40013 / 40125 wrong appid / secret).
TRANSIENT = frozenset({-1, 45009, 45011})
# Value limits of the template's data keys, by key type (thing1, time2, ...).
VALUE_LIMITS = {"thing": 20, "character_string": 32, "phrase": 5, "name": 10, "number": 32}


def fit(key: str, value: str) -> str:
    """Cut a value to the limit of its key type: WeChat refuses longer values (47003)."""
    kind = key.rstrip("0123456789")
    limit = VALUE_LIMITS.get(kind)
    if limit is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…" if kind == "thing" else value[:limit]


class WeChatSubscribeChannel:
    name = WECHAT_CHANNEL

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        templates: TemplateTable,
        *,
        api_base: str = API_BASE,
        page: str | None = None,
        miniprogram_state: str = "formal",
        timeout_s: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._app_id = app_id
        self._secret = app_secret
        self._templates = templates
        self._base = api_base.rstrip("/")
        self._page = page
        self._state = miniprogram_state
        self._http = ProviderHttp("wechat", timeout_s)
        self._clock = clock
        self._monotonic = monotonic
        self._token: str | None = None
        self._token_until = 0.0
        self._lock = asyncio.Lock()

    async def access_token(self, stale: str | None = None) -> str:
        async with self._lock:
            if self._token and self._token != stale and self._monotonic() < self._token_until:
                return self._token
            query = urlencode(
                {"grant_type": "client_credential", "appid": self._app_id, "secret": self._secret}
            )
            _, body = await self._http.request("GET", f"{self._base}/cgi-bin/token?{query}")
            token = body.get("access_token")
            if not token:
                raise self._error("token", body)
            # refresh a little early: a token that expires in flight costs a round trip
            ttl = float(body.get("expires_in") or 7200)
            self._token = str(token)
            self._token_until = self._monotonic() + max(ttl - 300, ttl / 2)
            return self._token

    def payload(self, message: Message) -> dict[str, Any]:
        if not message.address:
            raise SendRejected(f"delivery {message.delivery_id} has no WeChat openid")
        template = self._templates.for_message(message)
        data = {key: {"value": fit(key, value)} for key, value in template.values(message)}
        payload: dict[str, Any] = {
            "touser": message.address,
            "template_id": template.id,
            "data": data,
            "miniprogram_state": self._state,
            "lang": "zh_CN" if message.locale == "zh-CN" else "en_US",
        }
        if self._page:
            payload["page"] = self._page.format(request_id=message.cause.request_id)
        return payload

    async def send(self, message: Message) -> Receipt:
        content = json.dumps(self.payload(message), ensure_ascii=False).encode("utf-8")
        token = await self.access_token()
        body = await self._post(token, content)
        if body.get("errcode") in TOKEN_INVALID:
            log.info(
                "wechat access token refused (errcode %s); fetching a new one", body["errcode"]
            )
            body = await self._post(await self.access_token(stale=token), content)
        if body.get("errcode", 0) != 0:
            raise self._error("subscribe/send", body)
        msgid = body.get("msgid")
        log.info(
            "notification delivery=%s channel=wechat msgid=%s recipient=%s",
            message.delivery_id,
            msgid,
            message.recipient.id,
        )
        return Receipt(self.name, str(msgid or f"wechat:{message.delivery_id}"), self._clock())

    async def _post(self, token: str, content: bytes) -> dict[str, Any]:
        url = f"{self._base}/cgi-bin/message/subscribe/send?{urlencode({'access_token': token})}"
        _, body = await self._http.request(
            "POST", url, headers={"content-type": "application/json"}, content=content
        )
        return body

    @staticmethod
    def _error(step: str, body: dict[str, Any]) -> SendRejected | SendUnavailable:
        errcode = body.get("errcode")
        text = f"wechat {step}: errcode {errcode} ({str(body.get('errmsg', ''))[:80]})"
        transient = errcode is None or errcode in TRANSIENT
        return SendUnavailable(text) if transient else SendRejected(text)

    async def aclose(self) -> None:
        await self._http.aclose()

"""SMS through Tencent Cloud SMS: `SendSms` (API 2021-01-11, sms.tencentcloudapi.com), a JSON
POST signed with TC3-HMAC-SHA256 over content-type, host and x-tc-action."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from ...app.ports import SendRejected, SendUnavailable
from ...domain.model import SMS_CHANNEL, Message, Receipt
from ..signing import tc3_authorization
from .base import ProviderHttp, provider_error, utcnow
from .templates import TemplateTable

log = logging.getLogger("zhumeng.notify.channels")

ACTION = "SendSms"
VERSION = "2021-01-11"
SERVICE = "sms"
ENDPOINT = "https://sms.tencentcloudapi.com"
CONTENT_TYPE = "application/json; charset=utf-8"

# Retrying helps: the platform's own errors, request-rate limits, the 30 s / 1 h per-number
# limits, and an expired signature (a retry signs with a fresh timestamp).
TRANSIENT_PREFIXES = ("InternalError", "RequestLimitExceeded", "ResourceUnavailable")
TRANSIENT = frozenset(
    {
        "AuthFailure.SignatureExpire",
        "LimitExceeded.PhoneNumberThirtySecondLimit",
        "LimitExceeded.PhoneNumberOneHourLimit",
        "FailedOperation.JsonParseFail",
    }
)


def is_permanent(code: str) -> bool:
    """Bad or blacklisted numbers, unapproved templates or signatures, the daily limit, no
    balance, a wrong key: retrying does not help. Unknown codes are retried."""
    if code in TRANSIENT or code.startswith(TRANSIENT_PREFIXES):
        return False
    return code.startswith(
        ("AuthFailure", "FailedOperation", "InvalidParameter", "LimitExceeded", "Unauthorized")
    ) or code in ("MissingParameter", "UnsupportedOperation")


def e164(phone: str) -> str:
    """Tencent wants +<country><number>; a bare mainland number gets +86."""
    digits = phone.strip().replace(" ", "").replace("-", "")
    return digits if digits.startswith("+") else f"+86{digits}"


class TencentSmsChannel:
    name = SMS_CHANNEL

    def __init__(
        self,
        secret_id: str,
        secret_key: str,
        sdk_app_id: str,
        sign_name: str,
        templates: TemplateTable,
        *,
        region: str = "ap-guangzhou",
        endpoint: str = ENDPOINT,
        timeout_s: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._secret_id = secret_id
        self._secret_key = secret_key
        self._app_id = sdk_app_id
        self._sign_name = sign_name
        self._templates = templates
        self._region = region
        self._url = httpx.URL(endpoint.rstrip("/") + "/")
        self._http = ProviderHttp("tencent-sms", timeout_s)
        self._clock = clock

    def payload(self, message: Message) -> dict[str, Any]:
        if not message.address:
            raise SendRejected(f"delivery {message.delivery_id} has no phone number")
        template = self._templates.for_message(message)
        return {
            "PhoneNumberSet": [e164(message.address)],
            "SmsSdkAppId": self._app_id,
            "SignName": self._sign_name,
            "TemplateId": template.id,
            "TemplateParamSet": [value for _, value in template.values(message)],
            "SessionContext": message.delivery_id,  # echoed on delivery receipts
        }

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        signed = {
            "content-type": CONTENT_TYPE,
            "host": self._url.netloc.decode(),
            "x-tc-action": ACTION,
        }
        authorization = tc3_authorization(
            secret_id=self._secret_id,
            secret_key=self._secret_key,
            service=SERVICE,
            signed=signed,
            payload=body,
            timestamp=timestamp,
        )
        return {
            **signed,
            "authorization": authorization,
            "x-tc-action": ACTION,
            "x-tc-version": VERSION,
            "x-tc-timestamp": str(timestamp),
            "x-tc-region": self._region,
        }

    async def send(self, message: Message) -> Receipt:
        body = json.dumps(self.payload(message), ensure_ascii=False).encode("utf-8")
        headers = self.headers(body, int(self._clock().timestamp()))
        status, answer = await self._http.request(
            "POST", str(self._url), headers=headers, content=body
        )
        response = answer.get("Response")
        if not isinstance(response, dict):
            raise SendUnavailable(f"tencent-sms: HTTP {status} without a Response")
        request_id = response.get("RequestId")
        error = response.get("Error")
        if isinstance(error, dict):
            code = str(error.get("Code", "unknown"))
            raise provider_error("tencent-sms", code, request_id, is_permanent(code))
        statuses = response.get("SendStatusSet") or []
        if len(statuses) != 1 or not isinstance(statuses[0], dict):
            raise SendUnavailable(f"tencent-sms: unexpected SendStatusSet (request {request_id})")
        code = str(statuses[0].get("Code"))
        if code != "Ok":
            raise provider_error("tencent-sms", code, request_id, is_permanent(code))
        serial = str(statuses[0].get("SerialNo") or "")
        if not serial:
            raise SendUnavailable(f"tencent-sms: Ok without a SerialNo (request {request_id})")
        log.info(
            "notification delivery=%s channel=sms provider=tencent serial=%s address=%s",
            message.delivery_id,
            serial,
            message.masked_address,
        )
        return Receipt(self.name, serial, self._clock())

    async def aclose(self) -> None:
        await self._http.aclose()

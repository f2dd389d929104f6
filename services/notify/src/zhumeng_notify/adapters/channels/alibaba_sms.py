"""SMS through Alibaba Cloud SMS: `SendSms` of dysmsapi (API version 2017-05-25), signed with
the V3 signature (ACS3-HMAC-SHA256). RPC style: the parameters travel in the query string of
a POST with an empty body, as the API's metadata places them ("in": "query")."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from datetime import datetime

import httpx

from ...app.ports import SendRejected, SendUnavailable
from ...domain.model import SMS_CHANNEL, Message, Receipt
from ..signing import acs3_headers, canonical_query
from .base import ProviderHttp, provider_error, utcnow
from .templates import TemplateTable

log = logging.getLogger("zhumeng.notify.channels")

ACTION = "SendSms"
VERSION = "2017-05-25"
ENDPOINT = "https://dysmsapi.aliyuncs.com"

# Retrying helps: throttling (per number per minute/hour), a busy platform, a stale clock or a
# nonce that collided (a retry signs afresh).
TRANSIENT = frozenset(
    {
        "isv.BUSINESS_LIMIT_CONTROL",
        "isp.SYSTEM_ERROR",
        "isp.GATEWAY_ERROR",
        "Throttling",
        "Throttling.User",
        "Throttling.Api",
        "ServiceUnavailable",
        "InternalError",
        "InvalidTimeStamp.Expired",
        "SignatureNonceUsed",
    }
)


def is_permanent(code: str) -> bool:
    """Documented isv.* codes (bad number, blacklisted, template or signature not approved,
    no balance) and authentication errors (wrong key or secret) do not go away by retrying;
    isp.* (the platform's own) and unknown codes are retried."""
    if code in TRANSIENT or code.startswith("isp."):
        return False
    return code.startswith(("isv.", "Signature", "InvalidAccessKeyId", "Forbidden", "Missing")) or (
        code in ("IncompleteSignature", "InvalidParameter", "InvalidVersion", "InvalidAction")
    )


class AlibabaSmsChannel:
    name = SMS_CHANNEL

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        templates: TemplateTable,
        *,
        endpoint: str = ENDPOINT,
        timeout_s: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._key_id = access_key_id
        self._secret = access_key_secret
        self._sign_name = sign_name
        self._templates = templates
        self._url = httpx.URL(endpoint.rstrip("/") + "/")
        self._http = ProviderHttp("alibaba-sms", timeout_s)
        self._clock = clock

    def query(self, message: Message) -> dict[str, str]:
        if not message.address:
            raise SendRejected(f"delivery {message.delivery_id} has no phone number")
        template = self._templates.for_message(message)
        return {
            "PhoneNumbers": message.address,
            "SignName": self._sign_name,
            "TemplateCode": template.id,
            "TemplateParam": json.dumps(dict(template.values(message)), ensure_ascii=False),
            "OutId": message.delivery_id[:64],  # echoed on delivery receipts
        }

    async def send(self, message: Message) -> Receipt:
        query = self.query(message)
        headers = acs3_headers(
            method="POST",
            host=self._url.netloc.decode(),
            query=query,
            body=b"",
            action=ACTION,
            version=VERSION,
            access_key_id=self._key_id,
            access_key_secret=self._secret,
            at=self._clock(),
            nonce=secrets.token_hex(16),
        )
        url = f"{self._url}?{canonical_query(query)}"
        status, body = await self._http.request("POST", url, headers=headers, content=b"")
        code = str(body.get("Code", f"HTTP {status}"))
        if code != "OK":
            raise provider_error("alibaba-sms", code, body.get("RequestId"), is_permanent(code))
        biz_id = body.get("BizId")
        if not biz_id:
            raise SendUnavailable("alibaba-sms: OK without a BizId")
        log.info(
            "notification delivery=%s channel=sms provider=alibaba biz_id=%s address=%s",
            message.delivery_id,
            biz_id,
            message.masked_address,
        )
        return Receipt(self.name, str(biz_id), self._clock())

    async def aclose(self) -> None:
        await self._http.aclose()

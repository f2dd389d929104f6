"""Signed webhook POSTs (HMAC-SHA256, Standard-Webhooks headers: zhumeng_kit.webhooks).

`WebhookSender` posts one signed body and maps the answer: 2xx is a receipt; 408, 429, 5xx,
timeouts and connection errors are `SendUnavailable` (retried); any other status is
`SendRejected` (final). Each attempt is signed anew, with the time of that attempt.
`WebhookChannel` is notify's `Channel` on top of it, for a configured endpoint (e.g. an
operations system that wants every notification).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx

from zhumeng_kit.webhooks import signed_headers

from ..app.ports import SendRejected, SendUnavailable
from ..domain.model import WEBHOOK_CHANNEL, Message, Receipt

RETRYABLE = frozenset({408, 425, 429})
USER_AGENT = "Zhumeng-Webhooks/1"


def _now() -> datetime:
    return datetime.now(UTC)


class WebhookSender:
    def __init__(
        self,
        timeout_s: float = 10.0,
        max_connections: int = 100,
        clock: Callable[[], datetime] = _now,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=max_connections),
            follow_redirects=False,  # a redirect could carry the signed body elsewhere
            transport=transport,
            headers={"user-agent": USER_AGENT},
        )
        self._clock = clock

    async def post(
        self,
        url: str,
        secret: str,
        msg_id: str,
        body: bytes,
        content_type: str = "application/json",
        extra_headers: Mapping[str, str] | None = None,
    ) -> tuple[int, datetime]:
        """POST a signed body; returns (status code, when). Raises SendRejected for a final
        refusal, SendUnavailable for anything worth retrying. Errors name no URL or body."""
        now = self._clock()
        headers = {
            "content-type": content_type,
            **(extra_headers or {}),
            **signed_headers(msg_id, body, secret, int(now.timestamp())),
        }
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise SendUnavailable(f"timeout ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise SendUnavailable(f"connection failed ({type(exc).__name__})") from None
        code = response.status_code
        if 200 <= code < 300:
            return code, now
        if code >= 500 or code in RETRYABLE:
            raise SendUnavailable(f"HTTP {code}")
        raise SendRejected(f"HTTP {code}")

    async def close(self) -> None:
        await self._client.aclose()


class WebhookChannel:
    """Notify's channel to one configured endpoint. The webhook-id is the delivery id, so a
    resend after a crash mid-send carries the same id and the receiver drops it."""

    name = WEBHOOK_CHANNEL

    def __init__(self, sender: WebhookSender, url: str, secret: str) -> None:
        self._sender = sender
        self._url = url
        self._secret = secret

    async def send(self, message: Message) -> Receipt:
        body = json.dumps(
            {
                "delivery_id": message.delivery_id,
                "event_id": message.cause.event_id,
                "event_type": message.cause.event_type,
                "request_id": message.cause.request_id,
                "recipient_id": message.recipient.id,
                "role": message.recipient.role,
                "locale": message.locale,
                "subject": message.rendered.subject,
                "body": message.rendered.body,
            },
            ensure_ascii=False,
        ).encode()
        code, at = await self._sender.post(self._url, self._secret, message.delivery_id, body)
        return Receipt(self.name, f"webhook:{code}:{message.delivery_id}", at)

"""What the provider channels share: the clock, one pooled HTTP client, the error mapping of
transport failures, and error texts that never carry an address."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from ...app.ports import SendRejected, SendUnavailable


def utcnow() -> datetime:
    return datetime.now(UTC)


class ProviderHttp:
    """A lazily opened `httpx.AsyncClient` for one provider. Timeouts, refused connections and
    5xx answers are `SendUnavailable` (retried); a body that is not JSON too."""

    def __init__(self, provider: str, timeout_s: float) -> None:
        self.provider = provider
        self._timeout = timeout_s
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        return self._client

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """The status and the JSON object of the answer."""
        try:
            response = await self._http().request(method, url, headers=headers, content=content)
        except httpx.TimeoutException as exc:
            raise SendUnavailable(f"{self.provider}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise SendUnavailable(f"{self.provider}: unreachable ({type(exc).__name__})") from None
        if response.status_code >= 500:
            raise SendUnavailable(f"{self.provider}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise SendUnavailable(
                f"{self.provider}: HTTP {response.status_code} without a JSON body"
            ) from None
        if not isinstance(body, dict):
            raise SendUnavailable(f"{self.provider}: HTTP {response.status_code}, not an object")
        return response.status_code, body

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def provider_error(
    provider: str, code: str, request_id: object, permanent: bool
) -> SendRejected | SendUnavailable:
    """The exception for a provider's error code. Only the code and the provider's request id:
    some providers echo the request (and so the phone number) in their message text."""
    text = f"{provider}: {code} (request {request_id})"
    return SendRejected(text) if permanent else SendUnavailable(text)


class ChannelSettingsError(Exception):
    """A provider is enabled without what it needs. Not a ValueError on purpose: pydantic would
    wrap that and print every input value, the providers' secrets included."""

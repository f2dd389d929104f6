"""Signed webhooks, Standard-Webhooks style (https://www.standardwebhooks.com/).

Every POST carries three headers:

    webhook-id:        the message id; for the agency feeds, the CloudEvent id. It stays the
                       same on every retry and replay: receivers dedupe by it.
    webhook-timestamp: seconds since the epoch when this attempt was signed.
    webhook-signature: "v1,<base64 HMAC-SHA256 of f'{id}.{timestamp}.{body}'>"; several
                       space-separated signatures may come (during a secret rotation).

The key is the secret's bytes; a secret of the form `whsec_<base64>` (what Zhumeng generates,
and what the Standard Webhooks libraries use) is base64-decoded first, so those libraries
verify Zhumeng's signatures as they are.

`verify` is what a receiver runs: it rejects a bad signature, a timestamp outside the
tolerance (default 5 minutes, either way) and a replayed message — the very same signed
request (id *and* timestamp) seen before. A retry is signed anew with a new timestamp, so it
passes `verify`; the receiver's own dedupe by `webhook-id` then tells it it has the event.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300.0


class WebhookVerificationError(ValueError):
    """The request is not a valid, fresh, first-seen webhook from the expected sender."""


def generate_secret() -> str:
    """A new random secret (32 bytes) in the `whsec_<base64>` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error as exc:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
    return secret.encode()


def sign(msg_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """The `webhook-signature` value of one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    msg_id: str, body: bytes, secret: str, timestamp: int | None = None
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(msg_id, ts, body, secret),
    }


class SeenStore(Protocol):
    def __contains__(self, key: object, /) -> bool: ...

    def add(self, key: str, /) -> None: ...


class SeenIds:
    """Signed messages seen within the tolerance: enough to refuse a replay, since anything
    older is refused for its timestamp anyway. Bounded in time and in size."""

    def __init__(self, tolerance_s: float = DEFAULT_TOLERANCE_S, max_size: int = 100_000) -> None:
        self._ttl = 2 * tolerance_s  # a timestamp may be up to `tolerance` in the future too
        self._max = max_size
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._seen and (
            len(self._seen) > self._max or next(iter(self._seen.values())) < now - self._ttl
        ):
            self._seen.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        self._expire(time.monotonic())
        return key in self._seen

    def add(self, key: str) -> None:
        now = time.monotonic()
        self._seen[key] = now
        self._expire(now)


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    tolerance: float = DEFAULT_TOLERANCE_S,
    seen_ids: SeenStore | None = None,
    now: float | None = None,
) -> str:
    """Check a received webhook; returns its `webhook-id` or raises WebhookVerificationError.

    `seen_ids` (e.g. a `SeenIds`, shared by the receiver's requests) turns on replay
    protection: a message whose id and timestamp were accepted before is refused.
    """
    h = _headers(headers)
    msg_id, ts_text, signatures = (
        h.get(ID_HEADER),
        h.get(TIMESTAMP_HEADER),
        h.get(SIGNATURE_HEADER),
    )
    if not msg_id or not ts_text or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
    try:
        timestamp = int(ts_text)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    expected = sign(msg_id, timestamp, body, secret).encode()
    offered = [s.encode() for s in signatures.split() if s.startswith("v1,")]
    if not any(hmac.compare_digest(expected, s) for s in offered):
        raise WebhookVerificationError("no valid v1 signature")
    if seen_ids is not None:
        key = f"{msg_id}.{timestamp}"
        if key in seen_ids:
            raise ReplayedMessage("replayed message")
        seen_ids.add(key)
    return msg_id


class ReplayedMessage(WebhookVerificationError):
    """A validly signed message whose id and timestamp were seen before. Two genuine sends of
    one event within the same second (a live delivery and a replay, or a retry) look the same,
    so answer it 2xx without processing it again (dedupe by `webhook-id`): a 4xx would make
    the sender give the delivery up."""


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # wall clock (time.time()) when it arrived
    status: int  # what the receiver answered
    error: str | None  # why verification failed, if it did
    duplicate: bool = False  # a replayed (id, timestamp), acknowledged without processing


class WebhookReceiver:
    """A minimal agency receiver (HTTP/1.1 keep-alive on asyncio streams) that verifies every
    request with `verify` and records it: for local development, the integration tests and
    the benchmark. `answer(received)` picks the status of a verified request (default 204);
    an unverifiable one gets 401."""

    def __init__(
        self,
        secret: str = "",
        host: str = "127.0.0.1",
        answer: Callable[[Received], int] | None = None,
        tolerance: float = DEFAULT_TOLERANCE_S,
    ) -> None:
        self.secret = secret  # settable later: a generated secret is known after subscribing
        self._host = host
        self._answer = answer or (lambda _: 204)
        self._tolerance = tolerance
        self.seen = SeenIds(tolerance)
        self.received: list[Received] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}/hook"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.error is None and 200 <= r.status < 300]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readline():  # the request line
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self._handle(headers, body)
                writer.write(f"HTTP/1.1 {status} -\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the receiver stops
        finally:
            writer.close()

    def _handle(self, headers: dict[str, str], body: bytes) -> int:
        received = Received(headers, body, time.time(), 401, None)
        try:
            verify(headers, body, self.secret, self._tolerance, self.seen)
            received.status = self._answer(received)
        except ReplayedMessage:
            received.status = 200  # already had it: acknowledged, not processed again
            received.duplicate = True
        except WebhookVerificationError as exc:
            received.error = str(exc)
        self.received.append(received)
        return received.status

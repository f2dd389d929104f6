"""Webhook signing and verification: what an agency's receiver relies on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import pytest

from zhumeng_kit.webhooks import (
    SeenIds,
    WebhookVerificationError,
    generate_secret,
    sign,
    signed_headers,
    verify,
)

pytestmark = pytest.mark.unit

BODY = b'{"specversion":"1.0","id":"e1","type":"zhumeng.public.request.posted.v1"}'


def test_a_signed_message_verifies_and_returns_its_id() -> None:
    secret = generate_secret()
    headers = signed_headers("e1", BODY, secret)
    assert verify(headers, BODY, secret) == "e1"
    # header names are case-insensitive
    assert verify({k.upper(): v for k, v in headers.items()}, BODY, secret) == "e1"


def test_signature_is_hmac_sha256_of_id_timestamp_body_with_the_decoded_secret() -> None:
    key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    expected = hmac.new(key, b"msg_1.1700000000." + BODY, hashlib.sha256).digest()
    assert sign("msg_1", 1700000000, BODY, secret) == "v1," + base64.b64encode(expected).decode()
    # a plain secret is used as its UTF-8 bytes
    plain = hmac.new(b"plain-secret", b"m.1." + BODY, hashlib.sha256).digest()
    assert sign("m", 1, BODY, "plain-secret") == "v1," + base64.b64encode(plain).decode()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),  # body changed
        lambda h, b: ({**h, "webhook-id": "e2"}, b),  # id changed
        lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, b),
        lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b),
        lambda h, b: ({**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
    ],
)
def test_tampered_messages_are_rejected(tamper: object) -> None:
    secret = generate_secret()
    headers, body = tamper(signed_headers("e1", BODY, secret), BODY)  # type: ignore[operator]
    with pytest.raises(WebhookVerificationError):
        verify(headers, body, secret)


def test_the_wrong_secret_is_rejected() -> None:
    headers = signed_headers("e1", BODY, generate_secret())
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify(headers, BODY, generate_secret())


def test_one_valid_signature_among_several_is_enough() -> None:
    old, new = generate_secret(), generate_secret()
    headers = signed_headers("e1", BODY, new)
    ts = int(headers["webhook-timestamp"])
    headers["webhook-signature"] = f"{sign('e1', ts, BODY, old)} {headers['webhook-signature']}"
    assert verify(headers, BODY, new) == "e1"


def test_stale_and_future_timestamps_are_rejected() -> None:
    secret = generate_secret()
    now = time.time()
    old = signed_headers("e1", BODY, secret, timestamp=int(now) - 301)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(old, BODY, secret)
    future = signed_headers("e1", BODY, secret, timestamp=int(now) + 301)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(future, BODY, secret)
    # within a wider tolerance the old one is fine
    assert verify(old, BODY, secret, tolerance=600) == "e1"


def test_a_replayed_message_is_rejected_but_a_fresh_retry_passes() -> None:
    secret = generate_secret()
    seen = SeenIds()
    first = signed_headers("e1", BODY, secret, timestamp=int(time.time()) - 1)
    assert verify(first, BODY, secret, seen_ids=seen) == "e1"
    with pytest.raises(WebhookVerificationError, match="replayed"):
        verify(first, BODY, secret, seen_ids=seen)
    # the sender's retry is signed anew (new timestamp): verified; the receiver dedupes by id
    retry = signed_headers("e1", BODY, secret)
    assert verify(retry, BODY, secret, seen_ids=seen) == "e1"


def test_seen_ids_forget_after_twice_the_tolerance_and_stay_bounded() -> None:
    seen = SeenIds(tolerance_s=0.0, max_size=2)
    seen.add("a")
    assert "a" not in seen  # a zero tolerance keeps nothing
    bounded = SeenIds(max_size=2)
    for key in ("a", "b", "c"):
        bounded.add(key)
    assert "a" not in bounded and "b" in bounded and "c" in bounded


def test_generated_secrets_are_random_and_prefixed() -> None:
    a, b = generate_secret(), generate_secret()
    assert a != b and a.startswith("whsec_") and len(base64.b64decode(a[6:])) == 32


def _readme_verifier() -> Any:
    """The receiver snippet the README gives agencies, executed as they would copy it."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    after = readme.split("Verify a delivery in Python", 1)[1]
    code = after.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(code, scope)
    return scope["valid"]


@pytest.mark.parametrize("secret", [generate_secret(), "an agency's own secret, 24+ chars"])
def test_the_readme_receiver_snippet_accepts_ours_and_refuses_tampering(secret: str) -> None:
    valid = _readme_verifier()
    body = b'{"specversion": "1.0", "id": "evt_1"}'
    headers = signed_headers("evt_1", body, secret)
    assert valid(headers, body, secret)
    assert not valid(headers, body + b" ", secret)
    assert not valid(headers, body, generate_secret())  # another agency's secret
    stale = signed_headers("evt_1", body, secret, timestamp=int(time.time()) - 3600)
    assert not valid(stale, body, secret)

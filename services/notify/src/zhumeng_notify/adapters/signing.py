"""Request signing of the SMS providers, as their documentation specifies it. Pure functions.

Alibaba Cloud: signature V3, ACS3-HMAC-SHA256 ("V3 request body and signature mechanism").
Tencent Cloud: API 3.0 signature v3, TC3-HMAC-SHA256 ("Signature v3").
Both are reproduced against the documents' worked examples in tests/unit/test_signing.py.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

ACS3 = "ACS3-HMAC-SHA256"
TC3 = "TC3-HMAC-SHA256"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac_sha256(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def percent_encode(value: str) -> str:
    """RFC 3986 as Alibaba Cloud specifies it: unreserved characters kept, space -> %20,
    `*` -> %2A, `~` kept."""
    return quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    """Sorted by name, names and values percent-encoded, joined with & (Alibaba Cloud)."""
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))


# ---- Alibaba Cloud: ACS3-HMAC-SHA256 -------------------------------------------------------------


def acs3_signed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers that take part in the signature: host, content-type and every x-acs-*
    header, names lower-cased, values trimmed."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in ("host", "content-type") or key.startswith("x-acs-"):
            out[key] = value.strip()
    return out


def acs3_canonical_request(
    method: str, path: str, query: str, signed: Mapping[str, str], hashed_payload: str
) -> str:
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{signed[n]}\n" for n in names)
    return "\n".join(
        [method.upper(), path, query, canonical_headers, ";".join(names), hashed_payload]
    )


def acs3_signature(secret: str, canonical_request: str) -> str:
    string_to_sign = f"{ACS3}\n{sha256_hex(canonical_request.encode('utf-8'))}"
    return hmac.new(
        secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()


def acs3_headers(
    *,
    method: str,
    host: str,
    query: Mapping[str, str],
    body: bytes,
    action: str,
    version: str,
    access_key_id: str,
    access_key_secret: str,
    at: datetime,
    nonce: str,
    path: str = "/",
    content_type: str | None = None,
) -> dict[str, str]:
    """Every header of a V3-signed request, Authorization included."""
    hashed = sha256_hex(body)
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": hashed,
    }
    if content_type:
        headers["content-type"] = content_type
    signed = acs3_signed_headers(headers)
    canonical = acs3_canonical_request(method, path, canonical_query(query), signed, hashed)
    signature = acs3_signature(access_key_secret, canonical)
    headers["authorization"] = (
        f"{ACS3} Credential={access_key_id},SignedHeaders={';'.join(sorted(signed))},"
        f"Signature={signature}"
    )
    return headers


# ---- Tencent Cloud: TC3-HMAC-SHA256 ---------------------------------------------------------


def tc3_canonical_request(
    method: str, signed: Mapping[str, str], payload: bytes, query: str = ""
) -> str:
    """Names and values lower-cased and trimmed, sorted by name; the URI is always "/"."""
    entries = sorted((k.lower(), v.strip().lower()) for k, v in signed.items())
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in entries)
    names = ";".join(k for k, _ in entries)
    return "\n".join([method.upper(), "/", query, canonical_headers, names, sha256_hex(payload)])


def tc3_date(timestamp: int) -> str:
    """The credential scope's date: the UTC date of the timestamp (never local time)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def tc3_signature(secret_key: str, service: str, timestamp: int, canonical_request: str) -> str:
    date = tc3_date(timestamp)
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = f"{TC3}\n{timestamp}\n{scope}\n{sha256_hex(canonical_request.encode('utf-8'))}"
    key = _hmac_sha256(f"TC3{secret_key}".encode(), date)
    key = _hmac_sha256(key, service)
    key = _hmac_sha256(key, "tc3_request")
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def tc3_authorization(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    signed: Mapping[str, str],
    payload: bytes,
    timestamp: int,
    method: str = "POST",
) -> str:
    """The Authorization header over the given headers (content-type and host at least)."""
    canonical = tc3_canonical_request(method, signed, payload)
    signature = tc3_signature(secret_key, service, timestamp, canonical)
    names = ";".join(sorted(k.lower() for k in signed))
    scope = f"{tc3_date(timestamp)}/{service}/tc3_request"
    return f"{TC3} Credential={secret_id}/{scope}, SignedHeaders={names}, Signature={signature}"

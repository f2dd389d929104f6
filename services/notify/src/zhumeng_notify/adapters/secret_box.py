"""Agency webhook secrets at rest, sealed with Fernet (AES-CBC + HMAC-SHA256) under the keys
of `ZHUMENG_AGENCY_SECRETS_KEYS`: a copy of notify's database alone does not let anyone sign
webhooks in the platform's name. The first key seals, every key opens — to rotate, put a new
key first; start-up re-seals what the first key cannot open, then the old key can go."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SEALED = "fernet:"


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._primary = Fernet(keys[0].encode())
        self._all = MultiFernet([Fernet(k.encode()) for k in keys])

    def seal(self, secret: str) -> str:
        return SEALED + self._all.encrypt(secret.encode()).decode()

    def open(self, stored: str) -> str:
        """The secret; a value stored before secrets were sealed is returned as it is.
        Raises `InvalidToken` when no configured key opens it."""
        if not stored.startswith(SEALED):
            return stored
        return self._all.decrypt(stored.removeprefix(SEALED).encode()).decode()

    def needs_sealing(self, stored: str) -> bool:
        """Plain text, or sealed under a key other than the first (a rotation)."""
        if not stored.startswith(SEALED):
            return True
        try:
            self._primary.decrypt(stored.removeprefix(SEALED).encode())
        except InvalidToken:
            return True
        return False


def keys_of(value: str) -> list[str]:
    """`ZHUMENG_AGENCY_SECRETS_KEYS`: comma-separated Fernet keys, the sealing one first."""
    keys = [k.strip() for k in value.split(",") if k.strip()]
    for k in keys:
        Fernet(k.encode())  # raises ValueError on a malformed key: start-up fails clearly
    return keys

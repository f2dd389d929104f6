"""Opaque cursors for list endpoints."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from zhumeng_kit.problems import Problem

T = TypeVar("T")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50


class BadCursor(Problem):
    status, slug, title = 400, "bad-cursor", "Invalid cursor"


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None
    distances: dict[str, float] = field(default_factory=dict)


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("the cursor is not one this service issued") from exc
    if not isinstance(value, dict) or not isinstance(value.get("a"), str):
        raise BadCursor("the cursor is not one this service issued")
    if "d" in value and not isinstance(value["d"], int | float):
        raise BadCursor("the cursor is not one this service issued")
    return value

"""Identifiers: time-ordered, so that `_id` order is creation order (cursor pagination)."""

from __future__ import annotations

import secrets
import threading
import time

_lock = threading.Lock()
_last = (0, 0)


def new_id(prefix: str) -> str:
    """`prefix_` + 12 hex digits of milliseconds + a 4-digit sequence (monotonic within a
    process, even within one millisecond) + 6 random hex digits (unique across processes)."""
    global _last
    with _lock:
        ms, seq = int(time.time() * 1000), 0
        if ms <= _last[0]:
            ms, seq = _last[0], _last[1] + 1
        _last = (ms, seq)
    return f"{prefix}_{ms:012x}{seq & 0xFFFF:04x}{secrets.token_hex(3)}"

"""`GET /v1/stream`: a person's in-app notifications as server-sent events.

Each event: `id:` the delivery id, `event: notification`, `data:` one JSON line. A client that
reconnects with `Last-Event-ID` first gets the stored in-app deliveries after that one; then
live events from this process's hub, plus a poll of the stored deliveries every `poll_s`
(what another replica sent, or what a slow stream dropped). A comment line every
`heartbeat_s` keeps proxies from closing an idle stream.

No `from __future__ import annotations` here: FastAPI must see the real dependency types.
"""

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from zhumeng_kit.auth import Principal
from zhumeng_kit.ids import new_id

from ..adapters.channels.inapp import InAppEvent, InAppFeed, InAppHub

log = logging.getLogger("zhumeng.notify.stream")

RETRY_MS = 3000  # how long a browser's EventSource waits before it reconnects


def sse(event: InAppEvent) -> bytes:
    data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.id}\nevent: notification\ndata: {data}\n\n".encode()


class _Seen:
    """The ids already sent on one stream (bounded: the poll looks at the latest 50 only)."""

    def __init__(self, size: int = 1000) -> None:
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._size = size

    def add(self, event_id: str) -> bool:
        """True if the id is new."""
        if event_id in self._ids:
            return False
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return True


async def events(
    hub: InAppHub,
    feed: InAppFeed,
    recipient_id: str,
    last_event_id: str | None,
    heartbeat_s: float,
    poll_s: float,
) -> AsyncIterator[bytes]:
    with hub.subscribe(recipient_id) as queue:  # before reading: nothing falls in between
        # Deliveries stored before this moment and already sent are history (the client asked
        # for none, or for those after Last-Event-ID); later or in-flight ones are news.
        since = new_id("dlv")
        seen = _Seen()
        yield f"retry: {RETRY_MS}\n\n".encode()
        if last_event_id:
            for event in await feed.after(recipient_id, last_event_id):
                if seen.add(event.id):
                    yield sse(event)
        for event in await feed.recent(recipient_id):
            if event.sent and event.seq < since:
                seen.add(event.id)
            elif seen.add(event.id):
                yield sse(event)
        last_write = time.monotonic()
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=min(poll_s, heartbeat_s))
                fresh = [event]
            except TimeoutError:
                fresh = await feed.recent(recipient_id)
            for event in fresh:
                if seen.add(event.id):
                    yield sse(event)
                    last_write = time.monotonic()
            if time.monotonic() - last_write >= heartbeat_s:
                yield b": heartbeat\n\n"
                last_write = time.monotonic()


def router(
    hub: InAppHub,
    feed: InAppFeed,
    current: Callable[[Request], Coroutine[Any, Any, Principal]],
    *,
    heartbeat_s: float = 15.0,
    poll_s: float = 5.0,
) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["stream"])

    @api.get(
        "/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream(
        who: Annotated[Principal, Depends(current)],
        last_event_id: Annotated[str | None, Header(max_length=300)] = None,
    ) -> StreamingResponse:
        """The caller's own in-app notifications, as they happen."""
        log.info("stream opened for %s (resume: %s)", who.subject, bool(last_event_id))
        return StreamingResponse(
            events(hub, feed, who.subject, last_event_id, heartbeat_s, poll_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return api

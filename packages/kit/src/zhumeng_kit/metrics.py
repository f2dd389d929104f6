"""Prometheus metrics every service exposes at `/metrics` (DESIGN §9).

Labels carry ids of routes, topics and event types only — never personal data.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "zhumeng_http_requests_total",
    "HTTP requests answered",
    ["service", "method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "zhumeng_http_request_seconds", "HTTP request duration", ["service", "method", "route"]
)
EVENTS = Counter(
    "zhumeng_events_total",
    "consumed events by outcome (applied, ignored, retried, dead_lettered)",
    ["service", "topic", "type", "outcome"],
)
EVENT_SECONDS = Histogram(
    "zhumeng_event_handler_seconds", "event handler duration", ["service", "type"]
)
OUTBOX_PUBLISHED = Counter(
    "zhumeng_outbox_published_total", "events the outbox relay published", ["service"]
)


def install_metrics(app: FastAPI, service: str) -> None:
    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")  # the template, not the concrete URL
        HTTP_REQUESTS.labels(service, request.method, path, str(response.status_code)).inc()
        HTTP_SECONDS.labels(service, request.method, path).observe(time.perf_counter() - start)
        return response

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

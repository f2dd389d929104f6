"""The process-level runtime of one service: connections, background tasks, the HTTP app.

Each service's composition root (`bootstrap.py`) builds one of these, adds its subscribers,
relay and views, and hands its routers to `create_app`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from zhumeng_contracts.events import Event

from .consumer import DeadLetters, EventRunner, Handler, subscribe
from .kafka import BrokerPublisher, make_broker
from .metrics import install_metrics
from .mongo import make_client, ping
from .outbox import OutboxRelay
from .problems import install_problem_handlers
from .settings import ServiceSettings
from .views import CompactedTopicsReader, View

log = logging.getLogger("zhumeng.runtime")
Check = Callable[[], Awaitable[bool]]


class ServiceRuntime:
    def __init__(self, name: str, settings: ServiceSettings) -> None:
        self.name = name
        self.settings = settings
        self.mongo = make_client(
            settings.mongo_uri, f"zhumeng-{name}", max_idle_s=settings.mongo_max_idle_s
        )
        self.db = self.mongo[settings.db_name(name)]
        self.broker = make_broker(settings.kafka_bootstrap, f"zhumeng-{name}")
        self.checks: dict[str, Check] = {"mongo": lambda: ping(self.db), "kafka": self._kafka_ok}
        self._startups: list[Callable[[], Awaitable[None]]] = []
        self._background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._after_start: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._shutdowns: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def _kafka_ok(self) -> bool:
        try:
            return bool(await self.broker.ping(timeout=2.0))
        except Exception:
            return False

    def on_startup(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run before subscribers start (index creation, waiting for views)."""
        self._startups.append(step)

    def on_shutdown(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run at a graceful stop, after the background loops ended (close HTTP clients)."""
        self._shutdowns.append(step)

    def in_background(
        self, loop: Callable[[], Coroutine[Any, Any, None]], *, once_started: bool = False
    ) -> None:
        """A loop that runs for the life of the process (relay, views, timers).

        `once_started`: the loop starts only after every start-up step (views loaded, indexes)
        — for work that acts on the views, such as durable timers: a timer fired before the
        catalog views are loaded would find no service type and do nothing."""
        (self._after_start if once_started else self._background).append(loop)

    def outbox_relay(self, collections: list[str]) -> OutboxRelay:
        relay = OutboxRelay(
            self.db,
            collections,
            BrokerPublisher(self.broker, self.name),
            poll_interval_s=self.settings.relay_poll_ms / 1000,
        )
        self.in_background(relay.run)
        return relay

    def consume(
        self, topics: list[str], handlers: dict[type[Event], Handler], group: str | None = None
    ) -> EventRunner:
        """Subscribe a consumer group (default: one per service) to event handlers."""
        group = group or f"zhumeng-{self.name}"
        runner = EventRunner(
            self.name,
            handlers,
            DeadLetters(self.broker, group),
            max_attempts=self.settings.consumer_max_attempts,
            backoff_s=self.settings.consumer_backoff_ms / 1000,
        )
        subscribe(self.broker, topics, group, runner, workers=self.settings.consumer_workers)
        return runner

    def views(self, views: dict[str, View[Any]]) -> CompactedTopicsReader:
        """Catalog views; the service is ready, and its subscribers start, once they loaded."""
        reader = CompactedTopicsReader(
            self.settings.kafka_bootstrap,
            views,
            f"zhumeng-{self.name}-views",
            DeadLetters(self.broker, f"zhumeng-{self.name}-views"),
        )
        self.in_background(reader.run)

        async def loaded() -> bool:
            return reader.ready.is_set()

        async def wait_loaded() -> None:
            await asyncio.wait_for(reader.ready.wait(), timeout=120)

        self.checks["views"] = loaded
        self.on_startup(wait_loaded)
        return reader

    async def start(self) -> None:
        await self.broker.connect()
        self._tasks = [asyncio.create_task(self._guard(loop)) for loop in self._background]
        for step in self._startups:
            await step()
        self._tasks += [asyncio.create_task(self._guard(loop)) for loop in self._after_start]
        await self.broker.start()
        log.info("%s started", self.name)

    async def _guard(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # A background loop that dies would silently stop the service's work: restart it.
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background loop %s crashed; restarting", loop)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for step in self._shutdowns:
            try:
                await step()
            except Exception:  # one failing step must not keep the others from running
                log.exception("shutdown step %s failed", step)
        await self.broker.stop()
        await self.mongo.close()

    async def readiness(self) -> dict[str, bool]:
        results = await asyncio.gather(*(check() for check in self.checks.values()))
        return dict(zip(self.checks, results, strict=True))


def create_app(runtime: ServiceRuntime, routers: list[APIRouter], title: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, version="0.1.0", lifespan=lifespan)
    install_problem_handlers(app)
    install_metrics(app, runtime.name)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.name}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ready = all(checks.values())
        return JSONResponse(
            {
                "status": "ready" if ready else "not-ready",
                "service": runtime.name,
                "checks": checks,
            },
            status_code=200 if ready else 503,
        )

    for router in routers:
        app.include_router(router)
    return app


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )

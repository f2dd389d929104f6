"""The catalog's one composition root: settings -> runtime -> adapters -> app -> routers."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import FastAPI

from zhumeng_kit.runtime import ServiceRuntime, create_app

from .adapters.demo_data import load_demo
from .adapters.mongo_repository import COLLECTIONS, MongoCatalogRepository
from .app.use_cases import Catalog
from .entrypoints.http import build_router
from .settings import CatalogSettings

log = logging.getLogger("zhumeng.catalog")
SEED_PUBLISH_TIMEOUT_S = 300.0


def build(settings: CatalogSettings) -> FastAPI:
    runtime = ServiceRuntime("catalog", settings)
    relay = runtime.outbox_relay(COLLECTIONS)
    repo = MongoCatalogRepository(runtime.db, on_write=relay.wake)
    catalog = Catalog(repo)
    runtime.on_startup(repo.ensure_indexes)
    if settings.seed_demo:

        async def seed() -> None:
            started = time.monotonic()
            counts = await load_demo(catalog)
            # Ready only once the demo catalog is on the topics, so that services starting
            # after us (their views read up to the end offsets they see) get all of it.
            deadline = time.monotonic() + SEED_PUBLISH_TIMEOUT_S
            while (pending := await repo.pending_outbox()) and time.monotonic() < deadline:
                relay.wake()
                await asyncio.sleep(0.2)
            log.info(
                "demo catalog loaded in %.1fs: %s (%d documents left to relay)",
                time.monotonic() - started,
                counts,
                pending,
            )

        runtime.on_startup(seed)
    app = create_app(runtime, [build_router(catalog, settings)], "Zhumeng catalog")
    app.state.runtime = runtime
    app.state.catalog = catalog
    return app

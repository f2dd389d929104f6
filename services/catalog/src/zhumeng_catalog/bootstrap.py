"""The catalog's one composition root: settings -> runtime -> adapters -> app -> routers."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from zhumeng_kit.runtime import ServiceRuntime, create_app

from .adapters.demo_data import load_demo
from .adapters.mongo_repository import COLLECTIONS, MongoCatalogRepository
from .app.use_cases import Catalog
from .entrypoints.http import build_router
from .settings import CatalogSettings

log = logging.getLogger("zhumeng.catalog")


def build(settings: CatalogSettings) -> FastAPI:
    runtime = ServiceRuntime("catalog", settings)
    relay = runtime.outbox_relay(COLLECTIONS)
    repo = MongoCatalogRepository(runtime.db, on_write=relay.wake)
    catalog = Catalog(repo)
    runtime.on_startup(repo.ensure_indexes)
    if settings.seed_demo:
        async def seed() -> None:
            counts = await load_demo(catalog)
            log.info("demo catalog loaded: %s", counts)

        runtime.on_startup(seed)
    app = create_app(runtime, [build_router(catalog, settings)], "Zhumeng catalog")
    app.state.runtime = runtime
    app.state.catalog = catalog
    return app

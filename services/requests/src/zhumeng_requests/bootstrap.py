"""The composition root of the requests service."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from zhumeng_contracts.envelope import EventMeta
from zhumeng_kit.auth import principal_dependency
from zhumeng_kit.runtime import ServiceRuntime, create_app
from zhumeng_kit.settings import ServiceSettings

from .adapters.catalog_view import CatalogViews
from .adapters.mongo_repository import COLLECTION, MongoRequestRepository
from .app.use_cases import RequestService
from .domain.lifecycle import LIFECYCLE_EVENTS
from .entrypoints.http import router


class RequestsSettings(ServiceSettings):
    http_port: int = 8002


def build(settings: RequestsSettings | None = None) -> FastAPI:
    settings = settings or RequestsSettings()
    runtime = ServiceRuntime("requests", settings)
    repo = MongoRequestRepository(runtime.db)
    catalog = CatalogViews()
    catalog.reader = runtime.views(dict(catalog.topics()))
    relay = runtime.outbox_relay([COLLECTION])
    service = RequestService(repo, catalog, on_events=relay.wake)
    runtime.on_startup(repo.ensure_indexes)

    async def on_lifecycle(meta: EventMeta, event: Any) -> None:
        await service.on_event(meta.id, event)

    # matching's lifecycle events, in order per request (key = request id); offers and claims
    # are matching's own business and ignored here
    runtime.consume(["matching.events.v1"], dict.fromkeys(LIFECYCLE_EVENTS, on_lifecycle))
    app = create_app(runtime, [router(service, principal_dependency(settings))], "Zhumeng requests")
    app.state.runtime = runtime
    return app

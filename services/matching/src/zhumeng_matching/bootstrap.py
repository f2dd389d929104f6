"""The composition root of the matching service."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    RequestCancelled,
    RequestPosted,
    RequestRated,
    ServiceTypeRecord,
    VolunteerRecord,
)
from zhumeng_kit.auth import principal_dependency
from zhumeng_kit.runtime import ServiceRuntime, create_app
from zhumeng_kit.settings import ServiceSettings
from zhumeng_kit.timers import Scheduler, Timer, ensure_timer_indexes
from zhumeng_kit.views import View

from .adapters.mongo_stores import DECISIONS, MongoDecisionStore, MongoLoadStore
from .adapters.stats_store import MongoStatsStore
from .app.lifecycle_service import OFFER_TIMER, LifecycleService
from .app.matcher import Matcher
from .app.volunteer_stats import VolunteerStatsService
from .domain.index import VolunteerIndex
from .entrypoints.http import router
from .entrypoints.lifecycle_http import lifecycle_router


class MatchingSettings(ServiceSettings):
    http_port: int = 8003


def build(settings: MatchingSettings | None = None) -> FastAPI:
    settings = settings or MatchingSettings()
    runtime = ServiceRuntime("matching", settings)
    index = VolunteerIndex()
    volunteers: View[VolunteerRecord] = View(VolunteerRecord)
    volunteers.listeners.append(index.on_change)
    service_types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
    runtime.views({VolunteerRecord.TOPIC: volunteers, ServiceTypeRecord.TOPIC: service_types})

    loads = MongoLoadStore(runtime.db)
    loads._cache = index.loads  # the load cache, mirrored into the index's columns (ADR 0008)
    decisions = MongoDecisionStore(runtime.db)
    runtime.on_startup(loads.ensure_indexes)
    runtime.on_startup(decisions.ensure_indexes)
    runtime.on_startup(loads.warm)
    relay = runtime.outbox_relay([DECISIONS])

    timers = Scheduler(runtime.db, owner=f"matching:{os.getpid()}")
    runtime.on_startup(lambda: ensure_timer_indexes(runtime.db))
    runtime.in_background(timers.run)
    lifecycle = LifecycleService(
        decisions, loads, index, service_types, on_events=relay.wake, timers=timers
    )

    async def on_offer_timer(timer: Timer) -> None:
        await lifecycle.on_offer_timer(timer.payload["request_id"])

    timers.register(OFFER_TIMER, on_offer_timer)
    matcher = Matcher(
        index, service_types, loads, decisions, on_events=relay.wake, offers=lifecycle
    )

    async def on_posted(meta: EventMeta, event: Any) -> None:
        await matcher.on_request_posted(meta.id, event)

    async def on_cancelled(meta: EventMeta, event: Any) -> None:
        await lifecycle.on_request_cancelled(event)

    async def on_released(meta: EventMeta, event: Any) -> None:
        await lifecycle.release_capacity(event)

    runtime.consume(
        ["requests.events.v1"], {RequestPosted: on_posted, RequestCancelled: on_cancelled}
    )
    # capacity comes back through matching's own events: at least once, idempotently
    runtime.consume(
        ["matching.events.v1"],
        {AssignmentCancelled: on_released, AssignmentCompleted: on_released},
        group="zhumeng-matching-capacity",
    )
    # volunteers' histories (fairness, experience, rating, newcomer): loaded at start-up,
    # kept by matching's own events, other replicas' changes polled (ADR 0008)
    stats_store = MongoStatsStore(runtime.db)
    stats = VolunteerStatsService(stats_store, index)
    runtime.on_startup(stats_store.ensure_indexes)
    runtime.on_startup(stats.refresh)
    runtime.in_background(stats.run)

    async def on_completed_stats(meta: EventMeta, event: Any) -> None:
        await stats.on_completed(meta.id, event)

    async def on_rated(meta: EventMeta, event: Any) -> None:
        await stats.on_rated(meta.id, event)

    runtime.consume(
        ["matching.events.v1", "requests.events.v1"],
        {AssignmentCompleted: on_completed_stats, RequestRated: on_rated},
        group="zhumeng-matching-stats",
    )
    current = principal_dependency(settings)
    app = create_app(
        runtime,
        [router(decisions, index, current), lifecycle_router(lifecycle, decisions, index, current)],
        "Zhumeng matching",
    )
    app.state.runtime = runtime
    return app

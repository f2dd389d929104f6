"""The composition root of the matching service."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import Field, field_validator

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    PlaceRecord,
    RequestCancelled,
    RequestPosted,
    RequestRated,
    ServiceTypeRecord,
    TeamRecord,
    VolunteerRecord,
)
from zhumeng_kit.auth import principal_dependency
from zhumeng_kit.kafka import publish_event
from zhumeng_kit.runtime import ServiceRuntime, create_app
from zhumeng_kit.settings import ServiceSettings
from zhumeng_kit.timers import Scheduler, Timer, ensure_timer_indexes
from zhumeng_kit.views import View

from .adapters.batch_store import MongoBatchStore, PendingDecisions
from .adapters.mongo_stores import (
    DECISIONS,
    MongoDecisionStore,
    MongoLoadStore,
    MongoOfferCounts,
    MongoQueue,
)
from .adapters.stats_store import MongoStatsStore
from .adapters.trip_store import MongoTripStore
from .app.batch_runner import BATCH_TIMER, BatchRunner
from .app.escalation import ESCALATION_TIMER, EscalationService, ladder_factory
from .app.lifecycle_service import OFFER_TIMER, LifecycleService
from .app.matcher import Matcher
from .app.public_feed import GROUP as PUBLIC_FEED_GROUP
from .app.public_feed import PublicAssignmentsFeed
from .app.review import ReviewService
from .app.team_claims import TeamClaims
from .app.trips_service import TripsService
from .app.volunteer_stats import VolunteerStatsService
from .domain import office_hours
from .domain.index import VolunteerIndex
from .entrypoints.batch_http import batch_router
from .entrypoints.coordinator_http import coordinator_router
from .entrypoints.http import CurrentPrincipal, router
from .entrypoints.lifecycle_http import lifecycle_router
from .entrypoints.teams_http import teams_router
from .entrypoints.trips_http import trips_router


class MatchingSettings(ServiceSettings):
    http_port: int = 8003
    # the escalation ladder (ADR 0009): seconds per minute of a service type's target time to
    # claim (60; tests shorten it), the wider radius rungs, the township offices' hours
    escalation_minute_s: float = Field(default=60.0, gt=0, le=60.0)
    escalation_radius_factors: list[float] = Field(default=[1.5, 2.0], max_length=5)
    office_hours: str = office_hours.TOWNSHIP_OFFICE_SPEC
    # offers and open-claim invitations one volunteer gets per Asia/Shanghai day at most
    daily_offer_cap: int = Field(default=5, ge=1, le=1000)

    @field_validator("escalation_radius_factors")
    @classmethod
    def _increasing(cls, factors: list[float]) -> list[float]:
        if any(f <= 1 for f in factors) or factors != sorted(set(factors)):
            raise ValueError("radius factors must be increasing and above 1")
        return factors

    @field_validator("office_hours")
    @classmethod
    def _hours(cls, spec: str) -> str:
        office_hours.parse(spec)  # ValueError -> refused at start-up
        return spec

    # batch mode: every service type's window in seconds instead of its batch_window_min
    # (tests, demos); unset in production
    batch_window_s: int | None = Field(default=None, ge=1, le=24 * 3600)


def build(settings: MatchingSettings | None = None) -> FastAPI:
    settings = settings or MatchingSettings()
    runtime = ServiceRuntime("matching", settings)
    index = VolunteerIndex()
    volunteers: View[VolunteerRecord] = View(VolunteerRecord)
    volunteers.listeners.append(index.on_change)
    service_types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
    teams: View[TeamRecord] = View(TeamRecord)
    places: View[PlaceRecord] = View(PlaceRecord)
    catalog = runtime.views(
        {
            VolunteerRecord.TOPIC: volunteers,
            ServiceTypeRecord.TOPIC: service_types,
            TeamRecord.TOPIC: teams,
            PlaceRecord.TOPIC: places,
        }
    )

    loads = MongoLoadStore(runtime.db, cache=index.loads)
    decisions = MongoDecisionStore(runtime.db)
    runtime.on_startup(loads.ensure_indexes)
    runtime.on_startup(decisions.ensure_indexes)
    runtime.on_startup(loads.warm)
    relay = runtime.outbox_relay([DECISIONS])

    timers = Scheduler(runtime.db, owner=f"matching:{os.getpid()}")
    runtime.on_startup(lambda: ensure_timer_indexes(runtime.db))
    runtime.in_background(timers.run, once_started=True)
    lifecycle = LifecycleService(
        decisions, loads, index, service_types, on_events=relay.wake, timers=timers
    )

    async def on_offer_timer(timer: Timer) -> None:
        await lifecycle.on_offer_timer(timer.payload["request_id"])

    timers.register(OFFER_TIMER, on_offer_timer)
    ladder_of = ladder_factory(
        settings.escalation_minute_s,
        tuple(settings.escalation_radius_factors),
        office_hours.parse(settings.office_hours),
    )
    escalation = EscalationService(lifecycle, decisions, service_types, timers, ladder_of)
    lifecycle.widen = escalation.widen_now
    lifecycle.offer_cap = MongoOfferCounts(runtime.db, settings.daily_offer_cap)
    timers.register(ESCALATION_TIMER, escalation.on_timer)
    reviews = ReviewService(lifecycle, escalation, decisions, MongoQueue(runtime.db))
    pooled = pooled_modes(
        runtime, settings, index, service_types, teams, places, loads, decisions, lifecycle, timers
    )
    matcher = Matcher(
        index,
        service_types,
        loads,
        decisions,
        on_events=relay.wake,
        offers=lifecycle,
        escalation=escalation,
        pooled={"team": pooled.teams, "batch": pooled.batch, "trip": pooled.trips},
        catch_up=catalog.caught_up,
    )

    async def on_posted(meta: EventMeta, event: Any) -> None:
        await matcher.on_request_posted(meta.id, event)

    async def on_cancelled(meta: EventMeta, event: Any) -> None:
        await lifecycle.on_request_cancelled(event)

    async def on_released(meta: EventMeta, event: Any) -> None:
        await lifecycle.release_capacity(event)
        if isinstance(event, AssignmentCancelled):  # room on a trip, if it held any
            await pooled.trips.release_stale(event.request_id, event.cancelled_at)

    runtime.consume(
        ["requests.events.v1"], {RequestPosted: on_posted, RequestCancelled: on_cancelled}
    )
    # capacity comes back through matching's own events: at least once, idempotently
    runtime.consume(
        ["matching.events.v1"],
        {AssignmentCancelled: on_released, AssignmentCompleted: on_released},
        group="zhumeng-matching-capacity",
    )
    # public.assignments.v1 for other agencies (ADR 0014): a projector in its own group
    public_feed = PublicAssignmentsFeed(
        decisions.get, lambda meta, event: publish_event(runtime.broker, meta, event)
    )
    runtime.consume(["matching.events.v1"], public_feed.handlers(), group=PUBLIC_FEED_GROUP)

    # volunteers' histories (fairness, experience, rating, newcomer): loaded at start-up,
    # kept by matching's own events, other replicas' changes polled (ADR 0008)
    stats_store = MongoStatsStore(runtime.db)
    stats = VolunteerStatsService(stats_store, index)
    runtime.on_startup(stats_store.ensure_indexes)
    runtime.on_startup(stats.refresh)
    runtime.in_background(stats.run)

    async def freeze_loaded_heap() -> None:
        # after the views, loads and histories loaded: the catalog (~3 KB a volunteer) leaves
        # the collector's reach, so no full collection walks it again (0.65 s with 100k
        # volunteers, one decision stalled; bench/matching_bench.py, ADR 0008)
        gc.collect()
        gc.freeze()

    runtime.on_startup(freeze_loaded_heap)

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
        [
            router(decisions, index, catalog, current),
            lifecycle_router(lifecycle, decisions, index, current),
            coordinator_router(reviews, lifecycle, current),
            *pooled.routers(current),
        ],
        "Zhumeng matching",
    )
    app.state.runtime = runtime
    return app


@dataclass
class PooledModes:
    """Team claims, batch windows and trip pooling, and their HTTP APIs."""

    teams: TeamClaims
    batch: BatchRunner
    trips: TripsService
    pending: PendingDecisions
    batch_store: MongoBatchStore

    def routers(self, current: CurrentPrincipal) -> list[APIRouter]:
        return [
            teams_router(self.teams, self.pending, current),
            trips_router(self.trips, current),
            batch_router(self.batch_store, current),
        ]


def pooled_modes(
    runtime: ServiceRuntime,
    settings: MatchingSettings,
    index: VolunteerIndex,
    service_types: View[ServiceTypeRecord],
    teams: View[TeamRecord],
    places: View[PlaceRecord],
    loads: MongoLoadStore,
    decisions: MongoDecisionStore,
    lifecycle: LifecycleService,
    timers: Scheduler,
) -> PooledModes:
    pending = PendingDecisions(runtime.db)
    batch_store = MongoBatchStore(runtime.db)
    trip_store = MongoTripStore(runtime.db)
    for store in (pending, batch_store, trip_store):
        runtime.on_startup(store.ensure_indexes)
    batch = BatchRunner(
        batch_store,
        pending,
        index,
        service_types,
        loads,
        lifecycle,
        timers,
        settings.batch_window_s,
    )

    async def on_batch_timer(timer: Timer) -> None:
        await batch.run(timer.payload["service_type_id"], int(timer.payload["window_no"]))

    timers.register(BATCH_TIMER, on_batch_timer)
    return PooledModes(
        teams=TeamClaims(teams, index, service_types, loads, decisions, lifecycle),
        batch=batch,
        trips=TripsService(trip_store, pending, decisions, index, service_types, places, lifecycle),
        pending=pending,
        batch_store=batch_store,
    )

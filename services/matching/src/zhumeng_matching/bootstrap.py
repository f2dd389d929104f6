"""The composition root of the matching service."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from pydantic import Field, field_validator
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    RequestCancelled,
    RequestPosted,
    ServiceTypeRecord,
    VolunteerRecord,
)
from zhumeng_kit.auth import principal_dependency
from zhumeng_kit.runtime import ServiceRuntime, create_app
from zhumeng_kit.settings import ServiceSettings
from zhumeng_kit.timers import Scheduler, Timer, ensure_timer_indexes
from zhumeng_kit.views import View

from .adapters.mongo_stores import DECISIONS, MongoDecisionStore, MongoLoadStore
from .app.escalation import ESCALATION_TIMER, EscalationService, ladder_factory
from .app.lifecycle_service import OFFER_TIMER, LifecycleService
from .app.matcher import Matcher
from .app.ports import Doc
from .app.review import HUMAN_LEVELS, ReviewService
from .domain import office_hours
from .domain.index import VolunteerIndex
from .entrypoints.coordinator_http import coordinator_router
from .entrypoints.http import router
from .entrypoints.lifecycle_http import lifecycle_router


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


class MongoOfferCounts:
    """Offers per volunteer and local day: one guarded upsert each, so two replicas never
    count past the cap (the reservation pattern of ADR 0006)."""

    def __init__(self, db: AsyncDatabase[Doc], cap: int) -> None:
        self._coll = db["offer_counts"]
        self._cap = cap

    async def take(self, volunteer_id: str, day: str) -> bool:
        try:
            await self._coll.find_one_and_update(
                {"_id": f"{volunteer_id}:{day}", "n": {"$lt": self._cap}},
                {"$inc": {"n": 1}, "$setOnInsert": {"volunteer_id": volunteer_id, "day": day}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # the document exists and the guard failed: the cap is reached
        return True


class MongoQueue:
    """The coordinators' queue over matching's decisions (a query; the state is theirs)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._coll = db[DECISIONS]

    async def queue(self, township_id: str | None, limit: int) -> list[Doc]:
        open_states = ["matching", "offered", "partially_assigned"]
        query: Doc = {
            "$or": [
                {"lifecycle.state": "in_review"},
                {"state": "unmatched"},
                {
                    "lifecycle.escalation_level": {"$in": list(HUMAN_LEVELS)},
                    "lifecycle.state": {"$in": open_states},
                },
            ]
        }
        if township_id is not None:
            query["posted.township_id"] = township_id
        cursor = self._coll.find(query, {"outbox": 0}).sort("_id", 1).limit(limit)
        return await cursor.to_list()


def build(settings: MatchingSettings | None = None) -> FastAPI:
    settings = settings or MatchingSettings()
    runtime = ServiceRuntime("matching", settings)
    index = VolunteerIndex()
    volunteers: View[VolunteerRecord] = View(VolunteerRecord)
    volunteers.listeners.append(index.on_change)
    service_types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
    runtime.views({VolunteerRecord.TOPIC: volunteers, ServiceTypeRecord.TOPIC: service_types})

    loads = MongoLoadStore(runtime.db)
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
    matcher = Matcher(
        index,
        service_types,
        loads,
        decisions,
        on_events=relay.wake,
        offers=lifecycle,
        escalation=escalation,
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
    current = principal_dependency(settings)
    app = create_app(
        runtime,
        [
            router(decisions, index, current),
            lifecycle_router(lifecycle, decisions, index, current),
            coordinator_router(reviews, lifecycle, current),
        ],
        "Zhumeng matching",
    )
    app.state.runtime = runtime
    return app

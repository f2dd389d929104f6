"""The composition root: settings -> runtime -> adapters -> use case -> routers.

No `from __future__ import annotations`: FastStream inspects the batch handler's annotations.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from faststream import AckPolicy
from faststream.kafka import KafkaMessage

from zhumeng_contracts.events import ContactRecord, Event, RequesterContact, ServiceTypeRecord
from zhumeng_kit.auth import principal_dependency
from zhumeng_kit.consumer import DeadLetters, EventRunner, Handler, Record
from zhumeng_kit.runtime import ServiceRuntime, create_app
from zhumeng_kit.timers import Scheduler, Timer, ensure_timer_indexes
from zhumeng_kit.views import View

from .adapters.channels import InAppFeed, InAppHub, build_channels, close_channels
from .adapters.coordinator_store import (
    COORDINATORS,
    MongoCoordinatorStore,
    seed_demo_coordinators,
)
from .adapters.directory import ViewDirectory
from .adapters.handlers import notify_handlers
from .adapters.mongo import COLLECTION, OUTCOMES, MongoDeliveryRepository
from .adapters.preferences_store import PreferenceStore, ViewPhoneBook
from .app.delivery import REPLAY, RESUME, DeliveryPolicy, EventReplay
from .app.notify import NotifyOnEvent
from .app.ports import Channel
from .app.reminders import register_reminders
from .domain.backoff import RetryPolicy
from .domain.quiet_hours import QuietHours
from .entrypoints import (
    coordinators_http,
    http,
    inbound_http,
    preferences_http,
    stream_http,
    subscriptions_http,
)
from .settings import NotifySettings

CONSUMED = ["matching.events.v1", "requests.events.v1"]
log = logging.getLogger("zhumeng.notify")


def build(
    settings: NotifySettings | None = None, channels: Mapping[str, Channel] | None = None
) -> FastAPI:
    """The app; `channels` (name -> Channel) replace or add to the configured ones."""
    settings = settings or NotifySettings()
    runtime = ServiceRuntime("notify", settings)
    clock = _clock(settings.notify_clock_offset_file)

    contacts: View[ContactRecord] = View(ContactRecord)
    requesters: View[RequesterContact] = View(RequesterContact)
    service_types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
    views: dict[str, View[Any]] = {
        ContactRecord.TOPIC: contacts,
        RequesterContact.TOPIC: requesters,
        ServiceTypeRecord.TOPIC: service_types,
    }
    runtime.views(views)

    relay = runtime.outbox_relay([OUTCOMES, COLLECTION])
    deliveries = MongoDeliveryRepository(runtime.db[COLLECTION], on_events=relay.wake)
    runtime.on_startup(deliveries.ensure_indexes)
    runtime.on_startup(deliveries.backfill_claims)  # deliveries from before claims had theirs
    runtime.on_startup(deliveries.repair)  # a crash's unreleased outcomes, before any resend
    runtime.in_background(deliveries.repair_forever)  # other replicas' crashes

    coordinators = MongoCoordinatorStore(runtime.db[COORDINATORS])
    runtime.on_startup(coordinators.ensure_indexes)
    if settings.seed_demo_coordinators:

        async def seed() -> None:
            await seed_demo_coordinators(coordinators)

        runtime.on_startup(seed)

    preferences = PreferenceStore(
        runtime.db, settings.jwt_secret, settings.notify_preferences_refresh_s, clock
    )

    async def load_preferences() -> None:
        await preferences.refresh()

    runtime.on_startup(load_preferences)
    runtime.in_background(preferences.run)

    # The timer's own retries wait for a lagging contact (REPLAY); RESUME handles its own.
    scheduler = Scheduler(
        runtime.db,
        poll_interval_s=settings.notify_timer_poll_s,
        max_attempts=settings.notify_contact_wait_attempts,
        backoff_s=settings.notify_contact_wait_s,
        max_backoff_s=120.0,
        concurrency=8,
        clock=clock,
    )
    runtime.on_startup(lambda: ensure_timer_indexes(runtime.db))
    runtime.in_background(scheduler.run, once_started=True)

    inapp_hub = InAppHub()
    configured = build_channels(settings, inapp_hub, clock)
    # agency feeds: public topics -> signed webhooks, and the webhook channel (ADR 0014)
    current = principal_dependency(settings)
    feeds = subscriptions_http.install(runtime, current)
    if feeds.channel is not None:
        configured[feeds.channel.name] = feeds.channel
    built_here = dict(configured)  # a caller's own channels are the caller's to close
    runtime.on_shutdown(lambda: close_channels(built_here))
    configured.update(channels or {})
    policy = DeliveryPolicy(
        lease=timedelta(seconds=settings.delivery_lease_s),
        retry=RetryPolicy(
            max_attempts=settings.max_send_attempts,
            base_s=settings.notify_retry_base_s,
            cap_s=settings.notify_retry_cap_s,
        ),
        quiet=QuietHours.parse(settings.notify_quiet_hours),
        max_batch=settings.notify_batch_max_records,  # a polled batch is flushed at once
    )
    use_case = NotifyOnEvent(
        deliveries,
        configured,
        ViewDirectory(contacts, requesters, service_types, coordinators),
        timers=scheduler,
        preferences=preferences,
        policy=policy,
        clock=clock,
    )
    dispatcher = use_case.dispatcher
    replay = EventReplay(scheduler, timedelta(seconds=settings.notify_contact_wait_s), clock=clock)

    async def resume(timer: Timer) -> None:
        await dispatcher.on_timer(timer.key, timer.payload)

    async def handle_again(timer: Timer) -> None:
        await replay.on_timer(timer.key, timer.payload)

    scheduler.register(RESUME, resume)
    scheduler.register(REPLAY, handle_again)
    reminders = register_reminders(
        scheduler, use_case, lead=timedelta(minutes=settings.reminder_lead_min)
    )
    _consume_in_batches(runtime, settings, replay.wrap(notify_handlers(use_case, reminders)))

    routers = [
        http.router(deliveries, current, dispatcher.replay),
        preferences_http.router(preferences, current),
        coordinators_http.router(coordinators, current),
        inbound_http.router(
            preferences,
            ViewPhoneBook(contacts, requesters),
            deliveries,
            settings.notify_callback_token,
            clock,
        ),
    ]
    if "inapp" in configured:
        feed = InAppFeed(runtime.db[COLLECTION])
        poll_s, heartbeat_s = settings.inapp_poll_s, settings.inapp_heartbeat_s
        routers.append(
            stream_http.router(inapp_hub, feed, current, heartbeat_s=heartbeat_s, poll_s=poll_s)
        )
    routers.extend(feeds.routers)
    app = create_app(runtime, routers, title="Zhumeng notify")
    app.state.runtime = runtime
    app.state.use_case = use_case
    return app


def _consume_in_batches(
    runtime: ServiceRuntime, settings: NotifySettings, handlers: dict[type[Event], Handler]
) -> EventRunner:
    """Like `ServiceRuntime.consume`, but one subscriber takes polled batches of records
    (offsets committed after the whole batch): records of one key are handled in order,
    different keys concurrently, so that the dispatcher can write their deliveries in bulk.
    (A candidate for the kit: `zhumeng_kit.consumer.subscribe(batch=True)`.)"""
    group = f"zhumeng-{runtime.name}"
    runner = EventRunner(
        runtime.name,
        handlers,
        DeadLetters(runtime.broker, group),
        max_attempts=settings.consumer_max_attempts,
        backoff_s=settings.consumer_backoff_ms / 1000,
    )

    async def raw_body(msg: Any) -> Any:
        return msg.body  # the runner decodes (see zhumeng_kit.consumer.subscribe)

    sub = runtime.broker.subscriber(
        *CONSUMED,
        group_id=group,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        decoder=raw_body,
        batch=True,
        max_records=settings.notify_batch_max_records,
        batch_timeout_ms=settings.notify_batch_timeout_ms,
    )

    @sub
    async def on_batch(msg: KafkaMessage) -> None:
        records: tuple[Record, ...] = msg.raw_message
        by_key: dict[tuple[str, int, bytes | None], list[Record]] = defaultdict(list)
        for record in records:
            by_key[(record.topic, record.partition, record.key)].append(record)

        async def in_order(batch: list[Record]) -> None:
            for record in batch:
                await runner.process(record)

        await asyncio.gather(*(in_order(batch) for batch in by_key.values()))

    return runner


def _clock(offset_file: Path | None) -> Callable[[], datetime]:
    """The wall clock, or (tests) the wall clock plus the seconds written in a file."""
    if offset_file is None:
        return lambda: datetime.now(UTC)
    cached: dict[str, float] = {"mtime": -1.0, "offset": 0.0}

    def now() -> datetime:
        try:
            mtime = offset_file.stat().st_mtime
            if mtime != cached["mtime"]:
                cached["offset"] = float(offset_file.read_text().strip() or 0)
                cached["mtime"] = mtime
        except (OSError, ValueError):
            pass
        return datetime.now(UTC) + timedelta(seconds=cached["offset"])

    return now

"""The composition root: settings -> runtime -> adapters -> use case -> routers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from zhumeng_contracts.events import ContactRecord, RequesterContact, ServiceTypeRecord
from zhumeng_kit.auth import principal_dependency
from zhumeng_kit.runtime import ServiceRuntime, create_app
from zhumeng_kit.views import View

from .adapters.channels import LogChannel, SmtpChannel
from .adapters.directory import ViewDirectory
from .adapters.handlers import matching_handlers
from .adapters.mongo import COLLECTION, MongoDeliveryRepository
from .app.notify import NotifyOnEvent
from .app.ports import Channel
from .entrypoints import http, subscriptions_http
from .settings import NotifySettings

CONSUMED = ["matching.events.v1"]


def build(settings: NotifySettings | None = None) -> FastAPI:
    settings = settings or NotifySettings()
    runtime = ServiceRuntime("notify", settings)

    contacts: View[ContactRecord] = View(ContactRecord)
    requesters: View[RequesterContact] = View(RequesterContact)
    service_types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
    views: dict[str, View[Any]] = {
        ContactRecord.TOPIC: contacts,
        RequesterContact.TOPIC: requesters,
        ServiceTypeRecord.TOPIC: service_types,
    }
    runtime.views(views)

    relay = runtime.outbox_relay([COLLECTION])
    deliveries = MongoDeliveryRepository(runtime.db[COLLECTION], on_events=relay.wake)
    runtime.on_startup(deliveries.ensure_indexes)

    channels: dict[str, Channel] = {"log": LogChannel()}
    if settings.smtp_host:
        channels["email"] = SmtpChannel(
            settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.smtp_timeout_s
        )
    # agency feeds: public topics -> signed webhooks, and the webhook channel (ADR 0014)
    current = principal_dependency(settings)
    feeds = subscriptions_http.install(runtime, current)
    if feeds.channel is not None:
        channels[feeds.channel.name] = feeds.channel

    use_case = NotifyOnEvent(
        deliveries,
        channels,
        ViewDirectory(contacts, requesters, service_types),
        lease=timedelta(seconds=settings.delivery_lease_s),
        max_send_attempts=settings.max_send_attempts,
    )
    runtime.consume(CONSUMED, matching_handlers(use_case))

    app = create_app(
        runtime, [http.router(deliveries, current), *feeds.routers], title="Zhumeng notify"
    )
    app.state.runtime = runtime
    app.state.use_case = use_case
    return app

"""Agency feeds over HTTP (ADR 0014): webhook subscriptions (role `agency`; admins see all),
their deliveries and replays, and the public contract — the AsyncAPI document of the public
topics and their JSON Schemas (no token needed: the contract is public).

`install` wires the feeds into notify's runtime (consumer, durable delivery timers, replays)
and returns the routers and notify's optional webhook channel.

No `from __future__ import annotations` here: FastAPI must see the real dependency types of
the route functions, some of which are local to the router factories.
"""

import json
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from zhumeng_contracts.events import Event
from zhumeng_contracts.schemas import SCHEMA_DIR, schema_for
from zhumeng_contracts.topics import TOPICS, TopicSpec
from zhumeng_kit.auth import Principal, require_roles
from zhumeng_kit.ids import new_id
from zhumeng_kit.kafka import end_offsets_of, records_since
from zhumeng_kit.mongo import Doc
from zhumeng_kit.outbox import STRUCTURED_CONTENT_TYPE
from zhumeng_kit.problems import NotFound, Unprocessable
from zhumeng_kit.runtime import ServiceRuntime
from zhumeng_kit.timers import Scheduler, ensure_timer_indexes
from zhumeng_kit.webhooks import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    generate_secret,
)

from ..adapters.secret_box import SecretBox, keys_of
from ..adapters.subscription_store import (
    WEBHOOK_TIMERS,
    MongoSubscriptionStore,
    ScheduledDeliveries,
)
from ..adapters.webhook_channel import WebhookChannel, WebhookSender
from ..app.agency_feed import REPLAY_HEADER, WEBHOOK_TIMER, AgencyFeed, AgencyFeedSettings
from ..domain.subscriptions import (
    PUBLIC_TOPICS,
    ReplayIn,
    Subscription,
    SubscriptionIn,
    UrlNotAllowed,
    check_url,
)

Current = Callable[[Request], Coroutine[Any, Any, Principal]]
FEED_GROUP = "zhumeng-notify-agency-feed"


# ---- subscriptions ---------------------------------------------------------------------------


class SubscriptionOut(BaseModel):
    id: str
    owner: str
    url: str
    event_types: list[str]
    townships: list[str]
    description: str
    created_at: datetime

    @classmethod
    def of(cls, sub: Subscription) -> "SubscriptionOut":
        return cls(
            id=sub.id,
            owner=sub.owner,
            url=sub.url,
            event_types=list(sub.event_types),
            townships=list(sub.townships),
            description=sub.description,
            created_at=sub.created_at,
        )


class SubscriptionCreated(SubscriptionOut):
    secret: str | None = None  # only when generated, only in this response


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event_type: str
    request_id: str | None = None
    township_id: str | None = None
    replay_id: str | None = None
    status: str
    attempts: int
    status_code: int | None = None
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None = None

    @classmethod
    def of(cls, doc: Doc) -> "DeliveryOut":
        return cls.model_validate({**doc, "id": doc["_id"]})


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


class ReplayOut(BaseModel):
    replay_id: str
    subscription_id: str
    since: datetime
    state: str
    matched: int
    created_at: datetime
    finished_at: datetime | None = None

    @classmethod
    def of(cls, doc: Doc) -> "ReplayOut":
        return cls.model_validate({**doc, "replay_id": doc["_id"]})


def subscriptions_router(
    store: MongoSubscriptionStore,
    feed: AgencyFeed,
    current: Current,
    allow_loopback: bool,
) -> APIRouter:
    api = APIRouter(prefix="/v1/subscriptions", tags=["agency feeds"])
    Agency = Annotated[Principal, Depends(require_roles(current, "agency"))]

    async def owned(sub_id: str, who: Principal) -> Subscription:
        sub = await store.get(sub_id)
        if sub is None or (sub.owner != who.subject and not who.has("admin")):
            raise NotFound(f"no subscription {sub_id!r}")
        return sub

    @api.post("", status_code=201, response_model=SubscriptionCreated)
    async def create(body: SubscriptionIn, who: Agency) -> SubscriptionCreated:
        try:
            url = check_url(body.url, allow_loopback)
        except UrlNotAllowed as exc:
            raise Unprocessable(str(exc), field="url") from exc
        generated = None if body.secret else generate_secret()
        sub = Subscription(
            id=new_id("sub"),
            owner=who.subject,
            url=url,
            event_types=tuple(body.event_types),
            townships=tuple(body.townships),
            secret=body.secret or generated or "",
            created_at=datetime.now(UTC),
            description=body.description,
        )
        await store.add(sub)
        return SubscriptionCreated(**SubscriptionOut.of(sub).model_dump(), secret=generated)

    @api.get("", response_model=list[SubscriptionOut])
    async def list_subscriptions(who: Agency) -> list[SubscriptionOut]:
        owner = None if who.has("admin") else who.subject
        return [SubscriptionOut.of(s) for s in await store.of_owner(owner)]

    @api.get("/{sub_id}", response_model=SubscriptionOut)
    async def get_subscription(sub_id: str, who: Agency) -> SubscriptionOut:
        return SubscriptionOut.of(await owned(sub_id, who))

    @api.delete("/{sub_id}", status_code=204)
    async def delete_subscription(sub_id: str, who: Agency) -> Response:
        await owned(sub_id, who)
        await store.delete(sub_id, datetime.now(UTC))  # pending deliveries end "cancelled"
        return Response(status_code=204)

    @api.get("/{sub_id}/deliveries", response_model=DeliveryPage)
    async def deliveries(
        sub_id: str,
        who: Agency,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: str | None = None,
    ) -> DeliveryPage:
        await owned(sub_id, who)
        docs, next_cursor = await store.deliveries(sub_id, status, limit, cursor)
        return DeliveryPage(items=[DeliveryOut.of(d) for d in docs], next_cursor=next_cursor)

    @api.post("/{sub_id}/replay", status_code=202, response_model=ReplayOut)
    async def replay(sub_id: str, body: ReplayIn, who: Agency) -> ReplayOut:
        sub = await owned(sub_id, who)
        return ReplayOut.of(await feed.start_replay(sub, body.since))

    @api.get("/{sub_id}/replays/{replay_id}", response_model=ReplayOut)
    async def get_replay(sub_id: str, replay_id: str, who: Agency) -> ReplayOut:
        await owned(sub_id, who)
        doc = await store.replay(replay_id)
        if doc is None or doc["subscription_id"] != sub_id:
            raise NotFound(f"no replay {replay_id!r}")
        return ReplayOut.of(doc)

    return api


# ---- the public contract: AsyncAPI and JSON Schemas ------------------------------------------


def public_topics() -> list[TopicSpec]:
    return [t for t in TOPICS if t.structured]


def committed_schema(event: type[Event]) -> dict[str, Any]:
    """The committed schema (packages/contracts/schemas); the contract tests keep it equal to
    the model's, which serves where the repository's files are not installed."""
    path = SCHEMA_DIR / f"{event.TYPE}.json"
    if path.exists():
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded
    return schema_for(event)


def _hoist_defs(schema: dict[str, Any], into: dict[str, Any]) -> dict[str, Any]:
    """Move `$defs` into the AsyncAPI components and point `#/$defs/X` refs there."""
    for name, sub in (schema.pop("$defs", None) or {}).items():
        into[name] = _hoist_defs(sub, into)
    text = json.dumps(schema).replace('"#/$defs/', '"#/components/schemas/')
    rewritten: dict[str, Any] = json.loads(text)
    return rewritten


def _cloudevent(event: type[Event]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["specversion", "id", "type", "source", "time", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "description": "dedupe by it (= webhook-id)"},
            "type": {"const": event.TYPE},
            "source": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "subject": {"type": "string", "description": "the request id"},
            "datacontenttype": {"const": "application/json"},
            "data": {"$ref": f"#/components/schemas/{event.TYPE}"},
        },
    }


WEBHOOK_DOC = (
    "Each event is a CloudEvents 1.0 structured JSON value (content type "
    f"`{STRUCTURED_CONTENT_TYPE}`), on Kafka and in webhook POSTs alike. Webhooks carry "
    f"`{ID_HEADER}` (= the CloudEvent id, the same on retries and replays: dedupe by it), "
    f"`{TIMESTAMP_HEADER}` (seconds since the epoch) and `{SIGNATURE_HEADER}: v1,<base64 "
    "HMAC-SHA256 of id.timestamp.body>` (Standard Webhooks); a replayed delivery also "
    f"carries `{REPLAY_HEADER}`. Answer 2xx when stored; 408/429/5xx or no answer is retried "
    "with exponential backoff, any other status is final."
)


@cache
def asyncapi_document() -> dict[str, Any]:
    """AsyncAPI 2.6 of the public topics, generated from the contracts' topic registry."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    for spec in public_topics():
        for event in spec.events:
            schemas[event.TYPE] = _hoist_defs(dict(committed_schema(event)), schemas)
            messages[event.TYPE] = {
                "name": event.TYPE,
                "title": event.__name__,
                "summary": (event.__doc__ or event.__name__).strip().splitlines()[0],
                "contentType": STRUCTURED_CONTENT_TYPE,
                "payload": _cloudevent(event),
                "bindings": {"kafka": {"key": {"type": "string"}, "bindingVersion": "0.4.0"}},
            }
        channels[spec.name] = {
            "description": f"{spec.description}; key: {spec.key}; kept "
            f"{spec.retention_ms // 86_400_000} days (replay window)",
            "subscribe": {
                "operationId": "receive_" + spec.name.replace(".", "_"),
                "message": {
                    "oneOf": [{"$ref": f"#/components/messages/{e.TYPE}"} for e in spec.events]
                },
            },
            "bindings": {
                "kafka": {
                    "topic": spec.name,
                    "partitions": spec.partitions,
                    "bindingVersion": "0.4.0",
                }
            },
        }
    return {
        "asyncapi": "2.6.0",
        "id": "urn:zhumeng:public-feeds",
        "info": {
            "title": "Zhumeng public feeds",
            "version": "1.0.0",
            "description": "Requests and assignments without personal data, for other "
            "agencies: subscribe by webhook (POST /v1/subscriptions, role agency). " + WEBHOOK_DOC,
        },
        "defaultContentType": STRUCTURED_CONTENT_TYPE,
        "channels": channels,
        "components": {"messages": messages, "schemas": schemas},
    }


def feeds_router() -> APIRouter:
    api = APIRouter(prefix="/v1/feeds", tags=["agency feeds"])
    by_type = {e.TYPE: e for spec in public_topics() for e in spec.events}

    @api.get("/asyncapi.json")
    async def asyncapi() -> dict[str, Any]:
        return asyncapi_document()

    @api.get("/schemas")
    async def schemas() -> dict[str, Any]:
        return {
            "items": [
                {"type": e.TYPE, "topic": e.TOPIC, "href": f"/v1/feeds/schemas/{e.TYPE}"}
                for e in by_type.values()
            ]
        }

    @api.get("/schemas/{event_type}")
    async def schema(event_type: str) -> dict[str, Any]:
        event = by_type.get(event_type)
        if event is None:
            raise NotFound(f"no public event type {event_type!r}")
        return committed_schema(event)

    return api


# ---- wiring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgencyFeeds:
    routers: list[APIRouter]
    feed: AgencyFeed
    scheduler: Scheduler
    channel: WebhookChannel | None  # notify's own webhook channel, when configured


def install(runtime: ServiceRuntime, current: Current) -> AgencyFeeds:
    """Consumer of the public topics, delivery timers, replays and the HTTP API."""
    settings = AgencyFeedSettings()
    box = SecretBox(keys_of(settings.secrets_keys.get_secret_value()))  # bad keys: start-up fails
    store = MongoSubscriptionStore(runtime.db, box)
    sender = WebhookSender(settings.webhook_timeout_s, max_connections=settings.webhook_concurrency)
    scheduler = Scheduler(
        runtime.db,
        collection=WEBHOOK_TIMERS,
        owner=f"notify-webhooks:{os.getpid()}",
        # one more than the feed's attempts: the feed itself dead-letters the last one
        max_attempts=settings.webhook_max_attempts + 1,
        backoff_s=settings.webhook_backoff_s,
        max_backoff_s=settings.webhook_max_backoff_s,
        concurrency=settings.webhook_concurrency,
        handler_timeout_s=settings.webhook_timeout_s * 3,
    )
    bootstrap = runtime.settings.kafka_bootstrap
    timers = ScheduledDeliveries(scheduler, runtime.db, WEBHOOK_TIMER)
    feed = AgencyFeed(
        store,
        sender,
        timers,
        history=lambda since, until: records_since(bootstrap, PUBLIC_TOPICS, since, until),
        ends=lambda: end_offsets_of(bootstrap, PUBLIC_TOPICS),
        max_attempts=settings.webhook_max_attempts,
        backoff_s=settings.webhook_backoff_s,
        concurrency=settings.webhook_concurrency,
    )
    scheduler.register(WEBHOOK_TIMER, feed.deliver)
    runtime.on_startup(store.ensure_indexes)
    runtime.on_startup(store.seal_secrets)  # plain or retired-key secrets; unopenable: stop
    runtime.on_startup(lambda: ensure_timer_indexes(runtime.db, WEBHOOK_TIMERS))
    runtime.on_startup(feed.resume_replays)
    runtime.in_background(scheduler.run, once_started=True)
    runtime.in_background(timers.purge_loop)
    for spec in public_topics():  # a subscriber per topic: each runs its consumer workers
        runtime.consume(
            [spec.name],
            dict.fromkeys(spec.events, feed.on_public_event),
            group=f"{FEED_GROUP}-{spec.name}",
        )
    channel = None
    if settings.notify_webhook_url and settings.notify_webhook_secret:
        url = check_url(settings.notify_webhook_url, settings.loopback_allowed)
        channel = WebhookChannel(sender, url, settings.notify_webhook_secret)
    routers = [
        subscriptions_router(store, feed, current, settings.loopback_allowed),
        feeds_router(),
    ]
    return AgencyFeeds(routers, feed, scheduler, channel)

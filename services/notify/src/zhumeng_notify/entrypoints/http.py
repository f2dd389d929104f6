"""HTTP API: delivery history. Coordinators and admins see all; anyone else their own.

No `from __future__ import annotations` here: FastAPI must see the real dependency types of
the route functions, some of which are local to `router()`.
"""

from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from zhumeng_kit.auth import Principal, require_roles
from zhumeng_kit.mongo import Doc
from zhumeng_kit.problems import Conflict, Forbidden, NotFound

from ..adapters.mongo import MongoDeliveryRepository

Current = Callable[[Request], Coroutine[Any, Any, Principal]]


class NotificationOut(BaseModel):
    id: str
    recipient_id: str
    role: str
    channel: str
    address: str | None  # masked
    locale: str
    subject: str
    body: str
    status: str  # pending | deferred | sent | failed | dead_lettered | suppressed
    attempts: int
    cause_event_id: str
    cause_event_type: str
    request_id: str
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None  # a pending retry, or the end of quiet hours
    receipt: str | None = None  # the provider's message id
    receipt_status: str | None = None  # delivered | undelivered (provider report)
    error: str | None = None

    @classmethod
    def of(cls, doc: Doc) -> "NotificationOut":
        waiting = doc.get("status") in ("pending", "deferred") and doc.get("error")
        return cls.model_validate(
            {
                **doc,
                "id": doc["_id"],
                "receipt": doc.get("provider_message_id"),
                "next_attempt_at": doc.get("lease_until")
                if waiting or doc.get("status") == "deferred"
                else None,
            }
        )


class AttemptOut(BaseModel):
    n: int
    at: datetime
    outcome: str  # sent | failed | retry | dead_lettered | suppressed | replay
    error: str | None = None


class ReceiptOut(BaseModel):
    provider: str
    status: str  # delivered | undelivered
    code: str | None = None
    reported_at: datetime | None = None
    received_at: datetime


class NotificationDetail(NotificationOut):
    attempt_log: list[AttemptOut] = []
    receipts: list[ReceiptOut] = []


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None


def router(
    deliveries: MongoDeliveryRepository,
    current: Current,
    replay: Callable[[str], Awaitable[Doc | None]],
) -> APIRouter:
    api = APIRouter(tags=["notifications"])
    Who = Annotated[Principal, Depends(current)]
    Admin = Annotated[Principal, Depends(require_roles(current, "admin"))]
    Limit = Annotated[int, Query(ge=1, le=200)]

    async def page(
        recipient_id: str | None, request_id: str | None, limit: int, cursor: str | None
    ) -> NotificationPage:
        docs, next_cursor = await deliveries.page(recipient_id, request_id, limit, cursor)
        return NotificationPage(
            items=[NotificationOut.of(d) for d in docs], next_cursor=next_cursor
        )

    @api.get("/v1/notifications", response_model=NotificationPage)
    async def list_notifications(
        who: Who,
        recipient_id: str | None = None,
        request_id: str | None = None,
        limit: Limit = 50,
        cursor: str | None = None,
    ) -> NotificationPage:
        if not who.is_staff:
            if recipient_id is not None and recipient_id != who.subject:
                raise Forbidden("you may only list your own notifications")
            recipient_id = who.subject
        return await page(recipient_id, request_id, limit, cursor)

    @api.get("/v1/people/{person_id}/notifications", response_model=NotificationPage)
    async def person_history(
        person_id: str, who: Who, limit: Limit = 50, cursor: str | None = None
    ) -> NotificationPage:
        """A person's notifications, newest first (the person, a coordinator or an admin)."""
        if not who.is_staff and who.subject != person_id:
            raise Forbidden("you may only see your own notifications")
        return await page(person_id, None, limit, cursor)

    @api.get("/v1/notifications/{delivery_id}", response_model=NotificationDetail)
    async def get_notification(delivery_id: str, who: Who) -> NotificationDetail:
        doc = await deliveries.get(delivery_id)
        if doc is None or (not who.is_staff and doc.get("recipient_id") != who.subject):
            raise NotFound(f"no notification {delivery_id}")
        return NotificationDetail.model_validate(
            {**NotificationOut.of(doc).model_dump(), **_history(doc)}
        )

    @api.post("/v1/notifications/{delivery_id}/retry", response_model=NotificationOut)
    async def retry_dead_letter(delivery_id: str, _: Admin) -> NotificationOut:
        """Send a dead-lettered delivery again, with a fresh budget of attempts."""
        doc = await replay(delivery_id)
        if doc is None:
            if await deliveries.get(delivery_id) is None:
                raise NotFound(f"no notification {delivery_id}")
            raise Conflict(f"notification {delivery_id} is not dead-lettered")
        return NotificationOut.of(doc)

    return api


def _history(doc: Doc) -> dict[str, Any]:
    return {"attempt_log": doc.get("attempt_log", []), "receipts": doc.get("receipts", [])}

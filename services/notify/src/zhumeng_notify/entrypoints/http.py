"""HTTP API: delivery history. Coordinators and admins see all; anyone else their own.

No `from __future__ import annotations` here: FastAPI must see the real dependency types of
the route functions, some of which are local to `router()`.
"""

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from zhumeng_kit.auth import Principal
from zhumeng_kit.mongo import Doc
from zhumeng_kit.problems import Forbidden, NotFound

from ..adapters.mongo import MongoDeliveryRepository


class NotificationOut(BaseModel):
    id: str
    recipient_id: str
    role: str
    channel: str
    address: str | None  # masked
    locale: str
    subject: str
    body: str
    status: str
    attempts: int
    cause_event_id: str
    cause_event_type: str
    request_id: str
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
    receipt: str | None = None
    error: str | None = None

    @classmethod
    def of(cls, doc: Doc) -> "NotificationOut":
        return cls.model_validate({**doc, "id": doc["_id"]})


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None


def router(
    deliveries: MongoDeliveryRepository,
    current: Callable[[Request], Coroutine[Any, Any, Principal]],
) -> APIRouter:
    api = APIRouter(prefix="/v1/notifications", tags=["notifications"])
    Who = Annotated[Principal, Depends(current)]

    @api.get("", response_model=NotificationPage)
    async def list_notifications(
        who: Who,
        recipient_id: str | None = None,
        request_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: str | None = None,
    ) -> NotificationPage:
        if not who.is_staff:
            if recipient_id is not None and recipient_id != who.subject:
                raise Forbidden("you may only list your own notifications")
            recipient_id = who.subject
        docs, next_cursor = await deliveries.page(recipient_id, request_id, limit, cursor)
        return NotificationPage(
            items=[NotificationOut.of(d) for d in docs], next_cursor=next_cursor
        )

    @api.get("/{delivery_id}", response_model=NotificationOut)
    async def get_notification(delivery_id: str, who: Who) -> NotificationOut:
        doc = await deliveries.get(delivery_id)
        if doc is None or (not who.is_staff and doc.get("recipient_id") != who.subject):
            raise NotFound(f"no notification {delivery_id}")
        return NotificationOut.of(doc)

    return api

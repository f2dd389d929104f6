"""HTTP API of coordinators (ADR 0009): the queue of requests in review, unmatched or escalated
to people, review (approve / reject), and reassigning an assignment to another volunteer. A
township coordinator sees and acts on their township only; a county coordinator (no township
in the token) and admins everywhere."""
# No `from __future__ import annotations` here: FastAPI resolves the handlers' local
# Annotated dependencies at definition time.

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from zhumeng_kit.auth import Principal, require_roles

from ..app.lifecycle_service import LifecycleService
from ..app.review import ReviewService
from .lifecycle_http import view

CurrentPrincipal = Callable[[Request], Coroutine[Any, Any, Principal]]


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=500, description="why (kept with the event)")


class ReassignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    volunteer_id: str = Field(min_length=1, max_length=64)


def coordinator_router(
    reviews: ReviewService, lifecycle: LifecycleService, current: CurrentPrincipal
) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["coordinator"])
    Staff = Annotated[Principal, Depends(require_roles(current, "coordinator"))]

    @api.get("/coordinator/queue")
    async def queue(who: Staff, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
        """Requests that need a person: in review, unmatched, or escalated to the township
        liaison or the county centre (oldest first)."""
        return {"items": await reviews.queue(who, limit)}

    @api.post("/matches/{request_id}/review/approve")
    async def approve(
        request_id: str, who: Staff, body: ReviewBody | None = None
    ) -> dict[str, Any]:
        note = body.note if body else None
        return view(await reviews.review(who, request_id, "approved", note), who)

    @api.post("/matches/{request_id}/review/reject")
    async def reject(request_id: str, who: Staff, body: ReviewBody | None = None) -> dict[str, Any]:
        note = body.note if body else None
        return view(await reviews.review(who, request_id, "rejected", note), who)

    @api.post("/matches/{request_id}/assignments/{assignment_id}/reassign")
    async def reassign(
        request_id: str, assignment_id: str, body: ReassignBody, who: Staff
    ) -> dict[str, Any]:
        match = await lifecycle.reassign(who, request_id, assignment_id, body.volunteer_id)
        return view(match, who)

    return api

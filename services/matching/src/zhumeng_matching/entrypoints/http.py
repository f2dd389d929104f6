"""HTTP API of matching: the decision and its explanation, and volunteers' loads."""
# No `from __future__ import annotations` here: FastAPI resolves the handlers' local
# Annotated dependencies at definition time.

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from zhumeng_kit.auth import Principal
from zhumeng_kit.problems import NotFound
from zhumeng_kit.views import CompactedTopicsReader

from ..adapters.mongo_stores import MongoDecisionStore
from ..domain.index import VolunteerIndex

CurrentPrincipal = Callable[[Request], Coroutine[Any, Any, Principal]]


def router(
    decisions: MongoDecisionStore,
    index: VolunteerIndex,
    catalog: CompactedTopicsReader,
    current: CurrentPrincipal,
) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["matching"])
    Anyone = Annotated[Principal, Depends(current)]

    @api.get("/decisions/{request_id}")
    async def get_decision(request_id: str, who: Anyone) -> dict[str, Any]:
        """The matching outcome of a request with one figure per criterion. Staff see every
        decision, a volunteer the ones that assigned them."""
        doc = await decisions.get(request_id)
        if doc is None or not (who.is_staff or doc.get("volunteer_id") == who.subject):
            raise NotFound(f"no decision for request {request_id!r}")
        doc.pop("_v", None)
        doc.pop("has_outbox", None)
        doc["request_id"] = doc.pop("_id")
        return doc

    @api.get("/read-model")
    async def read_model(who: Anyone) -> dict[str, Any]:
        """Size of the in-memory volunteer index, and how far the catalog views have read each
        topic (partition -> next offset; compare with the topics' end offsets) (operations)."""
        if not who.is_staff:
            raise NotFound("not found")
        return {
            "volunteers": len(index),
            "max_radius_km": index.max_radius_km,
            "catalog_positions": catalog.positions(),
        }

    return api

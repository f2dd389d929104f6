"""HTTP API of batch mode: the record of each window's run (coordinators)."""
# No `from __future__ import annotations` here: FastAPI resolves the handlers' local
# Annotated dependencies at definition time.

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from zhumeng_kit.auth import Principal, require_roles

from ..adapters.batch_store import MongoBatchStore

CurrentPrincipal = Callable[[Request], Coroutine[Any, Any, Principal]]


def batch_router(store: MongoBatchStore, current: CurrentPrincipal) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["batch"])
    Staff = Annotated[Principal, Depends(require_roles(current, "coordinator"))]

    @api.get("/batch-runs")
    async def runs(
        who: Staff,
        service_type_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        """Each window's run, newest first: its requests, the pairs assigned, those skipped
        (capacity taken meanwhile), the min-cost batch's cost beside greedy's on the same
        data, and the time each took."""
        docs = await store.runs(service_type_id, limit)
        return {"items": [{"run_id": d.pop("_id"), **d} for d in docs]}

    return api

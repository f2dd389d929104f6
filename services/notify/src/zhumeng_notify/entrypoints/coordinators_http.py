"""HTTP API of notify's coordinator directory (admin only): who hears of reviews and
escalations. Responses show contacts masked; contacts are never logged.

No `from __future__ import annotations` here: FastAPI must see the real dependency types of
the route functions, some of which are local to `router()`.
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from zhumeng_kit.auth import Principal, require_roles
from zhumeng_kit.pii import mask_email, mask_phone
from zhumeng_kit.problems import NotFound, Unprocessable

from ..adapters.coordinator_store import MongoCoordinatorStore
from ..domain.recipients import Coordinator

ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
CoordinatorId = Annotated[str, Path(pattern=ID_PATTERN, min_length=1, max_length=64)]


class CoordinatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    scope: Literal["township", "county"] = "township"
    township_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    locale: Literal["zh-CN", "en"] = "zh-CN"
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9]{6,15}$")
    email: EmailStr | None = None

    @model_validator(mode="after")
    def _scoped(self) -> "CoordinatorIn":
        if self.scope == "township" and not self.township_id:
            raise ValueError("a township coordinator needs a township_id")
        if self.scope == "county" and self.township_id:
            raise ValueError("a county centre coordinator has no township_id")
        if not self.phone and not self.email:
            raise ValueError("give a phone or an email to reach the coordinator")
        return self


class CoordinatorOut(BaseModel):
    id: str
    name: str
    scope: Literal["township", "county"]
    township_id: str | None
    locale: str
    phone: str | None  # masked
    email: str | None  # masked

    @classmethod
    def of(cls, c: Coordinator) -> "CoordinatorOut":
        return cls(
            id=c.id,
            name=c.name,
            scope=c.scope,
            township_id=c.township_id,
            locale=c.locale,
            phone=mask_phone(c.phone),
            email=mask_email(c.email),
        )


class CoordinatorList(BaseModel):
    items: list[CoordinatorOut]


def router(
    store: MongoCoordinatorStore,
    current: Callable[[Request], Coroutine[Any, Any, Principal]],
) -> APIRouter:
    api = APIRouter(prefix="/v1/coordinators", tags=["coordinators"])
    Admin = Annotated[Principal, Depends(require_roles(current, "admin"))]

    @api.put("/{coordinator_id}", response_model=CoordinatorOut)
    async def put_coordinator(
        coordinator_id: CoordinatorId, body: CoordinatorIn, _: Admin, response: Response
    ) -> CoordinatorOut:
        coordinator = Coordinator(
            id=coordinator_id,
            name=body.name,
            township_id=body.township_id if body.scope == "township" else None,
            locale=body.locale,
            phone=body.phone,
            email=str(body.email) if body.email else None,
        )
        created = await store.put(coordinator)
        response.status_code = 201 if created else 200
        return CoordinatorOut.of(coordinator)

    @api.get("/{coordinator_id}", response_model=CoordinatorOut)
    async def get_coordinator(coordinator_id: CoordinatorId, _: Admin) -> CoordinatorOut:
        coordinator = await store.get(coordinator_id)
        if coordinator is None:
            raise NotFound(f"no coordinator {coordinator_id}")
        return CoordinatorOut.of(coordinator)

    @api.get("", response_model=CoordinatorList)
    async def list_coordinators(
        _: Admin,
        township_id: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=64)] = None,
        scope: Literal["township", "county"] = "township",
    ) -> CoordinatorList:
        """The coordinators of a township, or with scope=county those of the county centre."""
        if scope == "township" and not township_id:
            raise Unprocessable("give a township_id, or scope=county")
        found = await store.of_township(township_id if scope == "township" else None)
        return CoordinatorList(items=[CoordinatorOut.of(c) for c in found])

    return api

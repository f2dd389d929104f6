"""HTTP API of the catalog. Reads: any authenticated caller; writes: coordinator or admin,
within the coordinator's scope (enforced by the use cases: `app/scope.py`)."""

# No `from __future__ import annotations` here: FastAPI must see the real types of the
# dependencies built inside `build_router` (string annotations would not resolve).
from enum import Enum
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict

from zhumeng_contracts.events.common import GeoPoint, Language, Locale, WeeklySlot
from zhumeng_kit.auth import Principal, principal_dependency, require_roles
from zhumeng_kit.problems import Unprocessable
from zhumeng_kit.settings import ServiceSettings

from ..app.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from ..app.use_cases import Catalog
from ..domain.models import (
    Place,
    PlaceCreate,
    PlacePatch,
    ServiceType,
    ServiceTypeCreate,
    ServiceTypePatch,
    Team,
    TeamCreate,
    TeamPatch,
    Volunteer,
    VolunteerCreate,
    VolunteerPatch,
    present_volunteer,
)
from ..domain.rules import ID_PATTERN, parse_point

T = TypeVar("T")

EntityId = Annotated[str, Path(pattern=ID_PATTERN, max_length=64, description="entity id")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[str | None, Query(max_length=512, description="from next_cursor")]
Text = Annotated[str | None, Query(max_length=80, description="text in the names")]
Filter = Annotated[str | None, Query(max_length=64)]


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class VolunteerOut(BaseModel):
    """A volunteer as one caller may see them: phone and email masked unless admin or self,
    full name hidden from non-staff."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str | None
    display_name: str
    phone: str | None
    email: str | None
    locale: Locale
    skills: list[str]
    certifications: list[str]
    home_place_id: str
    township_id: str
    home: GeoPoint
    radius_km: float
    availability: list[WeeklySlot]
    capacity: int
    languages: list[Language]
    team_ids: list[str]
    active: bool
    version: int
    distance_km: float | None = None


def _page(page: Page[Any]) -> dict[str, Any]:
    return {"items": page.items, "next_cursor": page.next_cursor}


def build_router(catalog: Catalog, settings: ServiceSettings) -> APIRouter:
    current = principal_dependency(settings)
    Reader = Annotated[Principal, Depends(current)]
    Writer = Annotated[Principal, Depends(require_roles(current, "coordinator"))]
    api = APIRouter(prefix="/v1")

    # ---------------------------------------------------------------- service types
    tag: list[str | Enum] = ["service types"]

    @api.post("/service-types", status_code=201, tags=tag)
    async def create_service_type(body: ServiceTypeCreate, who: Writer) -> ServiceType:
        return await catalog.create_service_type(body, by=who)

    @api.get("/service-types", tags=tag)
    async def list_service_types(
        _: Reader,
        q: Text = None,
        category: Filter = None,
        skill: Filter = None,
        include_inactive: bool = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> PageOut[ServiceType]:
        page = await catalog.list_service_types(q, category, skill, include_inactive, limit, cursor)
        return PageOut[ServiceType](**_page(page))

    @api.get("/service-types/{entity_id}", tags=tag)
    async def get_service_type(entity_id: EntityId, _: Reader) -> ServiceType:
        return await catalog.get_service_type(entity_id)

    @api.patch("/service-types/{entity_id}", tags=tag)
    async def update_service_type(
        entity_id: EntityId, body: ServiceTypePatch, who: Writer
    ) -> ServiceType:
        return await catalog.update_service_type(entity_id, body, by=who)

    @api.delete("/service-types/{entity_id}", tags=tag)
    async def deactivate_service_type(entity_id: EntityId, who: Writer) -> ServiceType:
        return await catalog.deactivate_service_type(entity_id, by=who)

    # ---------------------------------------------------------------- places
    tag = ["places"]

    @api.post("/places", status_code=201, tags=tag)
    async def create_place(body: PlaceCreate, who: Writer) -> Place:
        return await catalog.create_place(body, by=who)

    @api.get("/places", tags=tag)
    async def list_places(
        _: Reader,
        q: Text = None,
        kind: Literal["county", "township", "village"] | None = None,
        township_id: Filter = None,
        parent_id: Filter = None,
        include_inactive: bool = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> PageOut[Place]:
        page = await catalog.list_places(
            q, kind, township_id, parent_id, include_inactive, limit, cursor
        )
        return PageOut[Place](**_page(page))

    @api.get("/places/{entity_id}", tags=tag)
    async def get_place(entity_id: EntityId, _: Reader) -> Place:
        return await catalog.get_place(entity_id)

    @api.patch("/places/{entity_id}", tags=tag)
    async def update_place(entity_id: EntityId, body: PlacePatch, who: Writer) -> Place:
        return await catalog.update_place(entity_id, body, by=who)

    @api.delete("/places/{entity_id}", tags=tag)
    async def deactivate_place(entity_id: EntityId, who: Writer) -> Place:
        return await catalog.deactivate_place(entity_id, by=who)

    # ---------------------------------------------------------------- volunteers
    tag = ["volunteers"]

    def show(v: Volunteer, who: Principal, distance: float | None = None) -> VolunteerOut:
        return VolunteerOut(**present_volunteer(v, who.subject, who.roles, distance))

    @api.post("/volunteers", status_code=201, tags=tag)
    async def create_volunteer(body: VolunteerCreate, who: Writer) -> VolunteerOut:
        return show(await catalog.create_volunteer(body, by=who), who)

    @api.get("/volunteers", tags=tag)
    async def search_volunteers(
        who: Reader,
        skill: Filter = None,
        certification: Filter = None,
        township_id: Filter = None,
        language: Language | None = None,
        team_id: Filter = None,
        near: Annotated[str | None, Query(max_length=64, description="lat,lon")] = None,
        within_km: Annotated[float | None, Query(gt=0, le=500)] = None,
        include_inactive: bool = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> PageOut[VolunteerOut]:
        point = None
        if near is not None:
            try:
                point = parse_point(near)
            except ValueError as exc:
                raise Unprocessable(f"near must be 'lat,lon' in degrees: {exc}") from exc
        page = await catalog.search_volunteers(
            skill,
            certification,
            township_id,
            language,
            team_id,
            point,
            within_km,
            include_inactive,
            limit,
            cursor,
        )
        items = [show(v, who, page.distances.get(v.id)) for v in page.items]
        return PageOut[VolunteerOut](items=items, next_cursor=page.next_cursor)

    @api.get("/volunteers/{entity_id}", tags=tag)
    async def get_volunteer(entity_id: EntityId, who: Reader) -> VolunteerOut:
        return show(await catalog.get_volunteer(entity_id), who)

    @api.patch("/volunteers/{entity_id}", tags=tag)
    async def update_volunteer(
        entity_id: EntityId, body: VolunteerPatch, who: Writer
    ) -> VolunteerOut:
        return show(await catalog.update_volunteer(entity_id, body, by=who), who)

    @api.delete("/volunteers/{entity_id}", tags=tag)
    async def deactivate_volunteer(entity_id: EntityId, who: Writer) -> VolunteerOut:
        return show(await catalog.deactivate_volunteer(entity_id, by=who), who)

    # ---------------------------------------------------------------- teams
    tag = ["teams"]

    @api.post("/teams", status_code=201, tags=tag)
    async def create_team(body: TeamCreate, who: Writer) -> Team:
        return await catalog.create_team(body, by=who)

    @api.get("/teams", tags=tag)
    async def list_teams(
        _: Reader,
        q: Text = None,
        township_id: Filter = None,
        member_id: Filter = None,
        skill: Filter = None,
        include_inactive: bool = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> PageOut[Team]:
        page = await catalog.list_teams(
            q, township_id, member_id, skill, include_inactive, limit, cursor
        )
        return PageOut[Team](**_page(page))

    @api.get("/teams/{entity_id}", tags=tag)
    async def get_team(entity_id: EntityId, _: Reader) -> Team:
        return await catalog.get_team(entity_id)

    @api.patch("/teams/{entity_id}", tags=tag)
    async def update_team(entity_id: EntityId, body: TeamPatch, who: Writer) -> Team:
        return await catalog.update_team(entity_id, body, by=who)

    @api.delete("/teams/{entity_id}", tags=tag)
    async def deactivate_team(entity_id: EntityId, who: Writer) -> Team:
        return await catalog.deactivate_team(entity_id, by=who)

    return api

"""The catalog's use cases: create, change, deactivate, read and search its entities.

Every change is one single-document write of the new state together with the records that
announce it (the outbox). Updates are compare-and-set on the stored revision: on a lost race
the state is read again and the change recomputed, a few times, then 409.

Team membership is owned by both sides for convenience: a team's `member_ids` and each
volunteer's `team_ids` are kept in step by the use cases, each side with its own
single-document write (eventually consistent if the process dies in between; the next edit of
either side repairs it).

Every change is made `by` someone, and only within their scope (`scope.py`): checked on the
state a change replaces and on the state it writes, inside the compare-and-set loop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from zhumeng_kit.auth import Principal
from zhumeng_kit.ids import new_id
from zhumeng_kit.problems import Conflict, NotFound, Unprocessable

from ..domain.models import (
    Entity,
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
    changed,
    home_from,
    next_version,
    place_lineage,
    records_of,
    state_of,
    validated,
)
from ..domain.rules import Query, bounding_box, haversine_km
from .pagination import DEFAULT_LIMIT, Page, decode_cursor, encode_cursor
from .ports import CatalogRepository, Kind
from .scope import check_county_level, check_place, check_team, check_volunteer

log = logging.getLogger("zhumeng.catalog")

E = TypeVar("E", bound=Entity)
MODELS: dict[Kind, type[Entity]] = {
    "service_types": ServiceType,
    "places": Place,
    "volunteers": Volunteer,
    "teams": Team,
}
PREFIX: dict[Kind, str] = {
    "service_types": "st",
    "places": "pl",
    "volunteers": "vol",
    "teams": "team",
}
NOUN: dict[Kind, str] = {
    "service_types": "service type",
    "places": "place",
    "volunteers": "volunteer",
    "teams": "team",
}
CAS_ATTEMPTS = 8
NEAR_SCAN_LIMIT = 50_000  # a catalog-side search; matching has its own spatial index

Compute = Callable[[E], Awaitable[dict[str, Any] | None]]
Allowed = Callable[[E], None]  # raises Forbidden unless the caller may write that state


def _anyone(_: Entity) -> None:
    """No check on the state: for service types (checked up front, on the caller alone) and
    for the use cases' own bookkeeping (team membership kept in step on the other side)."""


class Catalog:
    def __init__(self, repo: CatalogRepository) -> None:
        self.repo = repo

    # ------------------------------------------------------------------ generic machinery

    async def _load(self, kind: Kind, model: type[E], entity_id: str) -> E | None:
        stored = await self.repo.get(kind, entity_id)
        return None if stored is None else model.model_validate(stored.state)

    async def _get(self, kind: Kind, model: type[E], entity_id: str) -> E:
        entity = await self._load(kind, model, entity_id)
        if entity is None:
            raise NotFound(f"no {NOUN[kind]} with id {entity_id!r}")
        return entity

    async def exists(self, kind: Kind, entity_id: str) -> bool:
        return await self.repo.get(kind, entity_id) is not None

    async def _insert(self, kind: Kind, entity: E) -> E:
        if not await self.repo.insert(kind, state_of(entity), records_of(entity)):
            raise Conflict(f"a {NOUN[kind]} with id {entity.id!r} already exists")
        return entity

    async def _change(
        self, kind: Kind, model: type[E], entity_id: str, compute: Compute[E], allowed: Allowed[E]
    ) -> tuple[E, E | None]:
        """Apply a change with compare-and-set; returns (new, old) — old is None if unchanged.

        `allowed` vets both the state replaced and the state written (no-ops included)."""
        for _ in range(CAS_ATTEMPTS):
            stored = await self.repo.get(kind, entity_id)
            if stored is None:
                raise NotFound(f"no {NOUN[kind]} with id {entity_id!r}")
            current = model.model_validate(stored.state)
            allowed(current)
            data = await compute(current)
            if data is None:
                return current, None
            new = next_version(current, data)
            allowed(new)
            if not changed(current, new):
                return current, None
            if await self.repo.update(
                kind, entity_id, stored.rev, state_of(new), records_of(new, current)
            ):
                return new, current
        raise Conflict(f"the {NOUN[kind]} {entity_id!r} is being changed concurrently; retry")

    async def _page(
        self, kind: Kind, model: type[E], query: Query, limit: int, cursor: str | None
    ) -> Page[E]:
        after = decode_cursor(cursor).get("a")
        rows = await self.repo.find(kind, query, after, limit + 1)
        items = [model.model_validate(r) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor({"a": items[-1].id}) if more and items else None)

    async def _deactivate(
        self, kind: Kind, model: type[E], entity_id: str, allowed: Allowed[E]
    ) -> E:
        async def off(_: E) -> dict[str, Any]:
            return {"active": False}

        new, _old = await self._change(kind, model, entity_id, off, allowed)
        return new

    # ------------------------------------------------------------------ service types

    async def create_service_type(self, body: ServiceTypeCreate, *, by: Principal) -> ServiceType:
        check_county_level(by, "service types")
        data = body.model_dump()
        data["id"] = body.id or new_id(PREFIX["service_types"])
        return await self._insert("service_types", validated(ServiceType, data))

    async def get_service_type(self, entity_id: str) -> ServiceType:
        return await self._get("service_types", ServiceType, entity_id)

    async def update_service_type(
        self, entity_id: str, patch: ServiceTypePatch, *, by: Principal
    ) -> ServiceType:
        check_county_level(by, "service types")

        async def compute(_: ServiceType) -> dict[str, Any]:
            return patch.model_dump(exclude_unset=True)

        new, _ = await self._change("service_types", ServiceType, entity_id, compute, _anyone)
        return new

    async def deactivate_service_type(self, entity_id: str, *, by: Principal) -> ServiceType:
        check_county_level(by, "service types")
        return await self._deactivate("service_types", ServiceType, entity_id, _anyone)

    async def list_service_types(
        self,
        q: str | None = None,
        category: str | None = None,
        skill: str | None = None,
        include_inactive: bool = False,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[ServiceType]:
        query = Query.build(
            equals=[("category", _norm(category)), ("required_skills", _norm(skill))],
            text=(("name_zh", "name_en", "id"), (q or "").strip()),
            active_only=not include_inactive,
        )
        return await self._page("service_types", ServiceType, query, limit, cursor)

    # ------------------------------------------------------------------ places

    async def _parent(self, parent_id: str | None) -> Place | None:
        if parent_id is None:
            return None
        parent = await self._load("places", Place, parent_id)
        if parent is None:
            raise Unprocessable(f"parent place {parent_id!r} does not exist")
        return parent

    async def create_place(self, body: PlaceCreate, *, by: Principal) -> Place:
        data = body.model_dump()
        data["id"] = body.id or new_id(PREFIX["places"])
        data.update(place_lineage(data["id"], body.kind, await self._parent(body.parent_id)))
        place = validated(Place, data)
        check_place(by, place)
        return await self._insert("places", place)

    async def get_place(self, entity_id: str) -> Place:
        return await self._get("places", Place, entity_id)

    async def update_place(self, entity_id: str, patch: PlacePatch, *, by: Principal) -> Place:
        data = patch.model_dump(exclude_unset=True)

        async def compute(current: Place) -> dict[str, Any]:
            out = dict(data)
            if "parent_id" in data:
                parent = await self._parent(data["parent_id"])
                out.update(place_lineage(current.id, current.kind, parent))
            return out

        new, _ = await self._change(
            "places", Place, entity_id, compute, lambda p: check_place(by, p)
        )
        return new

    async def deactivate_place(self, entity_id: str, *, by: Principal) -> Place:
        return await self._deactivate("places", Place, entity_id, lambda p: check_place(by, p))

    async def list_places(
        self,
        q: str | None = None,
        kind: str | None = None,
        township_id: str | None = None,
        parent_id: str | None = None,
        include_inactive: bool = False,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Place]:
        query = Query.build(
            equals=[("kind", kind), ("township_id", township_id), ("parent_id", parent_id)],
            text=(("name_zh", "name_en", "id"), (q or "").strip()),
            active_only=not include_inactive,
        )
        return await self._page("places", Place, query, limit, cursor)

    # ------------------------------------------------------------------ volunteers

    async def _home_place(self, place_id: str) -> Place:
        place = await self._load("places", Place, place_id)
        if place is None:
            raise Unprocessable(f"home place {place_id!r} does not exist")
        return place

    async def _check_exist(self, kind: Kind, ids: list[str], what: str) -> None:
        if not ids:
            return
        found = await self.repo.get_many(kind, ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise Unprocessable(f"unknown {what}: {', '.join(missing)}", missing=missing)

    async def create_volunteer(self, body: VolunteerCreate, *, by: Principal) -> Volunteer:
        data = body.model_dump(exclude={"home"})
        data["id"] = body.id or new_id(PREFIX["volunteers"])
        data.update(home_from(await self._home_place(body.home_place_id)))
        if body.home is not None:
            data["home"] = body.home.model_dump()
            data["home_from_place"] = False
        volunteer = validated(Volunteer, data)
        check_volunteer(by, volunteer)
        await self._check_exist("teams", body.team_ids, "teams")
        volunteer = await self._insert("volunteers", volunteer)
        for team_id in volunteer.team_ids:
            await self._set_team_member(team_id, volunteer.id, True)
        return volunteer

    async def get_volunteer(self, entity_id: str) -> Volunteer:
        return await self._get("volunteers", Volunteer, entity_id)

    async def update_volunteer(
        self, entity_id: str, patch: VolunteerPatch, *, by: Principal
    ) -> Volunteer:
        data = patch.model_dump(exclude_unset=True)
        if "team_ids" in data:
            await self._check_exist("teams", data["team_ids"] or [], "teams")

        async def compute(current: Volunteer) -> dict[str, Any]:
            out = {k: v for k, v in data.items() if k != "home"}
            moved = "home_place_id" in data and data["home_place_id"] != current.home_place_id
            if moved or ("home" in data and data["home"] is None):
                place_id = data.get("home_place_id") or current.home_place_id
                out.update(home_from(await self._home_place(place_id)))
                out["home_from_place"] = True
            if data.get("home") is not None:
                out["home"] = data["home"]
                out["home_from_place"] = False
            return out

        new, old = await self._change(
            "volunteers", Volunteer, entity_id, compute, lambda v: check_volunteer(by, v)
        )
        if old is not None:
            for team_id in set(new.team_ids) - set(old.team_ids):
                await self._set_team_member(team_id, new.id, True)
            for team_id in set(old.team_ids) - set(new.team_ids):
                await self._set_team_member(team_id, new.id, False)
        return new

    async def deactivate_volunteer(self, entity_id: str, *, by: Principal) -> Volunteer:
        return await self._deactivate(
            "volunteers", Volunteer, entity_id, lambda v: check_volunteer(by, v)
        )

    async def search_volunteers(
        self,
        skill: str | None = None,
        certification: str | None = None,
        township_id: str | None = None,
        language: str | None = None,
        team_id: str | None = None,
        near: tuple[float, float] | None = None,
        within_km: float | None = None,
        include_inactive: bool = False,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Volunteer]:
        """Filters combine with AND. With `near`, results come nearest first (and each with
        its distance); `within_km` then bounds the distance."""
        if within_km is not None and near is None:
            raise Unprocessable("within_km needs near=lat,lon")
        ranges: list[tuple[str, float, float]] = []
        if near is not None and within_km is not None:
            lat_lo, lat_hi, lon_lo, lon_hi = bounding_box(near[0], near[1], within_km)
            ranges = [("home.lat", lat_lo, lat_hi), ("home.lon", lon_lo, lon_hi)]
        query = Query.build(
            equals=[
                ("skills", _norm(skill)),
                ("certifications", _norm(certification)),
                ("township_id", township_id),
                ("languages", language),
                ("team_ids", team_id),
            ],
            ranges=ranges,
            active_only=not include_inactive,
        )
        if near is None:
            return await self._page("volunteers", Volunteer, query, limit, cursor)
        return await self._nearest(query, near, within_km, limit, cursor)

    async def _nearest(
        self,
        query: Query,
        near: tuple[float, float],
        within_km: float | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Volunteer]:
        position = decode_cursor(cursor)
        start = (float(position.get("d", -1.0)), str(position.get("a", "")))
        found: list[tuple[float, str, dict[str, Any]]] = []
        after: str | None = None
        scanned = 0
        while scanned < NEAR_SCAN_LIMIT:
            rows = await self.repo.find("volunteers", query, after, 1000)
            if not rows:
                break
            scanned += len(rows)
            after = rows[-1]["id"]
            for row in rows:
                home = row["home"]
                d = round(haversine_km(near[0], near[1], home["lat"], home["lon"]), 6)
                if within_km is not None and d > within_km:
                    continue
                if (d, row["id"]) > start:
                    found.append((d, row["id"], row))
        found.sort(key=lambda t: (t[0], t[1]))
        chosen = found[:limit]
        items = [Volunteer.model_validate(row) for _, _, row in chosen]
        next_cursor = None
        if len(found) > limit and chosen:
            next_cursor = encode_cursor({"d": chosen[-1][0], "a": chosen[-1][1]})
        return Page(items, next_cursor, {i: d for d, i, _ in chosen})

    async def _set_volunteer_team(self, volunteer_id: str, team_id: str, member: bool) -> None:
        async def compute(v: Volunteer) -> dict[str, Any] | None:
            ids = [t for t in v.team_ids if t != team_id] + ([team_id] if member else [])
            if set(ids) == set(v.team_ids):
                return None
            if len(ids) > 10:
                log.warning("volunteer %s is in too many teams; not adding %s", v.id, team_id)
                return None
            return {"team_ids": ids}

        try:
            await self._change("volunteers", Volunteer, volunteer_id, compute, _anyone)
        except NotFound:
            log.warning("team %s lists unknown volunteer %s", team_id, volunteer_id)

    # ------------------------------------------------------------------ teams

    async def _check_team_refs(self, data: dict[str, Any]) -> None:
        members = list(data.get("member_ids") or [])
        lead = data.get("lead_volunteer_id")
        if lead and lead not in members:
            members.append(lead)
        await self._check_exist("volunteers", members, "volunteers")
        if data.get("township_id"):
            place = await self._load("places", Place, data["township_id"])
            if place is None or place.kind != "township":
                raise Unprocessable(f"township {data['township_id']!r} does not exist")

    async def create_team(self, body: TeamCreate, *, by: Principal) -> Team:
        data = body.model_dump()
        data["id"] = body.id or new_id(PREFIX["teams"])
        team = validated(Team, data)
        check_team(by, team)
        await self._check_team_refs(data)
        team = await self._insert("teams", team)
        for vid in team.member_ids:
            await self._set_volunteer_team(vid, team.id, True)
        return team

    async def get_team(self, entity_id: str) -> Team:
        return await self._get("teams", Team, entity_id)

    async def update_team(self, entity_id: str, patch: TeamPatch, *, by: Principal) -> Team:
        data = patch.model_dump(exclude_unset=True)
        await self._check_team_refs(data)

        async def compute(_: Team) -> dict[str, Any]:
            return data

        new, old = await self._change(
            "teams", Team, entity_id, compute, lambda t: check_team(by, t)
        )
        if old is not None:
            for vid in set(new.member_ids) - set(old.member_ids):
                await self._set_volunteer_team(vid, new.id, True)
            for vid in set(old.member_ids) - set(new.member_ids):
                await self._set_volunteer_team(vid, new.id, False)
        return new

    async def deactivate_team(self, entity_id: str, *, by: Principal) -> Team:
        return await self._deactivate("teams", Team, entity_id, lambda t: check_team(by, t))

    async def list_teams(
        self,
        q: str | None = None,
        township_id: str | None = None,
        member_id: str | None = None,
        skill: str | None = None,
        include_inactive: bool = False,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Team]:
        query = Query.build(
            equals=[
                ("township_id", township_id),
                ("member_ids", member_id),
                ("skills", _norm(skill)),
            ],
            text=(("name", "id"), (q or "").strip()),
            active_only=not include_inactive,
        )
        return await self._page("teams", Team, query, limit, cursor)

    async def _set_team_member(self, team_id: str, volunteer_id: str, member: bool) -> None:
        async def compute(t: Team) -> dict[str, Any] | None:
            ids = [v for v in t.member_ids if v != volunteer_id]
            if member:
                ids.append(volunteer_id)
            elif t.lead_volunteer_id == volunteer_id:
                return {"member_ids": ids, "lead_volunteer_id": None}
            if set(ids) == set(t.member_ids):
                return None
            if len(ids) > 200:
                log.warning("team %s is full; not adding %s", t.id, volunteer_id)
                return None
            return {"member_ids": ids}

        try:
            await self._change("teams", Team, team_id, compute, _anyone)
        except NotFound:
            log.warning("volunteer %s lists unknown team %s", volunteer_id, team_id)


def _norm(tag: str | None) -> str | None:
    if tag is None:
        return None
    return tag.strip().lower().replace("-", "_").replace(" ", "_") or None

"""HTTP API of trip pooling: volunteers announce the trips they already plan, list and cancel
them; matching puts rides, parcels and produce along the way onto them."""
# No `from __future__ import annotations` here: FastAPI resolves the handlers' local
# Annotated dependencies at definition time.

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from zhumeng_contracts.events.common import GeoPoint, Id, TimeWindow
from zhumeng_kit.auth import Principal, require_roles

from ..app.ports import Doc
from ..app.trips_service import TripPlan, TripsService, Waypoint

CurrentPrincipal = Callable[[Request], Coroutine[Any, Any, Principal]]


class PlaceOrPoint(BaseModel):
    """A village or township of the catalog (`place_id`), or a point."""

    model_config = ConfigDict(extra="forbid")

    place_id: Id | None = None
    point: GeoPoint | None = None

    @model_validator(mode="after")
    def _one(self) -> "PlaceOrPoint":
        if (self.place_id is None) == (self.point is None):
            raise ValueError("give exactly one of place_id and point")
        return self

    def waypoint(self) -> Waypoint:
        return Waypoint(self.place_id, self.point)


class TripIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    origin: PlaceOrPoint = Field(alias="from")
    destination: PlaceOrPoint = Field(alias="to")
    waypoints: list[PlaceOrPoint] = Field(default_factory=list, max_length=8)
    departure: TimeWindow = Field(description="when the volunteer leaves, at the earliest/latest")
    seats: int = Field(default=0, ge=0, le=12, description="seats for passengers")
    cargo_kg: float = Field(default=0, ge=0, le=5000)


def present(doc: Doc) -> dict[str, Any]:
    trip = doc["trip"]
    return {
        "trip_id": doc["_id"],
        "volunteer_id": doc["volunteer_id"],
        "status": doc["status"],
        "from": {"place_id": doc.get("from_place_id"), "point": trip["origin"]},
        "to": {"place_id": doc.get("to_place_id"), "point": trip["destination"]},
        "waypoints": trip["waypoints"],
        "departure": trip["departure"],
        "seats": trip["seats"],
        "cargo_kg": trip["cargo_kg"],
        "committed": {"seats": doc["load"]["seats"], "cargo_kg": doc["load"]["cargo_kg"]},
        "stops": doc["load"]["stops"],
        "request_ids": doc.get("carried_ids", []),
    }


def trips_router(trips: TripsService, current: CurrentPrincipal) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["trips"])
    Volunteer = Annotated[Principal, Depends(require_roles(current, "volunteer"))]

    @api.post("/trips", status_code=201)
    async def announce(body: TripIn, who: Volunteer) -> dict[str, Any]:
        """Announce a planned trip; requests waiting along the way join it at once."""
        plan = TripPlan(
            origin=body.origin.waypoint(),
            destination=body.destination.waypoint(),
            departure=body.departure,
            seats=body.seats,
            cargo_kg=body.cargo_kg,
            waypoints=[w.waypoint() for w in body.waypoints],
        )
        return present(await trips.announce(who, plan))

    @api.get("/trips")
    async def mine(
        who: Volunteer, limit: Annotated[int, Query(ge=1, le=200)] = 50
    ) -> dict[str, Any]:
        return {"items": [present(d) for d in await trips.mine(who, limit)]}

    @api.post("/trips/{trip_id}/cancel")
    async def cancel(trip_id: str, who: Volunteer) -> dict[str, Any]:
        """Cancel an own trip: its requests are withdrawn and placed on other trips if any."""
        return present(await trips.cancel(who, trip_id))

    return api

"""Small pure rules shared by the catalog's models: ids, tags, geography, queries."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field

# Ids a client may choose (slugs such as `haircut`, `pl_longxun_v1`, `vol_0001`). They are a
# subset of the contracts' `Id` pattern, so a record can always be built from them.
ID_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
Slug = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=64)]

_TAG = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
EARTH_RADIUS_KM = 6371.0088


def _tags(values: list[str]) -> list[str]:
    """Skills, certifications and categories: lower-case snake_case, de-duplicated, ordered."""
    out: list[str] = []
    for raw in values:
        tag = raw.strip().lower().replace("-", "_").replace(" ", "_")
        if not _TAG.match(tag):
            raise ValueError(f"{raw!r} is not a valid tag (letters, digits, underscores)")
        if tag not in out:
            out.append(tag)
    return out


def _tag(value: str) -> str:
    return _tags([value])[0]


Tags = Annotated[list[str], AfterValidator(_tags)]
Tag = Annotated[str, AfterValidator(_tag)]


def _unique(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


UniqueIds = Annotated[list[Slug], AfterValidator(_unique)]


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def bounding_box(lat: float, lon: float, km: float) -> tuple[float, float, float, float]:
    """(lat_min, lat_max, lon_min, lon_max) enclosing the circle of `km` around a point."""
    dlat = math.degrees(km / EARTH_RADIUS_KM)
    coslat = max(math.cos(math.radians(lat)), 1e-6)
    dlon = min(180.0, math.degrees(km / (EARTH_RADIUS_KM * coslat)))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


def parse_point(text: str) -> tuple[float, float]:
    """`"25.49,118.24"` -> (lat, lon); ValueError when malformed or out of range."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError("near must be 'lat,lon'")
    lat, lon = (float(p.strip()) for p in parts)
    if not (math.isfinite(lat) and math.isfinite(lon)) or not (
        -90 <= lat <= 90 and -180 <= lon <= 180
    ):
        raise ValueError("near is out of range")
    return lat, lon


def _get(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True)
class Query:
    """A store-independent filter over entity states (plain dicts).

    - `equals`: field == value, or, for a list field, the list contains value;
    - `text`: case-insensitive substring in any of the given fields;
    - `ranges`: lo <= field <= hi on numeric fields (dotted paths allowed);
    - `active_only`: skip deactivated entities.

    The in-memory fake evaluates it with `matches`; the MongoDB adapter translates it.
    """

    equals: tuple[tuple[str, Any], ...] = ()
    text: tuple[tuple[str, ...], str] | None = None
    ranges: tuple[tuple[str, float, float], ...] = ()
    active_only: bool = True

    @classmethod
    def build(
        cls,
        equals: Iterable[tuple[str, Any]] = (),
        text: tuple[tuple[str, ...], str] | None = None,
        ranges: Iterable[tuple[str, float, float]] = (),
        active_only: bool = True,
    ) -> Query:
        eq = tuple((k, v) for k, v in equals if v is not None)
        return cls(eq, text if text and text[1] else None, tuple(ranges), active_only)

    def matches(self, doc: dict[str, Any]) -> bool:
        if self.active_only and not doc.get("active", True):
            return False
        for name, wanted in self.equals:
            value = _get(doc, name)
            if isinstance(value, list):
                if wanted not in value:
                    return False
            elif value != wanted:
                return False
        if self.text is not None:
            fields, needle = self.text
            low = needle.casefold()
            if not any(low in str(_get(doc, f) or "").casefold() for f in fields):
                return False
        for name, lo, hi in self.ranges:
            value = _get(doc, name)
            if not isinstance(value, int | float) or not lo <= value <= hi:
                return False
        return True

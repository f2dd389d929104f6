"""Distances on the earth and the grid cells of the spatial index."""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0088
CELL_DEG = 0.1  # about 11 km north-south: a 40 km radius touches ~9x9 cells


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


Cell = tuple[int, int]


def cell_of(lat: float, lon: float) -> Cell:
    return (math.floor(lat / CELL_DEG), math.floor(lon / CELL_DEG))


def cells_within(lat: float, lon: float, radius_km: float) -> list[Cell]:
    """Every cell that a circle of `radius_km` around the point may touch."""
    dlat = radius_km / 111.0
    dlon = radius_km / (111.0 * max(0.05, math.cos(math.radians(lat))))
    lo_r, lo_c = cell_of(lat - dlat, lon - dlon)
    hi_r, hi_c = cell_of(lat + dlat, lon + dlon)
    return [(r, c) for r in range(lo_r, hi_r + 1) for c in range(lo_c, hi_c + 1)]

"""Where a point is: inside the city's service area, and in which ward.

Only the current vintage of areas counts (valid_to IS NULL): a report filed
before a ward reorganisation keeps the ward it was filed in.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import Float, case, func, select

from ..extensions import db
from ..models import SRID, AdminArea, City

CITY_CACHE_SECONDS = 60

# How far from every ward a point in the city may be and still get the nearest one
# (slivers between simplified ward polygons are narrower than this), in degrees (~1 km).
NEAREST_WARD_DEGREES = 0.01


def point(lon: float, lat: float):
    return func.ST_SetSRID(func.ST_MakePoint(lon, lat), SRID)


@dataclass(frozen=True)
class CityInfo:
    """The city's facts intake needs, detached from any session."""

    id: int
    area_id: int | None
    name: str
    name_en: str
    timezone: str
    report_code_prefix: str


def current_city() -> CityInfo | None:
    """The city this instance serves; cached per process for a minute (it changes by admin action)."""
    cached = current_app.extensions.get("hue_city")
    if cached and cached[1] > time.monotonic():
        return cached[0]
    city = db.session.scalars(select(City).order_by(City.id).limit(1)).first()
    info = city and CityInfo(city.id, city.area_id, city.name, city.name_en, city.timezone, city.report_code_prefix)
    if info:
        current_app.extensions["hue_city"] = (info, time.monotonic() + CITY_CACHE_SECONDS)
    return info


def _ward_query(p):
    """The most specific current area covering the point; on a shared boundary the one with the
    lowest code (deterministic); in a sliver between wards the nearest one within ~1 km."""
    deepest = select(func.max(AdminArea.tier)).where(AdminArea.valid_to.is_(None)).scalar_subquery()
    covers = func.ST_Covers(AdminArea.geom, p)
    return (
        select(AdminArea.id)
        .where(AdminArea.valid_to.is_(None), AdminArea.tier == deepest,
               func.ST_DWithin(AdminArea.geom, p, NEAREST_WARD_DEGREES))
        .order_by(case((covers, 0), else_=1), func.ST_Distance(AdminArea.geom, p, type_=Float), AdminArea.code)
        .limit(1)
    )


def location_columns(city: CityInfo, lon: float, lat: float):
    """Two scalar subqueries for a point: inside the city's outline (boolean), and its ward's id.
    (Callers select them together with what else they need, in one round trip.)"""
    p = point(lon, lat)
    inside = select(func.ST_Covers(AdminArea.geom, p)).where(AdminArea.id == city.area_id).scalar_subquery()
    return inside, _ward_query(p).scalar_subquery()


def forget_city() -> None:
    """Drop this process's cached city (after the city's data changed here)."""
    current_app.extensions.pop("hue_city", None)


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Metres between two (lat, lon) points on a sphere (haversine): good to 0.5%, no database trip."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))

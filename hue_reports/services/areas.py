"""Where a point is: inside the city's service area, and in which ward.

Only the current vintage of areas counts (valid_to IS NULL): a report filed
before a ward reorganisation keeps the ward it was filed in.
"""

from __future__ import annotations

from sqlalchemy import Float, case, func, select

from ..extensions import db
from ..models import SRID, AdminArea, City

# How far from every ward a point in the city may be and still get the nearest one
# (slivers between simplified ward polygons are narrower than this), in degrees (~1 km).
NEAREST_WARD_DEGREES = 0.01


def point(lon: float, lat: float):
    return func.ST_SetSRID(func.ST_MakePoint(lon, lat), SRID)


def current_city() -> City | None:
    return db.session.scalars(select(City).order_by(City.id).limit(1)).first()


def in_service_area(city: City, lon: float, lat: float) -> bool:
    """Is the point inside the city's outline (its province-level area)?"""
    if city.area_id is None:
        return False
    return bool(db.session.scalar(
        select(func.ST_Covers(AdminArea.geom, point(lon, lat))).where(AdminArea.id == city.area_id)))


def ward_at(lon: float, lat: float) -> AdminArea | None:
    """The most specific current area covering the point; on a shared boundary the one with the
    lowest code (deterministic); in a sliver between wards the nearest one within ~1 km."""
    p = point(lon, lat)
    deepest = select(func.max(AdminArea.tier)).where(AdminArea.valid_to.is_(None)).scalar_subquery()
    covers = func.ST_Covers(AdminArea.geom, p)
    stmt = (
        select(AdminArea)
        .where(AdminArea.valid_to.is_(None), AdminArea.tier == deepest,
               func.ST_DWithin(AdminArea.geom, p, NEAREST_WARD_DEGREES))
        .order_by(case((covers, 0), else_=1), func.ST_Distance(AdminArea.geom, p, type_=Float), AdminArea.code)
        .limit(1)
    )
    return db.session.scalars(stmt).first()


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Metres between two (lat, lon) points, on the spheroid (PostGIS geography)."""
    return float(db.session.scalar(select(
        func.ST_Distance(func.geography(point(a[1], a[0])), func.geography(point(b[1], b[0]))))))

"""Where a point is: inside the city's service area, and in which ward.

Only the current vintage of areas counts (valid_to IS NULL): a report filed
before a ward reorganisation keeps the ward it was filed in.
"""

from __future__ import annotations

import json
import math
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask import current_app
from sqlalchemy import Float, case, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import joinedload
from zoneinfo import ZoneInfo

from ..extensions import db
from ..models import SRID, AdminArea, City, RoutingRule
from .upserts import Counts, upsert

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
    return place_columns(city.area_id, point(lon, lat))


def place_columns(city_area_id, p):
    """location_columns for a point expression `p` and the city's area (values or bound parameters)."""
    inside = select(func.ST_Covers(AdminArea.geom, p)).where(AdminArea.id == city_area_id).scalar_subquery()
    return inside, _ward_query(p).scalar_subquery()


# The area whose routing rules apply to a report now: its ward if that is current; else (its ward was retired by a
# reorganisation since it was filed: the report keeps it, for history) the most specific current area below the
# city covering its location; else the city. (Routing and re-routing both ask this.)
RULE_AREA_SQL = text("""
SELECT coalesce(
    (SELECT w.id FROM admin_areas w WHERE w.id = :ward_id AND w.valid_to IS NULL),
    (SELECT a.id FROM admin_areas a, reports r
      WHERE r.id = :report_id AND r.location IS NOT NULL AND a.valid_to IS NULL AND a.tier > 1
        AND ST_Covers(a.geom, r.location)
      ORDER BY a.tier DESC, a.code LIMIT 1),
    CAST(:city_area_id AS integer))
""")


def rule_area_id(report_id: int, ward_id: int | None, city_area_id: int | None) -> int | None:
    """The area whose routing rules apply to the report now (RULE_AREA_SQL)."""
    return db.session.scalar(RULE_AREA_SQL, {"report_id": report_id, "ward_id": ward_id,
                                             "city_area_id": city_area_id})


def forget_city() -> None:
    """Drop this process's cached city (after the city's data changed here)."""
    current_app.extensions.pop("hue_city", None)


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Metres between two (lat, lon) points on a sphere (haversine): good to 0.5%, no database trip."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


# -- boundary vintages ------------------------------------------------------------------------------------

# Names of WGS84 longitude/latitude that an old-style GeoJSON `crs` member may give (RFC 7946 has no
# `crs` member: its coordinates are always WGS84).
WGS84_CRS_NAMES = frozenset({
    "urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    "EPSG:4326", "urn:ogc:def:crs:EPSG::4326", "http://www.opengis.net/def/crs/EPSG/0/4326",
})
GEOMETRY_TYPES = ("Polygon", "MultiPolygon")
# The city area's property: holes of the outline smaller than this (km²) are filled (see OUTLINE_SQL).
OUTLINE_HOLES = "outline_fill_holes_below_km2"
CODE_MAX = 32
NAME_MAX = 200
VINTAGE_LOCK = 0x68756576  # advisory lock key: one boundary vintage loaded at a time ("huev")
# An admin's new ward set must cover this share of the current city outline's area (unless forced): a partial
# file would make its union the city, and put every report elsewhere outside the service area.
MIN_COVERAGE = 0.99
# ... and take effect at most this long after today (a typo, 2206, would block every later vintage).
MAX_YEARS_AHEAD = 1


class VintageError(ValueError):
    """A ward set that cannot be loaded. `fields` says what is wrong where (`features` by index, from 0)."""

    def __init__(self, message: str, fields: dict[str, Any] | None = None, *, status: int = 422,
                 code: str = "validation_error", message_vi: str | None = None):
        super().__init__(message)
        self.fields = fields or {}
        self.status = status
        self.code = code
        self.message_vi = message_vi or "Dữ liệu địa giới hành chính không hợp lệ."


@dataclass(frozen=True)
class CityArea:
    """The city's own area, which every vintage has: its outline is the union of the vintage's wards."""

    code: str
    name: str
    name_en: str
    level: str
    tier: int


@dataclass
class Vintage:
    """What loading a vintage did."""

    valid_from: date
    counts: Counts
    wards: dict[str, AdminArea]
    city: AdminArea
    retired: list[str] = field(default_factory=list)  # codes of the areas the vintage retired
    rules_carried: int = 0  # routing rules copied onto a ward (or the city) whose code continues
    coverage: float | None = None  # the share of the previous city outline's area the new wards cover
    agencies_moved: list[str] = field(default_factory=list)  # agencies of a ward whose code continues

    def summary(self) -> dict[str, Any]:
        new_codes = sorted(self.wards)
        covered = set(db.session.scalars(select(AdminArea.code).join(RoutingRule, RoutingRule.area_id == AdminArea.id)
                                         .where(AdminArea.id.in_([w.id for w in self.wards.values()]))))
        return {
            "valid_from": self.valid_from.isoformat(), "city": self.city.code, "wards": new_codes,
            "retired": self.retired, "new_codes": sorted(set(new_codes) - set(self.retired)),
            "ended_codes": sorted(set(self.retired) - set(new_codes) - {self.city.code}),
            "rules_carried": self.rules_carried, "agencies_moved": self.agencies_moved,
            "wards_without_rules": sorted(set(new_codes) - covered),
            "coverage": None if self.coverage is None else round(self.coverage, 4), **self.counts,
        }


def ascii_name(text: str) -> str:
    """'Phú Xuân' -> 'Phu Xuan' (English names drop the diacritics; đ becomes d)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def features_of(doc: Any) -> list[Any]:
    """The features of a GeoJSON FeatureCollection in WGS84 longitude/latitude; VintageError otherwise."""
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"),
                                                                                             list):
        raise VintageError("Expected a GeoJSON FeatureCollection with a list of features.",
                           {"geojson": ["A FeatureCollection."]})
    crs = doc.get("crs")
    if crs is not None:
        props = crs.get("properties") if isinstance(crs, dict) else None
        name = props.get("name") if isinstance(props, dict) else None
        if not isinstance(name, str) or name not in WGS84_CRS_NAMES:  # (a name may be any JSON: a list, ...)
            raise VintageError(f"The coordinates must be WGS84 longitude/latitude (EPSG:4326), not {name or crs!r}: "
                               "reproject the file first.", {"geojson": {"crs": ["Not WGS84 (EPSG:4326)."]}},
                               message_vi="Tọa độ phải theo hệ WGS84 (EPSG:4326): hãy chuyển đổi tệp trước.")
    if not doc["features"]:
        raise VintageError("The FeatureCollection has no features.", {"geojson": {"features": ["None given."]}})
    return doc["features"]


def _position_problem(position: Any) -> str | None:
    if not isinstance(position, list) or len(position) not in (2, 3) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in position):
        return "Each position is [longitude, latitude] in numbers."
    if not (-180 <= position[0] <= 180 and -90 <= position[1] <= 90):
        return (f"{position[:2]} is not a WGS84 longitude/latitude (is the file in a projected CRS? "
                "Reproject it to EPSG:4326).")
    return None


def _polygon_problem(rings: Any) -> str | None:
    if not isinstance(rings, list) or not rings:
        return "A polygon is a list of linear rings."
    for ring in rings:
        if not isinstance(ring, list) or len(ring) < 4:
            return "A linear ring has at least 4 positions."
        for position in ring:
            problem = _position_problem(position)
            if problem:
                return problem
        if ring[0][:2] != ring[-1][:2]:
            return "A linear ring is closed: its last position is its first."
    return None


def _geometry_problem(geometry: Any) -> str | None:
    """What makes a GeoJSON geometry unusable as a ward (type and structure), or None."""
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind not in GEOMETRY_TYPES:
        return f"The geometry must be a Polygon or MultiPolygon, not {kind or 'missing'}."
    coordinates = geometry.get("coordinates")
    if kind == "Polygon":
        return _polygon_problem(coordinates)
    if not isinstance(coordinates, list) or not coordinates:
        return "A MultiPolygon is a list of polygons."
    return next((p for p in map(_polygon_problem, coordinates) if p), None)


def _ward_row(feature: Any, levels: dict[str, Any], valid_from: date) -> tuple[dict[str, Any] | None, list[str]]:
    """The admin_areas row of a feature (its geometry as GeoJSON text in `geojson`), or its problems."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return None, ["Not a GeoJSON Feature."]
    problems = []
    geometry_problem = _geometry_problem(feature.get("geometry"))
    if geometry_problem:
        problems.append(geometry_problem)
    props = feature.get("properties")
    if not isinstance(props, dict):
        return None, [*problems, "properties must give code, name and level."]
    props = dict(props)
    code, name, level = props.pop("code", None), props.pop("name", None), props.get("level")
    if isinstance(code, int) and not isinstance(code, bool):
        code = str(code)
    if not isinstance(code, str) or not 1 <= len(code.strip()) <= CODE_MAX:
        problems.append(f"properties.code: 1 to {CODE_MAX} characters.")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= NAME_MAX:
        problems.append(f"properties.name: 1 to {NAME_MAX} characters.")
    if not isinstance(level, str) or level not in levels:
        problems.append(f"properties.level {level!r} is not one of the levels: {', '.join(sorted(levels))}.")
    name_en = props.pop("name_en", None)
    if name_en is not None and (not isinstance(name_en, str) or not 1 <= len(name_en.strip()) <= NAME_MAX):
        problems.append(f"properties.name_en: 1 to {NAME_MAX} characters.")
    population, area_km2 = props.pop("population", None), props.pop("area_km2", None)
    if population is not None and (isinstance(population, bool) or not isinstance(population, int)
                                   or not 0 <= population < 2**31):
        problems.append("properties.population: a whole number.")
    if area_km2 is not None and (isinstance(area_km2, bool) or not isinstance(area_km2, (int, float))
                                 or not math.isfinite(area_km2) or area_km2 < 0):
        problems.append("properties.area_km2: a number.")
    if problems:
        return None, problems
    short = props.get("short_name") if isinstance(props.get("short_name"), str) else None
    return {
        "code": code.strip(), "valid_from": valid_from, "name": unicodedata.normalize("NFC", name.strip()),
        "name_en": (name_en or f"{ascii_name(short or name)} {levels[level]['en']}").strip()[:NAME_MAX],
        "level": level, "tier": int(levels[level]["tier"]), "geojson": json.dumps(feature["geometry"]),
        "population": population, "area_km2": area_km2, "properties": props,
    }, []


# Each geometry's validity (OGC rules, ST_IsValid) and, if invalid, why.
VALIDITY_SQL = text("""
SELECT g.n - 1 AS i, ST_IsValid(g.geom) AS valid, ST_IsValidReason(g.geom) AS reason
FROM (SELECT n, ST_SetSRID(ST_GeomFromGeoJSON(j), :srid) AS geom
      FROM unnest(CAST(:geojsons AS text[])) WITH ORDINALITY AS t(j, n)) g
""")

# The city outline: the union of its wards, without the holes smaller than a
# threshold. Wards simplified one by one leave slivers between them; a point in
# one is in the city all the same. Holes at or above the threshold (an enclave)
# are kept.
OUTLINE_SQL = text("""
    (SELECT ST_Multi(ST_Collect(ST_MakePolygon(ST_ExteriorRing(part.geom), ARRAY(
        SELECT ST_ExteriorRing(ring.geom) FROM ST_DumpRings(part.geom) AS ring
        WHERE ring.path[1] > 0 AND ST_Area(ring.geom::geography) >= :min_hole_m2))))
     FROM ST_Dump((SELECT ST_Union(geom) FROM admin_areas
                   WHERE code = ANY(:codes) AND valid_from = :valid_from)) AS part)
""")

# The share of the current city outline's area that the union of the new vintage's wards covers (None: no city).
COVERAGE_SQL = text("""
SELECT ST_Area(ST_Intersection(c.geom, n.geom)::geography) / NULLIF(ST_Area(c.geom::geography), 0)
FROM admin_areas c,
     (SELECT ST_Union(geom) AS geom FROM admin_areas WHERE code = ANY(:codes) AND valid_from = :valid_from) n
WHERE c.id = (SELECT area_id FROM cities ORDER BY id LIMIT 1)
""")

# Rules and agencies of an area the new vintage retires follow the area of the same code in it (a ward
# whose boundary moved, the city itself): routing keeps working the moment a vintage is loaded.
CARRY_RULES_SQL = text("""
INSERT INTO routing_rules (category_id, area_id, agency_id, priority, active)
SELECT r.category_id, n.id, r.agency_id, r.priority, r.active
FROM routing_rules r
JOIN admin_areas o ON o.id = r.area_id AND o.valid_to = :valid_from
JOIN admin_areas n ON n.code = o.code AND n.valid_from = :valid_from
ON CONFLICT (category_id, area_id, priority) DO NOTHING
RETURNING id
""")
MOVE_AGENCIES_SQL = text("""
UPDATE agencies a SET area_id = n.id, updated_at = now()
FROM admin_areas o, admin_areas n
WHERE a.area_id = o.id AND o.valid_to = :valid_from AND n.code = o.code AND n.valid_from = :valid_from
RETURNING a.code
""")


def _geometry_sql(geojson: str, repair: bool) -> Any:
    geom = func.ST_Force2D(func.ST_SetSRID(func.ST_GeomFromGeoJSON(geojson), SRID))  # (a height is dropped)
    if repair:  # (a data set's simplified polygons: repaired, keeping their areal parts)
        geom = func.ST_CollectionExtract(func.ST_MakeValid(geom), 3)
    return func.ST_Multi(geom)


def latest_valid_from() -> date | None:
    return db.session.scalar(select(func.max(AdminArea.valid_from)))


def load_vintage(features: list[Any], valid_from: date, levels: dict[str, Any], city_area: CityArea, *,
                 min_hole_km2: float = 0.0, repair: bool = False, reload: bool = False,
                 min_coverage: float | None = None) -> Vintage:
    """Load a set of wards as the boundary vintage starting `valid_from`, with the city outline as their
    union, in the caller's transaction (it commits, then calls forget_city()).

    The vintage becomes the current one at once: the previous vintage's areas get `valid_to` and keep
    their rows, so every report keeps the ward it was filed in, and new reports find their ward in the new
    set. Routing rules on a retired area are copied to the new area of the same code, and agencies tied to
    it (a ward's People's Committee) move to it. `repair`: invalid polygons are made valid (a data set's
    simplified boundaries) instead of refused. `reload`: the same `valid_from` as the newest vintage is
    allowed (`flask seed` loading its files again); otherwise a vintage must be newer than every other.
    `min_coverage`: refused (422 `incomplete_ward_set`) if the new wards cover less than this share of the
    current city outline's area (the share is in Vintage.coverage in any case).
    Raises VintageError (the caller rolls back what was written)."""
    rows: list[dict[str, Any]] = []
    problems: dict[str, list[str]] = {}
    for i, feature in enumerate(features):
        row, wrong = _ward_row(feature, levels, valid_from)
        if wrong:
            problems[str(i)] = wrong
        else:
            rows.append(row)
    if problems:
        raise VintageError(f"{len(problems)} feature(s) cannot be loaded: " + "; ".join(
            f"feature {i}: {' '.join(p)}" for i, p in list(problems.items())[:5]), {"features": problems})
    codes = [row["code"] for row in rows]
    repeated = sorted(c for c, n in Counter(codes).items() if n > 1)
    if repeated or city_area.code in codes:
        raise VintageError(f"Duplicate area codes: {', '.join(repeated or [city_area.code])} (a ward code must be "
                           "unique, and not the city's).", {"features": ["Duplicate codes."]})
    # One vintage load at a time (an admin's, a data set's): the second waits and then sees the first's.
    db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": VINTAGE_LOCK})
    newest = latest_valid_from()
    if newest is not None and valid_from < newest:
        raise VintageError(f"Areas valid from {valid_from} are older than those loaded (valid from {newest}): a "
                           "city's boundaries only move forward.", {"valid_from": [f"After {newest}."]},
                           status=409, code="vintage_not_newer", message_vi=f"Địa giới phải có hiệu lực sau {newest}.")
    if newest is not None and valid_from == newest and not reload:
        raise VintageError(f"Areas valid from {valid_from} are already loaded: a new vintage starts after it.",
                           {"valid_from": [f"After {newest}."]}, status=409, code="vintage_not_newer",
                           message_vi=f"Địa giới phải có hiệu lực sau {newest}.")
    if not repair:
        try:
            with db.session.begin_nested():
                checks = db.session.execute(VALIDITY_SQL, {"geojsons": [r["geojson"] for r in rows],
                                                           "srid": SRID}).all()
        except DBAPIError as exc:
            raise VintageError("A geometry is not valid GeoJSON.", {"features": ["Not valid GeoJSON."]}) from exc
        invalid = {str(c.i): [f"Invalid polygon (ST_IsValid): {c.reason}."] for c in checks if not c.valid}
        if invalid:
            raise VintageError("Invalid polygons (ST_IsValid): " + "; ".join(
                f"{rows[int(i)]['code']}: {p[0]}" for i, p in list(invalid.items())[:5]), {"features": invalid},
                message_vi="Có vùng không hợp lệ (ST_IsValid).")
    table = AdminArea.__table__
    counts = upsert(table, [{**{k: v for k, v in row.items() if k != "geojson"},
                             "geom": _geometry_sql(row["geojson"], repair)} for row in rows], ("code", "valid_from"))
    wards_of_vintage = (table.c.code.in_(codes)) & (table.c.valid_from == valid_from)
    empty = db.session.scalars(select(table.c.code).where(wards_of_vintage, func.ST_IsEmpty(table.c.geom))).all()
    if empty:
        raise VintageError(f"No polygon left after repair for {', '.join(empty)}.", {"features": ["Empty."]})
    coverage = db.session.scalar(COVERAGE_SQL, {"codes": codes, "valid_from": valid_from})
    if min_coverage is not None and coverage is not None and coverage < min_coverage:
        covered, uncovered = f"{coverage:.2%}", f"{1 - coverage:.2%}"
        raise VintageError(
            f"The new wards cover {covered} of the current city outline: {uncovered} of the city would be left "
            f"outside the service area (reports there refused), and the current wards all retired. Is the file "
            f"partial? Load the complete ward set, or give force (flask areas load --force) to load this one anyway "
            f"(the city becomes its union).",
            {"geojson": [f"Covers {covered} of the current city outline ({uncovered} uncovered); at least "
                         f"{min_coverage:.0%} needed, or force."]},
            code="incomplete_ward_set",
            message_vi=f"Các phường mới chỉ phủ {covered} diện tích thành phố hiện hành: {uncovered} sẽ nằm ngoài "
                       "vùng phục vụ. Hãy nạp đủ bộ phường, hoặc gửi kèm force nếu thật sự muốn nạp bộ này.")
    retired_areas = db.session.execute(
        update(table).where(table.c.valid_from < valid_from, table.c.valid_to.is_(None))
        .values(valid_to=valid_from).returning(table.c.id, table.c.code)).all()
    counts["updated"] += len(retired_areas)
    outline = OUTLINE_SQL.bindparams(codes=codes, valid_from=valid_from, min_hole_m2=float(min_hole_km2) * 1e6)
    city_counts = upsert(table, [{
        "code": city_area.code, "valid_from": valid_from, "name": city_area.name, "name_en": city_area.name_en,
        "level": city_area.level, "tier": city_area.tier, "geom": outline, "population": None, "area_km2": None,
        "properties": {OUTLINE_HOLES: float(min_hole_km2)},
    }], ("code", "valid_from"))
    for key in counts:
        counts[key] += city_counts[key]
    city = db.session.scalars(select(AdminArea).where(
        AdminArea.code == city_area.code, AdminArea.valid_from == valid_from)).one()
    db.session.execute(
        update(table).where(wards_of_vintage, table.c.parent_id.is_distinct_from(city.id)).values(parent_id=city.id))
    retired_ids = [r.id for r in retired_areas]
    if retired_ids:
        db.session.execute(update(City).where(City.area_id.in_(retired_ids)).values(area_id=city.id))
    carried = db.session.execute(CARRY_RULES_SQL, {"valid_from": valid_from}).all() if retired_ids else []
    moved = db.session.scalars(MOVE_AGENCIES_SQL, {"valid_from": valid_from}).all() if retired_ids else []
    wards = {a.code: a for a in db.session.scalars(select(AdminArea).where(
        AdminArea.code.in_(codes), AdminArea.valid_from == valid_from))}
    return Vintage(valid_from, counts, wards, city, retired=sorted(r.code for r in retired_areas),
                   rules_carried=len(carried), agencies_moved=sorted(moved), coverage=coverage)


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # (29 February)
        return day.replace(year=day.year + years, day=28)


def listing(all_vintages: bool = False) -> list[AdminArea]:
    """The areas of the current vintage (or of every vintage), the city first, then by code."""
    stmt = select(AdminArea).options(joinedload(AdminArea.parent)).order_by(
        AdminArea.valid_from.desc(), AdminArea.tier, AdminArea.code)
    return list(db.session.scalars(stmt if all_vintages else stmt.where(AdminArea.valid_to.is_(None))))


def load_new_vintage(fields: dict[str, Any], actor: Any) -> dict[str, Any]:
    """An admin's new set of wards (VintageLoadSchema's fields), loaded with load_vintage and committed
    with its audit entry (`actor`: an audit.Actor). Polygons must be valid (ST_IsValid): nothing is
    repaired silently. `levels` default to the current wards' levels (tier as now, English word from the
    level's name); the city outline fills holes as the current one does. Refused (422): a `valid_from` more
    than MAX_YEARS_AHEAD after today (in the city's time zone), and, unless `force`, a set covering less than
    MIN_COVERAGE of the current city outline. `dry_run`: every check and the summary, nothing written (no
    audit entry either). Returns Vintage.summary() with `dry_run` and `force`."""
    from ..errors import ApiError
    from ..schemas.admin import VintageLoadSchema
    from . import audit, committing

    data = VintageLoadSchema().load(fields)
    city_row = db.session.scalars(select(City).order_by(City.id).limit(1)).first()
    current = db.session.get(AdminArea, city_row.area_id) if city_row is not None and city_row.area_id else None
    if current is None:
        raise ApiError(409, "no_city", "No city is loaded: load its data set first (flask seed).",
                       message_vi="Chưa nạp dữ liệu thành phố (flask seed).")
    levels = data.get("levels") or {
        level: {"tier": tier, "en": level.replace("_", " ").title()}
        for level, tier in db.session.execute(select(AdminArea.level, AdminArea.tier).distinct().where(
            AdminArea.valid_to.is_(None), AdminArea.tier > current.tier))}
    today = datetime.now(ZoneInfo(city_row.timezone)).date()
    latest = _years_after(today, MAX_YEARS_AHEAD)
    if data["valid_from"] > latest:
        raise ApiError(422, "validation_error", f"valid_from {data['valid_from']} is more than {MAX_YEARS_AHEAD} "
                       f"year(s) ahead (after {latest}): a typo? A vintage takes effect when it is loaded, and a "
                       "later one must be newer.", message_vi=f"Ngày hiệu lực {data['valid_from']} quá xa (sau "
                       f"{latest}): hãy kiểm tra lại.", fields={"valid_from": [f"At most {latest}."]})
    city_area = CityArea(current.code, city_row.name, city_row.name_en, current.level, current.tier)
    holes = data.get("outline_fill_holes_below_km2", (current.properties or {}).get(OUTLINE_HOLES, 0))
    try:
        with committing():
            vintage = load_vintage(features_of(data["geojson"]), data["valid_from"], levels, city_area,
                                   min_hole_km2=float(holes), min_coverage=None if data["force"] else MIN_COVERAGE)
            summary = {**vintage.summary(), "dry_run": data["dry_run"], "force": data["force"]}
            if data["dry_run"]:
                db.session.rollback()  # (what it would do, said; nothing written)
                return summary
            audit.record(actor, "areas.load_vintage", "area_vintage", data["valid_from"].isoformat(),
                         {"valid_from": current.valid_from}, summary)
    except VintageError as exc:
        raise ApiError(exc.status, exc.code, str(exc), message_vi=exc.message_vi, fields=exc.fields) from None
    forget_city()
    return summary

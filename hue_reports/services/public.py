"""Public map data: reports in a bounding box as GeoJSON points, or clustered below a zoom level.

No personal data: no reporter field, no description (a resident may write a name or a phone number in
it; the report's own public page shows it), no original photo, only the derivative thumbnail.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import current_app, url_for
from sqlalchemy import Float, Integer, cast, func, literal_column, select
from sqlalchemy.orm import aliased

from ..errors import ApiError
from ..extensions import db
from ..models import OPEN_STATUSES, OVERDUE_LABEL, SRID, STATUS_LABELS, AdminArea, Agency, Category, Report
from . import areas, mapgrid, queue

FEATURES_MAX = 5000


def _invalid(field: str, message: str, message_vi: str) -> ApiError:
    return ApiError(422, "validation_error", message, message_vi=message_vi, fields={field: [message]})


def parse_bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    """minLon,minLat,maxLon,maxLat in WGS84."""
    if raw is None:
        return None
    parts = raw.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or any(v != v or v in (float("inf"), float("-inf")) for v in values):
        raise _invalid("bbox", "bbox is minLon,minLat,maxLon,maxLat (four numbers).",
                       "bbox gồm 4 số: minLon,minLat,maxLon,maxLat.")
    # Map clients send unwrapped longitudes at low zoom (-200..200): clamp to the world.
    min_lon, max_lon = max(values[0], -180.0), min(values[2], 180.0)
    min_lat, max_lat = max(values[1], -90.0), min(values[3], 90.0)
    values = (min_lon, min_lat, max_lon, max_lat)
    if not (min_lon < max_lon and min_lat < max_lat):
        raise _invalid("bbox", "bbox must have min < max (a box crossing the antimeridian: two requests).",
                       "bbox không hợp lệ.")
    return values  # type: ignore[return-value]


def parse_zoom(raw: str | None) -> int | None:
    """A map's zoom, 0 to 22; fractional zooms (MapLibre) are floored."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 22:
        raise _invalid("zoom", "zoom is a number from 0 to 22.", "zoom là số từ 0 đến 22.")
    return int(value)


def _where(args: dict, bbox, now: datetime) -> list:
    codes = queue.resolve_codes(args)
    conditions = [Report.location.is_not(None)]
    if codes.agency_id is not None:
        conditions.append(Report.agency_id == codes.agency_id)
    conditions += queue.filters(args, codes, now)
    conditions.append(mapgrid.status_condition(Report.status, args))
    if bbox is not None:
        conditions.append(Report.location.intersects(func.ST_MakeEnvelope(*bbox, SRID)))
    return conditions


def features(args: dict, bbox, cursor: int, limit: int, now: datetime | None = None) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the reports, by id after `cursor`, at most `limit`."""
    now = now or datetime.now(timezone.utc)
    ward = aliased(AdminArea)
    thumb = queue.thumb_photo_id().label("thumb_id")
    stmt = (select(Report.id, Report.public_code, Report.status, Report.due_at, Report.submitted_at,
                   Report.routed_at, Report.resolved_at, Report.supporters,
                   func.ST_X(Report.location, type_=Float).label("lon"),
                   func.ST_Y(Report.location, type_=Float).label("lat"),
                   Category.code.label("category_code"), Category.name.label("category_vi"),
                   Category.name_en.label("category_en"), Agency.code.label("agency_code"),
                   Agency.name.label("agency_vi"), Agency.name_en.label("agency_en"),
                   ward.code.label("ward_code"), ward.name.label("ward_vi"), ward.name_en.label("ward_en"), thumb)
            .join(Category, Category.id == Report.category_id)
            .outerjoin(Agency, Agency.id == Report.agency_id)
            .outerjoin(ward, ward.id == Report.ward_id)
            .where(*_where(args, bbox, now), Report.id > cursor)
            .order_by(Report.id).limit(limit + 1))
    rows = db.session.execute(stmt).mappings().all()
    page = rows[:limit]
    overdue_statuses = set(OPEN_STATUSES)
    items = []
    for r in page:
        overdue = r["due_at"] is not None and r["status"] in overdue_statuses and r["due_at"] < now
        items.append({"type": "Feature", "id": r["id"],
                      "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                      "properties": {
                          "code": r["public_code"],
                          "category": {"code": r["category_code"],
                                       "name": {"vi": r["category_vi"], "en": r["category_en"]}},
                          "status": r["status"], "status_label": STATUS_LABELS[r["status"]],
                          "overdue": overdue, "overdue_label": OVERDUE_LABEL if overdue else None,
                          "created_at": _iso(r["submitted_at"]), "routed_at": _iso(r["routed_at"]),
                          "resolved_at": _iso(r["resolved_at"]), "due_at": _iso(r["due_at"]),
                          "agency": r["agency_code"] and {"code": r["agency_code"],
                                                          "name": {"vi": r["agency_vi"], "en": r["agency_en"]}},
                          "ward": r["ward_code"] and {"code": r["ward_code"], "name": r["ward_vi"],
                                                      "name_en": r["ward_en"]},
                          "thumbnail_url": r["thumb_id"] and url_for("photos.photo", photo_id=r["thumb_id"],
                                                                     size="thumb"),
                          "supporters": r["supporters"],
                          "url": url_for("public.public_report", report_id=r["public_code"]),
                      }})
    has_more = len(rows) > limit
    return {"type": "FeatureCollection", "features": items, "count": len(items), "has_more": has_more,
            "next_cursor": str(page[-1]["id"]) if has_more else None}


def clusters(args: dict, bbox, zoom: int, now: datetime | None = None) -> dict[str, Any]:
    """Counts by status per grid cell (a quarter of a map tile's side at `zoom`; every cell touching the
    box, whole), from the rollup when it can answer, else counted live in PostGIS (services/mapgrid.py)."""
    now = now or datetime.now(timezone.utc)
    cells = mapgrid.range_of_bbox(bbox, zoom + mapgrid.GEOJSON_LEVELS_UP)
    rows, as_of = mapgrid.cell_rows(args, cells, now, _where(args, None, now))
    sub = rows.subquery()
    stmt = (select(sub.c.mx, sub.c.my, sub.c.status, func.sum(sub.c.n).label("n"),
                   func.sum(sub.c.sum_lon).label("sum_lon"), func.sum(sub.c.sum_lat).label("sum_lat"))
            .group_by(sub.c.mx, sub.c.my, sub.c.status)
            .order_by(sub.c.mx, sub.c.my, sub.c.status))  # (a stable ETag)
    found: dict[tuple[int, int], dict] = {}
    for row in db.session.execute(stmt).mappings():
        entry = found.setdefault((row["mx"], row["my"]), {"count": 0, "by_status": {}, "lon": 0.0, "lat": 0.0})
        entry["count"] += int(row["n"])
        entry["by_status"][row["status"]] = int(row["n"])
        entry["lon"] += row["sum_lon"]
        entry["lat"] += row["sum_lat"]
    out = []
    for (mx, my), entry in sorted(found.items()):
        n = entry["count"]
        out.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [
                        round(entry["lon"] / n, 6), round(entry["lat"] / n, 6)]},
                    "properties": {"cluster": True, "count": n, "by_status": entry["by_status"],
                                   "cell": [mx, my], "cell_level": cells.level}})
    return {"type": "FeatureCollection", "features": out, "count": len(out), "clustered": True, "zoom": zoom,
            "total": sum(f["properties"]["count"] for f in out),
            "counted_at": as_of.isoformat() if as_of else None}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def cluster_below_zoom() -> int:
    return current_app.config["PUBLIC_CLUSTER_BELOW_ZOOM"]


def city_bounds() -> list[list[float]] | None:
    """Where the public map opens: the bounding box of the city's outline (of its current wards if it has
    none) as [[south, west], [north, east]]; None before any area is loaded. From the data, never code."""
    city = areas.current_city()
    if city is not None and city.area_id is not None:
        where = [AdminArea.id == city.area_id]
    else:
        where = [AdminArea.valid_to.is_(None)]
    box = select(func.ST_Extent(AdminArea.geom).label("box")).where(*where).subquery()
    row = db.session.execute(select(func.ST_YMin(box.c.box, type_=Float), func.ST_XMin(box.c.box, type_=Float),
                                    func.ST_YMax(box.c.box, type_=Float), func.ST_XMax(box.c.box, type_=Float))
                             ).one()
    if row[0] is None:
        return None
    return [[row[0], row[1]], [row[2], row[3]]]



# Vector tiles: Mapbox Vector Tiles made by PostGIS (ST_AsMVT) in web-mercator tile coordinates.
TILE_EXTENT = 4096
TILE_FEATURES_MAX = 20000


def tile(z: int, x: int, y: int, args: dict, now: datetime | None = None) -> bytes:
    """One tile: points (layer `reports`: code, status, category, overdue) from PUBLIC_CLUSTER_BELOW_ZOOM on,
    clusters below it (layer `clusters`: count, open, overdue per cell of 1/16 of the tile's side). An
    empty tile is b"" (the index answers that at once)."""
    now = now or datetime.now(timezone.utc)
    envelope = func.ST_TileEnvelope(z, x, y)
    # Points within the tile's buffer too (ST_AsMVTGeom keeps 256/4096 of it), so markers are not cut at seams.
    # (Clipped to the world first: past ±20037508 m a transform to degrees wraps to the other side.)
    buffered = func.ST_ClipByBox2D(func.ST_TileEnvelope(z, x, y, literal_column("margin => 0.0625")),
                                   func.Box2D(func.ST_TileEnvelope(0, 0, 0)))
    in_tile = Report.location.op("&&")(func.ST_Transform(buffered, SRID))
    where = [*_where(args, None, now), in_tile]
    projected = func.ST_Transform(Report.location, mapgrid.WEB_MERCATOR)
    open_ = Report.status.in_(OPEN_STATUSES)
    overdue = open_ & Report.due_at.is_not(None) & (Report.due_at < now)
    if z >= cluster_below_zoom():
        layer = "reports"
        rows = (select(func.ST_AsMVTGeom(projected, envelope, TILE_EXTENT).label("geom"),
                       Report.public_code.label("code"), Report.status.label("status"),
                       Category.code.label("category"), overdue.label("overdue"))
                .join(Category, Category.id == Report.category_id)
                # Over the cap, the open reports and the newest are kept.
                .where(*where).order_by(open_.desc(), Report.id.desc()).limit(TILE_FEATURES_MAX))
    else:
        layer = "clusters"
        cells, _ = mapgrid.cell_rows(args, mapgrid.range_of_tile(z, x, y), now, _where(args, None, now))
        c = cells.subquery()
        n = func.sum(c.c.n)
        grouped = (select(c.c.mx, c.c.my, n.label("count"),
                          func.coalesce(func.sum(c.c.n).filter(c.c.status.in_(OPEN_STATUSES)), 0).label("open"),
                          func.coalesce(func.sum(c.c.n).filter(c.c.overdue), 0).label("overdue"),
                          (func.sum(c.c.sum_lon) / n).label("lon"), (func.sum(c.c.sum_lat) / n).label("lat"))
                   .group_by(c.c.mx, c.c.my).subquery())
        centre = func.ST_Transform(func.ST_SetSRID(func.ST_MakePoint(grouped.c.lon, grouped.c.lat), SRID),
                                   mapgrid.WEB_MERCATOR)
        rows = (select(func.ST_AsMVTGeom(centre, envelope, TILE_EXTENT).label("geom"),
                       cast(grouped.c.count, Integer).label("count"), cast(grouped.c.open, Integer).label("open"),
                       cast(grouped.c.overdue, Integer).label("overdue"))
                .order_by(grouped.c.mx, grouped.c.my))
    t = rows.subquery("t")
    data = db.session.scalar(select(func.ST_AsMVT(literal_column("t"), layer, TILE_EXTENT, "geom")).select_from(t))
    return bytes(data or b"")


def check_tile(z: int, x: int, y: int) -> None:
    if not (0 <= z <= 22 and 0 <= x < 2 ** z and 0 <= y < 2 ** z):
        raise ApiError(404, "tile_not_found", "No such tile (zoom 0-22, x and y within the zoom's grid).",
                       message_vi="Không có ô bản đồ này.")

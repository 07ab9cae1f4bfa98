"""Public map data: reports in a bounding box as GeoJSON points, or clustered below a zoom level.

No personal data: no reporter field, no description (a resident may write a name or a phone number in
it; the report's own public page shows it), no original photo, only the derivative thumbnail.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone

from flask import current_app, url_for
from sqlalchemy import (BigInteger, Boolean, DateTime, Float, Integer, Numeric, Select, String, Text, bindparam, case,
                        cast, func, literal, literal_column, select, text)
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by
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


def _where(args: dict, bbox, now: datetime, codes=None) -> list:
    """The map's filters as conditions on reports (`codes`: queue.resolve_codes(args), resolved if not given)."""
    codes = codes if codes is not None else queue.resolve_codes(args)
    conditions = [Report.location.is_not(None)]
    if codes.agency_id is not None:
        conditions.append(Report.agency_id == codes.agency_id)
    conditions += queue.filters(args, codes, now)
    conditions.append(mapgrid.status_condition(Report.status, args))
    if bbox is not None:
        conditions.append(Report.location.intersects(func.ST_MakeEnvelope(*bbox, SRID)))
    return conditions


def _url_parts(endpoint: str, sentinel, **values) -> tuple[str, str]:
    """An endpoint's URL around one variable part, to be completed in SQL (prefix || value || suffix)."""
    url = url_for(endpoint, **values)
    prefix, _, suffix = url.partition(str(sentinel))
    return prefix, suffix


def _coordinate(value):
    """A coordinate rounded to 6 decimals (~0.1 m), rendered as the shortest float."""
    return cast(func.round(cast(value, Numeric), 6), Float)


# The map's filters with the codes' ids and the instant bound at execution: statements built once per shape
# (mapgrid.statement) whatever the tile, cells, codes or time.
_NOW = bindparam("now", type_=DateTime(timezone=True))


@functools.lru_cache(maxsize=8)
def _feature_query(urls: tuple[str, str, str, str]) -> Select:
    """The reports with their GeoJSON feature, built once (a tree this size costs milliseconds to build):
    the instant that decides `overdue` is the bound parameter `now`."""
    photo_prefix, photo_suffix, page_prefix, page_suffix = urls
    ward = aliased(AdminArea)
    overdue = queue.overdue_condition(_NOW)
    thumb = queue.thumb_photo_id()
    name = lambda vi, en: func.json_build_object("vi", vi, "en", en)  # noqa: E731
    properties = func.json_build_object(
        "code", Report.public_code,
        "category", func.json_build_object("code", Category.code, "name", name(Category.name, Category.name_en)),
        "status", Report.status,
        "status_label", literal(STATUS_LABELS, JSONB).op("->")(Report.status),
        "overdue", overdue,
        "overdue_label", case((overdue, literal(OVERDUE_LABEL, JSONB))),
        "created_at", Report.submitted_at, "routed_at", Report.routed_at, "resolved_at", Report.resolved_at,
        "due_at", Report.due_at,
        "agency", case((Agency.id.is_not(None), func.json_build_object(
            "code", Agency.code, "name", name(Agency.name, Agency.name_en)))),
        "ward", case((ward.id.is_not(None), func.json_build_object(
            "code", ward.code, "name", ward.name, "name_en", ward.name_en))),
        "thumbnail_url", literal(photo_prefix) + cast(thumb, String) + literal(photo_suffix),
        "supporters", Report.supporters,
        # How the point is known: `address` is the representative point of the ward the address names, within
        # accuracy_m of the report, not its position.
        "location_source", Report.location_source, "accuracy_m", Report.location_accuracy_m,
        "url", literal(page_prefix) + Report.public_code + literal(page_suffix))
    feature = func.json_build_object(
        "type", "Feature", "id", Report.id,
        "geometry", func.json_build_object("type", "Point", "coordinates", func.json_build_array(
            _coordinate(func.ST_X(Report.location)), _coordinate(func.ST_Y(Report.location)))),
        "properties", properties)
    return (select(Report.id, feature.label("feature"))
            .join(Category, Category.id == Report.category_id)
            .outerjoin(Agency, Agency.id == Report.agency_id)
            .outerjoin(ward, ward.id == Report.ward_id))


def features(args: dict, bbox, cursor: int, limit: int, now: datetime | None = None, codes=None) -> str:
    """A GeoJSON FeatureCollection of the reports, by id after `cursor`, at most `limit`, as JSON text:
    PostgreSQL selects and renders the page in one statement (as fast as the query alone), built once per shape
    (the box, the cursor, the limit, the codes' ids and the instant are parameters)."""
    now = now or datetime.now(timezone.utc)
    codes = codes if codes is not None else queue.resolve_codes(args)
    urls = (*_url_parts("photos.photo", 987654321, photo_id=987654321, size="thumb"),
            *_url_parts("public.public_report", "__code__", report_id="__code__"))
    params = {**_bound_params(args, codes, now), "cursor": cursor, "limit": limit, "read": limit + 1}
    if bbox is not None:
        params.update(zip(("x0", "y0", "x1", "y1"), bbox))
    return _scalar(("features", urls, _filter_shape(args, codes), bbox is not None),
                   lambda: _features(args, codes, urls, bbox is not None), params)


def _features(args: dict, codes, urls: tuple, in_box: bool) -> Select:
    """The page of features (parameters: the filters', cursor, limit, read = limit + 1, and x0, y0, x1, y1 if
    `in_box`)."""
    where = _bound_where(args, codes)
    if in_box:
        where.append(Report.location.intersects(func.ST_MakeEnvelope(
            *(bindparam(name, type_=Float) for name in ("x0", "y0", "x1", "y1")), SRID)))
    limit = bindparam("limit", type_=Integer)
    page = (_feature_query(urls).where(*where, Report.id > bindparam("cursor", type_=BigInteger))
            .order_by(Report.id).limit(bindparam("read", type_=Integer))).subquery()
    numbered = select(page.c.id, page.c.feature, func.row_number().over(order_by=page.c.id).label("rn")).subquery()
    shown = numbered.c.rn <= limit  # (one more row was read to know whether there are more)
    more = func.count() > limit
    body = func.json_build_object(
        "type", "FeatureCollection",
        "features", func.coalesce(func.json_agg(aggregate_order_by(numbered.c.feature, numbered.c.id)).filter(shown),
                                  text("'[]'::json")),
        "count", func.least(func.count(), limit), "has_more", more,
        "next_cursor", case((more, cast(func.max(numbered.c.id).filter(shown), String))))
    return select(cast(body, Text))


def more_than(where: list, limit: int, params: dict | None = None) -> bool:
    """Whether more than `limit` reports meet `where` (reads at most limit + 1 of them)."""
    some = select(literal(1)).select_from(Report).where(*where).limit(limit + 1).subquery()
    return db.session.scalar(select(func.count()).select_from(some), params or {}) > limit


def _filter_shape(args: dict, codes) -> tuple:
    """What the map's filter conditions look like for these arguments (the ids of codes are parameters)."""
    return (tuple(args.get("status") or ()), args.get("overdue"), codes.category_id is not None,
            bool(args.get("ward")), codes.agency_id is not None, args.get("from_"), args.get("to"))


def _bound_where(args: dict, codes) -> list:
    """_where without a bbox, the codes' ids and `now` as parameters (_bound_params)."""
    bound = queue._Codes(bindparam("category_id", type_=Integer) if codes.category_id is not None else None,
                         bindparam("ward_ids", expanding=True) if args.get("ward") else (),
                         bindparam("agency_id", type_=Integer) if codes.agency_id is not None else None)
    return _where(args, None, _NOW, bound)


def _bound_params(args: dict, codes, now: datetime) -> dict:
    params = {"now": now}
    if codes.category_id is not None:
        params["category_id"] = codes.category_id
    if args.get("ward"):
        params["ward_ids"] = list(codes.ward_ids)
    if codes.agency_id is not None:
        params["agency_id"] = codes.agency_id
    return params


def map_data(args: dict, bbox, zoom: int | None, cursor: int, limit: int, now: datetime | None = None) -> str:
    """The public map data as GeoJSON text: clusters below PUBLIC_CLUSTER_BELOW_ZOOM; from it on points, unless
    the view holds more than PUBLIC_MAP_POINTS_MAX reports below PUBLIC_POINTS_ZOOM (a dense centre at street
    level): then clusters of finer cells (`dense: true`). Without a zoom, points (a page of `limit`)."""
    now = now or datetime.now(timezone.utc)
    config = current_app.config
    if zoom is not None and bbox is None:
        raise _invalid("bbox", "A map view (zoom) needs its bbox.", "Cần bbox của vùng bản đồ.")
    codes = queue.resolve_codes(args)  # (once: one round trip when codes are given)
    if zoom is None:
        return features(args, bbox, cursor, limit, now, codes)
    if zoom < config["PUBLIC_CLUSTER_BELOW_ZOOM"]:
        return clusters(args, bbox, zoom, now, codes=codes)
    if zoom < config["PUBLIC_POINTS_ZOOM"]:
        # How many: the rollup's finest cells whose centre is in the view, else counted live (up to one over).
        cap = config["PUBLIC_MAP_POINTS_MAX"]
        counted = mapgrid.rollup_count(args, mapgrid.range_of_centres(bbox, mapgrid.finest_level()), codes)
        if counted > cap if counted is not None else more_than(_where(args, bbox, now, codes), cap):
            level = min(zoom + mapgrid.GEOJSON_LEVELS_UP, mapgrid.finest_level())
            return clusters(args, bbox, zoom, now, level=level, codes=codes)
    return features(args, bbox, cursor, limit, now, codes)


def clusters(args: dict, bbox, zoom: int, now: datetime | None = None, level: int | None = None,
             codes=None) -> str:
    """Counts by status per grid cell (a quarter of a map tile's side at `zoom`, or the cells of `level`;
    every cell touching the box, whole), from the rollup when it can answer, else counted live in PostGIS
    (services/mapgrid.py); a GeoJSON FeatureCollection rendered by PostgreSQL, as JSON text. `dense` says
    the clusters stand for points too many to show at this zoom."""
    now = now or datetime.now(timezone.utc)
    codes = codes if codes is not None else queue.resolve_codes(args)
    dense = level is not None
    cells = mapgrid.range_of_bbox(bbox, level if dense else zoom + mapgrid.GEOJSON_LEVELS_UP)
    rows, params, as_of, shape = mapgrid.cell_rows(args, cells, now, lambda: _where(args, None, now, codes), codes)
    params = {**params, "zoom": zoom, "dense": dense, "cell_level": cells.level,
              "counted_at": as_of.isoformat() if as_of else None}
    return _scalar(("clusters", shape) if shape is not None else None, lambda: _clusters(rows), params)


def _clusters(rows: Select) -> Select:
    """The GeoJSON clusters of cell_rows' `rows` (parameters zoom, dense, cell_level, counted_at)."""
    sub = rows.subquery()
    by_status = (select(sub.c.mx, sub.c.my, sub.c.status, func.sum(sub.c.n).label("n"),
                        func.sum(sub.c.sum_lon).label("sum_lon"), func.sum(sub.c.sum_lat).label("sum_lat"))
                 .group_by(sub.c.mx, sub.c.my, sub.c.status)).subquery()
    n = func.sum(by_status.c.n)
    cell = (select(by_status.c.mx, by_status.c.my, n.label("n"), func.json_build_object(
                "type", "Feature",
                "geometry", func.json_build_object("type", "Point", "coordinates", func.json_build_array(
                    _coordinate(func.sum(by_status.c.sum_lon) / n), _coordinate(func.sum(by_status.c.sum_lat) / n))),
                "properties", func.json_build_object(
                    "cluster", True, "count", n,
                    "by_status", func.json_object_agg(by_status.c.status, by_status.c.n),
                    "cell", func.json_build_array(by_status.c.mx, by_status.c.my),
                    "cell_level", bindparam("cell_level", type_=Integer))
            ).label("feature"))
            .group_by(by_status.c.mx, by_status.c.my)).subquery()
    body = func.json_build_object(
        "type", "FeatureCollection",
        "features", func.coalesce(func.json_agg(aggregate_order_by(cell.c.feature, cell.c.mx, cell.c.my)),
                                  text("'[]'::json")),
        "count", func.count(), "clustered", True, "dense", bindparam("dense", type_=Boolean),
        "zoom", bindparam("zoom", type_=Integer),
        "total", func.coalesce(func.sum(cell.c.n), 0),
        "counted_at", bindparam("counted_at", type_=String))
    return select(cast(body, Text))


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
    """One tile: points (layer `reports`: code, status, category, overdue, location_source) from
    PUBLIC_CLUSTER_BELOW_ZOOM on, clusters below it (layer `clusters`: count, open, overdue per cell of 1/16
    of the tile's side). A tile holding more than PUBLIC_TILE_POINTS_MAX reports below PUBLIC_POINTS_ZOOM has
    clusters too, in cells of 1/16 of its side or the finest level's. An empty tile is b"" (the index
    answers that at once)."""
    now = now or datetime.now(timezone.utc)
    config = current_app.config
    codes = queue.resolve_codes(args)
    shape = _filter_shape(args, codes)
    params = {"z": z, "x": x, "y": y, **_bound_params(args, codes, now)}
    level = None  # the clusters' cells: z + 4 below PUBLIC_CLUSTER_BELOW_ZOOM, finer for a dense tile
    if z >= config["PUBLIC_CLUSTER_BELOW_ZOOM"]:
        if z >= config["PUBLIC_POINTS_ZOOM"]:
            # Points however dense; over the cap, the open reports and the newest are kept.
            return _mvt(("tile points, open first", shape), lambda: _tile_points(args, codes, open_first=True),
                        params)
        # Few enough for points? The rollup's count of the tile's cells, else counted live (up to one over).
        cap = config["PUBLIC_TILE_POINTS_MAX"]
        level = min(z + mapgrid.TILE_LEVELS_UP, mapgrid.finest_level())
        # (Not the count and both kinds of tile in one statement, CASE choosing: PostgreSQL then plans both on
        # every run, and a dense z15 tile took twice as long.)
        counted = mapgrid.rollup_count(args, mapgrid.range_of_tile(z, x, y, level), codes)
        if not (counted > cap if counted is not None else more_than(_tile_where(args, codes), cap, params)):
            return _mvt(("tile points", shape), lambda: _tile_points(args, codes, open_first=False), params)
    else:  # (clusters, from the rollup with its state in one round trip when it can answer)
        answered = mapgrid.in_one_statement(args, mapgrid.range_of_tile(z, x, y), codes, ("tile clusters",),
                                            lambda rows: _tile_clusters(rows).scalar_subquery(), params)
        if answered is not None:
            return bytes(answered[0] or b"")
    # Clusters: counts per cell (from the rollup when it can answer).
    rows, cell_params, _, cells_shape = mapgrid.cell_rows(args, mapgrid.range_of_tile(z, x, y, level), now,
                                                          lambda: _where(args, None, now, codes), codes)
    return _mvt(("tile clusters", cells_shape) if cells_shape is not None else None, lambda: _tile_clusters(rows),
                {**params, **cell_params})


# The tile z/x/y as parameters.
_ENVELOPE = func.ST_TileEnvelope(bindparam("z", type_=Integer), bindparam("x", type_=Integer),
                                 bindparam("y", type_=Integer))


def _tile_where(args: dict, codes) -> list:
    """The map's filters (bound: _bound_params) and the tile's buffer."""
    # Points within the tile's buffer too (ST_AsMVTGeom keeps 256/4096 of it), so markers are not cut at
    # seams. (Clipped to the world first: past ±20037508 m a transform to degrees wraps to the other side.)
    buffered = func.ST_ClipByBox2D(
        func.ST_TileEnvelope(bindparam("z", type_=Integer), bindparam("x", type_=Integer),
                             bindparam("y", type_=Integer), literal_column("margin => 0.0625")),
        func.Box2D(func.ST_TileEnvelope(0, 0, 0)))
    return [*_bound_where(args, codes), Report.location.op("&&")(func.ST_Transform(buffered, SRID))]


def _tile_points(args: dict, codes, open_first: bool) -> Select:
    """A tile's layer of points (parameters z, x, y, now and the codes' ids)."""
    projected = func.ST_Transform(Report.location, mapgrid.WEB_MERCATOR)
    overdue = queue.overdue_condition(_NOW)
    points = (select(func.ST_AsMVTGeom(projected, _ENVELOPE, TILE_EXTENT).label("geom"),
                     Report.public_code.label("code"), Report.status.label("status"),
                     Category.code.label("category"), overdue.label("overdue"),
                     Report.location_source.label("location_source"))
              .join(Category, Category.id == Report.category_id).where(*_tile_where(args, codes)))
    if open_first:
        points = points.order_by(Report.status.in_(OPEN_STATUSES).desc(), Report.id.desc())
    else:
        points = points.order_by(Report.id)
    return _mvt_of(points.limit(TILE_FEATURES_MAX), "reports")


def _tile_clusters(cells: Select) -> Select:
    """A tile's layer of clusters from cell_rows' `cells` (parameters z, x, y and the cells')."""
    c = cells.subquery()
    n = func.sum(c.c.n)
    grouped = (select(c.c.mx, c.c.my, n.label("count"),
                      func.coalesce(func.sum(c.c.n).filter(c.c.status.in_(OPEN_STATUSES)), 0).label("open"),
                      func.coalesce(func.sum(c.c.n).filter(c.c.overdue), 0).label("overdue"),
                      (func.sum(c.c.sum_lon) / n).label("lon"), (func.sum(c.c.sum_lat) / n).label("lat"))
               .group_by(c.c.mx, c.c.my).subquery())
    centre = func.ST_Transform(func.ST_SetSRID(func.ST_MakePoint(grouped.c.lon, grouped.c.lat), SRID),
                               mapgrid.WEB_MERCATOR)
    rows = (select(func.ST_AsMVTGeom(centre, _ENVELOPE, TILE_EXTENT).label("geom"),
                   cast(grouped.c.count, Integer).label("count"), cast(grouped.c.open, Integer).label("open"),
                   cast(grouped.c.overdue, Integer).label("overdue"))
            .order_by(grouped.c.mx, grouped.c.my))
    return _mvt_of(rows, "clusters")


def _st_asmvt(t, layer: str):
    """The aggregate making one layer of a vector tile from the rows of subquery `t` (its `geom` column, the
    others as attributes)."""
    return func.ST_AsMVT(literal_column(t.name), layer, TILE_EXTENT, "geom")


def _mvt_of(rows: Select, layer: str) -> Select:
    """The statement making a tile's layer `layer` of `rows`."""
    t = rows.subquery("t")
    return select(_st_asmvt(t, layer)).select_from(t)


def _mvt(key: tuple | None, build, params: dict) -> bytes:
    return bytes(_scalar(key, build, params) or b"")


def _scalar(key: tuple | None, build, params: dict):
    """The value of the statement `build()` makes: of the shape `key`, built and rendered once
    (mapgrid.execute); None: a statement of this request's own (counted live, its values written in)."""
    if key is None:
        return db.session.scalar(build(), params)
    return mapgrid.execute(key, build, params).scalar()


def check_tile(z: int, x: int, y: int) -> None:
    if not (0 <= z <= 22 and 0 <= x < 2 ** z and 0 <= y < 2 ** z):
        raise ApiError(404, "tile_not_found", "No such tile (zoom 0-22, x and y within the zoom's grid).",
                       message_vi="Không có ô bản đồ này.")

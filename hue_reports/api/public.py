"""Public data: the map, the vector tiles, the accountability metrics. No personal data."""

from __future__ import annotations

import json

from flask import jsonify, make_response, request
from werkzeug.datastructures import MultiDict

from ..replica import replica_readable
from ..schemas.public import MAP_DATA, MetricsSchema
from ..schemas.queue import load_query
from ..schemas.report import EventSchema, PublicReportSchema, ReportSchema
from ..services import metrics, public, reports
from . import int_arg
from .openapi import Blueprint, documented, header, query
from .queue import FILTER_PARAMETERS

blp = Blueprint("public", __name__, url_prefix="", description="Public: map data and metrics")


MAP_FILTERS = ("status", "category", "agency", "ward", "from", "to", "overdue")


def _cacheable(body: dict | str, max_age: int = 60, etag: str | None = None):
    """A public answer a CDN can hold: an ETag of its content, Cache-Control, and 304 when unchanged.
    `body` is a dict, or JSON text already (as PostgreSQL renders it), whose `etag` may be known already."""
    if isinstance(body, str):
        response = make_response(body)
        response.mimetype = "application/json"
    else:
        response = make_response(jsonify(body))
    if etag is None:
        response.add_etag()
    else:
        response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response.make_conditional(request)


IF_NONE_MATCH = header("If-None-Match", "the ETag of an earlier answer: 304 if it has not changed")
NOT_MODIFIED = "Not modified since the ETag sent in If-None-Match."
ETAG = {"ETag": {"description": "send it back as If-None-Match", "schema": {"type": "string"}}}
MAP_PARAMETERS = [
    query("bbox", description="minLon,minLat,maxLon,maxLat (WGS84); required with a zoom"),
    query("zoom", {"type": "number", "minimum": 0, "maximum": 22},
          "the map's zoom: below PUBLIC_CLUSTER_BELOW_ZOOM the answer is clusters; from it on too where the view "
          "holds more than PUBLIC_MAP_POINTS_MAX reports (below PUBLIC_POINTS_ZOOM: `dense`)"),
    query("cursor", {"type": "integer", "minimum": 0}, "the next_cursor of the previous page"),
    query("limit", {"type": "integer", "minimum": 1, "maximum": public.FEATURES_MAX,
                    "default": public.FEATURES_MAX}),
    *({**p, "description": "an agency code"} if p["name"] == "agency" else p for p in FILTER_PARAMETERS),
    IF_NONE_MATCH]
FILTERS_422 = "`validation_error`: an invalid parameter, or an unknown code."


@blp.route("/api/v1/public/reports")
@blp.alt_response(200, schema=MAP_DATA, headers=ETAG, success=True,
                  description="Reports (a page of GeoJSON points), or clusters with a zoom below "
                              "PUBLIC_CLUSTER_BELOW_ZOOM or a view too dense for points.")
@blp.alt_response(304, description=NOT_MODIFIED)
@documented(blp, parameters=MAP_PARAMETERS,
            e422="`validation_error`: an invalid bbox, zoom, cursor, limit or filter, an unknown code, or a zoom "
                 "without bbox.")
@replica_readable
def public_reports():
    """Reports as a GeoJSON FeatureCollection (points, at most 5,000 a page with a cursor), or clusters
    (counts by status per grid cell) below a zoom level or where a map view is dense. Filters: status,
    category, agency, ward, from, to, overdue. No personal data."""
    filters = MultiDict([(k, v) for k, v in request.args.items(multi=True) if k in MAP_FILTERS])
    args = load_query(filters)
    bbox = public.parse_bbox(request.args.get("bbox"))
    zoom = public.parse_zoom(request.args.get("zoom"))
    cursor = int_arg("cursor", 0, 0, 2**63 - 1)
    limit = int_arg("limit", public.FEATURES_MAX, 1, public.FEATURES_MAX)
    return _cacheable(public.map_data(args, bbox, zoom, cursor, limit))


@blp.route("/api/v1/public/reports/<report_id>")
@blp.alt_response(200, schema=PublicReportSchema, headers=ETAG, success=True,
                  description="The report's public view, photos and timeline.")
@blp.alt_response(304, description=NOT_MODIFIED)
@documented(blp, parameters=[IF_NONE_MATCH], e404="`report_not_found`: no report with this id or code.")
@replica_readable
def public_report(report_id: str):
    """One report's public page: its public view, its public timeline, and the resolution photos beside
    the resident's."""
    return _cacheable(public_report_body(reports.find(report_id)), max_age=30)


def public_report_body(report) -> dict:
    """A report's public page data (also what /reports/<code> renders): the public view, the resident's
    photos and the resolution photos apart, and the public timeline."""
    body = ReportSchema().dump(report)
    photos = body.pop("photos")
    body["photos"] = [p for p in photos if p["kind"] == "evidence"]
    body["resolution_photos"] = [p for p in photos if p["kind"] == "resolution"]
    body["events"] = EventSchema(many=True).dump(reports.public_events(report))
    return body


@blp.route("/api/v1/public/tiles/<int:z>/<int:x>/<int:y>.mvt")
@blp.alt_response(200, schema={"type": "string", "format": "binary"}, content_type="application/vnd.mapbox-vector-tile",
                  headers=ETAG, success=True, description="The tile (Mapbox Vector Tile 2.1).")
@blp.alt_response(204, description="An empty tile.")
@blp.alt_response(304, description=NOT_MODIFIED)
@documented(blp, parameters=[*FILTER_PARAMETERS, IF_NONE_MATCH],
            e404="`tile_not_found`: zoom beyond 0-22, or x or y beyond the zoom's grid.", e422=FILTERS_422)
@replica_readable
def tile(z: int, x: int, y: int):
    """A Mapbox vector tile of the reports: points (layer `reports`) at high zoom, clusters (layer
    `clusters`) below PUBLIC_CLUSTER_BELOW_ZOOM; 204 for an empty tile. Same filters as the map data."""
    public.check_tile(z, x, y)
    filters = MultiDict([(k, v) for k, v in request.args.items(multi=True) if k in MAP_FILTERS])
    data = public.tile(z, x, y, load_query(filters))
    if not data:
        response = make_response("", 204)
        response.headers["Cache-Control"] = "public, max-age=60"
        return response
    response = make_response(data)
    response.mimetype = "application/vnd.mapbox-vector-tile"
    response.add_etag()
    response.headers["Cache-Control"] = "public, max-age=60"
    return response.make_conditional(request)


METRICS_PARAMETERS = [  # (empty is the same as absent)
    query("group_by", {"type": "string", "enum": list(metrics.GROUP_BYS), "default": "agency"}, allowEmptyValue=True),
    query("from", {"type": "string", "format": "date"}, "first day of submission included (the city's local date)",
          allowEmptyValue=True),
    query("to", {"type": "string", "format": "date"}, "last day of submission included", allowEmptyValue=True),
    IF_NONE_MATCH]
METRICS_422 = "`validation_error`: an unknown group_by, a date that is not YYYY-MM-DD or out of range, from after to."


@blp.route("/api/v1/public/metrics")
@blp.alt_response(200, schema=MetricsSchema, headers=ETAG, success=True, description="The figures.")
@blp.alt_response(304, description=NOT_MODIFIED)
@documented(blp, parameters=METRICS_PARAMETERS, e422=METRICS_422)
@replica_readable
def public_metrics():
    """Accountability figures per agency, category, ward or month of submission, and the city's total:
    counts, the resident's and the agency's clocks (median and 90th percentile, wall-clock and working
    hours, open reports censored), time to acknowledge, on-time, transfer and reopen rates, satisfaction.
    Methodology: README.md#methodology."""
    answer = metrics.served(metrics.parse_period(request.args))
    return _cacheable(answer.text, etag=answer.etag)


@blp.route("/api/v1/public/metrics.csv")
@blp.alt_response(200, schema={"type": "string"}, content_type="text/csv", headers=ETAG, success=True,
                  description="The figures as CSV: `key`, `name_vi`, `name_en`, then the figures.")
@blp.alt_response(304, description=NOT_MODIFIED)
@documented(blp, parameters=METRICS_PARAMETERS, e422=METRICS_422)
@replica_readable
def public_metrics_csv():
    """The same figures as CSV (UTF-8 with a byte order mark, for spreadsheets): a row per group, the city's
    total last."""
    period = metrics.parse_period(request.args)
    body = json.loads(metrics.served(period).text)
    response = make_response("\ufeff" + metrics.to_csv(body))
    response.mimetype = "text/csv"
    response.charset = "utf-8"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="metrics-{period.group_by}-{period.start or "all"}-{period.end or "now"}.csv"')
    response.headers["Cache-Control"] = "public, max-age=60"
    response.add_etag()
    return response.make_conditional(request)

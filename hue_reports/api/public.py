"""Public data: the map, the vector tiles, the accountability metrics. No personal data."""

from __future__ import annotations

from flask_smorest import Blueprint

from . import not_yet

blp = Blueprint("public", __name__, url_prefix="", description="Public: map data and metrics")


@blp.route("/api/v1/public/reports")
def public_reports():
    """Reports in a bounding box, as GeoJSON."""
    raise not_yet("public report map data")


@blp.route("/api/v1/public/reports/<report_id>")
def public_report(report_id: str):
    """One report's public page data."""
    raise not_yet("public report page data")


@blp.route("/api/v1/public/tiles/<int:z>/<int:x>/<int:y>.mvt")
def tile(z: int, x: int, y: int):
    """A Mapbox vector tile of reports."""
    raise not_yet("vector tiles")


@blp.route("/api/v1/public/metrics")
@blp.route("/api/v1/public/metrics.csv")
def metrics():
    """Per-agency, category, ward or month resolution metrics."""
    raise not_yet("accountability metrics")


@blp.route("/")
def map_page():
    """The public map page."""
    raise not_yet("public map page")


@blp.route("/stats")
def stats_page():
    """The accountability page."""
    raise not_yet("accountability page")

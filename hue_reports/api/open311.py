"""Open311 GeoReport v2 server."""

from __future__ import annotations

from flask_smorest import Blueprint

from . import not_yet

blp = Blueprint("open311", __name__, url_prefix="/open311/v2", description="Open311 GeoReport v2")


@blp.route("/<path:resource>", methods=["GET", "POST"])
def open311(resource: str):
    """Every Open311 GeoReport v2 resource."""
    raise not_yet("Open311 GeoReport v2")

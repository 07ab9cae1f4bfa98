"""Resident API: submit a report, follow it, rate the fix; list what can be reported."""

from __future__ import annotations

from flask_smorest import Blueprint

from ..schemas.category import ServiceListSchema
from ..services import catalog
from . import not_yet

blp = Blueprint("reports", __name__, url_prefix="/api/v1", description="Residents: reports and services")


@blp.route("/services")
@blp.response(200, ServiceListSchema)
def list_services():
    """The categories a resident can report, in Vietnamese and English, with their deadlines."""
    services = catalog.active_categories()
    return {"services": services, "count": len(services)}, 200, {"Cache-Control": "public, max-age=300"}


@blp.route("/reports", methods=["POST"])
def submit_report():
    """Submit a report with photos (multipart)."""
    raise not_yet("report intake")


@blp.route("/reports/<report_id>")
def get_report(report_id: str):
    """A report's status, for its reporter."""
    raise not_yet("report status")


@blp.route("/reports/<report_id>/events")
def get_report_events(report_id: str):
    """A report's public timeline."""
    raise not_yet("report timeline")


@blp.route("/reports/<report_id>/feedback", methods=["POST"])
def post_feedback(report_id: str):
    """The reporter rates the fix (tracking token)."""
    raise not_yet("feedback")

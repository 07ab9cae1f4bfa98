"""Officer API: the agency's queue and the workflow transitions."""

from __future__ import annotations

from flask_smorest import Blueprint

from . import not_yet

blp = Blueprint("officers", __name__, url_prefix="/api/v1", description="Officers: queue and workflow")


@blp.route("/agency/reports")
def agency_queue():
    """The agency's tickets, sorted by deadline."""
    raise not_yet("officer queue")


@blp.route("/reports/<report_id>/transitions", methods=["POST"])
def transition(report_id: str):
    """Acknowledge, start, resolve, reject, transfer, close or reopen a report."""
    raise not_yet("workflow transitions")


@blp.route("/reports/<report_id>/comments", methods=["POST"])
def comment(report_id: str):
    """A public or internal comment on a report."""
    raise not_yet("comments")

"""Officer API: the agency's queue and the workflow transitions."""

from __future__ import annotations

from flask import request
from flask_smorest import Blueprint

from ..errors import ApiError
from ..schemas.report import AgencyFeedSchema
from ..services import auth, reports
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


@blp.route("/agency/events")
@blp.response(200, AgencyFeedSchema)
@blp.doc(parameters=[
    {"in": "query", "name": "since", "schema": {"type": "integer", "minimum": 0},
     "description": "the last event id already seen (0: from the start)"},
    {"in": "query", "name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": reports.FEED_MAX}}],
    security=[{"bearer": []}])
def agency_events():
    """What happened to the agency's reports since a cursor: to pull whatever a webhook missed."""
    account = auth.current_account()
    since = _int_arg("since", 0, 0, 2**63 - 1)
    limit = _int_arg("limit", 100, 1, reports.FEED_MAX)
    events = reports.agency_events(account, since, limit + 1)
    page = events[:limit]
    return {"events": page, "next_since": page[-1].id if page else since, "has_more": len(events) > limit}, 200, {
        "Cache-Control": "private, no-store"}


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(422, "validation_error", f"{name} must be an integer from {low} to {high}.",
                       message_vi=f"{name} phải là số nguyên từ {low} đến {high}.",
                       fields={name: [f"An integer from {low} to {high}."]})
    return int(raw)

"""Officer API: the agency's queue and the workflow transitions."""

from __future__ import annotations

from flask import request
from flask_smorest import Blueprint

from ..errors import ApiError
from ..extensions import db
from ..schemas.report import AgencyFeedSchema, ReportSchema
from ..services import auth, reports, routing
from . import not_yet

blp = Blueprint("officers", __name__, url_prefix="/api/v1", description="Officers: queue and workflow")


@blp.route("/reports/<report_id>/transitions", methods=["POST"])
def transition(report_id: str):
    """Acknowledge, start, resolve, reject, transfer, close or reopen a report."""
    raise not_yet("workflow transitions")


@blp.route("/reports/<report_id>/comments", methods=["POST"])
def comment(report_id: str):
    """A public or internal comment on a report."""
    raise not_yet("comments")


@blp.route("/reports/<report_id>/unlink", methods=["POST"])
@blp.doc(security=[{"bearer": []}])
def unlink_duplicate(report_id: str):
    """A duplicate is a problem of its own after all: unlink it from the report it was joined to and route it.

    For officers of the agency handling the original report, and for the dispatcher."""
    account = auth.current_account(roles=("officer", "agency_admin", "dispatcher", "admin"))
    report = reports.find(report_id)
    handling = {report.agency_id, report.duplicate_of.agency_id if report.duplicate_of else None}
    if account.role in ("officer", "agency_admin") and account.agency_id not in handling:
        raise ApiError(403, "forbidden", "This report is not your agency's.",
                       message_vi="Phản ánh này không thuộc đơn vị của bạn.")
    routing.unlink_duplicate(report.id, actor_account_id=account.id)
    db.session.expire_all()
    return ReportSchema().dump(reports.find(str(report.id))), 200, {"Cache-Control": "no-store"}


@blp.route("/agency/events")
@blp.response(200, AgencyFeedSchema)
@blp.doc(parameters=[
    {"in": "query", "name": "since", "schema": {"type": "string"},
     "description": "the `next_since` of the previous page (0 or absent: from the start)"},
    {"in": "query", "name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": reports.FEED_MAX}}],
    security=[{"bearer": []}])
def agency_events():
    """What happened to the agency's reports after a cursor: to pull whatever a webhook missed."""
    account = auth.current_account()
    since = reports.parse_cursor(request.args.get("since"))
    limit = _int_arg("limit", 100, 1, reports.FEED_MAX)
    events = reports.agency_events(account, since, limit + 1)
    page = events[:limit]
    next_since = reports.format_cursor(page[-1]) if page else request.args.get("since", "0")
    return {"events": page, "next_since": next_since, "has_more": len(events) > limit}, 200, {
        "Cache-Control": "private, no-store"}


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdecimal() and len(raw) <= 19) or not low <= int(raw) <= high:
        raise ApiError(422, "validation_error", f"{name} must be an integer from {low} to {high}.",
                       message_vi=f"{name} phải là số nguyên từ {low} đến {high}.",
                       fields={name: [f"An integer from {low} to {high}."]})
    return int(raw)

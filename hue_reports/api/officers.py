"""Officer API: a report as its agency sees it, the workflow transitions, comments, duplicates, the feed."""

from __future__ import annotations

from flask import request

from ..errors import ApiError
from ..extensions import db
from ..schemas.report import (AgencyFeedSchema, CommentSchema, OfficerEventSchema, OfficerReportSchema, ReportSchema,
                              TransitionSchema)
from ..services import auth, intake, reports, routing, workflow
from . import int_arg, json_object
from .openapi import Blueprint, documented, header, query

blp = Blueprint("officers", __name__, url_prefix="/api/v1", description="Officers: queue and workflow")


STAFF = ("officer", "agency_admin", "dispatcher", "admin")


def _body() -> tuple[dict, list]:
    """The request's fields and uploads: JSON for most actions, multipart/form-data to send photos."""
    if request.mimetype == "multipart/form-data":
        uploads = [intake.Upload(stream=f.stream, field="photos") for f in request.files.getlist("photos")]
        return request.form.to_dict(), uploads
    if not request.get_data(cache=True):
        return {}, []
    data = json_object()
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_body", "Send a JSON object (or multipart/form-data with photos).",
                       message_vi="Dữ liệu gửi lên phải là một đối tượng JSON.")
    return data, []


def _officer_view(report_id: int, account, status: int = 200, acted: bool = False):
    """The officer view; `acted`: right after this account changed it (a transfer may have taken it away)."""
    report = reports.find(str(report_id))
    if not acted and not workflow.may_handle(account, report):
        raise ApiError(404, "report_not_found", "No such report.", message_vi="Không tìm thấy phản ánh.")
    body = OfficerReportSchema(context_account=account).dump(report)
    return body, status, {"ETag": f'"{report.version}"', "Cache-Control": "private, no-store"}


NOT_FOUND = "`report_not_found`: no such report, or not one this account handles."
OFFICER_VIEW = {"ETag": {"description": "the report's version, for If-Match", "schema": {"type": "string"}}}
BODY_ERRORS = {"e400": "`malformed_body`: not valid JSON, or a cut or garbled multipart body.",
               "e413": "`payload_too_large`: the body (or a photo) is too large."}


def _body_doc(schema, multipart_photos: bool) -> dict:
    """JSON described by `schema`, or the same fields as multipart/form-data (with `photos` if they count)."""
    form: dict = {"allOf": [schema]}
    if multipart_photos:
        form = {"allOf": [schema, {"type": "object", "properties": {"photos": {
            "type": "array", "items": {"type": "string", "format": "binary"},
            "description": "resolve: 1 to 5 photos of the fix"}}}]}
    return {"required": True, "content": {"application/json": {"schema": schema},
                                          "multipart/form-data": {"schema": form}}}


@blp.route("/agency/reports/<report_id>")
@blp.alt_response(200, schema=OfficerReportSchema, headers=OFFICER_VIEW, success=True,
                  description="The officer view of the report.")
@documented(blp, auth=True, e404=NOT_FOUND)
def officer_report(report_id: str):
    """A report as its agency sees it: the version to send back, the actions allowed now, every event
    (internal comments too), the photos with their originals. Reporter contact: dispatcher and admins only."""
    account = auth.current_account(roles=STAFF)
    return _officer_view(reports.find(report_id).id, account)


@blp.route("/reports/<report_id>/transitions", methods=["POST"])
@blp.alt_response(200, schema=OfficerReportSchema, headers=OFFICER_VIEW, success=True,
                  description="The officer view of the report after the transition.")
@documented(blp, _body_doc(TransitionSchema, multipart_photos=True), auth=True,
            parameters=[header("If-Match", "the report's version, its ETag (or the `version` field)")],
            **BODY_ERRORS, e404=NOT_FOUND,
            e409="`invalid_transition`: the action is not allowed from the report's status for this account "
                 "(the error lists what is allowed now).",
            e412="`version_mismatch`: the report changed since the version sent.",
            e415="`unsupported_media_type`: a photo that is not JPEG, PNG, WebP or HEIC.",
            e422="`validation_error` (an unknown action, a missing note or reason, an unknown agency, photos "
                 "with an action other than resolve), `photo_already_attached`, `invalid_image`, "
                 "`image_too_large`.",
            e428="`version_required`: neither If-Match nor `version`.")
def transition(report_id: str):
    """Acknowledge, start, resolve, reject, transfer, close or reopen a report (`action`).

    Send the version you saw (If-Match or `version`): 412 if the report changed since, 409 if the action
    is not allowed now. resolve needs a `note` and photos (multipart/form-data); reject, transfer and
    reopen a `reason`; transfer an `agency` (its code, or `dispatcher`)."""
    account = auth.current_account(roles=STAFF)
    fields, uploads = _body()
    version = workflow.parse_version(request.headers.get("If-Match"), fields.get("version"))
    report = reports.find(report_id)
    workflow.transition(report.id, account, str(fields.get("action", "")), version, fields, uploads)
    return _officer_view(report.id, account, acted=True)


@blp.route("/reports/<report_id>/comments", methods=["POST"])
@blp.alt_response(201, schema=OfficerEventSchema, success=True, description="The comment, as an event.")
@documented(blp, _body_doc(CommentSchema, multipart_photos=False), auth=True, **BODY_ERRORS, e404=NOT_FOUND,
            e422="`validation_error`: no text, `public` not a boolean, or photos sent.")
def comment(report_id: str):
    """A comment: `text`, and `public` (true: on the public timeline; false, the default: officers only)."""
    account = auth.current_account(roles=STAFF)
    fields, uploads = _body()
    if uploads:
        raise ApiError(422, "validation_error", "Comments take no photos.", message_vi="Bình luận không kèm ảnh.",
                       fields={"photos": ["Not accepted."]})
    event = workflow.comment(reports.find(report_id).id, account, fields)
    return OfficerEventSchema().dump(event), 201, {"Cache-Control": "no-store"}


@blp.route("/reports/<report_id>/unlink", methods=["POST"])
@blp.alt_response(200, schema=ReportSchema, success=True, description="The report, unlinked and routed.")
@documented(blp, auth=True, e403="`forbidden`: not a staff account, or a report of another agency.",
            e404="`report_not_found`.", e409="`invalid_transition`: the report is not a duplicate.")
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
@documented(blp, auth=True, parameters=[
    query("since", description="the `next_since` of the previous page (0 or absent: from the start)"),
    query("limit", {"type": "integer", "minimum": 1, "maximum": reports.FEED_MAX, "default": 100})],
    e403="`forbidden`: an account of no agency.", e422="`validation_error`: an invalid since or limit.")
def agency_events():
    """What happened to the agency's reports after a cursor: to pull whatever a webhook missed."""
    account = auth.current_account()
    since = reports.parse_cursor(request.args.get("since"))
    limit = int_arg("limit", 100, 1, reports.FEED_MAX)
    events = reports.agency_events(account, since, limit + 1)
    page = events[:limit]
    next_since = reports.format_cursor(page[-1]) if page else request.args.get("since", "0")
    return {"events": page, "next_since": next_since, "has_more": len(events) > limit}, 200, {
        "Cache-Control": "private, no-store"}

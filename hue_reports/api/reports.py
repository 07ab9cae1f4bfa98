"""Resident API: submit a report, follow it, rate the fix; list what can be reported."""

from __future__ import annotations

from flask import request, url_for

from ..errors import ApiError
from ..schemas.category import ServiceListSchema
from ..schemas.report import (
    EventListSchema,
    FeedbackSchema,
    PrivateReportSchema,
    ReportCreatedSchema,
    ReportSchema,
    multipart_request_body,
)
from ..services import catalog, intake, reports, workflow
from . import json_object
from .openapi import Blueprint, documented, header, json_request_body

blp = Blueprint("reports", __name__, url_prefix="/api/v1", description="Residents: reports and services")


@blp.route("/services")
@blp.response(200, ServiceListSchema)
def list_services():
    """The categories a resident can report, in Vietnamese and English, with their deadlines."""
    services = catalog.active_categories()
    return {"services": services, "count": len(services)}, 200, {"Cache-Control": "public, max-age=300"}


TRACKING_TOKEN = "X-Tracking-Token"
NOT_FOUND = "`report_not_found`: no report with this id or code."
HEADER_DOC = {"schema": {"type": "string"}}


@blp.route("/reports", methods=["POST"])
@blp.alt_response(201, schema=ReportCreatedSchema, success=True,
                  description="The report, filed (or, for a retry with the same Idempotency-Key and body, the "
                              "first answer again, with `Idempotent-Replayed: true`).",
                  headers={"Location": {"description": "the report's URL", **HEADER_DOC},
                           "Idempotent-Replayed": {"description": "`true` on a replayed answer", **HEADER_DOC}})
@documented(
    blp, multipart_request_body(), parameters=[header(
        "Idempotency-Key", "a retry with the same key and body replays the first answer instead of filing the "
        "report again", schema={"type": "string", "minLength": 1, "maxLength": 200})],
    e400="`malformed_body`: a cut or garbled multipart body (send it again); `invalid_idempotency_key`.",
    e409="`idempotency_conflict`: the first request with this Idempotency-Key is still being processed.",
    e413="`photo_too_large` (MAX_PHOTO_MB), `payload_too_large` (MAX_REQUEST_MB).",
    e415="`unsupported_media_type`: not multipart/form-data, or a photo that is not JPEG, PNG, WebP or HEIC.",
    e422="`validation_error` (fields), `location_required`, `outside_service_area`, `address_not_found`, "
         "`address_ambiguous`, `invalid_image`, `image_too_large`, `idempotency_key_reused` (the same key with "
         "another body).",
    e429="`too_many_requests`: too many reports from this address or device (Retry-After).")
def submit_report():
    """Submit a report with 1 to 5 photos, as multipart/form-data, in one request.

    Fields: category, description, lat, lon, accuracy_m, address, reporter_name, reporter_phone,
    reporter_email, device_id; files: photos. Send an Idempotency-Key header so that a retry
    replays the first answer instead of filing a second report.
    """
    return submit_from_request("app")


def submit_from_request(channel: str, fields: dict | None = None):
    """This multipart request's report through intake (the app's API, and the residents' page with channel
    `web`): the 201 answer with its headers. `fields`: the form's fields, if the caller read them."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "Send the report as multipart/form-data.",
                       message_vi="Gửi phản ánh dưới dạng multipart/form-data.")
    uploads = [intake.Upload(stream=f.stream, field="photos") for f in request.files.getlist("photos")]
    outcome = intake.submit(intake.Submission(
        fields=request.form.to_dict() if fields is None else fields, uploads=uploads,
        idempotency_key=request.headers.get("Idempotency-Key"), client_ip=request.remote_addr, channel=channel))
    headers = {"Location": url_for("reports.get_report", report_id=outcome.report_id), "Cache-Control": "no-store"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return outcome.body, 201, headers


@blp.route("/reports/<report_id>")
@blp.alt_response(200, schema=PrivateReportSchema, success=True,
                  description="The report's public view; with the reporter's X-Tracking-Token, also `reporter` and "
                              "the GPS and time of the reporter's own photos.")
@documented(blp, parameters=[header(TRACKING_TOKEN, "the tracking token given when the report was filed")],
            e403="`invalid_tracking_token`: the token sent is not this report's.", e404=NOT_FOUND)
def get_report(report_id: str):
    """A report's public view; with the header X-Tracking-Token (the reporter), the private fields too."""
    report = reports.find(report_id)
    token = request.headers.get("X-Tracking-Token")
    if token is not None:
        if not reports.is_reporter(report, token):
            raise ApiError(403, "invalid_tracking_token", "This tracking token is not this report's.",
                           message_vi="Mã theo dõi không đúng.")
        return PrivateReportSchema().dump(report), 200, {"Cache-Control": "private, no-store"}
    return ReportSchema().dump(report), 200, {"Cache-Control": "public, max-age=30"}


@blp.route("/reports/<report_id>/events")
@blp.alt_response(200, schema=EventListSchema, success=True, description="The public timeline, oldest first.")
@documented(blp, e404=NOT_FOUND)
def get_report_events(report_id: str):
    """A report's public timeline, with Vietnamese and English labels."""
    report = reports.find(report_id)
    body = EventListSchema().dump({"report": report.public_code, "events": reports.public_events(report)})
    return body, 200, {"Cache-Control": "public, max-age=30"}


@blp.route("/reports/<report_id>/feedback", methods=["POST"])
@blp.alt_response(201, schema=PrivateReportSchema, success=True,
                  description="The report after the rating (closed, or reopened by a 1 or 2), as its reporter sees it.")
@documented(blp, json_request_body(FeedbackSchema),
            parameters=[header(TRACKING_TOKEN, "the report's tracking token", required=True)],
            e400="`malformed_body`: the body is not valid JSON.",
            e401="`tracking_token_required`: no X-Tracking-Token.",
            e403="`invalid_tracking_token`: the token is not this report's.", e404=NOT_FOUND,
            e409="`feedback_exists` (rated already), `not_resolved`, `feedback_closed` (more than FEEDBACK_DAYS "
                 "after the fix).",
            e413="`payload_too_large`: the body is larger than 64 kB.",
            e422="`validation_error`: rating not an integer from 1 to 5, an invalid comment, or not a JSON object.")
def post_feedback(report_id: str):
    """The reporter rates the fix, once, within FEEDBACK_DAYS of it: JSON `rating` (1-5) and `comment`.
    A 1 or 2 reopens the report to the same agency; 3 to 5 closes it."""
    report = reports.find(report_id)
    token = request.headers.get("X-Tracking-Token")
    if not token:
        raise ApiError(401, "tracking_token_required", "Send the report's tracking token (X-Tracking-Token).",
                       message_vi="Cần mã theo dõi của phản ánh (X-Tracking-Token).")
    if not reports.is_reporter(report, token):
        raise ApiError(403, "invalid_tracking_token", "This tracking token is not this report's.",
                       message_vi="Mã theo dõi không đúng.")
    workflow.feedback(report, json_object())
    return PrivateReportSchema().dump(reports.find(str(report.id))), 201, {"Cache-Control": "private, no-store"}

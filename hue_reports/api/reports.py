"""Resident API: submit a report, follow it, rate the fix; list what can be reported."""

from __future__ import annotations

from flask import request, url_for
from flask_smorest import Blueprint

from ..errors import ApiError
from ..schemas.category import ServiceListSchema
from ..schemas.common import ErrorSchema
from ..schemas.report import (
    EventListSchema,
    PrivateReportSchema,
    ReportCreatedSchema,
    ReportSchema,
    multipart_request_body,
)
from ..services import catalog, intake, reports, workflow
from . import json_object

blp = Blueprint("reports", __name__, url_prefix="/api/v1", description="Residents: reports and services")


@blp.route("/services")
@blp.response(200, ServiceListSchema)
def list_services():
    """The categories a resident can report, in Vietnamese and English, with their deadlines."""
    services = catalog.active_categories()
    return {"services": services, "count": len(services)}, 200, {"Cache-Control": "public, max-age=300"}


@blp.route("/reports", methods=["POST"])
@blp.doc(requestBody=multipart_request_body(), parameters=[{
    "in": "header", "name": "Idempotency-Key", "required": False, "schema": {"type": "string", "maxLength": 200},
    "description": "a retry with the same key and body replays the first answer"}])
@blp.alt_response(201, schema=ReportCreatedSchema, description="The report, filed.", success=True)
@blp.alt_response(413, schema=ErrorSchema, description="A photo or the request is too large.")
@blp.alt_response(415, schema=ErrorSchema, description="Not multipart, or a photo of another format.")
@blp.alt_response(422, schema=ErrorSchema, description="Invalid fields, location or photo.")
@blp.alt_response(429, schema=ErrorSchema, description="Too many reports from this client.")
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
def get_report_events(report_id: str):
    """A report's public timeline, with Vietnamese and English labels."""
    report = reports.find(report_id)
    body = EventListSchema().dump({"report": report.public_code, "events": reports.public_events(report)})
    return body, 200, {"Cache-Control": "public, max-age=30"}


@blp.route("/reports/<report_id>/feedback", methods=["POST"])
@blp.doc(parameters=[{"in": "header", "name": "X-Tracking-Token", "required": True, "schema": {"type": "string"}}])
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

"""The residents' pages: the report form (/report) and the private tracking page (/track/<code>/<token>).

/report is a form with a small script (static/js/report-form.js): photos from the camera or the gallery,
the position from the browser's geolocation or a pin on the map, the category, a description and an
optional contact. The script posts it to POST /report with an Idempotency-Key made on the page, so that
a double tap or a retry makes one report; POST /report is intake's one path (services.intake.submit,
channel `web`, exactly as POST /api/v1/reports) and answers the API's JSON (its errors too), with the
tracking link added.

The tracking link carries the reporter's tracking token: the page shows the report as its reporter may
see it (their contact, the public timeline) and, once it is resolved, takes their rating through
services.workflow.feedback (a form with the session's CSRF token). It is never cached, never indexed and
never sent on as a Referer; a wrong token is the same 404 as an unknown report.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import Blueprint, current_app, flash, g, jsonify, render_template, redirect, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from ..api.reports import submit_from_request
from ..errors import ApiError, handle_api_error, handle_http_exception
from ..extensions import db
from ..models import Feedback
from ..schemas.report import EventSchema, PrivateReportSchema
from ..services import public, reports, workflow
from . import category_groups, mini_map, pages
from .i18n import message

bp = pages.setup(Blueprint("resident", __name__))

JSON_ENDPOINTS = ("resident.submit_report",)  # answered to the page's script: the API's JSON, errors too


@bp.before_request
def csrf():
    pages.check_csrf()


@bp.route("/report")
def report_form():
    """The report form: photos, position (geolocation or a pin), category, description, optional contact."""
    config = {
        "submit": url_for("resident.submit_report"),
        "tileUrl": current_app.config["MAP_TILE_URL"],
        "tileAttribution": current_app.config["MAP_TILE_ATTRIBUTION"],
        "bounds": public.city_bounds(),
        "maxPhotos": current_app.config["MAX_PHOTOS"],
        "lang": g.lang,
        "labels": {key: message(key, g.lang) for key in (
            "pin_set", "pin_missing", "locating", "locate_failed", "sending", "send_failed", "photos_missing",
            "too_many_photos", "accuracy")},
    }
    return render_template("resident/report_form.html", config=config, category_groups=category_groups())


@bp.route("/report", methods=["POST"])
def submit_report():
    """The form's report through intake (channel `web`); the API's 201 answer plus `tracking_url` and
    `page_url`."""
    fields = {k: v for k, v in request.form.items() if k != pages.CSRF_FIELD}
    body, status, headers = submit_from_request("web", fields)
    body = {**body, "tracking_url": url_for("resident.track", code=body["code"], token=body["tracking_token"]),
            "page_url": url_for("web.report_page", code=body["code"])}
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


# --- tracking ---------------------------------------------------------------------------------------

def _reporters_report(code: str, token: str):
    report = reports.find(code)
    if not reports.is_reporter(report, token):  # (a wrong link says no more than an unknown report)
        raise ApiError(404, "report_not_found", "No such report.", message_vi="Không tìm thấy phản ánh.")
    return report


def render_track(code: str, token: str, status: int = 200, error: str | None = None):
    """The reporter's page: the status, the timeline, the photos, and the rating form while it is open."""
    report = _reporters_report(code, token)
    pages.set_canonical("resident.track", code=report.public_code, token=token)
    body = PrivateReportSchema().dump(report)
    body["events"] = EventSchema(many=True).dump(reports.public_events(report))
    given = db.session.scalars(select(Feedback).where(Feedback.report_id == report.id)).first()
    days = current_app.config["FEEDBACK_DAYS"]
    rating_open = (given is None and report.status == "resolved" and report.resolved_at is not None
                   and datetime.now(timezone.utc) - report.resolved_at <= timedelta(days=days))
    context = {
        "report": body,
        "evidence": [p for p in body["photos"] if p["kind"] == "evidence"],
        "resolution": [p for p in body["photos"] if p["kind"] == "resolution"],
        "mini_map": mini_map(body),
        "token": token,
        "feedback": given,
        "rating_open": rating_open,
        "rating_until": report.resolved_at + timedelta(days=days) if rating_open else None,
        "error": error,
    }
    return render_template("resident/track.html", **context), status, {
        "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


@bp.route("/track/<code>/<token>")
def track(code: str, token: str):
    return render_track(code, token)


@bp.route("/track/<code>/<token>/feedback", methods=["POST"])
def feedback(code: str, token: str):
    """The reporter's rating of the fix (services.workflow.feedback: once, within FEEDBACK_DAYS)."""
    report = _reporters_report(code, token)
    raw = request.form.get("rating", "")
    rating = int(raw) if raw.isascii() and raw.isdecimal() and len(raw) <= 2 else (raw or None)
    try:
        workflow.feedback(report, {"rating": rating, "comment": request.form.get("comment") or None})
    except ApiError as exc:
        if exc.status == 404:
            raise
        return render_track(code, token, status=exc.status, error=pages.error_text(exc)[2])
    flash(message("feedback_thanks", g.lang), "success")
    return redirect(url_for("resident.track", code=report.public_code, token=token), 303)


@bp.after_request
def private(response):
    # (the form carries this session's CSRF token; the tracking page is the reporter's alone)
    response.headers["Cache-Control"] = "private, no-store"
    return pages.no_frames(response)


@bp.errorhandler(ApiError)
def resident_error(exc: ApiError):
    if request.endpoint in JSON_ENDPOINTS:
        return handle_api_error(exc)
    return pages.error_page(pages.said_as(exc, "report_not_found") if exc.status == 404 else exc)


@bp.errorhandler(HTTPException)
def resident_http_error(exc: HTTPException):
    if request.endpoint in JSON_ENDPOINTS:
        return handle_http_exception(exc)
    return pages.error_page(exc)

"""Open311 GeoReport v2 server: JSON and XML as the spec defines them (http://wiki.open311.org/GeoReport_v2).

The format comes from the extension (.json or .xml; anything else is 404). Errors are the spec's error
list, `[{"code": <HTTP status>, "description": ...}]` (XML: <errors><error>...), with that HTTP status.
Submissions go through intake.submit, like the app's, with the channel `open311`.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import marshmallow as ma
import redis
from sqlalchemy import exc as sa_exc
from flask import Response, current_app, request, url_for
from flask_smorest import Blueprint
from werkzeug.exceptions import HTTPException

from ..errors import HTTP_ERRORS, ApiError
from ..replica import replica_readable
from ..services import intake, outbox, reports
from ..services import open311 as o311
from ..services.open311 import Open311Error

blp = Blueprint("open311", __name__, url_prefix="/open311/v2", description="Open311 GeoReport v2")


def _format(fmt: str | None = None) -> str:
    if fmt is None:  # (an error: guess from the path)
        return "xml" if request.path.endswith(".xml") else "json"
    if fmt not in o311.FORMATS:
        raise Open311Error(404, "Not found: use the .json or .xml extension.")
    return fmt


def _answer(fmt: str, root: str, document, status: int = 200, headers: dict | None = None) -> Response:
    body, mimetype = o311.render(fmt, root, document)
    response = Response(body, status=status, content_type=mimetype)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _error_answer(exc: Open311Error) -> Response:
    return _answer(_format(), "errors", exc.errors(), exc.status, exc.headers)


@blp.errorhandler(Open311Error)
def _open311_error(exc: Open311Error):
    return _error_answer(exc)


@blp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return _error_answer(o311.from_api_error(exc))


@blp.errorhandler(ma.ValidationError)
def _validation_error(exc: ma.ValidationError):
    return _error_answer(o311.from_validation_error(exc))


@blp.errorhandler(sa_exc.SQLAlchemyError)
@blp.errorhandler(redis.RedisError)
def _backend_error(exc: Exception):
    """Database and queue errors in the spec's error list, with the status the app's handlers choose
    (a value PostgreSQL refuses: 422; an outage: 503 with Retry-After; anything else: 500, logged)."""
    from ..errors import handle_database_unavailable, handle_redis_unavailable

    answer = (handle_redis_unavailable if isinstance(exc, redis.RedisError) else handle_database_unavailable)(exc)
    description = (answer.get_json() or {}).get("error", {}).get("message", "Error.")
    headers = {k: v for k, v in answer.headers.items() if k == "Retry-After"}
    return _error_answer(Open311Error(answer.status_code, description, headers=headers))


@blp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    status = exc.code or 500
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return _error_answer(Open311Error(status, HTTP_ERRORS.get(status, ("", exc.description or "Error."))[1],
                                      headers=headers))


def _city(fmt: str):
    """The city, after checking the optional jurisdiction_id."""
    _format(fmt)
    city = o311.city()
    o311.check_jurisdiction(city, request.values.get("jurisdiction_id"))
    return city


def _base_url() -> str:
    return (current_app.config["PUBLIC_BASE_URL"] or request.host_url).rstrip("/")


def _photo_url(photo) -> str:
    return _base_url() + url_for("photos.photo", photo_id=photo.id, size="display")


@blp.route("/discovery.<fmt>")
@replica_readable
def discovery(fmt: str):
    """Discovery: this endpoint, its specification and formats."""
    _city(fmt)
    endpoint = _base_url() + request.script_root + blp.url_prefix
    return _answer(fmt, "discovery", o311.discovery(endpoint), headers={"Cache-Control": "public, max-age=300"})


@blp.route("/services.<fmt>")
@replica_readable
def services(fmt: str):
    """Service list: the active categories."""
    from ..services import catalog

    _city(fmt)
    return _answer(fmt, "services", [o311.service(c) for c in catalog.active_categories()],
                   headers={"Cache-Control": "public, max-age=300"})


@blp.route("/services/<service_code>.<fmt>")
@replica_readable
def service_definition(service_code: str, fmt: str):
    """Service definition: a category's attributes."""
    _city(fmt)
    category = o311.active_category(service_code)
    if category is None:
        raise Open311Error(404, f"service_code not found: {service_code}.")
    return _answer(fmt, "service_definition", o311.service_definition(category),
                   headers={"Cache-Control": "public, max-age=300"})


@blp.route("/requests.<fmt>", methods=["GET", "POST"])
@replica_readable
def service_requests(fmt: str):
    """GET: service requests (filters: service_request_id, service_code, start_date, end_date, status).
    POST: a new service request (api_key; lat/long, or an address_string naming the ward or commune; the photo
    as the multipart file `media`)."""
    if request.method == "POST":
        # The api_key first: given in the query string it is checked before the body (and its photos) is
        # even parsed; in the body (the spec's way) before anything is stored.
        _format(fmt)
        client = o311.check_api_key(request.args.get("api_key") or request.form.get("api_key"))
        _city(fmt)
        return _post_request(fmt, client)
    city = _city(fmt)
    tz = ZoneInfo(city.timezone)
    found = o311.query_requests(request.args, tz)
    return _answer(fmt, "service_requests", o311.service_requests(found, tz, _photo_url),
                   headers={"Cache-Control": "public, max-age=30"})


def _post_request(fmt: str, client) -> Response:
    code = request.form.get("service_code", "").strip()
    if not code:
        raise Open311Error(400, "service_code is required.")
    category = o311.active_category(code)
    if category is None:
        raise Open311Error(400, f"service_code not found: {code}.")
    media = [f for f in request.files.getlist("media") if f.filename or f.content_length]
    uploads = [intake.Upload(stream=f.stream, field="media") for f in media]
    media_url = request.form.get("media_url", "").strip()
    if not uploads and media_url and outbox.url_allowed(media_url, current_app.config["MEDIA_URL_PREFIXES"]):
        fetched, error = outbox.fetch_bounded(media_url, current_app.config["MAX_PHOTO_MB"] * 1024 * 1024,
                                              current_app.config["WEBHOOK_TIMEOUT_SECONDS"])
        if fetched is None:
            raise Open311Error(400, f"media_url could not be fetched ({error}).")
        uploads = [intake.Upload(stream=fetched, field="media_url")]
    try:
        return _submit(fmt, category, uploads, client)
    finally:
        for upload in uploads:
            if upload.field == "media_url":
                upload.stream.close()  # (the fetched file; uploads are the request's to close)


def _submit(fmt: str, category, uploads: list, client) -> Response:
    fields = o311.intake_fields(request.form, category, has_media=bool(uploads))
    outcome = intake.submit(intake.Submission(
        fields=fields, uploads=uploads,
        idempotency_key=request.headers.get("Idempotency-Key"), client_ip=request.remote_addr, channel="open311",
        client=f"key{client.id}"))  # (an Idempotency-Key belongs to its client application)
    headers = {"Cache-Control": "no-store",
               "Location": url_for("open311.service_request", request_id=outcome.body["code"], fmt=fmt)}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    # 200, as the spec's examples (and the clients written against them) expect.
    return _answer(fmt, "service_requests", o311.created(outcome.body["code"], category), 200, headers)


@blp.route("/requests/<request_id>.<fmt>")
def service_request(request_id: str, fmt: str):
    """One service request, by our public code (or id)."""
    city = _city(fmt)
    tz = ZoneInfo(city.timezone)
    try:
        report = reports.find(request_id)
    except ApiError:
        raise Open311Error(404, f"service_request_id not found: {request_id}.") from None
    return _answer(fmt, "service_requests", o311.service_requests([report], tz, _photo_url),
                   headers={"Cache-Control": "public, max-age=30"})


@blp.route("/tokens/<token>.<fmt>")
def token(token: str, fmt: str):
    """The service_request_id of a token. We give the service_request_id at once, so our tokens are our
    public codes."""
    _city(fmt)
    report = o311.by_token(token)
    if report is None:
        raise Open311Error(404, f"token not found: {token}.")
    return _answer(fmt, "service_requests", [{"service_request_id": report.public_code, "token": token}])


@blp.route("/<path:resource>", methods=["GET", "POST"])
def unknown(resource: str):
    """Anything else under /open311/v2/."""
    raise Open311Error(404, f"Not found: {resource}. Resources: discovery, services, services/<service_code>, "
                            "requests, requests/<service_request_id>, tokens/<token> (.json or .xml).")

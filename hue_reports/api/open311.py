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
from werkzeug.exceptions import HTTPException

from ..errors import HTTP_ERRORS, ApiError
from ..replica import replica_readable
from ..schemas.open311 import (DiscoverySchema, Open311CreatedSchema, Open311ErrorSchema, Open311PostSchema,
                               Open311RequestSchema, Open311ServiceDefinitionSchema, Open311ServiceSchema,
                               Open311TokenSchema, array_of)
from ..services import intake, outbox, reports
from ..services import open311 as o311
from ..services.open311 import Open311Error
from ..services.storage import StorageError
from .openapi import RETRY_AFTER, Blueprint, header, query

UNAVAILABLE = "OPEN311_UNAVAILABLE"  # its 503, in the spec's error list
blp = Blueprint("open311", __name__, url_prefix="/open311/v2", description="Open311 GeoReport v2",
                unavailable=UNAVAILABLE)
XML = {"type": "string", "description": "the same document in the spec's XML"}
ERRORS = array_of(Open311ErrorSchema)
FMT = {"in": "path", "name": "fmt", "required": True, "schema": {"type": "string", "enum": list(o311.FORMATS)},
       "description": "json or xml (anything else: 404)"}
JURISDICTION = query("jurisdiction_id", description="optional; if given, this city's")


def register_components(spec) -> None:
    """Open311's 503: the spec's error list, in JSON or XML."""
    if UNAVAILABLE not in spec.components.responses:
        spec.components.response(UNAVAILABLE, {
            "description": "An outage (the database or Redis), or no city loaded yet. Try again after Retry-After.",
            "headers": {"Retry-After": RETRY_AFTER},
            "content": {"application/json": {"schema": ERRORS}, "text/xml": {"schema": XML}}})


def answers(schema, description: str, parameters: list | None = None, **errors: str):
    """OpenAPI of an Open311 resource: 200 with `schema` (JSON) or XML, and each `eNNN` error in the spec's error
    list (JSON or XML)."""
    def decorate(view):
        for key, text in sorted(errors.items(), reverse=True):
            view = blp.alt_response(int(key[1:]), schema=XML, content_type="text/xml")(view)
            view = blp.alt_response(int(key[1:]), schema=ERRORS, content_type="application/json",
                                    description=text)(view)
        view = blp.alt_response(200, schema=XML, content_type="text/xml", success=True)(view)
        view = blp.alt_response(200, schema=schema, content_type="application/json", description=description,
                                success=True)(view)
        return blp.doc(parameters=[FMT, JURISDICTION, *(parameters or [])])(view)
    return decorate


E400_JURISDICTION = "Another jurisdiction_id."
W3C = "a W3C (ISO 8601) date-time, e.g. 2026-11-21T15:04:05+07:00 (without an offset: the city's time; blank: none)"
E404_FORMAT = "An extension other than .json or .xml."


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
@blp.errorhandler(StorageError)
def _backend_error(exc: Exception):
    """Database, queue and photo storage errors in the spec's error list, with the status the app's handlers
    choose (a value PostgreSQL refuses: 422; an outage: 503 with Retry-After; anything else: 500, logged)."""
    from ..errors import handle_database_unavailable, handle_redis_unavailable, handle_storage_unavailable

    handler = (handle_redis_unavailable if isinstance(exc, redis.RedisError) else
               handle_storage_unavailable if isinstance(exc, StorageError) else handle_database_unavailable)
    answer = handler(exc)
    description = (answer.get_json() or {}).get("error", {}).get("message", "Error.")
    headers = {k: v for k, v in answer.headers.items() if k == "Retry-After"}
    return _error_answer(Open311Error(answer.status_code, description, headers=headers))


@blp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    """Flask's and Werkzeug's errors in the spec's error list (also for paths under /open311/v2/ no route
    matched: web/pages.py's unrouted_error)."""
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
@answers(DiscoverySchema, "This endpoint, its specification and formats.", e400=E400_JURISDICTION, e404=E404_FORMAT)
@replica_readable
def discovery(fmt: str):
    """Discovery: this endpoint, its specification and formats."""
    _city(fmt)
    endpoint = _base_url() + request.script_root + blp.url_prefix
    return _answer(fmt, "discovery", o311.discovery(endpoint), headers={"Cache-Control": "public, max-age=300"})


@blp.route("/services.<fmt>")
@answers(array_of(Open311ServiceSchema), "The active categories.", e400=E400_JURISDICTION, e404=E404_FORMAT)
@replica_readable
def services(fmt: str):
    """Service list: the active categories."""
    from ..services import catalog

    _city(fmt)
    return _answer(fmt, "services", [o311.service(c) for c in catalog.active_categories()],
                   headers={"Cache-Control": "public, max-age=300"})


@blp.route("/services/<service_code>.<fmt>")
@answers(Open311ServiceDefinitionSchema, "The category's attributes.", e400=E400_JURISDICTION,
         e404="An unknown or inactive service_code, or an extension other than .json or .xml.")
@replica_readable
def service_definition(service_code: str, fmt: str):
    """Service definition: a category's attributes."""
    _city(fmt)
    category = o311.active_category(service_code)
    if category is None:
        raise Open311Error(404, f"service_code not found: {service_code}.")
    return _answer(fmt, "service_definition", o311.service_definition(category),
                   headers={"Cache-Control": "public, max-age=300"})


@blp.route("/requests.<fmt>", methods=["GET"])
@answers(array_of(Open311RequestSchema), "Service requests, newest first, at most 1000.",
         parameters=[query("service_request_id", description="comma-separated ids or codes (the other filters are "
                                                              "then ignored)"),
                     query("service_code", description="comma-separated"),
                     query("start_date", description=W3C), query("end_date", description=W3C),
                     query("status", description="open, closed, or both comma-separated")],
         e400="A date that is not W3C, a span over 90 days, end before start, an unknown status, more than 200 ids, "
              "another jurisdiction_id.", e404=E404_FORMAT)
@replica_readable
def service_requests(fmt: str):
    """Service requests (filters: service_request_id, service_code, start_date, end_date, status)."""
    city = _city(fmt)
    tz = ZoneInfo(city.timezone)
    found = o311.query_requests(request.args, tz)
    return _answer(fmt, "service_requests", o311.service_requests(found, tz, _photo_url),
                   headers={"Cache-Control": "public, max-age=30"})


@blp.route("/requests.<fmt>", methods=["POST"])
@answers(array_of(Open311CreatedSchema), "The new service request (200, as the spec's examples).",
         parameters=[query("api_key", description="the client application's key (or a form field)"),
                     header("Idempotency-Key", "a retry with the same key and body replays the first answer")],
         e400="A missing or unknown service_code, no usable location, an invalid attribute, a media_url that cannot "
              "be fetched, a malformed body, another jurisdiction_id.",
         e403="A missing or invalid api_key.", e404=E404_FORMAT,
         e409="The first request with this Idempotency-Key is still being processed.",
         e413="A photo or the request is too large.", e415="A photo that is not JPEG, PNG, WebP or HEIC.",
         e422="Invalid fields or photo, or an Idempotency-Key reused with another body.",
         e429="Too many requests from this client application (Retry-After).")
@blp.doc(requestBody={"required": True, "content": {
    "multipart/form-data": {"schema": Open311PostSchema},
    "application/x-www-form-urlencoded": {"schema": Open311PostSchema}}})
def post_service_request(fmt: str):
    """A new service request (api_key; lat/long, or an address_string naming the ward or commune; the photo
    as the multipart file `media`)."""
    # The api_key first: given in the query string it is checked before the body (and its photos) is
    # even parsed; in the body (the spec's way) before anything is stored.
    _format(fmt)
    client = o311.check_api_key(request.args.get("api_key") or request.form.get("api_key"))
    _city(fmt)
    return _post_request(fmt, client)


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
@answers(array_of(Open311RequestSchema), "The service request (a list of one).", e400=E400_JURISDICTION,
         e404="No such service_request_id, or an extension other than .json or .xml.")
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
@answers(array_of(Open311TokenSchema), "The token's service_request_id.", e400=E400_JURISDICTION,
         e404="An unknown token, or an extension other than .json or .xml.")
def token(token: str, fmt: str):
    """The service_request_id of a token. We give the service_request_id at once, so our tokens are our
    public codes."""
    _city(fmt)
    report = o311.by_token(token)
    if report is None:
        raise Open311Error(404, f"token not found: {token}.")
    return _answer(fmt, "service_requests", [{"service_request_id": report.public_code, "token": token}])


@blp.route("/<path:resource>", methods=["GET", "POST"])
@blp.alt_response(404, schema=ERRORS, content_type="application/json", description="Not an Open311 resource.")
@blp.alt_response(404, schema=XML, content_type="text/xml")
def unknown(resource: str):
    """Anything else under /open311/v2/."""
    raise Open311Error(404, f"Not found: {resource}. Resources: discovery, services, services/<service_code>, "
                            "requests, requests/<service_request_id>, tokens/<token> (.json or .xml).")

"""The one JSON error shape, for our errors and for Flask's own.

Every 4xx and 5xx answer is::

    {"error": {"code": "not_found", "message": "...", "message_vi": "...", "fields": {...}}}

`code` is the stable, machine-readable contract; `message` is English and
`message_vi` Vietnamese, for people; `fields` maps an input field to what is wrong
with it (validation errors), and is {} when no field is at fault.

An outage of PostgreSQL or Redis is not a bug: it answers 503 with Retry-After,
so clients retry, instead of a 500.
"""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
import redis
from flask import Flask, Response, jsonify
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

# Codes and bilingual messages for the HTTP errors Flask and Werkzeug raise themselves.
HTTP_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", "The request is malformed.", "Yêu cầu không hợp lệ."),
    401: ("unauthorized", "Authentication is required.", "Cần đăng nhập."),
    403: ("forbidden", "You may not do this.", "Bạn không có quyền thực hiện thao tác này."),
    404: ("not_found", "Not found.", "Không tìm thấy."),
    405: ("method_not_allowed", "This method is not allowed here.", "Phương thức không được hỗ trợ."),
    406: ("not_acceptable", "No acceptable representation.", "Không có định dạng phù hợp."),
    409: ("conflict", "The request conflicts with the current state.", "Yêu cầu xung đột với trạng thái hiện tại."),
    410: ("gone", "This resource is gone.", "Tài nguyên không còn tồn tại."),
    411: ("length_required", "Content-Length is required.", "Thiếu Content-Length."),
    412: ("precondition_failed", "The resource has changed since you read it.", "Dữ liệu đã thay đổi, hãy tải lại."),
    413: ("payload_too_large", "The request is too large.", "Dữ liệu gửi lên quá lớn."),
    414: ("uri_too_long", "The URL is too long.", "Đường dẫn quá dài."),
    415: ("unsupported_media_type", "This media type is not supported.", "Định dạng không được hỗ trợ."),
    422: ("validation_error", "Some fields are invalid.", "Một số trường không hợp lệ."),
    428: ("precondition_required", "A version (If-Match) is required.", "Cần gửi phiên bản (If-Match)."),
    429: ("too_many_requests", "Too many requests; try again later.", "Quá nhiều yêu cầu, vui lòng thử lại sau."),
    500: ("internal_error", "An unexpected error occurred.", "Đã xảy ra lỗi không mong muốn."),
    501: ("not_implemented", "This part of the API is not available yet.", "Chức năng này chưa được hỗ trợ."),
    503: ("unavailable", "The service is temporarily unavailable.", "Dịch vụ tạm thời không khả dụng."),
}


class ApiError(Exception):
    """An error we raise on purpose; rendered in the shared shape with its status."""

    def __init__(self, status: int, code: str, message: str, *, message_vi: str | None = None,
                 fields: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.message_vi = message_vi
        self.fields = fields or {}
        self.headers = headers or {}


def error_response(status: int, code: str | None = None, message: str | None = None, *,
                   message_vi: str | None = None, fields: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """Render the shared error shape; defaults come from HTTP_ERRORS for `status`."""
    default_code, default_en, default_vi = HTTP_ERRORS.get(status, ("error", "Error.", "Lỗi."))
    body: dict[str, Any] = {
        "code": code or default_code,
        "message": message or default_en,
        "message_vi": message_vi or (default_vi if message is None else None),
    }
    if body["message_vi"] is None:
        del body["message_vi"]
    body["fields"] = fields or {}
    response = jsonify({"error": body})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def handle_http_exception(exc: HTTPException) -> Response:
    """Flask's and Werkzeug's own errors (404, 405, 413...), and webargs' 422s."""
    status = exc.code or 500
    if status >= 500 and not isinstance(exc, InternalServerError):
        log.warning("HTTP %s: %s", status, exc)
    data = getattr(exc, "data", None) or {}
    fields = data.get("errors") or data.get("messages")
    if isinstance(fields, dict) and len(fields) == 1 and next(iter(fields)) in ("json", "form", "query", "files"):
        fields = next(iter(fields.values()))  # webargs nests errors under the location
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    return error_response(status, fields=fields or None, headers=headers, message=data.get("message"))


def handle_api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, message_vi=exc.message_vi,
                          fields=exc.fields, headers=exc.headers)


def handle_validation_error(exc: ma.ValidationError) -> Response:
    fields = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return error_response(422, fields=fields)


RETRY_AFTER_S = "5"


def handle_database_unavailable(exc: sa_exc.SQLAlchemyError) -> Response:
    """PostgreSQL unreachable, restarting, or timing out: 503, retry later. Anything else is a bug."""
    if isinstance(exc, sa_exc.DataError) and _input_shaped(exc):
        # A value PostgreSQL cannot take (a NUL character, a number out of range): the input's fault.
        log.warning("refused a value the database cannot store: %s", _sqlstate(exc) or "client-side")
        return error_response(422, "invalid_value", "A value in the request cannot be stored (e.g. a NUL "
                              "character or a number out of range).",
                              message_vi="Dữ liệu gửi lên có giá trị không hợp lệ.")
    if isinstance(exc, sa_exc.DBAPIError) and not (exc.connection_invalidated or
                                                   isinstance(exc, sa_exc.OperationalError)):
        return handle_unexpected(exc)
    log.warning("database unavailable: %s", str(getattr(exc, "orig", None) or exc).strip().splitlines()[0])
    return error_response(503, "database_unavailable", "The database is unavailable; try again shortly.",
                          message_vi="Cơ sở dữ liệu tạm thời không khả dụng, vui lòng thử lại sau.",
                          headers={"Retry-After": RETRY_AFTER_S})


# SQLSTATEs of values that came from the request: character not in repertoire (NUL), too long, out of
# range, bad date/time. Any other data error (division by zero, a bad cast in our SQL) is a bug: 500.
INPUT_SQLSTATES = {"22021", "22P05", "22001", "22003", "22007", "22008"}


def _sqlstate(exc: sa_exc.DBAPIError) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def _input_shaped(exc: sa_exc.DBAPIError) -> bool:
    state = _sqlstate(exc)
    if state is None:  # raised by the driver before sending: psycopg refuses NUL in text itself
        return "NUL" in str(getattr(exc, "orig", exc))
    return state in INPUT_SQLSTATES


def handle_redis_unavailable(exc: redis.RedisError) -> Response:
    log.warning("redis unavailable: %s", exc)
    return error_response(503, "queue_unavailable", "The queue is unavailable; try again shortly.",
                          message_vi="Hàng đợi tạm thời không khả dụng, vui lòng thử lại sau.",
                          headers={"Retry-After": RETRY_AFTER_S})


def handle_storage_unavailable(exc: Exception) -> Response:
    log.warning("photo storage unavailable: %s", exc)
    return error_response(503, "storage_unavailable", "Photo storage is unavailable; try again shortly.",
                          message_vi="Kho ảnh tạm thời không khả dụng, vui lòng thử lại sau.",
                          headers={"Retry-After": RETRY_AFTER_S})


def handle_unexpected(exc: Exception) -> Response:
    """A bug: log it with its traceback, answer the shared shape without leaking details."""
    log.exception("unhandled error: %s", exc)
    return error_response(500)


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(ma.ValidationError, handle_validation_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    for outage in (sa_exc.OperationalError, sa_exc.DBAPIError, sa_exc.TimeoutError):
        app.register_error_handler(outage, handle_database_unavailable)
    for outage in (redis.ConnectionError, redis.TimeoutError):
        app.register_error_handler(outage, handle_redis_unavailable)
    from .services.storage import StorageError

    app.register_error_handler(StorageError, handle_storage_unavailable)
    app.register_error_handler(Exception, handle_unexpected)

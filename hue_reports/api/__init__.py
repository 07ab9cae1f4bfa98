"""HTTP blueprints: thin layers that parse, call a service, and serialise."""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_smorest import Api
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from ..errors import ApiError


JSON_MAX_BYTES = 64 * 1024


def json_object(max_bytes: int = JSON_MAX_BYTES) -> dict:
    """The request's body as a JSON object: 413 over `max_bytes` (64 kB), 400 `malformed_body` if it does not
    parse (deeply nested JSON included), 422 if it is not an object."""
    if (request.content_length or 0) > max_bytes or len(request.get_data(cache=True)) > max_bytes:
        raise RequestEntityTooLarge()  # (a declared length is refused before reading anything)
    try:
        data = request.get_json(force=True, silent=False)
    except (BadRequest, RecursionError, ValueError):
        raise ApiError(400, "malformed_body", "The body is not valid JSON.",
                       message_vi="Dữ liệu gửi lên không phải JSON hợp lệ.") from None
    if not isinstance(data, dict):
        raise ApiError(422, "validation_error", "Send a JSON object.",
                       message_vi="Dữ liệu gửi lên phải là một đối tượng JSON.",
                       fields={"_schema": ["A JSON object is expected."]})
    return data


def json_request(max_bytes: int = JSON_MAX_BYTES) -> dict:
    """A JSON object body: 415 `unsupported_media_type` if it is not JSON, then as json_object."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send a JSON body (Content-Type: application/json).",
                       message_vi="Hãy gửi dữ liệu JSON (Content-Type: application/json).")
    return json_object(max_bytes)


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter in [low, high], else 422 naming it."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdecimal() and len(raw) <= 19) or not low <= int(raw) <= high:
        raise ApiError(422, "validation_error", f"{name} must be an integer from {low} to {high}.",
                       message_vi=f"{name} phải là số nguyên từ {low} đến {high}.",
                       fields={name: [f"An integer from {low} to {high}."]})
    return int(raw)


def refuse_oversized_body() -> None:
    """413 as soon as the declared Content-Length is over the limit, before reading the body.

    (A body without Content-Length, chunked, is still cut off at the limit when read.)
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and limit is not None and request.content_length > limit:
        raise RequestEntityTooLarge()


def register(app: Flask, api: Api) -> None:
    from . import accounts, admin, auth, officers, open311, ops, photos, public, queue, reports

    from .openapi import document_the_document

    app.before_request(refuse_oversized_body)
    open311.register_components(api.spec)
    for module in (ops, reports, photos, auth, accounts, queue, officers, public, open311, admin):
        api.register_blueprint(module.blp)
    document_the_document(api.spec, app)

"""The OpenAPI 3 document (GET /api/v1/openapi.json), from the views' decorators and the marshmallow schemas.

flask-smorest builds it. The conventions of this project:

- Every operation lists the statuses it really answers: its success, the 4xx of the errors it raises (each in
  the one JSON error shape, `Error`, with the codes named in the description), and 503 (an outage of the
  database, Redis or the photo storage, with Retry-After). No catch-all `default`: a status missing from an
  operation is a mistake of the document or of the code (the schemathesis test finds either).
- `documented()` declares the usual ones in one decorator: the bearer token (401, 403), a JSON request body
  (400, 413, 415, 422), and the operation's own errors as `e404="..."` keywords.
- Success answers are declared with `blp.alt_response(..., success=True)` (documentation only: the views
  serialise their answers themselves) or `blp.response` (which also serialises).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flask_smorest
import marshmallow as ma

from ..schemas.common import ErrorSchema

UNAVAILABLE = "UNAVAILABLE"  # the component response every operation shares for 503
BEARER = "bearer"  # the security scheme: Authorization: Bearer <token>
SECURITY = [{BEARER: []}]

RETRY_AFTER = {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}

AUTH_ERRORS = {
    "e401": "`unauthorized`: no `Authorization: Bearer` token, or an unknown, expired or revoked one.",
    "e403": "`forbidden`: this account's role may not do this.",
}
JSON_ERRORS = {
    "e400": "`malformed_body`: the body is not valid JSON.",
    "e413": "`payload_too_large`: the body is larger than allowed.",
    "e415": "`unsupported_media_type`: the body is not JSON (Content-Type: application/json).",
    "e422": "`validation_error`: invalid fields (`fields` says what is wrong with each).",
}


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, documenting 503 on every operation.

    `unavailable`: the component response of that 503 (Open311 answers its own error list instead)."""

    def __init__(self, *args, unavailable: str = UNAVAILABLE, **kwargs):
        super().__init__(*args, **kwargs)
        self.unavailable = unavailable

    def _prepare_response_doc(self, doc, doc_info, *, api, spec, **kwargs):
        # (doc_info is flask-smorest's deep copy of the view's documentation: changing it is safe.)
        if not doc_info.get(NEVER_UNAVAILABLE):
            responses = doc_info.setdefault("response", {}).setdefault("responses", {})
            responses.setdefault(503, []).append(self.unavailable)
        return super()._prepare_response_doc(doc, doc_info, api=api, spec=spec, **kwargs)


NEVER_UNAVAILABLE = "hue_never_unavailable"


def never_unavailable(view):
    """Document no 503 for this view: it answers whatever the database, Redis and the storage do (put it under
    the route decorator)."""
    view._apidoc = {**getattr(view, "_apidoc", {}), NEVER_UNAVAILABLE: True}
    return view


def register_components(spec) -> None:
    """The shared pieces of the document: the bearer scheme, the 503 answer, and the schemas that computed
    fields refer to by name."""
    from ..schemas.report import PrivatePhotoSchema, ReporterSchema

    for name, schema in (("PrivatePhoto", PrivatePhotoSchema), ("Reporter", ReporterSchema)):
        if name not in spec.components.schemas:
            spec.components.schema(name, schema=schema)
    if BEARER not in spec.components.security_schemes:
        spec.components.security_scheme(BEARER, {
            "type": "http", "scheme": "bearer",
            "description": "An opaque token (`hue_...`) from POST /api/v1/auth/token, or `flask tokens create`."})
    if UNAVAILABLE not in spec.components.responses:
        spec.components.response(UNAVAILABLE, {
            "description": "An outage: the database (`database_unavailable`), Redis (`queue_unavailable`) or the "
                           "photo storage (`storage_unavailable`) does not answer, or figures are being computed "
                           "(`busy`), or /readyz's `not_ready`. Try again after Retry-After.",
            "headers": {"Retry-After": RETRY_AFTER},
            "content": {"application/json": {"schema": ErrorSchema}}})


def document_the_document(spec, app) -> None:
    """The document's own URL (flask-smorest serves it outside any blueprint)."""
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == "api-docs.openapi_json")
    spec.path(rule=rule, parameters=[], operations={"get": {
        "tags": ["api-docs"], "summary": "This OpenAPI 3 document.",
        "responses": {"200": {"description": "The document.", "content": {"application/json": {
            "schema": {"type": "object", "required": ["openapi", "info", "paths"]}}}}}}})


def json_request_body(schema: type[ma.Schema] | ma.Schema, required: bool = True) -> dict[str, Any]:
    """An OpenAPI requestBody of JSON described by `schema`."""
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def error_responses(blp: flask_smorest.Blueprint, errors: Mapping[str, str]) -> Callable:
    """Document each `eNNN="description"` as answering NNN with the JSON error shape."""
    def decorate(view):
        for key, description in sorted(errors.items(), reverse=True):
            headers = None
            if key == "e401":
                headers = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
            elif key == "e429":
                headers = {"Retry-After": RETRY_AFTER}
            view = blp.alt_response(int(key[1:]), schema=ErrorSchema, description=description,
                                    headers=headers)(view)
        return view
    return decorate


def documented(blp: flask_smorest.Blueprint, body: type[ma.Schema] | dict | None = None, *, auth: bool = False,
               parameters: list[dict] | None = None, **errors: str | None) -> Callable:
    """OpenAPI for a view: `body` (a schema: a JSON body, with its 400/413/415/422; a dict: a requestBody as
    is), `auth` (the bearer token, with 401 and 403), `parameters`, and its own errors (`e404="..."`, which
    also override the defaults; `e403=None` drops one)."""
    every = {**(AUTH_ERRORS if auth else {}), **(JSON_ERRORS if isinstance(body, type) else {}), **errors}
    every = {key: description for key, description in every.items() if description is not None}  # (None: drop)
    doc: dict[str, Any] = {}
    if auth:
        doc["security"] = SECURITY
    if isinstance(body, type):
        doc["requestBody"] = json_request_body(body)
    elif body is not None:
        doc["requestBody"] = body
    if parameters:
        doc["parameters"] = parameters

    def decorate(view):
        view = error_responses(blp, every)(view)
        return blp.doc(**doc)(view) if doc else view
    return decorate


def query(name: str, schema: dict | None = None, description: str | None = None, **extra) -> dict[str, Any]:
    """A query parameter (a string unless `schema` says otherwise)."""
    param = {"in": "query", "name": name, "schema": schema or {"type": "string"}, **extra}
    if description:
        param["description"] = description
    return param


def header(name: str, description: str, required: bool = False, schema: dict | None = None) -> dict[str, Any]:
    return {"in": "header", "name": name, "required": required, "schema": schema or {"type": "string"},
            "description": description}

"""Headers every answer carries, the pages' Content-Security-Policy, and CORS for the API.

- Every answer: `X-Content-Type-Options: nosniff` and a Referrer-Policy. Answers that are not pages (JSON,
  photos, CSV) also get `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` and
  `X-Frame-Options: DENY`: nothing in them may run or be framed.
- Pages (web/pages.py) get `policy()`: everything from this origin only, no inline script or style, images
  also from `data:`, `blob:` (the report form's previews) and the map's tile server (MAP_TILE_URL's origin).
- CORS: only the API (`/api/`, `/open311/`), only for the origins in CORS_ORIGINS (none by default; `*` for
  any). Preflights are answered here. Never `Access-Control-Allow-Credentials`: the API authenticates with a
  bearer token in a header, never with cookies, so another site's page has no use for them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request

from .errors import ApiError

API_PREFIXES = ("/api/", "/open311/")
CORS_METHODS = "GET, POST, PATCH, DELETE"
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, If-Match, X-Tracking-Token, X-Request-Id"
CORS_EXPOSED = "Location, Retry-After, Idempotent-Replayed, X-Request-Id, Content-Disposition"
CORS_MAX_AGE_S = "600"
NOT_A_PAGE_CSP = "default-src 'none'; frame-ancestors 'none'"


def tile_source(tile_url: str) -> str | None:
    """The CSP source of the map's tiles: the origin of MAP_TILE_URL, `{s}` subdomains as `*.`; None for tiles
    served by this service (a relative URL)."""
    parts = urlsplit(tile_url)
    if not parts.scheme or not parts.netloc:
        return None
    host = parts.netloc
    labels = host.split(".")
    if "{" in labels[0]:  # {s}.tile.example.org: any subdomain
        host = ".".join(["*", *labels[1:]])
    if "{" in host:  # a placeholder deeper in the host name: CSP cannot say it; the scheme, then
        return f"{parts.scheme}:"
    return f"{parts.scheme}://{host}"


def photo_source() -> str | None:
    """The CSP source of the photos when they are redirects to presigned URLs of an object store (STORAGE_BACKEND
    s3 with S3_PRESIGN_SECONDS): the origin such a URL has (signed locally, once per app); else None."""
    config = current_app.config
    if config.get("STORAGE_BACKEND") != "s3" or not config.get("S3_PRESIGN_SECONDS"):
        return None
    if "hue_photo_source" not in current_app.extensions:
        from .services.storage import StorageError, get_storage

        try:
            parts = urlsplit(get_storage().presigned_url("probes/csp") or "")
        except StorageError:
            return None  # (no credentials to sign with: no redirects either)
        current_app.extensions["hue_photo_source"] = f"{parts.scheme}://{parts.netloc}" if parts.netloc else None
    return current_app.extensions["hue_photo_source"]


def policy(frame_ancestors: str = "'self'") -> str:
    """The pages' Content-Security-Policy (`frame_ancestors`: who may frame them)."""
    sources = [s for s in (tile_source(current_app.config["MAP_TILE_URL"]), photo_source()) if s]
    images = " ".join(["'self' data: blob:", *sources])
    return (f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; connect-src 'self'; "
            f"font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
            f"frame-ancestors {frame_ancestors}")


def _is_api() -> bool:
    return request.path.startswith(API_PREFIXES)


def _allowed_origin() -> str | None:
    """The Access-Control-Allow-Origin for this request's Origin, or None."""
    origin = request.headers.get("Origin")
    allowed = current_app.config["CORS_ORIGINS"]
    if not origin or not allowed or not _is_api():
        return None
    if "*" in allowed:
        return "*"
    return origin if origin.rstrip("/") in allowed else None


def preflight() -> Response | None:
    """Answer a CORS preflight (OPTIONS with Access-Control-Request-Method) for the API."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers or not _is_api():
        return None
    origin = _allowed_origin()
    if origin is None:
        raise ApiError(403, "cors_origin_refused", "This origin may not call the API from a browser.",
                       message_vi="Trang web này không được phép gọi API.")
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
    response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
    response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE_S
    return response


def headers(response: Response) -> Response:
    """The headers of every answer (after the pages' own, which they keep)."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if "Content-Security-Policy" not in response.headers:  # not a page
        response.headers["Content-Security-Policy"] = NOT_A_PAGE_CSP
        response.headers.setdefault("X-Frame-Options", "DENY")
    if _is_api() and current_app.config["CORS_ORIGINS"]:
        response.vary.add("Origin")
        origin = _allowed_origin()
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
    return response


def init_app(app: Flask) -> None:
    app.before_request(preflight)
    app.after_request(headers)

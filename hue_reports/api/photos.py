"""Photos: the public derivatives; originals never by a public path."""

from __future__ import annotations

import logging

from flask import Response, redirect, request, send_file

from ..errors import ApiError
from ..extensions import db
from ..models import Photo
from ..services.storage import get_storage
from .openapi import SECURITY, Blueprint, documented, header

log = logging.getLogger(__name__)

blp = Blueprint("photos", __name__, url_prefix="/api/v1/photos", description="Photos")

SIZES = ("display", "thumb")
PUBLIC_CACHE = "public, max-age=31536000, immutable"
BINARY = {"type": "string", "format": "binary"}


@blp.route("/<int:photo_id>/<size>")
@blp.doc(security=[{}, *SECURITY], parameters=[
    {"in": "path", "name": "size", "required": True, "schema": {"type": "string",
                                                                "enum": [*SIZES, "original"]}},
    header("If-None-Match", "the ETag of an earlier answer: 304 if it has not changed")])
@blp.alt_response(200, schema=BINARY, content_type="image/jpeg", success=True,
                  description="`display` or `thumb`: an upright JPEG without metadata. `original` (a bearer token of "
                              "the agency handling the report, the dispatcher or an admin): the file as sent, JPEG, "
                              "PNG, WebP or HEIC.")
@blp.alt_response(200, schema=BINARY, content_type="image/png", success=True)
@blp.alt_response(200, schema=BINARY, content_type="image/webp", success=True)
@blp.alt_response(200, schema=BINARY, content_type="image/heif", success=True)
@blp.alt_response(302, description="`display` or `thumb` with S3_PRESIGN_SECONDS > 0: a redirect to a presigned URL "
                                   "of the object store, valid that long.",
                  headers={"Location": {"schema": {"type": "string"}, "description": "the presigned URL"}})
@blp.alt_response(304, description="Not modified since the ETag sent in If-None-Match.")
@documented(blp, e401="`original` only: no valid bearer token.", e403="`original` only: not a staff account.",
            e404="`photo_not_found`; `photo_processing` (derivatives not made yet: Retry-After); `photo_failed`; "
                 "`not_found` (an unknown size); `original` of a report the account does not handle; "
                 "`original_missing` (the store lost it).",
            e410="`original_deleted`: `original` only, erased when the report's retention period ended (the "
                 "derivatives remain).")
def photo(photo_id: int, size: str):
    """A photo's public derivative (`display`, 1600 px, or `thumb`, 320 px): upright JPEG without metadata.

    With an object store the bytes are streamed from the bucket, or (S3_PRESIGN_SECONDS > 0) the answer is a
    302 to a presigned URL that expires. `original` is private: only officers of the report's agency may fetch
    it (officer API), always through this API."""
    if size == "original":
        from ..services import auth, workflow

        return send_original(photo_id, auth.current_account(roles=workflow.STAFF))
    if size not in SIZES:
        raise ApiError(404, "not_found", f"Sizes are {', '.join(SIZES)}.", message_vi="Không có kích thước này.")
    item = _photo(photo_id)
    if item is None:
        raise _not_found()
    key = item.display_key if size == "display" else item.thumb_key
    if item.state == "failed":
        raise ApiError(404, "photo_failed", "This photo could not be processed.",
                       message_vi="Không xử lý được ảnh này.")
    if item.derivatives_ready_at is None or key is None:
        raise ApiError(404, "photo_processing", "This photo is still being processed.",
                       message_vi="Ảnh đang được xử lý.", headers={"Retry-After": "5"})
    storage = get_storage()
    # The ETag names the photo, not its content (a content hash would let anyone test for a known original).
    etag = f"photo-{item.id}-{size}"
    url = storage.presigned_url(key)
    if url is not None:
        response = redirect(url, 302)
        # Cached for half the URL's life at most, so that no one is sent to an expired URL.
        response.headers["Cache-Control"] = f"public, max-age={storage.presign_seconds // 2}"
        return response
    return _send(storage, key, "image/jpeg", etag=etag, cache_control=PUBLIC_CACHE)


def _photo(photo_id: int) -> Photo | None:
    """The photo of an id, None if there is none (an id beyond the database's integers included)."""
    return db.session.get(Photo, photo_id) if photo_id < 2**63 else None


def send_original(photo_id: int, account):
    """The original, with its metadata, for the agency handling the report (and the dispatcher), for the
    API's bearer tokens and the officer console alike: never cached by anyone in between."""
    from ..services import workflow

    item = _photo(photo_id)
    if item is None or not workflow.may_handle(account, item.report):
        raise _not_found()
    if item.original_deleted_at is not None:
        raise ApiError(410, "original_deleted", "This photo's original was deleted when the report's retention "
                       "period ended (the display and thumbnail sizes remain).",
                       message_vi="Ảnh gốc đã bị xoá khi hết thời hạn lưu trữ (ảnh hiển thị và ảnh nhỏ vẫn còn).")
    # (missing: another report sharing this content left retention first, and this one's turn comes next;
    # or the store lost it)
    missing = ApiError(404, "original_missing", "This photo's original is not available.",
                       message_vi="Không còn ảnh gốc của ảnh này.")
    return _send(get_storage(), item.storage_key, item.content_type, etag=None, cache_control="private, no-store",
                 missing=missing)


def _not_found() -> ApiError:
    return ApiError(404, "photo_not_found", "No such photo.", message_vi="Không tìm thấy ảnh.")


def _send(storage, key: str, mimetype: str, *, etag: str | None, cache_control: str,
          missing: ApiError | None = None) -> Response:
    """The stored object as the answer: a local file by sendfile (with ranges), an object streamed from the
    store as it is read (a 304 for a known ETag without asking the store). A lost object is a 404 (`missing`,
    or photo_not_found); an unreachable store, StorageError: 503."""

    def lost() -> ApiError:
        log.warning("stored object %s is missing", key)
        return missing or _not_found()

    path = storage.local_path(key)
    if path is not None:
        if not path.is_file():
            raise lost()
        response = send_file(path, mimetype=mimetype, etag=etag or False, conditional=True,
                             max_age=31536000 if etag else 0)
    elif etag is not None and etag in request.if_none_match:
        response = Response(status=304)
        response.set_etag(etag)
    else:
        try:
            stored = storage.stream(key)
        except FileNotFoundError:
            raise lost() from None
        response = Response(stored.chunks, mimetype=mimetype, direct_passthrough=True)
        response.content_length = stored.size
        response.call_on_close(stored.close)
        if etag:
            response.set_etag(etag)
    response.headers["Cache-Control"] = cache_control
    return response

"""Photos: the public derivatives; originals never by a public path."""

from __future__ import annotations

from flask import send_file

from ..errors import ApiError
from ..extensions import db
from ..models import Photo
from ..services.storage import get_storage
from .openapi import SECURITY, Blueprint, documented, header

blp = Blueprint("photos", __name__, url_prefix="/api/v1/photos", description="Photos")

SIZES = ("display", "thumb")


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
@blp.alt_response(304, description="Not modified since the ETag sent in If-None-Match.")
@documented(blp, e401="`original` only: no valid bearer token.", e403="`original` only: not a staff account.",
            e404="`photo_not_found`; `photo_processing` (derivatives not made yet: Retry-After); `photo_failed`; "
                 "`not_found` (an unknown size); `original` of a report the account does not handle.")
def photo(photo_id: int, size: str):
    """A photo's public derivative (`display`, 1600 px, or `thumb`, 320 px): upright JPEG without metadata.

    `original` is private: only officers of the report's agency may fetch it (officer API)."""
    if size == "original":
        from ..services import auth, workflow

        return send_original(photo_id, auth.current_account(roles=workflow.STAFF))
    if size not in SIZES:
        raise ApiError(404, "not_found", f"Sizes are {', '.join(SIZES)}.", message_vi="Không có kích thước này.")
    item = _photo(photo_id)
    if item is None:
        raise ApiError(404, "photo_not_found", "No such photo.", message_vi="Không tìm thấy ảnh.")
    key = item.display_key if size == "display" else item.thumb_key
    if item.state == "failed":
        raise ApiError(404, "photo_failed", "This photo could not be processed.",
                       message_vi="Không xử lý được ảnh này.")
    if item.derivatives_ready_at is None or key is None:
        raise ApiError(404, "photo_processing", "This photo is still being processed.",
                       message_vi="Ảnh đang được xử lý.", headers={"Retry-After": "5"})
    storage = get_storage()
    path = storage.local_path(key)
    source = path if path is not None else storage.open(key)
    # The ETag names the photo, not its content (a content hash would let anyone test for a known original).
    response = send_file(source, mimetype="image/jpeg", etag=f"photo-{item.id}-{size}", conditional=True,
                         max_age=31536000)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


def _photo(photo_id: int) -> Photo | None:
    """The photo of an id, None if there is none (an id beyond the database's integers included)."""
    return db.session.get(Photo, photo_id) if photo_id < 2**63 else None


def send_original(photo_id: int, account):
    """The original, with its metadata, for the agency handling the report (and the dispatcher), for the
    API's bearer tokens and the officer console alike: never cached by anyone in between."""
    from ..services import workflow

    item = _photo(photo_id)
    if item is None or not workflow.may_handle(account, item.report):
        raise ApiError(404, "photo_not_found", "No such photo.", message_vi="Không tìm thấy ảnh.")
    storage = get_storage()
    path = storage.local_path(item.storage_key)
    response = send_file(path if path is not None else storage.open(item.storage_key), mimetype=item.content_type,
                         conditional=True, etag=False, max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response

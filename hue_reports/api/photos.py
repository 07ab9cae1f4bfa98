"""Photos: the public derivatives; originals never by a public path."""

from __future__ import annotations

import logging

from flask import send_file
from flask_smorest import Blueprint

from ..errors import ApiError
from ..extensions import db
from ..models import Photo
from ..services.storage import get_storage

log = logging.getLogger(__name__)

blp = Blueprint("photos", __name__, url_prefix="/api/v1/photos", description="Photos")

SIZES = ("display", "thumb")


@blp.route("/<int:photo_id>/<size>")
def photo(photo_id: int, size: str):
    """A photo's public derivative (`display`, 1600 px, or `thumb`, 320 px): upright JPEG without metadata.

    `original` is private: only officers of the report's agency may fetch it (officer API)."""
    if size == "original":
        from ..services import auth, workflow

        return send_original(photo_id, auth.current_account(roles=workflow.STAFF))
    if size not in SIZES:
        raise ApiError(404, "not_found", f"Sizes are {', '.join(SIZES)}.", message_vi="Không có kích thước này.")
    item = db.session.get(Photo, photo_id)
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


def send_original(photo_id: int, account):
    """The original, with its metadata, for the agency handling the report (and the dispatcher), for the
    API's bearer tokens and the officer console alike: never cached by anyone in between."""
    from ..services import workflow

    item = db.session.get(Photo, photo_id) if photo_id < 2**63 else None  # (beyond bigint: no such photo)
    if item is None or not workflow.may_handle(account, item.report):
        raise ApiError(404, "photo_not_found", "No such photo.", message_vi="Không tìm thấy ảnh.")
    if item.original_deleted_at is not None:
        raise ApiError(410, "original_deleted", "This photo's original was deleted when the report's retention "
                       "period ended (the display and thumbnail sizes remain).",
                       message_vi="Ảnh gốc đã bị xoá khi hết thời hạn lưu trữ (ảnh hiển thị và ảnh nhỏ vẫn còn).")
    storage = get_storage()
    path = storage.local_path(item.storage_key)
    try:
        source = storage.open(item.storage_key) if path is None or not path.is_file() else path
    except FileNotFoundError:
        source = None
    if source is None:
        # (another report sharing this content left retention first, and this one's turn comes next; or
        # the store lost it)
        log.warning("photo %s: original %s is not in storage", item.id, item.storage_key)
        raise ApiError(404, "original_missing", "This photo's original is not available.",
                       message_vi="Không còn ảnh gốc của ảnh này.")
    response = send_file(source, mimetype=item.content_type, conditional=True, etag=False, max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response

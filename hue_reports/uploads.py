"""Requests whose uploaded files are spooled by the photo storage (see LocalStorage.spool)."""

from __future__ import annotations

from typing import IO

from flask import Request


class UploadRequest(Request):
    """Uploads go straight to the storage's own disk, so storing one costs no second copy."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        from .services.storage import get_storage

        return get_storage().spool()

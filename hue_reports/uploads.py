"""Requests whose uploaded files are spooled by the photo storage (see LocalStorage.spool), and whose
malformed multipart bodies are refused instead of read as empty."""

from __future__ import annotations

from typing import IO

from flask import Request
from werkzeug.formparser import FormDataParser

from .errors import ApiError


class UploadRequest(Request):
    """Uploads go where the photo storage spools them: the local backend's own disk, so storing one costs no
    second copy; an object store's anonymous temporary file, streamed to the bucket from there."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        from .services.storage import get_storage

        return get_storage().spool()

    def make_form_data_parser(self) -> FormDataParser:
        parser = super().make_form_data_parser()
        parser.silent = False  # a cut or garbled body raises, instead of parsing as "no fields"
        return parser

    def _load_form_data(self) -> None:
        try:
            super()._load_form_data()
        except ValueError as exc:  # Werkzeug's parse errors (cut body, bad boundary...)
            raise ApiError(400, "malformed_body", "The multipart body is incomplete or malformed; send it again.",
                           message_vi="Dữ liệu gửi lên không đầy đủ, vui lòng gửi lại.") from exc

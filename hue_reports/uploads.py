"""Requests whose uploaded files are spooled by the photo storage (see LocalStorage.spool), and whose
malformed multipart bodies are refused instead of read as empty."""

from __future__ import annotations

from typing import IO

from flask import Request
from werkzeug.formparser import FormDataParser, MultiPartParser

from .errors import ApiError

# How the body is read. gunicorn's reader receives up to 1 MiB at once and, on every smaller read, copies what
# is left of it again: Werkzeug's 64 KiB reads of a 2.2 MB photo cost 6 ms of CPU when the body waited in the
# socket (so the busier the worker, the more each read cost), 1 MiB reads 2.5 ms. The body is therefore read
# READ_AHEAD at a time and handed to the parser in READ_CHUNK pieces (Werkzeug refuses a piece larger than
# max_form_memory_size, 500 kB by default, as one event: smaller pieces under a lower limit). At most
# READ_AHEAD of the body is held at once.
READ_AHEAD = 1024 * 1024
READ_CHUNK = 256 * 1024


class _Pieces:
    """`read(n)` of at most n bytes, served from reads of READ_AHEAD from `stream`."""

    def __init__(self, stream: IO[bytes]):
        self.stream, self.held, self.pos = stream, b"", 0

    def read(self, size: int = READ_CHUNK) -> bytes:
        if self.pos >= len(self.held):
            self.held, self.pos = self.stream.read(READ_AHEAD), 0
        piece = self.held[self.pos:self.pos + size]
        self.pos += len(piece)
        return piece


class LargeReadsParser(FormDataParser):
    """Werkzeug's form parser, reading multipart bodies as READ_AHEAD says."""

    def _parse_multipart(self, stream, mimetype, content_length, options):
        limit = self.max_form_memory_size
        parser = MultiPartParser(stream_factory=self.stream_factory, max_form_memory_size=limit,
                                 max_form_parts=self.max_form_parts, cls=self.cls,
                                 buffer_size=min(READ_CHUNK, limit // 2) if limit else READ_CHUNK)
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        form, files = parser.parse(_Pieces(stream), boundary, content_length)  # type: ignore[arg-type]
        return stream, form, files


class UploadRequest(Request):
    """Uploads go where the photo storage spools them: the local backend's own disk, so storing one costs no
    second copy; an object store's anonymous temporary file, streamed to the bucket from there."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        from .services.storage import get_storage

        return get_storage().spool()

    form_data_parser_class = LargeReadsParser

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

"""How multipart bodies are read (hue_reports/uploads.py): READ_AHEAD from the stream at a time, handed to
Werkzeug's parser in READ_CHUNK pieces, and parsed exactly as before wherever the parts' boundaries fall."""

import io
import os

import pytest

from hue_reports import uploads


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.asked: list[int] = []

    def read(self, size=-1):
        self.asked.append(size)
        return super().read(size)


def test_pieces_are_served_from_large_reads_and_add_up_to_the_stream():
    data = os.urandom(3 * uploads.READ_AHEAD + 12345)
    stream = CountingStream(data)
    pieces = uploads._Pieces(stream)
    got = []
    while piece := pieces.read(uploads.READ_CHUNK):
        assert len(piece) <= uploads.READ_CHUNK
        assert len(pieces.held) <= uploads.READ_AHEAD
        got.append(piece)
    assert b"".join(got) == data
    assert set(stream.asked) == {uploads.READ_AHEAD}  # never a small read of the underlying stream
    assert len(stream.asked) == 5  # four with data, one at the end


FIRST_PART = 'Content-Disposition: form-data; name="photos"; filename="first.jpg"\r\nContent-Type: image/jpeg'


def multipart_body(boundary: str, first: bytes, photo: bytes) -> bytes:
    return (f"--{boundary}\r\n{FIRST_PART}\r\n\r\n".encode() + first
            + f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"a.jpg\"\r\n"
              f"Content-Type: image/jpeg\r\n\r\n".encode() + photo
            + f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"category\"\r\n\r\nroad_damage"
              f"\r\n--{boundary}--\r\n".encode())


@pytest.mark.parametrize("shift", [-70, -1, 0, 1, 37])
@pytest.mark.parametrize("edge", [uploads.READ_CHUNK, uploads.READ_AHEAD])
def test_a_body_parses_the_same_wherever_a_piece_ends(app, edge, shift):
    """A part's boundary straddling the end of a piece handed to the parser, or of a read of the body."""
    boundary = "hue-test-boundary"
    head = len(f"--{boundary}\r\n{FIRST_PART}\r\n\r\n")
    first = os.urandom(edge + shift - head)  # the next part's boundary starts around `edge`
    photo = os.urandom(uploads.READ_AHEAD + 777)
    body = multipart_body(boundary, first, photo)
    with app.test_request_context("/api/v1/reports", method="POST", data=body,
                                  content_type=f"multipart/form-data; boundary={boundary}"):
        from flask import request

        assert isinstance(request.make_form_data_parser(), uploads.LargeReadsParser)
        assert request.form.to_dict() == {"category": "road_damage"}
        uploaded = request.files.getlist("photos")
        assert [u.filename for u in uploaded] == ["first.jpg", "a.jpg"]
        for upload, sent in zip(uploaded, (first, photo), strict=True):
            upload.stream.seek(0)
            assert upload.stream.read() == sent


def test_a_lower_form_memory_limit_gets_smaller_pieces(app, monkeypatch):
    """Werkzeug refuses a piece over max_form_memory_size as one event (413): under a lower limit the pieces
    shrink, and a photo larger than the limit still arrives whole."""
    monkeypatch.setitem(app.config, "MAX_FORM_MEMORY_SIZE", 100_000)
    boundary = "hue-test-boundary"
    photo = os.urandom(uploads.READ_AHEAD + 4321)
    body = multipart_body(boundary, b"x" * 1000, photo)
    with app.test_request_context("/api/v1/reports", method="POST", data=body,
                                  content_type=f"multipart/form-data; boundary={boundary}"):
        from flask import request

        assert request.max_form_memory_size == 100_000
        uploaded = request.files.getlist("photos")
        uploaded[1].stream.seek(0)
        assert uploaded[1].stream.read() == photo

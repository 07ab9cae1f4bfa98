"""The photo pipeline: format sniffing, and the public derivatives (upright, stripped, sized, made once)."""

import io
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageOps

from hue_reports.extensions import db
from hue_reports.models import Photo
from hue_reports.services import photos
from tests.support import NOKIA, PHOTOS, photo_with_gps, post_report

ORIENTATION = PHOTOS / "jpg/orientation"


def _submit(client, path_or_bytes, name="photo.jpg") -> dict:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    response = post_report(client, photos=[(data, name)])
    assert response.status_code == 201, response.get_json()
    return response.get_json()["photos"][0]


def _derivative(client, photo_id: int, size: str = "display") -> bytes:
    with client.get(f"/api/v1/photos/{photo_id}/{size}") as response:  # closing the file it streams
        assert response.status_code == 200, response.get_json()
        assert response.mimetype == "image/jpeg"
        return response.data


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """The (marker, payload) segments of a JPEG up to its image data."""
    assert data[:2] == b"\xff\xd8"
    segments, i = [], 2
    while i < len(data):
        assert data[i] == 0xFF, f"bad marker at {i}"
        marker = data[i + 1]
        if marker == 0xDA:  # start of scan: image data follows
            break
        length = int.from_bytes(data[i + 2:i + 4], "big")
        segments.append((marker, data[i + 4:i + 2 + length]))
        i += 2 + length
    return segments


def assert_no_metadata(data: bytes) -> None:
    """Only APP0 (JFIF) may precede the image: no EXIF/XMP (APP1), ICC (APP2), IPTC (APP13) or comment."""
    markers = [marker for marker, _ in jpeg_segments(data)]
    app_or_comment = {m for m in markers if 0xE0 <= m <= 0xEF or m == 0xFE}
    assert app_or_comment <= {0xE0}, [hex(m) for m in app_or_comment]
    head = data[: data.find(b"\xff\xda")]
    for needle in (b"Exif", b"http://ns.adobe.com/xap", b"ICC_PROFILE", b"Photoshop"):
        assert needle not in head


def _gray(data_or_image, size=(64, 48)) -> Image.Image:
    im = Image.open(io.BytesIO(data_or_image)) if isinstance(data_or_image, bytes) else data_or_image
    return im.convert("L").resize(size)


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two grey images, 0 to 255."""
    histogram = ImageChops.difference(a, b).histogram()
    return sum(value * count for value, count in enumerate(histogram)) / (a.width * a.height)


@pytest.mark.parametrize("head, fmt", [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG"),
    (b"RIFF\x00\x10\x00\x00WEBPVP8 ", "WEBP"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIF"),
    (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1miaf", "HEIF"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", None),
    (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avif", None),
    (b"GIF89a\x01\x00", None),
    (b"%PDF-1.7", None),
    (b"", None),
])
def test_formats_are_recognised_from_their_bytes(head, fmt):
    assert photos.sniff(head) == fmt


def test_draft_size_keeps_the_aspect_ratio():
    assert photos._draft_size((4608, 1976), 1600) == (1600, 687)
    assert photos._draft_size((800, 600), 1600) == (800, 600)  # never enlarged


@pytest.mark.parametrize("shape", ["landscape", "portrait"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_derivatives_come_out_upright(client, db_session, run_jobs, shape, orientation):
    """Compare pixels with the upright original (EXIF orientation 1), not just the size."""
    photo = _submit(client, ORIENTATION / f"{shape}_{orientation}.jpg")
    run_jobs()
    display = _gray(_derivative(client, photo["id"]))
    upright = Image.open(ORIENTATION / f"{shape}_1.jpg")
    assert Image.open(io.BytesIO(_derivative(client, photo["id"]))).size == upright.size
    right = _difference(display, _gray(upright))
    wrong = min(_difference(display, _gray(upright.transpose(t))) for t in (
        Image.Transpose.ROTATE_180, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM))
    assert right < 8, f"{shape}_{orientation}: {right:.1f} from upright"
    assert wrong > 3 * right + 10, "the check must tell upright from flipped"


@pytest.mark.parametrize("path", [NOKIA, PHOTOS / "jpg/hdr/iphone_hdr_YES.jpg", PHOTOS / "jpg/gps/DSCN0010.jpg",
                                  PHOTOS / "heic/mobile/iphone_13_pro_max.HEIC", PHOTOS / "heic/IMG_5195.HEIC"],
                         ids=lambda p: p.name)
def test_derivatives_carry_no_metadata_and_have_their_sizes(client, db_session, run_jobs, path, storage_backend):
    photo = _submit(client, path, path.name)
    run_jobs()
    with Image.open(path) as original:
        longest = max(ImageOps.exif_transpose(original).size) if path.suffix == ".jpg" else max(original.size)
    for size, limit in (("display", 1600), ("thumb", 320)):
        data = _derivative(client, photo["id"], size)
        assert_no_metadata(data)
        with Image.open(io.BytesIO(data)) as im:
            assert max(im.size) == min(limit, longest)
            assert not im.getexif() and "icc_profile" not in im.info


def test_the_gps_written_into_a_photo_never_reaches_its_derivatives(client, db_session, run_jobs, storage_backend):
    photo = _submit(client, photo_with_gps(16.4637, 107.5909))
    run_jobs()
    for size in ("display", "thumb"):
        assert_no_metadata(_derivative(client, photo["id"], size))


def test_a_photo_says_processing_until_its_derivatives_exist(client, db_session, run_jobs, storage_backend):
    photo = _submit(client, ORIENTATION / "landscape_1.jpg")
    response = client.get(f"/api/v1/photos/{photo['id']}/display")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "photo_processing"
    assert response.headers["Retry-After"]
    run_jobs()
    report = client.get(f"/api/v1/reports/{db_session.get(Photo, photo['id']).report_id}").get_json()
    assert report["photos"][0]["state"] == "ready"
    with client.get(f"/api/v1/photos/{photo['id']}/thumb") as response:
        assert response.status_code == 200 and "immutable" in response.headers["Cache-Control"]


def test_originals_are_never_public_and_sizes_are_checked(client, db_session, run_jobs, storage_backend):
    photo = _submit(client, ORIENTATION / "landscape_1.jpg")
    run_jobs()
    assert client.get(f"/api/v1/photos/{photo['id']}/original").status_code == 401
    for path in (f"/api/v1/photos/{photo['id']}/huge", f"/api/v1/photos/{photo['id']}/..%2F..%2Fetc%2Fpasswd",
                 "/api/v1/photos/99999999/display"):
        assert client.get(path).status_code == 404


def test_derivatives_are_made_once(client, db_session, run_jobs, storage_backend):
    first = _submit(client, ORIENTATION / "portrait_3.jpg")
    run_jobs()
    assert photos.make_derivatives(first["id"]) == "done"
    second = _submit(client, ORIENTATION / "portrait_3.jpg")  # the same photo in another report
    assert photos.make_derivatives(second["id"]) == "reused"
    a, b = db_session.get(Photo, first["id"]), db_session.get(Photo, second["id"])
    assert (a.display_key, a.thumb_key) == (b.display_key, b.thumb_key)


def test_an_original_that_cannot_be_rendered_marks_the_photo_failed(client, db_session, run_jobs, storage_backend):
    photo_id = _submit(client, photo_with_gps(16.4701, 107.5801))["id"]  # bytes no other test uses
    photo = db_session.get(Photo, photo_id)
    with storage_backend.open(photo.storage_key) as fh:
        good = fh.read()
    try:
        storage_backend.delete(photo.storage_key)
        storage_backend.put(photo.storage_key, io.BytesIO(good[:200]))  # damaged in storage after intake
        assert photos.make_derivatives(photo_id) == "failed"
        db_session.refresh(photo)
        assert photo.state == "failed" and photo.derivative_error
        response = client.get(f"/api/v1/photos/{photo_id}/display")
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "photo_failed"
        assert "Retry-After" not in response.headers  # it will not get better
    finally:
        storage_backend.delete(photo.storage_key)
        storage_backend.put(photo.storage_key, io.BytesIO(good))


def test_a_missing_original_marks_the_photo_failed_instead_of_retrying_forever(client, db_session, app,
                                                                               storage_backend):
    photo_id = _submit(client, photo_with_gps(16.4702, 107.5802))["id"]  # bytes no other test uses
    photo = db.session.get(Photo, photo_id)
    photo.storage_key = "originals/00/00/" + "0" * 64
    db.session.flush()
    assert photos.make_derivatives(photo_id) == "failed"
    assert db.session.get(Photo, photo_id).derivative_error == "original missing from storage"


@pytest.mark.parametrize("fmt, source", [("PNG", "jpg/orientation/landscape_1.jpg"),
                                         ("WEBP", "jpg/orientation/landscape_1.jpg"),
                                         ("HEIF", "heic/samplefilehub.heif")])
def test_truncated_png_webp_and_heif_are_invalid(client, db_session, redis_conn, fmt, source):
    if fmt == "HEIF":
        data = PHOTOS.joinpath(source).read_bytes()
    else:
        out = io.BytesIO()
        Image.open(PHOTOS / source).save(out, fmt)
        data = out.getvalue()
    assert post_report(client, photos=[(data, "whole")]).status_code == 201
    response = post_report(client, photos=[(data[: len(data) * 3 // 4], "cut")])
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "invalid_image"


def _refused(client, data: bytes) -> str:
    response = post_report(client, photos=[(data, "p")])
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["code"] == "invalid_image"
    return response


def _png(source=ORIENTATION / "landscape_1.jpg") -> bytes:
    out = io.BytesIO()
    Image.open(source).save(out, "PNG")
    return out.getvalue()


def test_a_png_damaged_inside_its_image_data_is_refused(client, db_session, redis_conn):
    png = bytearray(_png())
    idat = png.find(b"IDAT")
    png[idat + 200] ^= 0xFF  # one flipped byte inside the compressed pixels: its chunk's CRC no longer matches
    _refused(client, bytes(png))


def test_a_truncated_jpeg_with_another_image_appended_is_refused(client, db_session, redis_conn):
    """"FF D9 somewhere after the scan" is not enough: here it belongs to the second image."""
    data = NOKIA.read_bytes()
    tail = ORIENTATION.joinpath("landscape_1.jpg").read_bytes()
    _refused(client, data[: len(data) // 2] + tail)


def test_a_progressive_scan_bomb_is_refused_before_any_decoder(client, db_session, redis_conn):
    """Thousands of tiny scans cost a decoder a pass each: refused at intake, in milliseconds."""
    out = io.BytesIO()
    Image.open(ORIENTATION / "landscape_1.jpg").save(out, "JPEG", progressive=True)
    data = out.getvalue()
    scan = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x00" * 16  # a minimal scan and some data
    bomb = data[:-2] + scan * (photos.MAX_SCANS + 5) + b"\xff\xd9"
    started = time.perf_counter()
    _refused(client, bomb)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("build", ["jpeg_comments", "png_chunks", "heif_boxes"])
def test_files_of_millions_of_empty_segments_are_refused_quickly(client, db_session, redis_conn, build):
    many = photos.MAX_SEGMENTS * 20
    if build == "jpeg_comments":
        data = b"\xff\xd8" + b"\xff\xfe\x00\x02" * many + ORIENTATION.joinpath("landscape_1.jpg").read_bytes()[2:]
    elif build == "png_chunks":
        png = _png()
        empty = b"\x00\x00\x00\x00tEXt" + zlib.crc32(b"tEXt").to_bytes(4, "big")
        data = png[:33] + empty * many + png[33:]  # after IHDR (8 + 25 bytes)
    else:
        heif = PHOTOS.joinpath("heic/samplefilehub.heif").read_bytes()
        data = heif + b"\x00\x00\x00\x08free" * many
    started = time.perf_counter()
    _refused(client, data)
    assert time.perf_counter() - started < 2


def test_a_multi_picture_jpeg_renders_upright_in_draft_mode(client, db_session, run_jobs, storage_backend):
    """Phones' MPO files (a JPEG with gain maps or depth after it) are JPEGs to Pillow's draft mode."""
    out = io.BytesIO()
    base = Image.open(NOKIA)
    base.save(out, "MPO", save_all=True, append_images=[base.resize((460, 197))])
    assert Image.open(io.BytesIO(out.getvalue())).format == "MPO"
    photo = _submit(client, out.getvalue(), "mpo.jpg")
    run_jobs()
    with Image.open(io.BytesIO(_derivative(client, photo["id"]))) as display:
        assert display.size == (1600, 686)


def _reference_jpeg_problem(data: bytes) -> str | None:
    """The same walk as photos._jpeg_problem, one byte at a time (slow and plain): the reference."""
    pos, segments, scans = 2, 0, 0
    while True:
        found = next((i for i in range(pos, len(data) - 1) if data[i] == 0xFF
                      and data[i + 1] not in (0x00, 0xFF) and not 0xD0 <= data[i + 1] <= 0xD7), -1)
        if found < 0:
            return "no end of image (truncated)"
        marker, pos = data[found + 1], found + 2
        segments += 1
        if segments > photos.MAX_SEGMENTS:
            return "too many segments"
        if marker == 0xD9:
            return None
        if marker == 0xD8:
            return "another image starts inside this one (damaged)"
        if marker == 0x01:
            continue
        if pos + 2 > len(data):
            return "truncated inside a segment header"
        length = int.from_bytes(data[pos:pos + 2], "big")
        if length < 2 or pos + length > len(data):
            return "a segment runs past the end (truncated)"
        if marker == 0xDA:
            scans += 1
            if scans > photos.MAX_SCANS:
                return "too many progressive scans"
        pos += length


def test_the_jpeg_walk_finds_what_a_plain_walk_finds_across_its_windows(monkeypatch):
    """The marker search works a window at a time: a marker, fill bytes or a stuffed FF across a window's edge,
    truncations anywhere and damage must give the plain walk's verdict, with windows small enough that every
    file crosses many of them."""
    small = [Image.new("RGB", (40 + n, 30), (n * 40 % 256, 90, 200)) for n in range(3)]
    files = []
    for n, im in enumerate(small):
        out = io.BytesIO()
        im.save(out, "JPEG", quality=90, progressive=bool(n % 2), restart_marker_blocks=1 if n == 2 else 0)
        files.append(out.getvalue())
    head = files[0][:files[0].find(b"\xff\xda")]
    variants = []
    for data in files:
        variants += [data, data[:len(data) // 2], data[:-1], data + b"trailer\xff\xd9", data[:-2] + b"\xff\xff\xff\xd9",
                     data[:40] + b"\xff\xd8" + data[40:], head + b"\xff\x01" * 30 + data[len(head):],
                     bytes(b if i % 97 else 0xFF for i, b in enumerate(data))]
    # A comment segment of every length from 0 to 40 after SOI: each later marker lands at every offset of a
    # small window once, its FF the first or the last byte of one among them.
    variants += [files[0][:2] + b"\xff\xfe" + (2 + n).to_bytes(2, "big") + b"c" * n + files[0][2:] for n in range(41)]
    for window in (16, 17, 64, 1 << 18):
        monkeypatch.setattr(photos._JpegMarkers, "WINDOW", window)
        for data in variants:
            assert photos._jpeg_problem(memoryview(data)) == _reference_jpeg_problem(data), (window, len(data))
    verdicts = {_reference_jpeg_problem(data) for data in variants}
    assert None in verdicts and len(verdicts) >= 3  # (the variants reach several verdicts)

"""The one photo pipeline: recognise and check an upload, read its metadata, make its public derivatives.

Intake (`inspect_upload`) runs on the request path and stays cheap: it never
decodes pixels. The format is recognised from the bytes; the file's structure
is walked to its end before any parser sees it (a JPEG's markers through every
scan to EOI, every PNG chunk with its CRC, WebP's RIFF chunks, HEIF's top-level
boxes), which catches truncation and damage, and refuses files built to make
decoders slow (too many segments or scans); then the dimensions and EXIF come
from the headers. On the 12 MP Nokia photo the walk and SHA-256 take about 3 ms,
where a 1/8-scale JPEG decode takes 15 ms and a HEIC decode 115-220 ms.

The derivatives (`make_derivatives`, run by an RQ job) are upright, in sRGB, and
carry no metadata at all: a display image (longest side 1600 px) and a
thumbnail (320 px), JPEG-decoded in draft mode at the smallest scale that still
covers 1600 px.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import logging
import math
import mmap
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import BinaryIO
from zoneinfo import ZoneInfo

import numpy as np
import pillow_heif
from flask import current_app
from PIL import Image, ImageCms, ImageOps

from ..errors import ApiError
from ..extensions import db
from ..models import Photo
from .storage import StorageError, derivative_key, get_storage

log = logging.getLogger(__name__)
pillow_heif.register_heif_opener()

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "HEIF": "image/heif"}
# ISO base media file brands of HEIF still images as phones write them (not AVIF).
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
SIZES = {"display": 1600, "thumb": 320}
JPEG_QUALITY = 82
CHUNK = 1024 * 1024

GPS_IFD, EXIF_IFD = 0x8825, 0x8769
DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x9003, 0x9011


@dataclass(frozen=True)
class PhotoInfo:
    """What intake learns about one upload, without keeping its pixels."""

    sha256: str
    size_bytes: int
    format: str
    content_type: str
    width: int
    height: int
    gps: tuple[float, float] | None  # (lat, lon)
    taken_at: datetime | None


def sniff(head: bytes) -> str | None:
    """The image format from its first bytes (never from a name or a declared type)."""
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        box_end = min(len(head), int.from_bytes(head[:4], "big"))
        brands = {head[8:12]} | {head[i:i + 4] for i in range(16, box_end - 3, 4)}
        if brands & HEIF_BRANDS and b"avif" not in brands and b"avis" not in brands:
            return "HEIF"
    return None


def _rejected(status: int, code: str, message: str, message_vi: str, field: str) -> ApiError:
    return ApiError(status, code, message, message_vi=message_vi, fields={field: [message]})


def inspect_upload(stream: BinaryIO, *, field: str, max_bytes: int, max_pixels: int,
                   tz: ZoneInfo) -> PhotoInfo:
    """Check one uploaded photo and read what intake needs. Raises ApiError with the right status:
    413 too big, 415 not an image we accept, 422 too many pixels or a broken image."""
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    if size > max_bytes:
        raise _rejected(413, "photo_too_large", f"A photo may be at most {max_bytes // (1024 * 1024)} MB.",
                        f"Mỗi ảnh tối đa {max_bytes // (1024 * 1024)} MB.", field)
    fmt = sniff(stream.read(64))
    if fmt is None:
        if size == 0:
            raise _rejected(422, "invalid_image", "The photo is empty.", "Tệp ảnh rỗng.", field)
        raise _rejected(415, "unsupported_media_type", "Photos must be JPEG, PNG, WebP or HEIC.",
                        "Ảnh phải có định dạng JPEG, PNG, WebP hoặc HEIC.", field)
    stream.seek(0)
    with _mapped(stream) as data:
        problem = STRUCTURE_CHECKS[fmt](data)
        if problem:
            log.info("invalid %s upload: %s", fmt, problem)
            raise _rejected(422, "invalid_image", "The photo is damaged or incomplete.",
                            "Ảnh bị hỏng hoặc không đầy đủ.", field)
        sha256 = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(stream, formats=[fmt]) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise _rejected(422, "image_too_large",
                                f"A photo may have at most {max_pixels / 1e6:g} megapixels.",
                                f"Ảnh tối đa {max_pixels / 1e6:g} megapixel.", field)
            gps, taken_at = read_metadata(im, tz)
    except ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _rejected(422, "image_too_large", "The photo has too many pixels.", "Ảnh có quá nhiều điểm ảnh.",
                        field) from exc
    except Exception as exc:  # any decoder failure on untrusted bytes means: not a valid image
        log.info("invalid %s upload: %s: %s", fmt, type(exc).__name__, exc)
        raise _rejected(422, "invalid_image", "The photo is damaged or incomplete.",
                        "Ảnh bị hỏng hoặc không đầy đủ.", field) from exc
    finally:
        stream.seek(0)
    return PhotoInfo(sha256=sha256, size_bytes=size, format=fmt, content_type=CONTENT_TYPES[fmt],
                     width=width, height=height, gps=gps, taken_at=taken_at)


# Real photos have tens of segments, chunks or boxes and about ten progressive scans; files built to
# keep a parser or decoder busy have millions of the first or thousands of the second.
MAX_SEGMENTS = 10_000
MAX_SCANS = 100


class _JpegMarkers:
    """Where the JPEG markers are: an FF followed by neither 00 (a stuffed FF in image data), nor D0-D7
    (restart markers inside a scan), nor FF (fill: the marker follows). Found with NumPy a window at a time:
    the FFs first (about one byte in 256 of entropy-coded data), then the byte after each of them only, so
    that a window makes two temporary arrays, not seven of its size (on a machine where touching fresh memory
    is dear, the Nokia photo's walk took 4.2-5.0 ms with seven; 1.3-1.5 ms with two, in 256 KiB windows). A
    hostile file full of FFs costs at most a window's worth of positions."""

    WINDOW = 1 << 18

    def __init__(self, data: memoryview):
        self.bytes = np.frombuffer(data, dtype=np.uint8)
        self.start = -1
        self.found = np.empty(0, dtype=np.intp)

    def next(self, pos: int) -> int:
        """The position of the FF of the first marker at or after `pos`, or -1."""
        size = len(self.bytes)
        while pos < size - 1:
            start = pos - pos % self.WINDOW
            if start != self.start:
                window = self.bytes[start:start + self.WINDOW + 1]  # (one more: a marker's second byte)
                ff = np.flatnonzero(window[:-1] == 0xFF)
                after = window[ff + 1]
                self.found = ff[(after != 0) & (after != 0xFF) & ((after & 0xF8) != 0xD0)]
                self.start = start
            k = int(np.searchsorted(self.found, pos - start))
            if k < len(self.found):
                return start + int(self.found[k])
            pos = start + self.WINDOW
        return -1


@contextlib.contextmanager
def _mapped(stream: BinaryIO):
    """The upload's bytes without copying them: a read-only memory map of its file (the request
    spooled it to disk), or the buffer of an in-memory stream."""
    try:
        fileno = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fileno = None
    if fileno is None:
        stream.seek(0)
        yield memoryview(stream.read())
        return
    with mmap.mmap(fileno, 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
        yield view


def _jpeg_problem(data: memoryview) -> str | None:
    """Walk every marker segment and scan to EOI. Returns what is wrong, or None."""
    pos, segments, scans = 2, 0, 0
    size = len(data)
    markers = _JpegMarkers(data)
    while True:
        found = markers.next(pos)
        if found < 0:
            return "no end of image (truncated)"
        marker, pos = data[found + 1], found + 2
        segments += 1
        if segments > MAX_SEGMENTS:
            return "too many segments"
        if marker == 0xD9:
            return None  # EOI: complete (data after it, such as a phone's motion-photo trailer, is not ours)
        if marker == 0xD8:
            return "another image starts inside this one (damaged)"
        if marker == 0x01:
            continue  # TEM: a marker without a length
        if pos + 2 > size:
            return "truncated inside a segment header"
        length = int.from_bytes(data[pos:pos + 2], "big")
        if length < 2 or pos + length > size:
            return "a segment runs past the end (truncated)"
        if marker == 0xDA:
            scans += 1
            if scans > MAX_SCANS:
                return "too many progressive scans"
        pos += length


def _png_problem(data: memoryview) -> str | None:
    """Every chunk (length, type, data, CRC) must be whole and intact up to IEND."""
    pos, chunks, size = 8, 0, len(data)
    while pos + 12 <= size:
        length = int.from_bytes(data[pos:pos + 4], "big")
        end = pos + 12 + length
        if end > size:
            return "a chunk runs past the end (truncated)"
        if zlib.crc32(data[pos + 4:end - 4]) != int.from_bytes(data[end - 4:end], "big"):
            return "a chunk's CRC does not match (damaged)"
        chunks += 1
        if chunks > MAX_SEGMENTS:
            return "too many chunks"
        if data[pos + 4:pos + 8] == b"IEND":
            return None
        pos = end
    return "no IEND chunk (truncated)"


def _webp_problem(data: memoryview) -> str | None:
    """The RIFF container must fit the file, and its chunks must tile it."""
    riff_end = int.from_bytes(data[4:8], "little") + 8
    if riff_end > len(data):
        return "the RIFF container runs past the end (truncated)"
    pos, chunks = 12, 0
    while pos < riff_end:
        if pos + 8 > riff_end:
            return "a chunk header runs past the container"
        length = int.from_bytes(data[pos + 4:pos + 8], "little")
        pos += 8 + length + (length & 1)
        chunks += 1
        if chunks > MAX_SEGMENTS:
            return "too many chunks"
    return None if pos == riff_end else "a chunk runs past the container (truncated)"


def _heif_problem(data: memoryview) -> str | None:
    """ISO base media boxes must tile the file: the last one (usually mdat) ends exactly at its end."""
    pos, boxes, size = 0, 0, len(data)
    while pos < size:
        if pos + 8 > size:
            return "a box header runs past the end (truncated)"
        length = int.from_bytes(data[pos:pos + 4], "big")
        if length == 1:
            if pos + 16 > size:
                return "a box header runs past the end (truncated)"
            length = int.from_bytes(data[pos + 8:pos + 16], "big")  # 64-bit size
        elif length == 0:
            return None  # the last box extends to the end of the file
        if length < 8:
            return "a box is smaller than its header (damaged)"
        pos += length
        boxes += 1
        if boxes > MAX_SEGMENTS:
            return "too many boxes"
    return None if pos == size else "a box runs past the end (truncated)"


STRUCTURE_CHECKS = {"JPEG": _jpeg_problem, "PNG": _png_problem, "WEBP": _webp_problem, "HEIF": _heif_problem}


def read_metadata(im: Image.Image, tz: ZoneInfo) -> tuple[tuple[float, float] | None, datetime | None]:
    """EXIF GPS (lat, lon) and capture time, from the headers only. Broken EXIF counts as none."""
    try:
        exif = im.getexif()
    except Exception:  # malformed EXIF in an otherwise good photo
        return None, None
    return _gps(exif), _taken_at(exif, tz)


def _gps(exif: Image.Exif) -> tuple[float, float] | None:
    try:
        gps = exif.get_ifd(GPS_IFD)
        lat, lon = _degrees(gps[2], gps.get(1)), _degrees(gps[4], gps.get(3))
    except Exception:  # absent or malformed GPS tags
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None  # out of range, or the (0, 0) cameras write without a fix
    return lat, lon


def _degrees(dms, ref) -> float:
    d, m, s = (float(x) for x in dms)
    value = d + m / 60 + s / 3600
    if not math.isfinite(value):
        raise ValueError("not a finite coordinate")
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    return -value if str(ref).strip().upper() in ("S", "W") else value


def _taken_at(exif: Image.Exif, tz: ZoneInfo) -> datetime | None:
    try:
        sub = exif.get_ifd(EXIF_IFD)
        taken = datetime.strptime(str(sub[DATETIME_ORIGINAL]).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
        offset = sub.get(OFFSET_TIME_ORIGINAL)
        if offset:
            sign = -1 if str(offset)[0] == "-" else 1
            hours, minutes = str(offset).strip("+-\x00 ").split(":")
            taken = taken.replace(tzinfo=timezone(sign * timedelta(hours=int(hours), minutes=int(minutes))))
        else:
            taken = taken.replace(tzinfo=tz)  # cameras without an offset: assume the city's clock
    except Exception:  # absent or malformed
        return None
    if not datetime(1990, 1, 1, tzinfo=timezone.utc) <= taken <= datetime.now(timezone.utc) + timedelta(days=1):
        return None
    return taken


def _draft_size(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """The size to ask JPEG draft mode for: the target with the photo's own aspect ratio.
    (Draft only reduces while BOTH sides stay at or above the request: a square box would
    keep a wide photo at full size.)"""
    scale = min(1.0, longest / max(size))
    return max(1, math.ceil(size[0] * scale)), max(1, math.ceil(size[1] * scale))


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """RGB pixels in sRGB: transparency flattened on white, an embedded colour profile applied."""
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        im = flat
    elif im.mode != "RGB":
        im = im.convert("RGB")
    if icc:
        try:
            im = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            log.info("colour profile not applied: %s", exc)
    return im


def _encode(im: Image.Image) -> bytes:
    """JPEG without any metadata: Pillow writes EXIF, XMP, ICC or comments only when given them,
    and the image's own `info` (which still holds the original's EXIF) is cleared first."""
    im.info = {}
    out = io.BytesIO()
    im.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


# Display: after draft mode the remaining shrink is under 2x, where an antialiased bilinear filter is
# close to Lanczos and twice as fast (the goal is within 1.5x of libvips). Thumbnail: a bicubic filter,
# cheap at that size, where sharpness shows most.
DISPLAY_FILTER = Image.Resampling.BILINEAR
THUMB_FILTER = Image.Resampling.BICUBIC
# Modes the resampling filters work on; others (palette, 1-bit, 16-bit) are converted first.
RESAMPLABLE = {"RGB", "RGBA", "L", "LA", "CMYK", "YCbCr"}


def render_derivatives(source: BinaryIO) -> dict[str, bytes]:
    """The display image and the thumbnail of one original, upright and stripped.

    Order matters for speed: decode small (JPEG draft mode), resize, and only then turn upright and
    convert colours, on the smaller image."""
    with Image.open(source, formats=list(CONTENT_TYPES)) as im:
        icc = im.info.get("icc_profile")
        if im.format in ("JPEG", "MPO"):  # MPO: a JPEG with more pictures after it (gain maps, HDR)
            im.draft("RGB", _draft_size(im.size, SIZES["display"]))
        im.load()
        display = im if im.mode in RESAMPLABLE else im.convert(
            "RGBA" if "transparency" in im.info or im.mode in ("PA",) else "RGB")
        display.thumbnail((SIZES["display"], SIZES["display"]), DISPLAY_FILTER)
        ImageOps.exif_transpose(display, in_place=True)
        display = _to_srgb_rgb(display, icc)
        thumb = display.copy()
        thumb.thumbnail((SIZES["thumb"], SIZES["thumb"]), THUMB_FILTER)
        # Encoded inside the block: `display` may be the opened image itself.
        return {"display": _encode(display), "thumb": _encode(thumb)}


def _failed(photo: Photo, error: str) -> str:
    photo.derivative_error = error[:500]
    db.session.commit()
    log.warning("photo %s: derivatives failed: %s", photo.id, photo.derivative_error)
    return "failed"


def derivative_name(sha256: str) -> str:
    """What names an original's derivatives in the storage: HMAC-SHA256 of its SHA-256 under SECRET_KEY.
    The same content gets the same name, so derivatives are made once; and a derivative's key, which a
    presigned URL shows, never lets anyone test whether a known photo was reported (as its hash would)."""
    return hmac.new(current_app.config["SECRET_KEY"].encode(), f"derivatives:{sha256}".encode(),
                    hashlib.sha256).hexdigest()


def make_derivatives(photo_id: int) -> str:
    """Make and record a photo's public derivatives. Idempotent: a photo done is left alone, and
    derivatives already stored (the same content in another report) are reused.
    Returns what happened: done, made, reused, failed or missing."""
    photo = db.session.get(Photo, photo_id)
    if photo is None:
        return "missing"
    if photo.derivatives_ready_at is not None:
        return "done"
    if photo.original_deleted_at is not None:  # (past retention: services/privacy.py)
        return _failed(photo, "original deleted (retention period over)")
    storage = get_storage()
    keys = {size: derivative_key(derivative_name(photo.sha256), size) for size in SIZES}
    outcome = "reused"
    # A StorageError (the store unreachable) is raised to RQ, which retries the job later; it is no fault of
    # the photo's.
    if not all(storage.exists(key) for key in keys.values()):
        try:
            with storage.open(photo.storage_key) as original:  # (an object store's: copied to a temporary file)
                rendered = render_derivatives(original)
        except StorageError:
            db.session.rollback()
            raise
        except FileNotFoundError:
            # An operational fault (lost storage), not the photo's: say so loudly, and stop retrying.
            log.error("photo %s: original %s is missing from storage", photo_id, photo.storage_key)
            return _failed(photo, "original missing from storage")
        except Exception as exc:  # the decoder refused bytes that passed intake: record, do not retry
            return _failed(photo, f"{type(exc).__name__}: {exc}")
        for size, data in rendered.items():
            storage.put(keys[size], io.BytesIO(data))
        outcome = "made"
    photo.display_key, photo.thumb_key = keys["display"], keys["thumb"]
    photo.derivatives_ready_at = datetime.now(timezone.utc)
    photo.derivative_error = None
    db.session.commit()
    return outcome

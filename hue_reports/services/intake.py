"""Report intake: the one path by which a report enters, from the app API, the web page and Open311.

`submit()` validates the fields, checks every photo (services/photos.py),
decides the location, and then, in ONE transaction, stores the originals and
writes the report, its photos, its reporter's contact and its `submitted`
event. Jobs (routing, photo derivatives) are enqueued only after the commit. If anything fails, the
transaction rolls back and the files this request stored are removed again.

Exactly once: an Idempotency-Key is claimed by inserting its row (primary key
scope + key) in the same transaction. A second request with the same key waits
on that row in PostgreSQL, then replays the first answer if its body is the
same, or is refused (422 idempotency_key_reused) if not.

Originals are content-addressed, so two reports may share a file. Storing a
file and removing it again on failure both take a transaction-scoped advisory
lock on its hash, so a failing request never removes a file that another
request has just committed a reference to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from flask import current_app
from geoalchemy2 import WKTElement
from sqlalchemy import exists, literal, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..errors import ApiError
from ..extensions import db, get_redis
from ..jobs import photos as photo_jobs
from ..jobs import routing as routing_jobs
from ..models import (SRID, AdminArea, Category, IdempotencyKey, Photo, Report, ReportCodeCounter, ReportContact,
                      ReportEvent)
from ..schemas.report import ReportCreateSchema, ReportSchema
from . import areas, geocode, ratelimit
from .photos import PhotoInfo, inspect_upload
from .storage import StorageError, get_storage, original_key

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MIN, IDEMPOTENCY_KEY_MAX = 16, 200
CREATE_SCHEMA = ReportCreateSchema()
PUBLIC_SCHEMA = ReportSchema()


@dataclass
class Upload:
    """One uploaded photo: a seekable stream (Werkzeug spools large parts to disk)."""

    stream: BinaryIO
    field: str = "photos"


@dataclass
class Submission:
    fields: Mapping[str, Any]
    uploads: list[Upload]
    idempotency_key: str | None = None
    client_ip: str | None = None
    channel: str = "app"
    client: str | None = None  # the client application (an Open311 api key): scopes Idempotency-Keys


@dataclass
class Outcome:
    body: dict[str, Any]  # the 201 answer, with the tracking token
    report_id: int
    replayed: bool


def _error(status: int, code: str, message: str, message_vi: str, field: str | None = None) -> ApiError:
    return ApiError(status, code, message, message_vi=message_vi, fields={field: [message]} if field else None)


def submit(sub: Submission) -> Outcome:
    """Validate and store one report with its photos, exactly once. Raises ApiError (4xx) on bad input."""
    config = current_app.config
    city = areas.current_city()
    if city is None:
        raise _error(503, "not_configured", "No city is loaded yet (flask seed).", "Chưa nạp dữ liệu thành phố.")
    data = CREATE_SCHEMA.load(dict(sub.fields))
    key = _check_idempotency_key(sub.idempotency_key)
    base = f"{sub.channel}:{sub.client}" if sub.client else sub.channel
    scope = f"{base}:device:{data['device_id']}" if data.get("device_id") else f"{base}:anonymous"
    first = db.session.get(IdempotencyKey, (scope, key)) if key else None
    if first is None:  # (a retry is not a new submission)
        _enforce_rate_limit(sub, data.get("device_id"))

    if not 1 <= len(sub.uploads) <= config["MAX_PHOTOS"]:
        raise _error(422, "validation_error", f"Send 1 to {config['MAX_PHOTOS']} photos.",
                     f"Gửi từ 1 đến {config['MAX_PHOTOS']} ảnh.", "photos")
    tz = ZoneInfo(city.timezone)
    infos = inspect_uploads(sub.uploads, tz)
    fingerprint = _fingerprint(sub.channel, data, infos)
    if first is not None:  # a retry: answer as the first time, whatever changed since
        return _replay(scope, key, fingerprint)
    where = _location(data, infos, city)
    lat, lon = where.lat, where.lon
    # One round trip: the service area, the category and the ward (both loaded for the answer).
    inside_col, ward_col = areas.location_columns(city, lon, lat)
    if where.ward_id is not None:  # (an address's ward is the ward it names, not a lookup of its point)
        ward_col = literal(where.ward_id)
    row = db.session.execute(
        select(inside_col, Category, AdminArea).select_from(Category)
        .outerjoin(AdminArea, AdminArea.id == ward_col)
        .where(Category.code == data["category"], Category.active)).first()
    if row is None:
        raise _error(422, "validation_error", "Unknown service code.", "Không có lĩnh vực này.", "category")
    inside, category, ward = row
    if not inside:
        raise ApiError(422, "outside_service_area", f"The location is outside {city.name_en}.",
                       message_vi=f"Vị trí nằm ngoài {city.name}.", fields={"location": [f"({lat:.6f}, {lon:.6f})"]})

    shas = {info.sha256 for info in infos}
    if key:
        # One round trip: claim the key, then (if claimed) lock the photos' content hashes.
        claimed = db.session.execute(text(f"""
            WITH claim AS ({CLAIM_SQL})
            SELECT EXISTS (SELECT 1 FROM claim) AND ({LOCK_SQL}) IS NOT NULL
        """), {"scope": scope, "key": key, "hash": fingerprint, "shas": sorted(shas)}).scalar()
        if not claimed:
            return _replay(scope, key, fingerprint)
    else:
        lock_content(*shas)

    created: list[str] = []
    try:
        # The application's clock (NTP-synchronised): the answer needs the time before the insert.
        submitted_at = datetime.now(timezone.utc)
        store_originals(sub.uploads, infos, created)
        code = _next_code(city.report_code_prefix, submitted_at.astimezone(tz).year)
        token = tracking_token(code, scope, key)
        report = Report(
            public_code=code, category=category, description=data["description"], channel=sub.channel,
            status="submitted", supporters=0, location=WKTElement(f"POINT({lon!r} {lat!r})", srid=SRID),
            location_source=where.source, location_accuracy_m=where.accuracy_m,
            address=data.get("address"), ward=ward, submitted_at=submitted_at,
            tracking_token_hash=token_hash(token))
        contact = {f: data.get(f"reporter_{f}") for f in ("name", "phone", "email")} | {
            "device_id": data.get("device_id"), "notify_url": data.get("notify_url")}
        if any(contact.values()):
            report.contact = ReportContact(**contact)
        report.photos.extend(photo_rows(infos, "evidence"))
        event_data = {"photos": len(report.photos)}
        if where.exif_distance_m is not None:
            event_data["exif_distance_m"] = round(where.exif_distance_m)
        report.events.append(ReportEvent(type="submitted", actor_kind="resident", to_status="submitted",
                                         public=True, data=event_data, created_at=submitted_at))
        db.session.add(report)
        db.session.flush()
        body = PUBLIC_SCHEMA.dump(report)
        report_id, photo_ids = report.id, [photo.id for photo in report.photos]  # nothing to read after commit
        if key:
            db.session.execute(
                IdempotencyKey.__table__.update()
                .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
                .values(report_id=report_id, response=body))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        discard(created)
        raise
    routing_jobs.enqueue_route(report_id)
    for photo_id in photo_ids:
        photo_jobs.enqueue_derivatives(photo_id)
    return Outcome(body={**body, "tracking_token": token}, report_id=report_id, replayed=False)


def inspect_uploads(uploads: list[Upload], tz: ZoneInfo) -> list[PhotoInfo]:
    """Check every uploaded photo (size, format, structure, pixels) and read its metadata; 4xx on the
    first bad one. No pixel is decoded."""
    config = current_app.config
    return [inspect_upload(u.stream, field=u.field, max_bytes=config["MAX_PHOTO_MB"] * 1024 * 1024,
                           max_pixels=config["MAX_PHOTO_MEGAPIXELS"] * 1_000_000, tz=tz) for u in uploads]


def store_originals(uploads: list[Upload], infos: list[PhotoInfo], created: list[str]) -> None:
    """Store the originals (content-addressed) inside the caller's transaction, which must hold the
    content locks of their hashes. Each key this call creates is appended to `created` as soon as it
    exists, so that the caller discards every one of them if anything fails, even the next put."""
    storage = get_storage()
    for upload, info in zip(uploads, infos, strict=True):
        upload.stream.seek(0)
        key = original_key(info.sha256)
        try:
            if storage.put(key, upload.stream):
                created.append(key)
        except StorageError:
            # An object store may have kept the object although its answer was lost: discard() removes it,
            # unless a committed photo refers to it (then it was there before: nothing is lost).
            created.append(key)
            raise


def photo_rows(infos: list[PhotoInfo], kind: str) -> list[Photo]:
    """Photo rows for stored originals; the same photo twice is kept once."""
    rows, seen = [], set()
    for info in infos:
        if info.sha256 in seen:
            continue
        seen.add(info.sha256)
        rows.append(Photo(
            kind=kind, storage_key=original_key(info.sha256), sha256=info.sha256, content_type=info.content_type,
            size_bytes=info.size_bytes, width=info.width, height=info.height,
            gps=WKTElement(f"POINT({info.gps[1]!r} {info.gps[0]!r})", srid=SRID) if info.gps else None,
            taken_at=info.taken_at))
    return rows


def _check_idempotency_key(value: str | None) -> str | None:
    """Keys are secrets of the client (a replay returns the tracking token): long enough not to be
    guessed, as a UUID is."""
    if value is None:
        return None
    if not (IDEMPOTENCY_KEY_MIN <= len(value) <= IDEMPOTENCY_KEY_MAX and value.isascii() and value.isprintable()):
        raise _error(400, "invalid_idempotency_key",
                     f"Idempotency-Key must be {IDEMPOTENCY_KEY_MIN} to {IDEMPOTENCY_KEY_MAX} printable ASCII "
                     "characters (a UUID is a good key).",
                     "Idempotency-Key không hợp lệ (nên dùng một UUID).", "Idempotency-Key")
    return value


def _enforce_rate_limit(sub: Submission, device_id: str | None) -> None:
    """Residents: RATE_LIMIT_* per IP address and per device id. A registered client application (an
    Open311 api key) submits for many residents from one address: CLIENT_RATE_LIMIT_* per application
    instead of per address, and the resident limits per device id still."""
    config = current_app.config
    checks = []
    if sub.client:
        checks.append(([f"client:{sub.client}"], "CLIENT_RATE_LIMIT"))
    elif sub.client_ip:
        checks.append(([f"ip:{sub.client_ip}"], "RATE_LIMIT"))
    if device_id:
        checks.append(([f"device:{device_id}"], "RATE_LIMIT"))
    for identities, prefix in checks:
        limits = [ratelimit.Limit(config[f"{prefix}_PER_MINUTE"], 60),
                  ratelimit.Limit(config[f"{prefix}_PER_DAY"], 86400)]
        wait = ratelimit.hit(get_redis(), "reports", identities, limits, secret=config["SECRET_KEY"])
        if wait is not None:
            raise ApiError(429, "too_many_requests", f"Too many reports from this client; try again in {wait} s.",
                           message_vi=f"Bạn đã gửi quá nhiều phản ánh, vui lòng thử lại sau {wait} giây.",
                           headers={"Retry-After": str(wait)})


@dataclass
class Location:
    """Where a report is, and how that is known."""

    lat: float
    lon: float
    source: str  # one of LOCATION_SOURCES
    accuracy_m: float | None = None
    ward_id: int | None = None  # known with the location (an address's ward)
    exif_distance_m: float | None = None  # from the client's position to the photo's GPS


def _location(data: dict, infos: list[PhotoInfo], city: areas.CityInfo) -> Location:
    """The client's position wins. Else the first photo that carries GPS, unless the address names a ward
    or commune that this GPS point is not in (a photo taken elsewhere: the reporter's words win). Else the
    ward or commune the address names: approximate, its representative point (services/geocode.py). Each
    photo keeps its own EXIF point whatever the report's location is."""
    exif = next((info.gps for info in infos if info.gps), None)
    if "lat" in data:
        client = (data["lat"], data["lon"])
        distance = areas.distance_m(client, exif) if exif else None
        if distance is not None and distance > current_app.config["LOCATION_MISMATCH_M"]:
            log.info("client position %.0f m from the photo's GPS: keeping the client's", distance)
        return Location(client[0], client[1], "client", data.get("accuracy_m"), exif_distance_m=distance)
    if data.get("address"):
        try:
            place = geocode.locate(data["address"], city)
        except ApiError as exc:
            if exif is None or exc.code not in geocode.NOT_LOCATED:
                raise
            place = None  # (the address is kept as written; the photo's GPS places the report)
        if place is not None and (exif is None or not geocode.covers(place.ward_id, *exif)):
            if exif is not None:
                log.info("photo GPS outside %s, the ward the address names: the address places the report",
                         place.ward_name)
            return Location(place.lat, place.lon, "address", place.accuracy_m, ward_id=place.ward_id)
    if exif:
        return Location(exif[0], exif[1], "exif")
    raise ApiError(422, "location_required",
                   "Send lat and lon, a photo with GPS in its EXIF, or an address that names the ward or commune.",
                   message_vi="Cần vị trí: gửi lat và lon, ảnh có thông tin GPS, hoặc địa chỉ có tên phường/xã.",
                   fields={"lat": ["Missing."], "lon": ["Missing."]})


def _fingerprint(channel: str, data: dict, infos: list[PhotoInfo]) -> str:
    """What makes two requests 'the same body': the validated fields and the photos' contents."""
    canonical = json.dumps({"channel": channel, "fields": data, "photos": [i.sha256 for i in infos]},
                           sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(scope: str, key: str, fingerprint: str) -> Outcome:
    """The key was claimed by a request that has committed (PostgreSQL made us wait for it)."""
    row = db.session.execute(select(IdempotencyKey.request_hash, IdempotencyKey.report_id, IdempotencyKey.response)
                             .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)).first()
    if row is None or row.response is None:  # expired or removed meanwhile: the client may retry
        raise _error(409, "idempotency_conflict", "This Idempotency-Key could not be resolved; retry.",
                     "Không xử lý được khóa Idempotency-Key, vui lòng thử lại.")
    if row.request_hash != fingerprint:
        raise _error(422, "idempotency_key_reused", "This Idempotency-Key was used for a different report.",
                     "Khóa Idempotency-Key đã được dùng cho một phản ánh khác.", "Idempotency-Key")
    body = dict(row.response)
    token = tracking_token(body["code"], scope, key)
    stored_hash = db.session.scalar(select(Report.tracking_token_hash).where(Report.id == row.report_id))
    db.session.rollback()
    if hmac.compare_digest(token_hash(token), stored_hash or ""):
        body["tracking_token"] = token
    else:  # SECRET_KEY was rotated since: never hand out a token that does not work
        log.warning("replay of report %s without its tracking token (SECRET_KEY changed)", row.report_id)
    return Outcome(body=body, report_id=row.report_id, replayed=True)


def tracking_token(public_code: str, scope: str, key: str | None) -> str:
    """The reporter's secret for following the report. With an Idempotency-Key it is derived from the
    server secret, so a replay can give it again without it ever being stored; without, it is random.
    Only its SHA-256 is stored."""
    if key is None:
        return secrets.token_urlsafe(32)
    mac = hmac.new(current_app.config["SECRET_KEY"].encode(), f"tracking:{public_code}:{scope}:{key}".encode(),
                   hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _next_code(prefix: str, year: int) -> str:
    """The next public code of the year, e.g. HUE-2026-000123 (the counter row is locked until commit)."""
    stmt = (pg_insert(ReportCodeCounter).values(prefix=prefix, year=year, last_value=1)
            .on_conflict_do_update(index_elements=["prefix", "year"],
                                   set_={"last_value": ReportCodeCounter.last_value + 1})
            .returning(ReportCodeCounter.last_value))
    return f"{prefix}-{year}-{db.session.execute(stmt).scalar_one():06d}"


CLAIM_SQL = """INSERT INTO idempotency_keys (scope, key, request_hash) VALUES (:scope, :key, :hash)
                ON CONFLICT DO NOTHING RETURNING key"""
# Serialises storing and removing these content hashes until the end of the transaction, in a fixed
# order, so that two requests never wait for each other in a circle.
LOCK_SQL = """SELECT count(pg_advisory_xact_lock(hashtextextended(sha, 0)))
               FROM (SELECT sha FROM unnest(CAST(:shas AS text[])) AS sha ORDER BY sha) AS ordered"""


def lock_content(*sha256s: str) -> None:
    db.session.execute(text(LOCK_SQL), {"shas": sorted(sha256s)})


def discard(keys: list[str]) -> None:
    """Remove files this request stored, unless a committed photo now refers to them. If the storage cannot
    remove one (an object store still down), it is logged and left to sweep_orphan_originals."""
    for key in keys:
        try:
            remove_if_unreferenced(key)
        except Exception:  # best effort: sweep_orphan_originals removes what is left
            db.session.rollback()
            log.exception("could not remove %s after a failed submission", key)


def remove_if_unreferenced(key: str) -> bool:
    """Delete an original no photo refers to, under its content lock (so never one a request is
    about to commit). True if it was deleted."""
    lock_content(key.rsplit("/", 1)[-1])
    # (a photo whose original the retention job let go holds it no more: services/privacy.py)
    referenced = db.session.scalar(select(exists().where(Photo.storage_key == key,
                                                         Photo.original_deleted_at.is_(None))))
    if not referenced:
        get_storage().delete(key)
    db.session.commit()
    return not referenced

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

import redis
from flask import current_app
from geoalchemy2 import WKTElement
from sqlalchemy import ARRAY, Float, Integer, String, bindparam, exists, func, select, text

from ..errors import ApiError
from ..extensions import db, get_redis
from ..jobs import photos as photo_jobs
from ..jobs import routing as routing_jobs
from ..models import SRID, AdminArea, Category, IdempotencyKey, Photo, Report
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
    if not 1 <= len(sub.uploads) <= config["MAX_PHOTOS"]:
        raise _error(422, "validation_error", f"Send 1 to {config['MAX_PHOTOS']} photos.",
                     f"Gửi từ 1 đến {config['MAX_PHOTOS']} ảnh.", "photos")
    tz = ZoneInfo(city.timezone)
    infos = inspect_uploads(sub.uploads, tz)
    fingerprint = _fingerprint(sub.channel, data, infos)
    try:
        where = _location(data, infos, city)
    except ApiError:
        if key and _key_used(scope, key):
            return _replay(scope, key, fingerprint)  # a retry: answer as the first time, whatever changed since
        raise
    lat, lon = where.lat, where.lon
    shas = {info.sha256 for info in infos}
    # One round trip: was the key used (a retry), is the point inside the city, the category and the ward
    # (an address's ward is the ward it names, not a lookup of its point); and the photos' content locks
    # (see CONTENT_LOCKS), held until the end of the transaction.
    connection = db.session.connection()  # (the session's, in its transaction: fetched once)
    place = connection.execute(_place_statement(), {
        "lon": lon, "lat": lat, "city_area_id": city.area_id, "ward_id": where.ward_id,
        "category": data["category"], "scope": scope, "key": key, "shas": sorted(shas)}).first()
    if key and (place.used if place is not None else _key_used(scope, key)):
        return _replay(scope, key, fingerprint)  # a retry: answer as the first time, whatever changed since
    _enforce_rate_limit(sub, data.get("device_id"))  # (after that: a retry is not a new submission)
    if place is None:
        raise _error(422, "validation_error", "Unknown service code.", "Không có lĩnh vực này.", "category")
    if not place.inside:
        raise ApiError(422, "outside_service_area", f"The location is outside {city.name_en}.",
                       message_vi=f"Vị trí nằm ngoài {city.name}.", fields={"location": [f"({lat:.6f}, {lon:.6f})"]})

    created: list[str] = []
    try:
        # The application's clock (NTP-synchronised): the answer needs the time before the insert.
        submitted_at = datetime.now(timezone.utc)
        store_originals(sub.uploads, infos, created)
        unique = _unique_photos(infos)
        # One round trip: claim the key (a request with the same key that has not ended makes this wait for
        # its end) and, if claimed, the public code's number (its counter row is locked until commit, so it is
        # taken after the files are stored) and the ids of the rows, so that the answer is made before the
        # insert.
        year = submitted_at.astimezone(tz).year
        numbers = connection.execute(NUMBERS_SQL, {"scope": scope, "key": key, "hash": fingerprint,
                                                   "prefix": city.report_code_prefix, "year": year,
                                                   "photos": len(unique)}).one()
        if not numbers.claimed:  # a request with the same key committed first: answer as it did
            db.session.rollback()
            discard(created)
            created.clear()
            return _replay(scope, key, fingerprint)
        code = f"{city.report_code_prefix}-{year}-{numbers.number:06d}"
        token = tracking_token(code, scope, key)
        location = WKTElement(f"POINT({lon!r} {lat!r})", srid=SRID)
        contact = {f: data.get(f"reporter_{f}") for f in ("name", "phone", "email")} | {
            "device_id": data.get("device_id"), "notify_url": data.get("notify_url")}
        event_data = {"photos": len(unique)}
        if where.exif_distance_m is not None:
            event_data["exif_distance_m"] = round(where.exif_distance_m)
        # The answer, from the rows as they will be (never added to the session: the statement below
        # writes them).
        report = Report(
            id=numbers.report_id, public_code=code, description=data["description"], channel=sub.channel,
            status="submitted", supporters=0, location=location, location_source=where.source,
            location_accuracy_m=where.accuracy_m, address=data.get("address"), submitted_at=submitted_at,
            category=Category(id=place.category_id, code=data["category"], name=place.category_name,
                              name_en=place.category_name_en),
            ward=None if place.ward_id is None else AdminArea(
                id=place.ward_id, code=place.ward_code, name=place.ward_name, name_en=place.ward_name_en),
            photos=[Photo(id=photo_id, kind="evidence") for photo_id in numbers.photo_ids])
        body = PUBLIC_SCHEMA.dump(report)
        # One round trip: the report, its contact, photos and `submitted` event, and the key's answer.
        connection.execute(FILE_SQL, {
            "report_id": numbers.report_id, "code": code, "category_id": place.category_id,
            "description": data["description"], "channel": sub.channel, "lon": lon, "lat": lat,
            "location_source": where.source, "accuracy_m": where.accuracy_m, "address": data.get("address"),
            "ward_id": place.ward_id, "submitted_at": submitted_at, "token_hash": token_hash(token),
            "with_contact": any(contact.values()), **{f"contact_{f}": v for f, v in contact.items()},
            "photo_ids": numbers.photo_ids, "storage_keys": [original_key(i.sha256) for i in unique],
            "sha256s": [i.sha256 for i in unique], "content_types": [i.content_type for i in unique],
            "sizes": [i.size_bytes for i in unique], "widths": [i.width for i in unique],
            "heights": [i.height for i in unique], "gps_lons": [i.gps[1] if i.gps else None for i in unique],
            "gps_lats": [i.gps[0] if i.gps else None for i in unique],
            "taken_ats": [i.taken_at for i in unique], "event_data": json.dumps(event_data),
            "scope": scope, "key": key, "response": json.dumps(body, ensure_ascii=False)})
        db.session.commit()
    except BaseException:
        db.session.rollback()
        discard(created)
        raise
    report_id = numbers.report_id
    enqueue_jobs(report_id, numbers.photo_ids)
    return Outcome(body={**body, "tracking_token": token}, report_id=report_id, replayed=False)


def enqueue_jobs(report_id: int, photo_ids: list[int]) -> None:
    """Queue a committed report's routing and its photos' derivatives, in one round trip to Redis. A Redis
    outage is logged, not raised: the report is safe in the database, and the sweeps queue them later."""
    pipeline = get_redis().pipeline()
    try:
        if not routing_jobs.enqueue_route(report_id, pipeline=pipeline):
            return
        for photo_id in photo_ids:
            photo_jobs.enqueue_derivatives(photo_id, pipeline=pipeline)
        pipeline.execute()
    except redis.RedisError as exc:
        log.warning("report %s: jobs not queued (%s); the sweeps will queue them", report_id, exc)
    finally:
        pipeline.reset()


def _sql(statement, params: dict[str, Any]):
    """A Core statement on the session's connection (inside its transaction), without the ORM's work."""
    return db.session.connection().execute(statement, params)


# Serialises storing and removing these content hashes (:shas) until the end of the transaction, in a fixed
# order, so that two requests never wait for each other in a circle: one definition for every caller (intake
# takes them in its first statement, _place_statement, before the key and the code counter: always in that order).
_SHAS = select(func.unnest(bindparam("shas", type_=ARRAY(String))).label("sha")).order_by("sha").subquery()
CONTENT_LOCKS = select(func.count(func.pg_advisory_xact_lock(func.hashtextextended(_SHAS.c.sha, 0))))

KEY_EXISTS_SQL = text("SELECT EXISTS (SELECT 1 FROM idempotency_keys WHERE scope = :scope AND key = :key)")

_PLACE: list = []


def _place_statement():
    """Is the point inside the city, the active category by its code, and the ward: the one given
    (:ward_id) or else the one covering the point; whether the Idempotency-Key (:scope, :key) was used; and
    the content locks of the photos' hashes (:shas: CONTENT_LOCKS). Built once; its parameters
    are bound per request."""
    if not _PLACE:
        p = areas.point(bindparam("lon", type_=Float), bindparam("lat", type_=Float))
        inside, ward = areas.place_columns(bindparam("city_area_id", type_=Integer), p)
        used = exists().where(IdempotencyKey.scope == bindparam("scope", type_=String),
                              IdempotencyKey.key == bindparam("key", type_=String))
        _PLACE.append(
            select(inside.label("inside"), Category.id.label("category_id"), Category.name.label("category_name"),
                   Category.name_en.label("category_name_en"), AdminArea.id.label("ward_id"),
                   AdminArea.code.label("ward_code"), AdminArea.name.label("ward_name"),
                   AdminArea.name_en.label("ward_name_en"), used.label("used"),
                   CONTENT_LOCKS.scalar_subquery().label("locked"))
            .select_from(Category)
            .outerjoin(AdminArea, AdminArea.id == func.coalesce(bindparam("ward_id", type_=Integer), ward))
            .where(Category.code == bindparam("category", type_=String), Category.active))
    return _PLACE[0]


def _key_used(scope: str, key: str) -> bool:
    return bool(_sql(KEY_EXISTS_SQL, {"scope": scope, "key": key}).scalar())


# Claim the key (if there is one), then, if claimed, the public code's number and the rows' ids.
NUMBERS_SQL = text("""
    WITH claim AS (
        INSERT INTO idempotency_keys (scope, key, request_hash)
        SELECT :scope, CAST(:key AS text), :hash WHERE CAST(:key AS text) IS NOT NULL
        ON CONFLICT DO NOTHING RETURNING key
    ), go AS (
        SELECT WHERE CAST(:key AS text) IS NULL OR EXISTS (SELECT FROM claim)
    ), counter AS (
        INSERT INTO report_code_counters AS c (prefix, year, last_value) SELECT :prefix, :year, 1 FROM go
        ON CONFLICT (prefix, year) DO UPDATE SET last_value = c.last_value + 1
        RETURNING last_value)
    SELECT EXISTS (SELECT FROM go) AS claimed, (SELECT last_value FROM counter) AS number,
           (SELECT nextval(pg_get_serial_sequence('reports', 'id')) FROM go) AS report_id,
           ARRAY(SELECT nextval(pg_get_serial_sequence('photos', 'id'))
                 FROM go, generate_series(1, CAST(:photos AS integer))) AS photo_ids
""")

# (Rows written by one statement: the foreign keys are checked at its end, when the report exists.)
FILE_SQL = text(f"""
    WITH report AS (
        INSERT INTO reports (id, public_code, category_id, description, channel, status, supporters, location,
                             location_source, location_accuracy_m, address, ward_id, submitted_at,
                             tracking_token_hash)
        VALUES (:report_id, :code, :category_id, :description, :channel, 'submitted', 0,
                ST_SetSRID(ST_MakePoint(:lon, :lat), {SRID}), :location_source, :accuracy_m, :address, :ward_id,
                :submitted_at, :token_hash)
        RETURNING id
    ), contact AS (
        INSERT INTO report_contacts (report_id, name, phone, email, device_id, notify_url)
        SELECT id, :contact_name, :contact_phone, :contact_email, :contact_device_id, :contact_notify_url
        FROM report WHERE CAST(:with_contact AS boolean)
    ), photo AS (
        INSERT INTO photos (id, report_id, kind, storage_key, sha256, content_type, size_bytes, width, height, gps,
                            taken_at)
        SELECT p.id, report.id, 'evidence', p.storage_key, p.sha256, p.content_type, p.size_bytes, p.width,
               p.height, CASE WHEN p.lon IS NOT NULL THEN ST_SetSRID(ST_MakePoint(p.lon, p.lat), {SRID}) END,
               p.taken_at
        FROM report, unnest(CAST(:photo_ids AS bigint[]), CAST(:storage_keys AS text[]),
                            CAST(:sha256s AS text[]), CAST(:content_types AS text[]), CAST(:sizes AS bigint[]),
                            CAST(:widths AS integer[]), CAST(:heights AS integer[]),
                            CAST(:gps_lons AS double precision[]), CAST(:gps_lats AS double precision[]),
                            CAST(:taken_ats AS timestamptz[]))
             AS p(id, storage_key, sha256, content_type, size_bytes, width, height, lon, lat, taken_at)
    ), event AS (
        INSERT INTO report_events (report_id, created_at, type, actor_kind, to_status, public, data)
        SELECT id, :submitted_at, 'submitted', 'resident', 'submitted', true, CAST(:event_data AS jsonb)
        FROM report
    ), answer AS (
        UPDATE idempotency_keys SET report_id = (SELECT id FROM report), response = CAST(:response AS jsonb)
        WHERE scope = :scope AND key = :key
    )
    SELECT id FROM report
""")


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


def _unique_photos(infos: list[PhotoInfo]) -> list[PhotoInfo]:
    """The same photo twice is kept once."""
    first: dict[str, PhotoInfo] = {}
    for info in infos:
        first.setdefault(info.sha256, info)
    return list(first.values())


def photo_rows(infos: list[PhotoInfo], kind: str) -> list[Photo]:
    """Photo rows for stored originals; the same photo twice is kept once."""
    rows = []
    for info in _unique_photos(infos):
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


def lock_content(*sha256s: str) -> None:
    _sql(CONTENT_LOCKS, {"shas": sorted(sha256s)})


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

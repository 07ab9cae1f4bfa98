"""POST /api/v1/reports: a resident's geotagged photo report, checked field by field and photo by photo."""

import hashlib
import io
import re
import unicodedata
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlalchemy import func, select, text

from hue_reports.models import Photo, Report, ReportContact, ReportEvent
from hue_reports.services import photos
from hue_reports.services.storage import original_key
from tests.support import CITADEL, NOKIA, PHOTOS, dms, haversine_m, photo_with_gps, post_report


def _error(response, status, code):
    assert response.status_code == status, response.get_json()
    body = response.get_json()["error"]
    assert body["code"] == code, body
    return body


def _encoded(fmt: str, source=PHOTOS / "jpg/mobile/jolla.jpg", **save) -> bytes:
    out = io.BytesIO()
    with Image.open(source) as im:
        im.convert("RGB").save(out, fmt, **save)
    return out.getvalue()


def test_a_phone_photo_report_is_stored_with_its_photo_contact_and_event(client, db_session, redis_conn,
                                                                         storage_backend):
    response = post_report(client, reporter_name="Nguyễn Văn An", reporter_phone="0912 345 678",
                           reporter_email="an@example.vn", device_id="phone-1", accuracy_m="8",
                           address="23 Đặng Thái Thân")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    year = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).year
    assert re.fullmatch(rf"HUE-{year}-\d{{6}}", body["code"])
    assert body["status"] == "submitted" and body["status_label"] == {"vi": "chờ tiếp nhận", "en": "submitted"}
    assert body["category"]["code"] == "road_damage" and body["category"]["name"]["vi"]
    assert body["location"] == {"lat": CITADEL[0], "lon": CITADEL[1]} and body["location_source"] == "client"
    assert body["accuracy_m"] == 8
    assert body["ward"]["name"] == "Phường Phú Xuân"
    assert [p["state"] for p in body["photos"]] == ["processing"]
    assert body["photos"][0]["urls"]["display"] == f"/api/v1/photos/{body['photos'][0]['id']}/display"
    assert len(body["tracking_token"]) >= 40
    assert "reporter" not in body
    assert response.headers["Location"] == f"/api/v1/reports/{body['id']}"

    report = db_session.get(Report, body["id"])
    assert report.public_code == body["code"] and report.channel == "app"
    assert report.tracking_token_hash == hashlib.sha256(body["tracking_token"].encode()).hexdigest()
    contact = db_session.get(ReportContact, report.id)
    assert (contact.name, contact.phone, contact.email, contact.device_id) == (
        "Nguyễn Văn An", "+84912345678", "an@example.vn", "phone-1")
    photo = db_session.scalars(select(Photo).where(Photo.report_id == report.id)).one()
    original = NOKIA.read_bytes()
    assert photo.sha256 == hashlib.sha256(original).hexdigest()
    assert (photo.width, photo.height, photo.content_type) == (4608, 1976, "image/jpeg")
    assert photo.storage_key == original_key(photo.sha256)
    with storage_backend.open(photo.storage_key) as stored:
        assert stored.read() == original
    events = db_session.scalars(select(ReportEvent).where(ReportEvent.report_id == report.id)).all()
    assert [(e.type, e.to_status, e.public) for e in events] == [("submitted", "submitted", True)]
    assert redis_conn.exists(f"rq:job:derivatives-{photo.id}")


def test_the_answer_is_the_report_as_stored_and_each_photo_keeps_its_own_metadata(client, db_session, redis_conn):
    """The 201 answer is made before the rows are written: it must be what GET then shows; and each photo's
    EXIF point and capture time are stored with it (a photo without them has none)."""
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: dms(16.4637), 3: "E", 4: dms(107.5909)}
    exif[0x8769] = {0x9003: "2026:03:14 09:26:53", 0x9011: "+07:00"}
    out = io.BytesIO()
    with Image.open(PHOTOS / "jpg/orientation/landscape_1.jpg") as im:
        im.convert("RGB").save(out, "JPEG", exif=exif.tobytes())
    response = post_report(client, photos=[(out.getvalue(), "geo.jpg"), (_encoded("JPEG"), "plain.jpg")],
                           reporter_name="Lê Văn Cường", address="12 Lê Lợi")
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    token = created.pop("tracking_token")
    public = client.get(f"/api/v1/reports/{created['id']}").get_json()
    for body in (created, public):
        body["created_at"] = datetime.fromisoformat(body["created_at"])
    assert created == public
    private = client.get(f"/api/v1/reports/{created['id']}", headers={"X-Tracking-Token": token}).get_json()
    assert private["reporter"]["name"] == "Lê Văn Cường"
    geo, plain = private["photos"]
    assert geo["gps"] == pytest.approx({"lat": 16.4637, "lon": 107.5909}, abs=1e-5)
    assert datetime.fromisoformat(geo["taken_at"]) == datetime.fromisoformat("2026-03-14T09:26:53+07:00")
    assert plain["gps"] is None and plain["taken_at"] is None


def test_codes_count_up_within_the_year(client, db_session, redis_conn):
    first = post_report(client).get_json()["code"]
    second = post_report(client).get_json()["code"]
    assert int(second.rsplit("-", 1)[1]) == int(first.rsplit("-", 1)[1]) + 1


def test_the_public_view_hides_the_reporter_and_the_token_shows_it(client, db_session, redis_conn):
    created = post_report(client, reporter_phone="+84 234 3822 123").get_json()
    public = client.get(f"/api/v1/reports/{created['id']}")
    assert public.status_code == 200
    assert "reporter" not in public.get_json() and "tracking_token" not in public.get_json()
    assert "gps" not in public.get_json()["photos"][0]
    assert client.get(f"/api/v1/reports/{created['code']}").get_json()["id"] == created["id"]

    private = client.get(f"/api/v1/reports/{created['id']}", headers={"X-Tracking-Token": created["tracking_token"]})
    assert private.get_json()["reporter"]["phone"] == "+842343822123"
    assert private.headers["Cache-Control"].startswith("private")
    _error(client.get(f"/api/v1/reports/{created['id']}", headers={"X-Tracking-Token": "guess"}),
           403, "invalid_tracking_token")
    _error(client.get("/api/v1/reports/HUE-1999-000001"), 404, "report_not_found")
    _error(client.get("/api/v1/reports/99999999"), 404, "report_not_found")
    for ref in ("%00", "HUE%002026", "9" * 30, "a" * 40, "x%27%3B--"):
        _error(client.get(f"/api/v1/reports/{ref}"), 404, "report_not_found")


def test_the_public_timeline_has_bilingual_labels(client, db_session, redis_conn):
    created = post_report(client).get_json()
    body = client.get(f"/api/v1/reports/{created['code']}/events").get_json()
    assert body["report"] == created["code"]
    [event] = body["events"]
    assert event["type"] == "submitted"
    assert event["label"] == {"vi": "Người dân gửi phản ánh", "en": "Report submitted"}
    assert event["status_label"]["vi"] == "chờ tiếp nhận"


def test_the_description_is_stored_nfc_normalised(client, db_session, redis_conn):
    decomposed = unicodedata.normalize("NFD", "Đèn đường hỏng ở Huế")
    assert decomposed != unicodedata.normalize("NFC", decomposed)
    created = post_report(client, description=f"  {decomposed}  ").get_json()
    assert db_session.get(Report, created["id"]).description == unicodedata.normalize("NFC", "Đèn đường hỏng ở Huế")


@pytest.mark.parametrize("fields, field", [
    ({"category": None}, "category"),
    ({"category": "no_such_service"}, "category"),
    ({"category": "road\x00damage"}, "category"),
    ({"description": None}, "description"),
    ({"description": "   "}, "description"),
    ({"description": "x" * 2001}, "description"),
    ({"description": "nul \x00 byte"}, "description"),
    ({"lat": "91"}, "lat"),
    ({"lon": "-181"}, "lon"),
    ({"lat": "abc"}, "lat"),
    ({"lat": "nan"}, "lat"),
    ({"lon": "inf"}, "lon"),
    ({"lat": "16.46", "lon": ""}, "lon"),
    ({"accuracy_m": "-3"}, "accuracy_m"),
    ({"reporter_phone": "12345"}, "reporter_phone"),
    ({"reporter_phone": "0112345678"}, "reporter_phone"),
    ({"reporter_email": "not-an-email"}, "reporter_email"),
    ({"address": "a" * 501}, "address"),
])
def test_every_invalid_field_is_a_422_naming_it(client, db_session, redis_conn, fields, field, media_files):
    before, files = db_session.scalar(select(func.count()).select_from(Report)), media_files()
    error = _error(post_report(client, **fields), 422, "validation_error")
    assert field in error["fields"], error
    assert db_session.scalar(select(func.count()).select_from(Report)) == before
    assert media_files() == files  # nothing stored, not even a spooled upload


def test_an_inactive_category_is_refused(client, db_session, redis_conn):
    db_session.execute(text("UPDATE categories SET active = false WHERE code = 'noise'"))
    error = _error(post_report(client, category="noise"), 422, "validation_error")
    assert "category" in error["fields"]


@pytest.mark.parametrize("phone, stored", [
    ("0912345678", "+84912345678"), ("+84 912 345 678", "+84912345678"), ("84912345678", "+84912345678"),
    ("0234.3822.123", "+842343822123"), ("(0234) 3822 123", "+842343822123"), ("039-123-4567", "+84391234567"),
])
def test_vietnamese_phone_formats_are_stored_in_one_form(client, db_session, redis_conn, phone, stored):
    created = post_report(client, reporter_phone=phone).get_json()
    assert db_session.get(ReportContact, created["id"]).phone == stored


def test_no_photo_or_too_many_photos_is_refused(client, db_session, redis_conn, app):
    jpeg = PHOTOS.joinpath("jpg/orientation/landscape_1.jpg").read_bytes()
    assert "photos" in _error(post_report(client, photos=[]), 422, "validation_error")["fields"]
    too_many = [(jpeg, f"{n}.jpg") for n in range(app.config["MAX_PHOTOS"] + 1)]
    assert "photos" in _error(post_report(client, photos=too_many), 422, "validation_error")["fields"]


def test_a_json_body_is_refused_with_415(client):
    response = client.post("/api/v1/reports", json={"category": "road_damage"})
    _error(response, 415, "unsupported_media_type")


def test_no_location_at_all_is_location_required(client, db_session, redis_conn):
    jpeg = PHOTOS.joinpath("jpg/orientation/landscape_1.jpg").read_bytes()  # no GPS in it
    _error(post_report(client, photos=[(jpeg, "a.jpg")], lat="", lon=""), 422, "location_required")


def test_an_address_alone_places_the_report_in_the_ward_it_names(client, db_session, redis_conn):
    """The app's API shares intake's location rules with Open311: an address naming a ward is enough."""
    jpeg = PHOTOS.joinpath("jpg/orientation/landscape_1.jpg").read_bytes()  # no GPS in it
    response = post_report(client, photos=[(jpeg, "a.jpg")], lat="", lon="", address="5 Lê Lợi, P. Vĩnh Ninh, "
                                                                                        "phường Thuận Hóa")
    body = response.get_json()
    assert response.status_code == 201, body
    assert body["location_source"] == "address" and body["ward"]["name"] == "Phường Thuận Hóa"
    assert body["accuracy_m"] > 1000 and body["address"] == "5 Lê Lợi, P. Vĩnh Ninh, phường Thuận Hóa"
    inside = db_session.scalar(text("SELECT ST_Covers(a.geom, r.location) FROM reports r JOIN admin_areas a "
                                    "ON a.id = r.ward_id WHERE r.id = :id"), {"id": body["id"]})
    assert inside is True


@pytest.mark.parametrize("address, code", [("5 Lê Lợi", "address_not_found"),
                                           ("Kim Long, Vỹ Dạ", "address_ambiguous")])
def test_an_address_naming_no_single_ward_is_422_in_both_languages(client, db_session, redis_conn, address, code):
    jpeg = PHOTOS.joinpath("jpg/orientation/landscape_1.jpg").read_bytes()
    error = _error(post_report(client, photos=[(jpeg, "a.jpg")], lat="", lon="", address=address), 422, code)
    assert "latitude and longitude" in error["message"] and "phường/xã" in error["message_vi"]
    assert list(error["fields"]) == ["address"]
    assert db_session.scalar(select(func.count()).select_from(Report).where(Report.address == address)) == 0


def test_a_point_outside_the_city_is_refused(client, db_session, redis_conn):
    error = _error(post_report(client, lat="21.0285", lon="105.8542"), 422, "outside_service_area")  # Hà Nội
    assert error["message_vi"].endswith("Thành phố Huế.")


@pytest.mark.parametrize("path", sorted((PHOTOS / "jpg/gps").glob("*.jpg")))
def test_the_european_gps_photos_are_outside_the_service_area(client, db_session, redis_conn, path):
    _error(post_report(client, photos=[(path.read_bytes(), path.name)], lat="", lon=""), 422,
           "outside_service_area")


def test_a_photo_geotagged_in_hue_locates_the_report_within_a_metre(client, db_session, redis_conn):
    lat, lon = 16.4637, 107.5909  # Trường Tiền bridge
    response = post_report(client, photos=[(photo_with_gps(lat, lon), "geo.jpg")], lat="", lon="")
    body = response.get_json()
    assert response.status_code == 201, body
    assert body["location_source"] == "exif"
    metres = db_session.scalar(text(
        "SELECT ST_Distance(location::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) "
        "FROM reports WHERE id = :id"), {"lat": lat, "lon": lon, "id": body["id"]})
    assert metres < 1


def test_the_clients_position_wins_and_the_photo_keeps_its_own(client, db_session, redis_conn):
    exif_point = (16.4637, 107.5909)
    response = post_report(client, photos=[(photo_with_gps(*exif_point), "geo.jpg")],
                           lat=str(CITADEL[0]), lon=str(CITADEL[1]))
    body = response.get_json()
    assert body["location_source"] == "client" and body["location"] == {"lat": CITADEL[0], "lon": CITADEL[1]}
    photo_point = db_session.execute(text("SELECT ST_Y(gps), ST_X(gps) FROM photos WHERE report_id = :id"),
                                     {"id": body["id"]}).one()
    assert photo_point == pytest.approx(exif_point, abs=1e-5)
    event = db_session.scalars(select(ReportEvent).where(ReportEvent.report_id == body["id"])).one()
    assert event.data["exif_distance_m"] == pytest.approx(haversine_m(CITADEL, exif_point), rel=0.01)


@pytest.mark.parametrize("path", sorted(p for p in PHOTOS.rglob("*") if p.is_file()),
                         ids=lambda p: str(p.relative_to(PHOTOS)))
def test_every_shared_photo_file_is_accepted_or_refused_clearly(client, db_session, redis_conn, path, media_files):
    """Whatever the file (phones, HEIC, broken JPEGs, even the folder's SOURCE.md): 201 or a clear 4xx;
    an accepted photo renders, and a refused one leaves nothing behind."""
    for fields in ({}, {"lat": "", "lon": ""}):
        files = media_files()
        response = post_report(client, photos=[(path.read_bytes(), path.name)], **fields)
        assert response.status_code in (201, 413, 415, 422), (response.status_code, response.get_json())
        if response.status_code == 201:
            photo_id = response.get_json()["photos"][0]["id"]
            assert photos.make_derivatives(photo_id) in ("made", "reused", "done")
        else:
            assert response.get_json()["error"]["code"] in (
                "invalid_image", "unsupported_media_type", "location_required", "outside_service_area",
                "image_too_large", "photo_too_large")
            assert media_files() == files


@pytest.mark.parametrize("fmt, save", [("PNG", {}), ("WEBP", {"quality": 80})])
def test_png_and_webp_are_accepted(client, db_session, redis_conn, fmt, save):
    response = post_report(client, photos=[(_encoded(fmt, **save), f"photo.{fmt.lower()}")])
    assert response.status_code == 201, response.get_json()
    photo = db_session.get(Photo, response.get_json()["photos"][0]["id"])
    assert photo.content_type == f"image/{fmt.lower()}"


def test_iphone_heic_is_accepted(client, db_session, redis_conn):
    heic = PHOTOS / "heic/mobile/iphone_13_pro_max.HEIC"
    response = post_report(client, photos=[(heic.read_bytes(), heic.name)])
    assert response.status_code == 201, response.get_json()
    assert db_session.get(Photo, response.get_json()["photos"][0]["id"]).content_type == "image/heif"


def test_the_format_comes_from_the_bytes_not_the_name(client, db_session, redis_conn):
    png_named_jpg = _encoded("PNG")
    response = post_report(client, photos=[(png_named_jpg, "photo.jpg")])
    assert response.status_code == 201
    assert db_session.get(Photo, response.get_json()["photos"][0]["id"]).content_type == "image/png"
    error = _error(post_report(client, photos=[(b"GIF89a not really", "photo.jpg")]), 415, "unsupported_media_type")
    assert "photos" in error["fields"]
    gif = _encoded("GIF")
    _error(post_report(client, photos=[(gif, "photo.jpg")]), 415, "unsupported_media_type")


def test_a_truncated_photo_is_invalid_image(client, db_session, redis_conn):
    data = NOKIA.read_bytes()
    _error(post_report(client, photos=[(data[: len(data) // 2], "cut.jpg")]), 422, "invalid_image")


def test_an_empty_file_is_invalid_image(client, db_session, redis_conn):
    _error(post_report(client, photos=[(b"", "empty.jpg")]), 422, "invalid_image")


def test_a_photo_over_the_pixel_limit_is_422(make_app, db_session, redis_conn):
    app = make_app(MAX_PHOTO_MEGAPIXELS=5, RATE_LIMIT_PER_MINUTE=0, RATE_LIMIT_PER_DAY=0)  # Nokia: 9.1 MP
    _error(post_report(app.test_client()), 422, "image_too_large")


def test_a_decompression_bomb_is_422_without_decoding_it(client, db_session, redis_conn):
    bomb = io.BytesIO()
    Image.new("1", (25_000, 25_000)).save(bomb, "PNG")  # 625 megapixels in a few tens of kB
    assert len(bomb.getvalue()) < 200_000
    _error(post_report(client, photos=[(bomb.getvalue(), "bomb.png")]), 422, "image_too_large")


def test_a_photo_over_the_file_limit_is_413(make_app, db_session, redis_conn):
    app = make_app(MAX_PHOTO_MB=1, RATE_LIMIT_PER_MINUTE=0, RATE_LIMIT_PER_DAY=0)  # Nokia: 2.2 MB
    error = _error(post_report(app.test_client()), 413, "photo_too_large")
    assert "photos" in error["fields"]


def test_a_request_over_the_request_limit_is_413(make_app, db_session, redis_conn):
    app = make_app(MAX_REQUEST_MB=3, RATE_LIMIT_PER_MINUTE=0, RATE_LIMIT_PER_DAY=0)
    photo = (NOKIA.read_bytes(), "nokia.jpg")
    _error(post_report(app.test_client(), photos=[photo, photo]), 413, "payload_too_large")


def test_the_same_photo_twice_in_one_report_is_stored_once(client, db_session, redis_conn):
    photo = (NOKIA.read_bytes(), "nokia.jpg")
    body = post_report(client, photos=[photo, photo]).get_json()
    assert len(body["photos"]) == 1


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_a_cut_multipart_body_is_a_400_not_missing_fields(client, db_session, redis_conn, cut, media_files):
    """On a bad network the body arrives cut: say so (400), not that the category is missing."""
    from tests.support import multipart, report_form

    files = media_files()
    body, boundary = multipart(report_form([(NOKIA.read_bytes(), "n.jpg")], lat="16.4698", lon="107.5786"))
    response = client.post("/api/v1/reports", data=body[: int(len(body) * cut)],
                           content_type=f"multipart/form-data; boundary={boundary}")
    _error(response, 400, "malformed_body")
    assert media_files() == files

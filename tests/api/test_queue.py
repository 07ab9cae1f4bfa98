"""GET /api/v1/agency/reports: the officers' queue, on the real database.

Scope per role, every filter, the diacritic-insensitive search, the deadline order with NULLs last, keyset
pages without gaps or repeats across ties, the per-status counts, the errors, and no reporter field ever.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from shapely.geometry import shape
from sqlalchemy import event, select, text

from hue_reports.cli import DEFAULT_DATA_DIR
from hue_reports.extensions import db
from hue_reports.models import AdminArea, Agency, Photo, Report, ReportContact
from hue_reports.models.report import ALL_STATUSES
from hue_reports.services import queue, routing
from tests.api.test_agency_feed import token_for
from tests.support import CITADEL, new_report

HUE = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime.now(timezone.utc)


def get(client, token: str | None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get("/api/v1/agency/reports", query_string=params, headers=headers)


def ok(client, token: str, **params) -> dict:
    response = get(client, token, **params)
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "private, no-store"
    return response.get_json()


def codes(body: dict) -> list[str]:
    return [item["code"] for item in body["items"]]


def agency_id(code: str) -> int:
    return db.session.scalar(select(Agency.id).where(Agency.code == code))


def make(category: str = "uncollected_waste", *, agency: str | None = "HEPCO", status: str | None = None,
         due_at: datetime | None = None, description: str = "test", address: str | None = None,
         lat: float = CITADEL[0], lon: float = CITADEL[1], submitted_at: datetime | None = None) -> Report:
    """A report as routing leaves it (agency, status, deadline set by hand), flushed."""
    report = new_report(category, lat=lat, lon=lon, submitted_at=submitted_at)
    report.description, report.address, report.due_at = description, address, due_at
    if agency is not None:
        report.agency_id, report.routed_at = agency_id(agency), report.submitted_at
    report.status = status or ("routed" if agency is not None else "submitted")
    db.session.flush()
    return report


@pytest.fixture
def hepco(db_session) -> str:
    return token_for("hepco.officer")


@pytest.fixture
def ioc(db_session) -> str:
    return token_for("ioc")


# --- scope ----------------------------------------------------------------------------------------------

@pytest.fixture
def mixed(db_session):
    """Routed to SXD and to HEPCO by the real routing, one never routed, one that failed routing."""
    road, waste = new_report("road_damage"), new_report("uncollected_waste", lat=16.4598)
    for report in (road, waste):
        assert routing.route(report.id).result == "routed"
    unrouted = new_report("street_light_out", lat=16.4650)
    failed = new_report("fallen_tree", lat=16.4550, status="routing_failed")
    return road, waste, unrouted, failed


def test_an_officer_sees_only_its_agencys_reports(client, mixed):
    road, waste, unrouted, failed = mixed
    assert codes(ok(client, token_for("hepco.officer"))) == [waste.public_code]
    assert codes(ok(client, token_for("hepco.admin"))) == [waste.public_code]
    assert codes(ok(client, token_for("sxd.officer"))) == [road.public_code]
    assert ok(client, token_for("phuxuan.officer"))["items"] == []


def test_the_dispatcher_and_admins_see_every_agency_and_the_unrouted_and_failed(client, mixed):
    everything = {r.public_code for r in mixed}
    for username in ("ioc", "admin"):
        body = ok(client, token_for(username))
        assert set(codes(body)) == everything
        assert body["counts"]["routed"] == 2 and body["counts"]["submitted"] == 1
        assert body["counts"]["routing_failed"] == 1 and body["total"] == 4
    road, waste, unrouted, failed = mixed
    items = {item["code"]: item for item in ok(client, token_for("ioc"))["items"]}
    assert items[unrouted.public_code]["agency"] is None and items[unrouted.public_code]["due_at"] is None
    assert items[failed.public_code]["status_label"] == {"vi": "chưa chuyển được", "en": "routing failed"}


def test_an_item_carries_what_an_officer_needs(client, mixed, hepco):
    _, waste, _, _ = mixed
    db.session.refresh(waste)
    [item] = ok(client, hepco)["items"]
    ward = db.session.get(AdminArea, waste.ward_id)
    assert item["id"] == waste.id and item["code"] == waste.public_code and item["version"] == waste.version
    assert item["status"] == "routed" and item["status_label"] == {"vi": "đã chuyển xử lý", "en": "sent to agency"}
    assert item["overdue"] is False
    assert item["category"]["code"] == "uncollected_waste" and set(item["category"]["name"]) == {"vi", "en"}
    assert item["ward"] == {"code": ward.code, "name": ward.name, "name_en": ward.name_en}
    assert item["agency"] == {"code": "HEPCO", "name": {"vi": "Công ty Cổ phần Môi trường và Công trình đô thị Huế",
                                                        "en": "Hue Urban Environment and Public Works JSC (HEPCO)"}}
    assert datetime.fromisoformat(item["due_at"]) == waste.due_at
    assert datetime.fromisoformat(item["submitted_at"]) == waste.submitted_at
    assert datetime.fromisoformat(item["routed_at"]) == waste.routed_at
    assert item["location"] == {"lat": pytest.approx(16.4598), "lon": pytest.approx(CITADEL[1])}
    assert item["supporters"] == 0 and item["duplicate_of"] is None and item["thumbnail_url"] is None
    assert item["description"] == "test" and item["description_truncated"] is False


def test_the_agency_filter_narrows_the_dispatcher_and_never_widens_an_officer(client, mixed, hepco, ioc):
    road, waste, _, _ = mixed
    assert codes(ok(client, ioc, agency="HEPCO")) == [waste.public_code]
    assert codes(ok(client, ioc, agency="sxd")) == [road.public_code]  # codes are case-insensitive
    assert ok(client, ioc, agency="SXD")["counts"]["submitted"] == 0  # the unrouted belong to no agency
    assert codes(ok(client, hepco, agency="HEPCO")) == [waste.public_code]  # its own: fine
    other = get(client, hepco, agency="SXD")
    assert other.status_code == 403 and other.get_json()["error"]["code"] == "forbidden"
    assert "agency" in other.get_json()["error"]["fields"]
    unknown = get(client, ioc, agency="NOPE")
    assert unknown.status_code == 422 and set(unknown.get_json()["error"]["fields"]) == {"agency"}


# --- filters ----------------------------------------------------------------------------------------------

def test_status_filter_repeated_or_comma_separated(client, hepco):
    routed, acked, done = make(status="routed"), make(status="acknowledged"), make(status="resolved")
    assert codes(ok(client, hepco, status="routed")) == [routed.public_code]
    both = {routed.public_code, acked.public_code}
    assert set(codes(ok(client, hepco, status="routed,acknowledged"))) == both
    assert set(codes(ok(client, hepco, status=["routed", "acknowledged"]))) == both
    assert set(codes(ok(client, hepco, status=["routed, acknowledged", "resolved"]))) == both | {done.public_code}


def test_the_counts_ignore_the_status_filter_and_the_total_follows_it(client, hepco):
    for status in ("routed", "routed", "acknowledged", "in_progress", "resolved", "closed"):
        make(status=status)
    body = ok(client, hepco, status="routed")
    assert len(body["items"]) == 2 and body["total"] == 2
    assert body["counts"] == {**dict.fromkeys(ALL_STATUSES, 0), "routed": 2, "acknowledged": 1,
                              "in_progress": 1, "resolved": 1, "closed": 1}
    assert ok(client, hepco, status="routed,resolved")["total"] == 3
    assert ok(client, hepco)["total"] == 6


def test_overdue_means_open_and_past_the_deadline(client, hepco):
    late = make(due_at=NOW - timedelta(hours=1))
    late_but_done = make(status="resolved", due_at=NOW - timedelta(hours=1))
    in_time = make(status="in_progress", due_at=NOW + timedelta(hours=1))
    no_deadline = make(due_at=None)
    body = ok(client, hepco, overdue="true")
    assert codes(body) == [late.public_code] and body["items"][0]["overdue"] is True
    assert body["counts"]["routed"] == 1 and body["counts"]["resolved"] == 0
    others = ok(client, hepco, overdue="false")
    assert set(codes(others)) == {late_but_done.public_code, in_time.public_code, no_deadline.public_code}
    assert not any(item["overdue"] for item in others["items"])
    assert ok(client, hepco, overdue="1")["total"] == 1 and ok(client, hepco, overdue="0")["total"] == 3


def test_category_filter(client, hepco):
    waste = make("uncollected_waste")
    make("illegal_dumping")
    assert codes(ok(client, hepco, category="uncollected_waste")) == [waste.public_code]
    unknown = get(client, hepco, category="no_such_thing")
    assert unknown.status_code == 422 and set(unknown.get_json()["error"]["fields"]) == {"category"}


def two_wards() -> list[tuple[str, float, float]]:
    features = json.loads((DEFAULT_DATA_DIR / "wards.geojson").read_text())["features"]
    points = []
    for feature in (features[0], features[-1]):
        p = shape(feature["geometry"]).representative_point()
        points.append((str(feature["properties"]["code"]), p.y, p.x))
    assert points[0][0] != points[1][0]
    return points


def test_ward_filter(client, hepco):
    (code_a, lat_a, lon_a), (code_b, lat_b, lon_b) = two_wards()
    in_a, in_b = make(lat=lat_a, lon=lon_a), make(lat=lat_b, lon=lon_b)
    assert codes(ok(client, hepco, ward=code_a)) == [in_a.public_code]
    assert codes(ok(client, hepco, ward=code_b)) == [in_b.public_code]
    assert ok(client, hepco, ward=code_b)["items"][0]["ward"]["code"] == code_b
    unknown = get(client, hepco, ward="00000")
    assert unknown.status_code == 422 and set(unknown.get_json()["error"]["fields"]) == {"ward"}


def test_dates_filter_submission_time_in_the_citys_time_zone(client, hepco):
    # 23:30 on 1 March in Huế is still 1 March there, though 16:30 UTC; 00:30 on 2 March is 17:30 UTC on the 1st.
    late_first = make(submitted_at=datetime(2026, 3, 1, 23, 30, tzinfo=HUE))
    early_second = make(submitted_at=datetime(2026, 3, 2, 0, 30, tzinfo=HUE))
    later = make(submitted_at=datetime(2026, 3, 5, 9, 0, tzinfo=HUE))
    assert codes(ok(client, hepco, to="2026-03-01")) == [late_first.public_code]
    assert codes(ok(client, hepco, **{"from": "2026-03-02", "to": "2026-03-02"})) == [early_second.public_code]
    assert set(codes(ok(client, hepco, **{"from": "2026-03-02"}))) == {early_second.public_code, later.public_code}
    # Date-times: with an offset, in UTC, without one (the city's time), and a "+" sent unencoded (a space).
    assert codes(ok(client, hepco, **{"from": "2026-03-01T17:00:00Z", "to": "2026-03-01T18:00:00Z"})) == [
        early_second.public_code]
    assert codes(ok(client, hepco, **{"from": "2026-03-02T00:30:00+07:00", "to": "2026-03-05T08:59"})) == [
        early_second.public_code]
    assert codes(ok(client, hepco, **{"from": "2026-03-05T09:00:00 07:00"})) == [later.public_code]
    backwards = get(client, hepco, **{"from": "2026-03-05", "to": "2026-03-01"})
    assert backwards.status_code == 422 and set(backwards.get_json()["error"]["fields"]) == {"to"}


# --- search -----------------------------------------------------------------------------------------------

@pytest.fixture
def texts(db_session):
    return {
        "lamp": make(description="Đèn đường hỏng trước nhà số 5"),
        "plain": make(description="O ga tren duong Le Loi, rat nguy hiem"),
        "waste": make(description="Rác thải ùn ứ", address="12 Đống Đa, phường Thuận Hóa"),
        "other": make(description="Cây đổ chắn lối đi"),
    }


@pytest.mark.parametrize("q, expected", [
    ("duong", {"lamp", "plain"}),  # without diacritics, finds both spellings
    ("Đường", {"lamp", "plain"}),  # with them, too
    ("ĐƯỜNG", {"lamp", "plain"}),
    ("đèn đường", {"lamp"}),
    ("den duong hong", {"lamp"}),
    ("nha so 5", {"lamp"}),
    ("dong da", {"waste"}),  # the address
    ("Thuận Hoá", {"waste"}),  # (the old accent placement, "Hóa" written "Hoá", folds to the same)
    ("thuan hoa", {"waste"}),
    ("cây", {"other"}),
    ("%", set()),  # LIKE's wildcards are literal
    ("_", set()),
    ("％", set()),  # ... also in their full-width forms, which unaccent folds into them
    ("＿", set()),
    ("nothing like it", set()),
])
def test_search_with_or_without_diacritics(client, hepco, texts, q, expected):
    body = ok(client, hepco, q=q)
    assert set(codes(body)) == {texts[name].public_code for name in expected}
    assert body["total"] == len(expected)


def test_search_finds_a_public_code(client, hepco, texts):
    code = texts["waste"].public_code
    assert codes(ok(client, hepco, q=code)) == [code]
    assert codes(ok(client, hepco, q=code[-6:].lower())) == [code]


def test_the_search_indexes_serve_the_whole_search(db_session):
    """Each arm of the search (description, address, code) is the very expression of a trigram index, so
    the OR of them can be served by the indexes (a bitmap OR) instead of reading every report."""
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    stmt = select(Report.id).where(queue.search_condition("duong"))
    sql = str(stmt.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}))
    plan = "\n".join(db.session.connection().exec_driver_sql("EXPLAIN " + sql).scalars())
    for index in ("ix_reports_search ", "ix_reports_search_address", "ix_reports_search_code"):
        assert index in plan, plan


# --- order and pages --------------------------------------------------------------------------------------

def test_sorted_by_deadline_with_no_deadline_last_and_ties_by_id(client, hepco):
    soon, later = NOW + timedelta(hours=1), NOW + timedelta(days=2)
    c = make(due_at=later)
    a = make(due_at=soon)
    none_1 = make(due_at=None)
    b = make(due_at=soon)
    overdue = make(due_at=NOW - timedelta(days=1))
    none_2 = make(due_at=None)
    expected = [overdue, a, b, c, none_1, none_2]
    assert codes(ok(client, hepco)) == [r.public_code for r in expected]
    assert codes(ok(client, hepco, sort="due")) == [r.public_code for r in expected]


def test_sorted_by_submission_newest_or_oldest_first(client, hepco):
    base = NOW - timedelta(days=3)
    first = make(submitted_at=base)
    tie_a = make(submitted_at=base + timedelta(hours=1))
    tie_b = make(submitted_at=base + timedelta(hours=1))
    last = make(submitted_at=base + timedelta(hours=2))
    assert codes(ok(client, hepco, sort="submitted")) == [r.public_code for r in (first, tie_a, tie_b, last)]
    assert codes(ok(client, hepco, sort="-submitted")) == [r.public_code for r in (last, tie_b, tie_a, first)]


def pages(client, token, limit: int, **params) -> tuple[list[str], list[dict]]:
    seen, bodies, cursor = [], [], None
    while True:
        body = ok(client, token, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        bodies.append(body)
        seen += codes(body)
        cursor = body["next_cursor"]
        assert body["has_more"] is (cursor is not None)
        if cursor is None:
            return seen, bodies
        assert len(bodies) < 50, "the pages never end"


@pytest.mark.parametrize("sort", ["due", "submitted", "-submitted"])
@pytest.mark.parametrize("limit", [1, 2, 3, 4])
def test_pages_have_no_gaps_or_repeats_across_ties_and_missing_deadlines(client, hepco, sort, limit):
    tie, other = NOW + timedelta(hours=5), NOW + timedelta(hours=9)
    same_time = NOW - timedelta(hours=2)
    made = [make(due_at=due, submitted_at=same_time if n % 2 else None)
            for n, due in enumerate([tie, None, other, tie, None, tie, other, None, tie])]
    everything = ok(client, hepco, sort=sort, limit=200)
    assert len(everything["items"]) == len(made) and everything["next_cursor"] is None
    seen, bodies = pages(client, hepco, limit, sort=sort)
    assert seen == codes(everything)  # the same order, no gap, no repeat
    assert len(set(seen)) == len(made)
    assert all(len(body["items"]) == limit for body in bodies[:-1])
    assert all(body["counts"] == everything["counts"] and body["total"] == len(made) for body in bodies)


def test_pages_with_filters_and_a_report_changing_between_pages(client, hepco):
    for n in range(5):
        make(due_at=NOW + timedelta(hours=n), description=f"Đèn đường số {n}")
    make(due_at=NOW, description="Rác")
    first = ok(client, hepco, q="duong", limit=2)
    assert len(first["items"]) == 2 and first["total"] == 5
    # The first report is resolved meanwhile: the next page goes on after the cursor all the same.
    db.session.execute(Report.__table__.update().where(Report.public_code == first["items"][0]["code"])
                       .values(status="resolved"))
    second = ok(client, hepco, q="duong", limit=2, cursor=first["next_cursor"])
    third = ok(client, hepco, q="duong", limit=2, cursor=second["next_cursor"])
    assert len(codes(first) + codes(second) + codes(third)) == 5 and third["next_cursor"] is None


def test_a_cursor_for_another_sort_or_made_up_is_422(client, hepco):
    for _ in range(3):
        make(due_at=None)
    cursor = ok(client, hepco, limit=1)["next_cursor"]
    assert cursor
    for params in ({"sort": "-submitted", "cursor": cursor}, {"cursor": "not-a-cursor"},
                   {"cursor": queue.encode_cursor("due", None, -1)}, {"cursor": "!!"},
                   {"cursor": queue.encode_cursor("submitted", None, 1), "sort": "submitted"}):
        response = get(client, hepco, **params)
        assert response.status_code == 422, params
        assert response.get_json()["error"]["fields"] == {"cursor": [
            "cursor must be the next_cursor of a page in the same sort."]}


def test_the_limit_defaults_to_50_and_goes_up_to_200(client, hepco):
    for _ in range(51):
        make()
    body = ok(client, hepco)
    assert body["limit"] == 50 and len(body["items"]) == 50 and body["has_more"] is True
    assert len(ok(client, hepco, limit=200)["items"]) == 51


# --- errors -----------------------------------------------------------------------------------------------

def test_without_a_valid_token_it_is_401(client, db_session):
    response = get(client, None)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert get(client, "hue_not-a-token").status_code == 401


@pytest.mark.parametrize("params", [
    {"status": "bogus"}, {"status": "routed,bogus"}, {"status": ","}, {"overdue": "maybe"}, {"overdue": "yes"},
    {"limit": "0"}, {"limit": "201"}, {"limit": "²"}, {"limit": "1_0"}, {"limit": "9" * 5000},
    {"from": "yesterday"}, {"to": "2026-13-01"}, {"from": "2026-03-01T25:00"}, {"to": "20260301"},
    {"sort": "deadline"}, {"q": "x" * 201}, {"q": "a\x00b"}, {"category": ["a", "b"]},
    {"status": "nope", "limit": "0", "sort": "x"},
])
def test_bad_filters_are_422_with_their_fields(client, hepco, params):
    response = get(client, hepco, **params)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and set(error["fields"]) == set(params)


def test_the_roles_are_checked_before_the_arguments(client, db_session):
    assert get(client, None, status="bogus").status_code == 401


# --- what an item shows and hides -------------------------------------------------------------------------

def test_no_reporter_field_ever_appears(client, db_session):
    report = make(description="Đèn đường hỏng trước nhà số 5")
    db.session.add(ReportContact(report_id=report.id, name="Nguyễn Văn Bí Mật", phone="+84912345678",
                                 email="bimat@example.com", device_id="device-secret-42",
                                 notify_url="https://push.example.com/secret"))
    db.session.flush()
    for username in ("hepco.officer", "ioc", "admin"):
        response = get(client, token_for(username))
        raw = response.get_data(as_text=True)
        assert report.public_code in raw
        for secret in ("Bí Mật", "912345678", "bimat@", "device-secret", "push.example.com"):
            assert secret not in raw
        [item] = [i for i in response.get_json()["items"] if i["code"] == report.public_code]
        assert not {"reporter", "contact", "name", "phone", "email", "device_id", "notify_url",
                    "tracking_token"} & set(item)


def test_the_thumbnail_is_the_first_photos_once_ready(client, hepco):
    ready, processing, none = make(), make(), make(due_at=NOW)
    photos = {}
    for report, first_ready in ((ready, True), (processing, False)):
        for n in range(2):
            photo = Photo(report_id=report.id, kind="evidence", storage_key=f"k/{report.id}/{n}",
                          sha256=f"{report.id:032d}{n:032d}", content_type="image/jpeg", size_bytes=1000,
                          width=10, height=10, thumb_key=f"t/{report.id}/{n}", display_key=f"d/{report.id}/{n}",
                          derivatives_ready_at=NOW if (n == 0) == first_ready or n == 1 else None)
            db.session.add(photo)
            db.session.flush()
            photos[(report.id, n)] = photo.id
    items = {item["code"]: item for item in ok(client, hepco)["items"]}
    assert items[ready.public_code]["thumbnail_url"] == f"/api/v1/photos/{photos[(ready.id, 0)]}/thumb"
    assert items[processing.public_code]["thumbnail_url"] is None  # the first one is still processing
    assert items[none.public_code]["thumbnail_url"] is None


def test_a_duplicate_names_its_original(client, db_session, hepco):
    original = new_report("uncollected_waste", submitted_at=NOW - timedelta(hours=1))
    routing.route(original.id)
    duplicate = new_report("uncollected_waste", lat=CITADEL[0] + 0.0001)
    assert routing.route(duplicate.id).result == "duplicate"
    items = {item["code"]: item for item in ok(client, token_for("ioc"))["items"]}
    assert items[duplicate.public_code]["duplicate_of"] == {"id": original.id, "code": original.public_code,
                                                            "status": "routed"}
    assert items[duplicate.public_code]["status"] == "duplicate"
    assert items[original.public_code]["duplicate_of"] is None and items[original.public_code]["supporters"] == 1


def test_a_long_description_is_cut(client, hepco):
    make(description="Đường " * 100)
    [item] = ok(client, hepco)["items"]
    assert len(item["description"]) == 280 and item["description"].endswith("…")
    assert item["description_truncated"] is True


def test_one_query_for_the_page_and_one_for_the_counts_whatever_the_page_size(client, hepco):
    (_, lat_b, lon_b), = two_wards()[1:]
    made: list[Report] = []
    for n in range(30):
        report = make("illegal_dumping" if n % 2 else "uncollected_waste", due_at=NOW + timedelta(hours=n),
                      lat=lat_b if n % 3 else CITADEL[0], lon=lon_b if n % 3 else CITADEL[1],
                      agency="HEPCO")
        db.session.add(Photo(report_id=report.id, kind="evidence", storage_key=f"k/{n}", sha256=f"{n:064d}",
                             content_type="image/jpeg", size_bytes=1, width=1, height=1, thumb_key="t",
                             derivatives_ready_at=NOW))
        if made:  # (each the duplicate of the one before: every item names an original)
            report.duplicate_of_id, report.status = made[-1].id, "duplicate"
        made.append(report)
    db.session.flush()
    ok(client, hepco)  # (the token's last use is written once, here)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    connection = db.session.connection()
    event.listen(connection, "before_cursor_execute", count)
    try:
        runs = {}
        for params in ({"limit": 2}, {"limit": 30}, {"limit": 30, "q": "nothing like it"}):
            db.session.expunge_all()
            statements.clear()
            body = ok(client, hepco, category="illegal_dumping", **params)
            assert len(body["items"]) == (0 if "q" in params else min(params["limit"], 15))
            assert all(item["thumbnail_url"] and item["ward"] and item["duplicate_of"] for item in body["items"])
            runs[tuple(params.items())] = list(statements)
    finally:
        event.remove(connection, "before_cursor_execute", count)
    two, thirty, empty = runs.values()
    # As many statements for 2, 15 or no reports: nothing is loaded per report or per related row.
    assert [s.split()[0] for s in two] == [s.split()[0] for s in thirty] == [s.split()[0] for s in empty]
    # Of which one reads the page and one counts.
    assert len([s for s in thirty if "FROM reports" in s]) == 2, thirty

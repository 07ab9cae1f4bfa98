"""`flask seed`: Huế's real wards, the city outline, categories, agencies, routing rules, demo accounts."""

import json
from datetime import date
import shutil
from collections import Counter

import pytest
import yaml
from sqlalchemy import func, select, text

from hue_reports import PACKAGE_DIR
from hue_reports.cli import DEFAULT_DATA_DIR
from hue_reports.models import Account, AdminArea, Agency, Category, CategoryGroup, City, RoutingRule
from hue_reports.services import seed
from hue_reports.services.passwords import verify_password

SEED_TABLES = ("admin_areas", "cities", "category_groups", "categories", "agencies", "routing_rules", "accounts")
CITADEL = (107.5786, 16.4698)  # lon, lat: the Imperial City, Huế


def _ward_file() -> dict:
    return json.loads((DEFAULT_DATA_DIR / "wards.geojson").read_text(encoding="utf-8"))


def _wards(db_session) -> list[AdminArea]:
    return list(db_session.scalars(select(AdminArea).where(AdminArea.tier == 2)))


def _city_area(db_session) -> AdminArea:
    return db_session.scalars(select(AdminArea).where(AdminArea.tier == 1)).one()


def test_the_package_ships_the_ward_file_with_its_attribution():
    """Does a fresh clone seed from the package itself, not from ../shared?"""
    assert DEFAULT_DATA_DIR.is_relative_to(PACKAGE_DIR)
    attribution = (DEFAULT_DATA_DIR / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "lamngockhuong/vietnam-3d-map" in attribution and "MIT" in attribution
    assert len(_ward_file()["features"]) == 40


def test_the_40_wards_and_communes_are_loaded_with_their_real_names_and_codes(db_session):
    wards = _wards(db_session)
    expected = {str(f["properties"]["code"]): f["properties"]["name"] for f in _ward_file()["features"]}
    assert {w.code: w.name for w in wards} == expected
    assert Counter(w.level for w in wards) == {"ward": 21, "commune": 19}
    phu_xuan = next(w for w in wards if w.name == "Phường Phú Xuân")
    assert phu_xuan.name_en == "Phu Xuan Ward"
    assert phu_xuan.population == 130247
    city = _city_area(db_session)
    assert all(w.parent_id == city.id for w in wards)


def test_every_area_is_a_valid_multipolygon_in_wgs84(db_session):
    rows = db_session.execute(text(
        "SELECT code, ST_IsValid(geom), GeometryType(geom), ST_SRID(geom) FROM admin_areas")).all()
    assert len(rows) == 41
    assert all(valid and kind == "MULTIPOLYGON" and srid == 4326 for _, valid, kind, srid in rows), rows


def test_wards_do_not_overlap_beyond_boundary_noise(db_session):
    """The source simplified each polygon by ~50 m, so neighbours overlap by thin slivers only."""
    overlaps = db_session.execute(text("""
        SELECT a.name, b.name,
               ST_Area(ST_Intersection(a.geom, b.geom)::geography)
                 / LEAST(ST_Area(a.geom::geography), ST_Area(b.geom::geography)) AS share
        FROM admin_areas a JOIN admin_areas b
          ON a.id < b.id AND a.tier = 2 AND b.tier = 2 AND ST_Intersects(a.geom, b.geom)
    """)).all()
    assert overlaps, "neighbouring wards should touch"
    worst = max(overlaps, key=lambda row: row.share)
    assert worst.share < 0.01, f"{worst[0]} and {worst[1]} overlap by {worst.share:.2%}"
    total = db_session.execute(text("""
        SELECT SUM(ST_Area(ST_Intersection(a.geom, b.geom)::geography)) / (
                 SELECT ST_Area(geom::geography) FROM admin_areas WHERE tier = 1)
        FROM admin_areas a JOIN admin_areas b
          ON a.id < b.id AND a.tier = 2 AND b.tier = 2 AND ST_Intersects(a.geom, b.geom)
    """)).scalar()
    assert total < 0.001


def test_the_citadel_is_in_phuong_phu_xuan(db_session):
    point = func.ST_SetSRID(func.ST_MakePoint(*CITADEL), 4326)
    names = db_session.scalars(select(AdminArea.name).where(
        AdminArea.tier == 2, func.ST_Covers(AdminArea.geom, point))).all()
    assert names == ["Phường Phú Xuân"]


def test_the_city_outline_is_the_union_of_the_wards_without_slivers(db_session):
    city = _city_area(db_session)
    assert city.name == "Thành phố Huế" and city.code == "46"
    outline = db_session.execute(text("""
        SELECT ST_NumInteriorRings(ST_GeometryN(geom, 1)), ST_Area(geom::geography),
               (SELECT ST_Area(ST_Union(geom)::geography) FROM admin_areas WHERE tier = 2)
        FROM admin_areas WHERE tier = 1""")).one()
    holes, outline_area, union_area = outline
    assert holes == 0
    assert outline_area == pytest.approx(union_area, rel=0.005)
    uncovered = db_session.scalar(text("""
        SELECT count(*) FROM admin_areas w, admin_areas c
        WHERE w.tier = 2 AND c.tier = 1 AND NOT ST_Covers(c.geom, ST_PointOnSurface(w.geom))"""))
    assert uncovered == 0


def test_a_point_in_a_sliver_between_wards_is_inside_the_city(db_session):
    """The raw union has holes where simplified neighbours do not meet; the outline has none."""
    in_gap = db_session.scalar(text("""
        SELECT ST_AsText(ST_PointOnSurface(ST_MakePolygon(ST_InteriorRingN(ST_GeometryN(u, 1), 1))))
        FROM (SELECT ST_Union(geom) AS u FROM admin_areas WHERE tier = 2) raw"""))
    assert in_gap is not None, "the source data has slivers between wards"
    in_ward, in_city = db_session.execute(text("""
        SELECT EXISTS (SELECT 1 FROM admin_areas WHERE tier = 2 AND ST_Covers(geom, ST_GeomFromText(:p, 4326))),
               EXISTS (SELECT 1 FROM admin_areas WHERE tier = 1 AND ST_Covers(geom, ST_GeomFromText(:p, 4326)))
    """), {"p": in_gap}).one()
    assert (in_ward, in_city) == (False, True)


def test_an_invalid_ward_polygon_is_repaired_on_load(db_session, tmp_path):
    """A self-intersecting ring (a bow tie) is stored as a valid MultiPolygon by ST_MakeValid."""
    data_dir = tmp_path / "city"
    shutil.copytree(DEFAULT_DATA_DIR, data_dir)
    bow_tie = {"type": "Polygon", "coordinates": [[[107.0, 16.0], [107.1, 16.1], [107.1, 16.0],
                                                   [107.0, 16.1], [107.0, 16.0]]]}
    square = {"type": "Polygon", "coordinates": [[[107.2, 16.0], [107.3, 16.0], [107.3, 16.1],
                                                  [107.2, 16.1], [107.2, 16.0]]]}
    features = [{"type": "Feature", "geometry": geometry,
                 "properties": {"code": code, "name": f"Phường {code}", "short_name": code, "level": "ward",
                                "level_vi": "Phường"}}
                for code, geometry in (("T-BOWTIE", bow_tie), ("T-SQUARE", square))]
    (data_dir / "wards.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    city = yaml.safe_load((data_dir / "city.yaml").read_text(encoding="utf-8"))
    city["areas"]["valid_from"] = "2031-01-01"
    (data_dir / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), encoding="utf-8")
    assert db_session.scalar(text(
        "SELECT ST_IsValid(ST_GeomFromGeoJSON(:g))"), {"g": json.dumps(bow_tie)}) is False

    seed.load_city(data_dir)
    valid, kind, parts, area = db_session.execute(text("""
        SELECT ST_IsValid(geom), GeometryType(geom), ST_NumGeometries(geom), ST_Area(geom)
        FROM admin_areas WHERE code = 'T-BOWTIE'""")).one()
    assert (valid, kind, parts) == (True, "MULTIPOLYGON", 2)
    assert area == pytest.approx(0.005)  # two triangles of 0.0025 each: half the 0.1 x 0.1 square


def test_the_city_row_comes_from_data(db_session):
    city = db_session.scalars(select(City)).one()
    data = yaml.safe_load((DEFAULT_DATA_DIR / "city.yaml").read_text(encoding="utf-8"))
    assert (city.name, city.timezone, city.report_code_prefix) == (data["name"], data["timezone"],
                                                                  data["report_code_prefix"])
    assert city.area_id == _city_area(db_session).id


def _snapshot(db_session) -> dict[str, list]:
    """Every seed row's id and row version (xmin changes on any write, even a no-op UPDATE)."""
    return {t: db_session.execute(text(f"SELECT id, xmin::text FROM {t} ORDER BY id")).all() for t in SEED_TABLES}


def test_seeding_twice_changes_nothing(db_session):
    before = _snapshot(db_session)
    summary = seed.load_city(DEFAULT_DATA_DIR, demo=True)
    assert set(summary) == set(SEED_TABLES) | {"calendar_days"}  # (keyed by city and day: no xmin snapshot)
    assert all(c["created"] == 0 and c["updated"] == 0 for c in summary.values()), summary
    assert _snapshot(db_session) == before


def test_seeding_an_edited_file_updates_only_what_changed(db_session, tmp_path):
    data_dir = tmp_path / "city"
    shutil.copytree(DEFAULT_DATA_DIR, data_dir)
    path = data_dir / "categories.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["groups"][0]["categories"][0]["name_en"] = "Potholes"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")

    summary = seed.load_city(data_dir)
    changed = {table: c for table, c in summary.items() if c["created"] or c["updated"]}
    n_categories = sum(len(g["categories"]) for g in doc["groups"])
    assert changed == {"categories": {"created": 0, "updated": 1, "unchanged": n_categories - 1}}
    code = doc["groups"][0]["categories"][0]["code"]
    assert db_session.scalars(select(Category.name_en).where(Category.code == code)).one() == "Potholes"


def test_inconsistent_data_is_refused_and_nothing_is_written(db_session, tmp_path):
    data_dir = tmp_path / "city"
    shutil.copytree(DEFAULT_DATA_DIR, data_dir)
    categories = yaml.safe_load((data_dir / "categories.yaml").read_text(encoding="utf-8"))
    categories["groups"][0]["categories"][0]["name_en"] = "Changed before the error"
    (data_dir / "categories.yaml").write_text(yaml.safe_dump(categories, allow_unicode=True), encoding="utf-8")
    routing = yaml.safe_load((data_dir / "routing.yaml").read_text(encoding="utf-8"))
    routing["rules"].append({"category": "road_damage", "area": "city", "agency": "NO-SUCH-AGENCY", "priority": 7})
    (data_dir / "routing.yaml").write_text(yaml.safe_dump(routing, allow_unicode=True), encoding="utf-8")

    with pytest.raises(seed.SeedError, match="unknown agency 'NO-SUCH-AGENCY'"):
        seed.load_city(data_dir)
    assert db_session.scalar(select(func.count()).where(Category.name_en == "Changed before the error")) == 0


def test_categories_cover_the_kinds_vietnamese_city_systems_take(db_session):
    groups = {g.name.lower() for g in db_session.scalars(select(CategoryGroup))}
    for expected in ("sự cố hạ tầng kỹ thuật", "giao thông và an toàn giao thông", "trật tự đô thị",
                     "trật tự xây dựng", "vệ sinh môi trường và rác thải", "chiếu sáng công cộng", "cây xanh",
                     "cấp thoát nước và ngập úng", "an ninh trật tự", "khác"):
        assert expected in groups
    categories = list(db_session.scalars(select(Category)))
    assert len(categories) >= 25
    for c in categories:
        assert c.name and c.name_en and c.name != c.name_en and c.sla_hours > 0
    # Seven working days of 7.5 h (Hue-S) is the usual deadline; urgent kinds are shorter.
    usual, _ = Counter(float(c.sla_hours) for c in categories).most_common(1)[0]
    assert usual == 52.5
    urgent = [c for c in categories if c.urgent]
    assert urgent and all(c.sla_hours < 52.5 for c in urgent)


def test_one_dispatcher_and_a_peoples_committee_per_ward(db_session):
    dispatchers = db_session.scalars(select(Agency).where(Agency.kind == "dispatcher", Agency.active)).all()
    assert [a.code for a in dispatchers] == ["IOC"]
    committees = {a.area_id: a for a in db_session.scalars(select(Agency).where(Agency.kind == "ward_committee"))}
    wards = _wards(db_session)
    assert set(committees) == {w.id for w in wards}
    phu_xuan = next(w for w in wards if w.name == "Phường Phú Xuân")
    assert committees[phu_xuan.id].name == "UBND phường Phú Xuân"


def test_every_category_but_other_is_routed_everywhere_in_the_city(db_session):
    """Every category has a rule on the city or on every ward; `other` goes to the dispatcher on purpose."""
    city = _city_area(db_session)
    n_wards = len(_wards(db_session))
    rules = db_session.execute(select(Category.code, RoutingRule.area_id).join(RoutingRule.category)).all()
    covered = {code for code, area in rules if area == city.id}
    per_ward = Counter(code for code, area in rules if area != city.id)
    covered |= {code for code, n in per_ward.items() if n == n_wards}
    all_codes = set(db_session.scalars(select(Category.code)))
    assert all_codes - covered == {"other"}
    inactive = db_session.scalar(select(func.count()).select_from(RoutingRule).join(RoutingRule.agency)
                                 .where(~Agency.active))
    assert inactive == 0


def test_demo_accounts_have_argon2_hashes_not_passwords(db_session):
    password = seed.demo_password(DEFAULT_DATA_DIR)
    accounts = db_session.scalars(select(Account)).all()
    assert {a.username for a in accounts} == set(seed.demo_usernames(DEFAULT_DATA_DIR))
    assert {a.role for a in accounts} == {"admin", "dispatcher", "agency_admin", "officer"}
    for account in accounts:
        assert account.password_hash.startswith("$argon2id$") and password not in account.password_hash
        assert verify_password(account.password_hash, password)
        assert not verify_password(account.password_hash, password + "x")


def test_demo_accounts_are_refused_in_production(make_app):
    app = make_app(HUE_ENV="production", SECRET_KEY="s" * 40)
    result = app.test_cli_runner().invoke(args=["seed", "--demo"])
    assert result.exit_code != 0
    assert "refused in production" in result.output


def test_seed_command_reports_counts(app):
    doc = yaml.safe_load((DEFAULT_DATA_DIR / "categories.yaml").read_text(encoding="utf-8"))
    n_categories = sum(len(g["categories"]) for g in doc["groups"])
    result = app.test_cli_runner().invoke(args=["seed"])
    assert result.exit_code == 0, result.output
    assert f"categories: 0 created, 0 updated, {n_categories} unchanged" in result.output


def test_reseeding_keeps_what_an_admin_set_and_the_files_do_not_state(db_session):
    """A webhook URL set by an admin, and a category deactivated by one, survive `make run` reseeding."""
    agency = db_session.scalars(select(Agency).where(Agency.code == "HEPCO")).one()
    agency.webhook_url = "https://hepco.example/hooks/reports"
    category = db_session.scalars(select(Category).where(Category.code == "noise")).one()
    category.active = False
    db_session.commit()

    summary = seed.load_city(DEFAULT_DATA_DIR, demo=True)
    assert all(c["updated"] == 0 for c in summary.values()), summary
    db_session.expire_all()
    assert db_session.get(Agency, agency.id).webhook_url == "https://hepco.example/hooks/reports"
    assert db_session.get(Category, category.id).active is False


def _new_vintage(tmp_path, valid_from: str):
    """A copy of the data set whose wards are a new vintage."""
    data_dir = tmp_path / f"city-{valid_from}"
    shutil.copytree(DEFAULT_DATA_DIR, data_dir)
    city = yaml.safe_load((data_dir / "city.yaml").read_text(encoding="utf-8"))
    city["areas"]["valid_from"] = valid_from
    (data_dir / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), encoding="utf-8")
    return data_dir


def test_a_new_ward_vintage_retires_the_previous_one(db_session, tmp_path):
    before = {a.id for a in db_session.scalars(select(AdminArea))}
    seed.load_city(_new_vintage(tmp_path, "2030-01-01"))
    db_session.expire_all()
    areas = list(db_session.scalars(select(AdminArea)))
    old = [a for a in areas if a.id in before]
    new = [a for a in areas if a.id not in before]
    assert len(old) == len(new) == 41
    assert {str(a.valid_to) for a in old} == {"2030-01-01"}
    assert all(a.valid_to is None for a in new)
    city = db_session.scalars(select(City)).one()
    assert city.area_id in {a.id for a in new if a.tier == 1}


def test_an_older_ward_vintage_is_refused(db_session, tmp_path):
    with pytest.raises(seed.SeedError, match="older than those loaded"):
        seed.load_city(_new_vintage(tmp_path, "2020-01-01"))


def test_a_city_loaded_before_the_calendar_existed_gets_it_from_seed_if_empty(app, client):
    """A deployment upgraded to the routing release: `flask seed --if-empty` (docker-compose's migrate
    service) adds the working calendar, and /readyz says what is missing until then. (Committed for real:
    /readyz opens its own connection.)"""
    from hue_reports.extensions import db
    from hue_reports.models import CalendarDay
    from hue_reports.services import calendar

    with app.app_context():
        expected_days = db.session.scalar(select(func.count()).select_from(CalendarDay))
        try:
            db.session.execute(CalendarDay.__table__.delete())
            db.session.execute(City.__table__.update().values(calendar=None))
            db.session.commit()
            calendar.forget_calendars()
            not_ready = client.get("/readyz")
            assert not_ready.status_code == 503
            assert "working calendar" in not_ready.get_json()["error"]["fields"]["schema"]
            summary = seed.complete_city(DEFAULT_DATA_DIR)
            assert summary["calendar_days"]["created"] == expected_days > 0
            assert db.session.scalar(select(City.calendar)) is not None
            assert calendar.city_calendar().is_working_day(date(2025, 5, 2)) is False
            assert seed.complete_city(DEFAULT_DATA_DIR) == {}
            assert client.get("/readyz").get_json()["checks"]["schema"] == "ok"
        finally:
            seed.complete_city(DEFAULT_DATA_DIR)  # (whatever failed above, the calendar is back)
            db.session.remove()

"""Admins load a new boundary vintage (POST /api/v1/admin/areas, `flask areas load`): checked before anything
is written (GeoJSON, WGS84, Polygon or MultiPolygon, ST_IsValid, unique codes, known levels, a newer date),
and once loaded it is the current one: reports keep their ward, new ones are placed in the new wards."""

from __future__ import annotations

import copy
import json

import pytest
from sqlalchemy import func, select

from hue_reports.cli import DEFAULT_DATA_DIR
from hue_reports.extensions import db
from hue_reports.models import AdminArea, Agency, AuditEntry, City, ReportEvent, RoutingRule
from hue_reports.services import areas, routing
from tests.support import error, new_report, staff_headers, this_tests_audit

URL = "/api/v1/admin/areas"
NEXT_VINTAGE = "2026-10-01"  # after the shipped vintage's 2025-07-01
WARDS = json.loads((DEFAULT_DATA_DIR / "wards.geojson").read_text(encoding="utf-8"))
SQUARE = {"type": "Polygon", "coordinates": [[[107.2, 16.0], [107.3, 16.0], [107.3, 16.1], [107.2, 16.1],
                                              [107.2, 16.0]]]}
BOW_TIE = {"type": "Polygon", "coordinates": [[[107.0, 16.0], [107.1, 16.1], [107.1, 16.0], [107.0, 16.1],
                                               [107.0, 16.0]]]}



def ward(code: str, geometry: dict, **properties) -> dict:
    return {"type": "Feature", "geometry": geometry,
            "properties": {"code": code, "name": f"Phường {code}", "level": "ward", **properties}}


def collection(*features, **members) -> dict:
    return {"type": "FeatureCollection", "features": list(features), **members}


@pytest.fixture
def admin(db_session):
    yield staff_headers("admin")
    areas.forget_city()  # (a loaded vintage is rolled back with the test: no process may keep its city)


def state() -> tuple:
    return (db.session.scalar(select(func.count()).select_from(AdminArea)),
            db.session.scalar(select(func.count()).select_from(AdminArea).where(AdminArea.valid_to.is_(None))),
            db.session.scalar(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.action == "areas.load_vintage", this_tests_audit())))


@pytest.mark.parametrize("geojson, where, words", [
    (collection(ward("T1", SQUARE), ward("T2", BOW_TIE)), ("features", "1"), "Self-intersection"),
    (collection(ward("T1", {"type": "Point", "coordinates": [107.2, 16.0]})), ("features", "0"), "not Point"),
    (collection(ward("T1", {"type": "LineString", "coordinates": [[107.2, 16.0], [107.3, 16.1]]})),
     ("features", "0"), "not LineString"),
    (collection(ward("T1", {"type": "Polygon", "coordinates": [[[560000, 1820000], [570000, 1820000],
                                                                [570000, 1830000], [560000, 1820000]]]})),
     ("features", "0"), "projected CRS"),
    (collection(ward("T1", SQUARE), crs={"type": "name", "properties": {"name": "EPSG:3405"}}), ("geojson", "crs"),
     "WGS84"),
    # a name that is not a string (a list, an object) is not WGS84's either: 422, not a 500
    (collection(ward("T1", SQUARE), crs={"type": "name", "properties": {"name": ["EPSG:4326"]}}),
     ("geojson", "crs"), "WGS84"),
    (collection(ward("T1", SQUARE), crs={"type": "name", "properties": {"name": {"EPSG": 4326}}}),
     ("geojson", "crs"), "WGS84"),
    (collection(ward("T1", {"type": "Polygon", "coordinates": [[[107.2, 16.0], [107.3, 16.0], [107.3, 16.1],
                                                                [107.2, 16.1]]]})), ("features", "0"), "closed"),
    (collection(ward("T1", SQUARE), ward("T1", SQUARE)), ("features",), "Duplicate"),
    (collection(ward("T1", SQUARE, level="hamlet")), ("features", "0"), "hamlet"),
    (collection(ward("", SQUARE)), ("features", "0"), "code"),
    (collection(), ("geojson", "features"), "no features"),
    ({"type": "Feature", "geometry": SQUARE, "properties": {}}, ("geojson",), "FeatureCollection"),
    (collection({"type": "Feature", "geometry": SQUARE}), ("features", "0"), "code, name and level"),
])
def test_a_bad_ward_set_is_refused_with_what_is_wrong_and_nothing_is_written(client, admin, geojson, where, words):
    before = state()
    response = client.post(URL, json={"valid_from": NEXT_VINTAGE, "geojson": geojson}, headers=admin)
    body = error(response, 422, "validation_error")
    found = body["fields"]
    for key in where:
        found = found[key]
    assert words in body["message"] + json.dumps(found, ensure_ascii=False), body
    assert state() == before


def test_the_crs_may_be_named_if_it_is_wgs84(client, admin):
    named = collection(ward("T1", SQUARE), crs={"type": "name", "properties": {
        "name": "urn:ogc:def:crs:OGC:1.3:CRS84"}})
    response = client.post(URL, json={"valid_from": NEXT_VINTAGE, "geojson": named, "force": True,
                                      "levels": {"ward": {"tier": 2, "en": "Ward"}}}, headers=admin)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["wards"] == ["T1"]


def test_positions_with_a_height_are_loaded_flat(client, admin):
    raised = {"type": "Polygon", "coordinates": [[[x, y, 12.5] for x, y in SQUARE["coordinates"][0]]]}
    response = client.post(URL, json={"valid_from": NEXT_VINTAGE, "geojson": collection(ward("T1", raised)),
                                      "force": True}, headers=admin)
    assert response.status_code == 201, response.get_json()
    dims = db.session.scalar(select(func.ST_NDims(AdminArea.geom)).where(AdminArea.code == "T1"))
    area = db.session.scalar(select(func.ST_Area(AdminArea.geom)).where(AdminArea.code == "T1"))
    assert dims == 2 and area == pytest.approx(0.01)


@pytest.mark.parametrize("valid_from", ["2025-07-01", "2020-01-01"])
def test_a_vintage_must_be_newer_than_the_current_one(client, admin, valid_from):
    before = state()
    body = error(client.post(URL, json={"valid_from": valid_from, "geojson": collection(ward("T1", SQUARE))},
                             headers=admin), 409, "vintage_not_newer")
    assert "valid_from" in body["fields"] and state() == before


def test_bad_envelopes_are_422(client, admin):
    for body, field in (({"geojson": collection(ward("T1", SQUARE))}, "valid_from"),
                        ({"valid_from": "soon", "geojson": {}}, "valid_from"),
                        ({"valid_from": NEXT_VINTAGE, "geojson": "x"}, "geojson"),
                        ({"valid_from": NEXT_VINTAGE, "geojson": {}, "levels": {"ward": {"tier": 1, "en": "W"}}},
                         "levels"),
                        ({"valid_from": NEXT_VINTAGE, "geojson": {}, "outline_fill_holes_below_km2": -1},
                         "outline_fill_holes_below_km2")):
        assert field in error(client.post(URL, json=body, headers=admin), 422, "validation_error")["fields"]
    assert client.post(URL, json={"valid_from": NEXT_VINTAGE, "geojson": collection(ward("T1", SQUARE))},
                       headers=staff_headers("ioc")).status_code == 403


def test_the_shipped_ward_file_loads_as_a_new_vintage_and_reports_keep_their_ward(client, admin):
    old_report = new_report("sidewalk_damage")
    old_ward = old_report.ward_id
    old_ids = set(db.session.scalars(select(AdminArea.id)))
    rules_before = db.session.scalar(select(func.count()).select_from(RoutingRule))
    rules_on_current = db.session.scalar(select(func.count()).select_from(RoutingRule).join(AdminArea).where(
        AdminArea.valid_to.is_(None)))
    response = client.post(URL, json={"valid_from": NEXT_VINTAGE, "geojson": copy.deepcopy(WARDS)}, headers=admin)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert len(body["wards"]) == 40 and body["new_codes"] == [] and body["ended_codes"] == []
    assert len(body["retired"]) == 41  # 40 wards and the city outline
    assert body["rules_carried"] == rules_on_current and body["wards_without_rules"] == []
    assert len(body["agencies_moved"]) == 40  # the People's Committees follow their ward
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(RoutingRule)) == rules_before + rules_on_current
    new_city = db.session.scalar(select(City.area_id))
    assert new_city not in old_ids
    new_ward = db.session.scalars(select(AdminArea).where(AdminArea.valid_to.is_(None), AdminArea.tier == 2,
                                                          AdminArea.code == db.session.get(AdminArea, old_ward).code))
    new_ward = new_ward.one()
    assert new_ward.id not in old_ids and new_ward.parent_id == new_city and new_ward.name_en.endswith("Ward")
    assert db.session.get(AdminArea, old_ward).valid_to.isoformat() == NEXT_VINTAGE
    committee = db.session.scalars(select(Agency).where(Agency.code == f"UBND-{new_ward.code}")).one()
    assert committee.area_id == new_ward.id
    # The old report keeps its ward; a new one is placed in the new vintage and routed by the carried rules.
    assert db.session.get(type(old_report), old_report.id).ward_id == old_ward
    fresh = new_report("sidewalk_damage")
    assert fresh.ward_id == new_ward.id
    routing.route(fresh.id, detect_duplicates=False)
    db.session.refresh(fresh)
    assert fresh.agency_id == committee.id
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "areas.load_vintage",
                                                          this_tests_audit())).all()
    assert entry.object_key == NEXT_VINTAGE and entry.before == {"valid_from": "2025-07-01"}
    assert len(entry.after["wards"]) == 40
    listed = client.get(URL, headers=admin).get_json()["areas"]
    assert len(listed) == 41 and {a["valid_from"] for a in listed} == {NEXT_VINTAGE}
    assert len(client.get(URL, query_string={"vintage": "all"}, headers=admin).get_json()["areas"]) == 82


def test_flask_areas_load(app, admin, tmp_path):
    path = tmp_path / "wards.geojson"
    path.write_text(json.dumps(collection(ward("T1", BOW_TIE))), encoding="utf-8")
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["areas", "load", str(path), "--valid-from", NEXT_VINTAGE])
    assert refused.exit_code == 1 and "ST_IsValid" in refused.output and "Traceback" not in refused.output
    path.write_text(json.dumps(collection(ward("T1", SQUARE), ward("T2", {
        "type": "MultiPolygon", "coordinates": [[[[107.3, 16.0], [107.4, 16.0], [107.4, 16.1], [107.3, 16.0]]]]},
        name_en="Second Ward"))), encoding="utf-8")
    partial = runner.invoke(args=["areas", "load", str(path), "--valid-from", NEXT_VINTAGE])
    assert partial.exit_code == 1 and "--force" in partial.output and "Traceback" not in partial.output
    tried = runner.invoke(args=["areas", "load", str(path), "--valid-from", NEXT_VINTAGE, "--force", "--dry-run"])
    assert tried.exit_code == 0 and "dry run, nothing written" in tried.output, tried.output
    loaded = runner.invoke(args=["areas", "load", str(path), "--valid-from", NEXT_VINTAGE, "--force", "--level",
                                 "ward", "2", "Ward"])
    assert loaded.exit_code == 0, loaded.output
    assert f"loaded 2 area(s) valid from {NEXT_VINTAGE}" in loaded.output
    assert "wards without rules: T1, T2" in loaded.output
    listed = runner.invoke(args=["areas", "list"])
    assert f"T2: Phường T2 / Second Ward (ward, tier 2, from {NEXT_VINTAGE})" in listed.output
    assert db.session.scalars(select(AuditEntry.via).where(AuditEntry.action == "areas.load_vintage",
                                                                this_tests_audit())).one() == "cli"


def test_a_report_filed_before_a_merger_and_routed_after_it_goes_by_the_new_rules(client, admin):
    """Its ward was retired meanwhile: it keeps it (history), and is routed as a new report at the same point
    would be, by the rules of the current ward there, not by the frozen rules of the ward that ended."""
    from tests.services.test_ward_reorganisation import IN_MERGED, KEPT, MERGED, merged_ward_set

    filed = new_report("sidewalk_damage", *IN_MERGED)  # still submitted (e.g. its job waited in the queue)
    old_ward = filed.ward_id
    assert db.session.get(AdminArea, old_ward).code == MERGED
    loaded = client.post(URL, json={"valid_from": NEXT_VINTAGE, "geojson": merged_ward_set()}, headers=admin)
    assert loaded.status_code == 201, loaded.get_json()
    areas.forget_city()
    assert routing.route(filed.id, detect_duplicates=False).result == "routed"
    fresh = new_report("sidewalk_damage", *IN_MERGED)
    routing.route(fresh.id, detect_duplicates=False)
    db.session.expire_all()
    filed, fresh = db.session.get(type(filed), filed.id), db.session.get(type(fresh), fresh.id)
    assert filed.ward_id == old_ward and fresh.ward_id != old_ward  # the ward it was filed in stays
    assert filed.agency.code == fresh.agency.code == f"UBND-{KEPT}"
    routed_event = db.session.scalars(select(ReportEvent).where(ReportEvent.report_id == filed.id,
                                                                ReportEvent.type == "routed")).one()
    assert routed_event.data["area_id"] == fresh.ward_id  # the rule of the current ward at its location


def test_a_partial_ward_set_is_refused_naming_the_uncovered_share_unless_forced(client, admin):
    """Half the city's wards: their union would become the city, every report in the other half outside the
    service area, and every current ward retired. Refused (nothing written) unless `force` says it is meant."""
    half = copy.deepcopy(WARDS)
    half["features"] = half["features"][: len(half["features"]) // 2]
    before = state()
    body = error(client.post(URL, json={"valid_from": NEXT_VINTAGE, "geojson": half}, headers=admin), 422,
                 "incomplete_ward_set")
    share = body["message"].split(" of the current city outline")[0].rsplit(" ", 1)[1]
    assert share.endswith("%") and float(share[:-1]) < 99 and "uncovered" in body["fields"]["geojson"][0]
    assert "force" in body["message"] and "%" in body["message_vi"]
    assert state() == before
    forced = client.post(URL, json={"valid_from": NEXT_VINTAGE, "geojson": half, "force": True}, headers=admin)
    assert forced.status_code == 201, forced.get_json()
    assert forced.get_json()["coverage"] == pytest.approx(float(share[:-1]) / 100, abs=1e-4)
    assert forced.get_json()["force"] is True
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "areas.load_vintage",
                                                          this_tests_audit())).all()
    assert entry.after["force"] is True and entry.after["coverage"] < 0.99


def test_the_complete_ward_set_covers_the_city(client, admin):
    """The shipped wards, simplified one by one, leave slivers between them: still well above the threshold."""
    response = client.post(URL, json={"valid_from": NEXT_VINTAGE, "geojson": copy.deepcopy(WARDS), "dry_run": True},
                           headers=admin)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["coverage"] >= areas.MIN_COVERAGE


@pytest.mark.parametrize("valid_from", ["2206-07-01", "ahead"])
def test_a_valid_from_more_than_a_year_ahead_is_refused(client, admin, valid_from):
    from datetime import date, timedelta

    if valid_from == "ahead":
        valid_from = (date.today() + timedelta(days=370)).isoformat()
    before = state()
    body = error(client.post(URL, json={"valid_from": valid_from, "geojson": copy.deepcopy(WARDS)}, headers=admin),
                 422, "validation_error")
    assert "valid_from" in body["fields"] and "year" in body["message"]
    assert state() == before


def test_a_dry_run_says_what_would_change_and_writes_nothing(client, admin):
    from tests.services.test_ward_reorganisation import KEPT, MERGED, merged_ward_set

    before = state()
    rules = db.session.scalar(select(func.count()).select_from(RoutingRule))
    response = client.post(URL, json={"valid_from": NEXT_VINTAGE, "geojson": merged_ward_set(), "dry_run": True},
                           headers=admin)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["dry_run"] is True and body["ended_codes"] == [MERGED] and body["new_codes"] == []
    assert len(body["retired"]) == 41 and KEPT in body["wards"] and body["coverage"] >= areas.MIN_COVERAGE
    assert state() == before and db.session.scalar(select(func.count()).select_from(RoutingRule)) == rules
    # ... and the real load answers the same.
    loaded = client.post(URL, json={"valid_from": NEXT_VINTAGE, "geojson": merged_ward_set()}, headers=admin)
    assert loaded.status_code == 201
    assert {k: v for k, v in loaded.get_json().items() if k != "dry_run"} == {
        k: v for k, v in body.items() if k != "dry_run"}

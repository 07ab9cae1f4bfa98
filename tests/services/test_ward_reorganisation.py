"""A ward reorganisation end to end, as an admin would run it on a live system: two wards merge into one
(built here from the shipped ward file), the new vintage is loaded through the admin API, old reports keep the
ward they were filed in, new reports are placed and routed in the new one, the old ward's open tickets are
re-routed on purpose (transfers with events) so its committee can be deactivated, and the metrics by ward,
refreshed from the events, show both vintages.

It runs on a database of its own (migrated and seeded here, dropped afterwards): the metrics are computed
from committed events only, and a new boundary vintage must not outlive the test in the shared database.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from shapely.geometry import mapping, shape
from shapely.ops import unary_union
from sqlalchemy import select

from hue_reports.cli import DEFAULT_DATA_DIR
from hue_reports.extensions import db
from hue_reports.models import AdminArea, Agency, Report, ReportEvent
from hue_reports.services import metrics, metrics_verify, routing
from tests.support import (CITADEL, create_database, drop_database, migrate_and_seed, new_report, server_url,
                           staff_headers)

KEPT, MERGED = "19753", "19777"  # Phường Phú Xuân absorbs its neighbour Phường Vỹ Dạ
IN_MERGED = (16.47461, 107.60998)  # a point well inside Vỹ Dạ (lat, lon)
NEW_VINTAGE = "2026-01-01"


def merged_ward_set() -> dict:
    """The shipped ward file with MERGED joined to KEPT: 39 wards, KEPT's code on the union."""
    doc = json.loads((DEFAULT_DATA_DIR / "wards.geojson").read_text(encoding="utf-8"))
    by_code = {f["properties"]["code"]: f for f in doc["features"]}
    union = unary_union([shape(by_code[KEPT]["geometry"]), shape(by_code[MERGED]["geometry"])])
    assert union.is_valid and union.geom_type in ("Polygon", "MultiPolygon")
    kept = by_code[KEPT]
    kept["geometry"] = mapping(union)
    kept["properties"]["before_merger"] = "Phường Phú Xuân, Phường Vỹ Dạ"
    doc["features"] = [f for f in doc["features"] if f["properties"]["code"] != MERGED]
    return json.loads(json.dumps(doc))  # (shapely's tuples as JSON lists)


@pytest.fixture
def city(make_app, redis_conn):
    """An application on a fresh database of its own, migrated and seeded with Huế's data."""
    name = create_database("hue_reorg")
    app = make_app(DATABASE_URL=server_url(name))
    migrate_and_seed(app)
    yield app
    drop_database(name)


def routed(category: str, lat: float, lon: float, days_ago: float) -> Report:
    report = new_report(category, lat=lat, lon=lon,
                        submitted_at=datetime.now(timezone.utc) - timedelta(days=days_ago))
    db.session.commit()
    routing.route(report.id, detect_duplicates=False)
    return db.session.get(Report, report.id)


def code_of(model, row_id: int | None) -> str | None:
    return db.session.scalar(select(model.code).where(model.id == row_id)) if row_id else None


def test_a_ward_merger_keeps_old_reports_in_their_ward_and_the_metrics_show_both_vintages(city):
    client = city.test_client()
    with city.app_context():
        # Before: reports in both wards, routed to their People's Committees (and one to the city's HEPCO).
        in_kept = routed("sidewalk_damage", *CITADEL, days_ago=3)
        in_merged = [routed("sidewalk_damage", *IN_MERGED, days_ago=2), routed("noise", *IN_MERGED, days_ago=2)]
        waste = routed("uncollected_waste", *IN_MERGED, days_ago=1)
        old_kept_ward, old_merged_ward = in_kept.ward_id, in_merged[0].ward_id
        assert (code_of(AdminArea, old_kept_ward), code_of(AdminArea, old_merged_ward)) == (KEPT, MERGED)
        assert [code_of(Agency, r.agency_id) for r in (in_kept, *in_merged, waste)] == [
            f"UBND-{KEPT}", f"UBND-{MERGED}", f"UBND-{MERGED}", "HEPCO"]
        admin = staff_headers("admin")
        db.session.commit()

        # The reorganisation: the new ward set is loaded through the admin API.
        loaded = client.post("/api/v1/admin/areas", json={"valid_from": NEW_VINTAGE, "geojson": merged_ward_set()},
                             headers=admin)
        assert loaded.status_code == 201, loaded.get_json()
        summary = loaded.get_json()
        assert len(summary["wards"]) == 39 and summary["ended_codes"] == [MERGED] and summary["new_codes"] == []
        assert f"UBND-{KEPT}" in summary["agencies_moved"] and f"UBND-{MERGED}" not in summary["agencies_moved"]
        new_kept_ward = db.session.scalar(select(AdminArea.id).where(AdminArea.code == KEPT,
                                                                     AdminArea.valid_to.is_(None)))
        assert new_kept_ward not in (old_kept_ward, old_merged_ward)

        # Old reports keep the ward they had.
        db.session.expire_all()
        assert db.session.get(Report, in_kept.id).ward_id == old_kept_ward
        assert {db.session.get(Report, r.id).ward_id for r in (*in_merged, waste)} == {old_merged_ward}

        # New reports are placed in the new ward (also where Vỹ Dạ was) and routed by its rules.
        new_here = routed("sidewalk_damage", *CITADEL, days_ago=0.5)
        new_there = routed("sidewalk_damage", *IN_MERGED, days_ago=0.5)
        assert new_here.ward_id == new_there.ward_id == new_kept_ward
        assert code_of(Agency, new_here.agency_id) == code_of(Agency, new_there.agency_id) == f"UBND-{KEPT}"

        # Vỹ Dạ's committee still holds its open tickets: it cannot be deactivated until they move.
        refused = client.post(f"/api/v1/admin/agencies/UBND-{MERGED}/deactivate", headers=admin)
        assert refused.status_code == 409, refused.get_json()
        assert set(refused.get_json()["error"]["fields"]["open_reports"]) == {r.public_code for r in in_merged}
        rerouted = client.post("/api/v1/admin/reroute", json={"ward": MERGED, "reason": "Sáp nhập phường"},
                               headers=admin)
        assert rerouted.status_code == 200, rerouted.get_json()
        body = rerouted.get_json()
        assert {(m["code"], m["from_agency"], m["to_agency"]) for m in body["moved"]} == {
            (r.public_code, f"UBND-{MERGED}", f"UBND-{KEPT}") for r in in_merged}
        assert body["unchanged"] == 1  # the waste report: HEPCO's by the city's rule, before and after
        db.session.expire_all()
        for report in in_merged:
            assert db.session.get(Report, report.id).ward_id == old_merged_ward  # moved, still filed in Vỹ Dạ
            [event] = db.session.scalars(select(ReportEvent).where(ReportEvent.report_id == report.id,
                                                                   ReportEvent.type == "transferred")).all()
            assert event.actor_kind == "admin" and event.data["to_agency"] == f"UBND-{KEPT}"
        deactivated = client.post(f"/api/v1/admin/agencies/UBND-{MERGED}/deactivate", headers=admin)
        assert deactivated.status_code == 200 and deactivated.get_json()["active"] is False

        # The metrics by ward, refreshed from the events: both vintages, each with its own reports.
        assert metrics.refresh() is not None
        answer = metrics.compute(metrics.Period("ward", None, None))
        rows = {(g["key"], g["valid_to"]): g for g in answer["groups"]}
        old_kept = rows[(KEPT, NEW_VINTAGE)]
        new_kept = rows[(KEPT, None)]
        old_merged = rows[(MERGED, NEW_VINTAGE)]
        assert (old_kept["received"], old_kept["open"]) == (1, 1)
        assert (new_kept["received"], new_kept["open"]) == (2, 2)
        assert (old_merged["received"], old_merged["open"]) == (3, 3)
        assert old_merged["transfer_rate"] == round(2 / 3, 4) and new_kept["transfer_rate"] == 0.0
        assert old_kept["valid_from"] == "2025-07-01" and new_kept["valid_from"] == NEW_VINTAGE
        assert old_merged["name"]["vi"] == "Phường Vỹ Dạ (đến 01/01/2026)"
        assert old_merged["name"]["en"].endswith(f"(until {NEW_VINTAGE})")
        assert new_kept["name"]["vi"] == "Phường Phú Xuân"
        assert (MERGED, None) not in rows  # Vỹ Dạ exists in the old vintage only
        assert answer["total"]["received"] == 6
        # ... and by agency: Vỹ Dạ's committee received two tickets and passed both on.
        by_agency = {g["key"]: g for g in metrics.compute(metrics.Period("agency", None, None))["groups"]}
        assert (by_agency[f"UBND-{MERGED}"]["received"], by_agency[f"UBND-{MERGED}"]["open"]) == (2, 0)
        assert by_agency[f"UBND-{MERGED}"]["transfer_rate"] == 1.0
        assert (by_agency[f"UBND-{KEPT}"]["received"], by_agency[f"UBND-{KEPT}"]["open"]) == (5, 5)

        # The published figures agree with a replay of the events, and the public API shows the two vintages.
        metrics.refresh_results()
        checked, differences = metrics_verify.verify()
        assert checked >= 4 and differences == []
        public = client.get("/api/v1/public/metrics", query_string={"group_by": "ward"}).get_json()
        keys = [(g["key"], g["valid_to"]) for g in public["groups"] if g["key"] in (KEPT, MERGED)]
        assert keys == [(KEPT, NEW_VINTAGE), (KEPT, None), (MERGED, NEW_VINTAGE)]
        csv = client.get("/api/v1/public/metrics.csv", query_string={"group_by": "ward"}).get_data(as_text=True)
        assert "Phường Phú Xuân (đến 01/01/2026)" in csv and "Phường Vỹ Dạ (đến 01/01/2026)" in csv
        db.session.remove()

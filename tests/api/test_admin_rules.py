"""Admins run the routing rules (/api/v1/admin/routing-rules, `flask rules`): a changed rule routes new reports
only; re-routing the open reports of a ward or category on purpose moves them as transfers, with events, so
the metrics count them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from hue_reports.extensions import db
from hue_reports.models import AdminArea, Agency, AuditEntry, Category, OutboxMessage, Report, ReportEvent, RoutingRule
from hue_reports.cli import DEFAULT_DATA_DIR
from hue_reports.services import areas, metrics, routing
from tests.support import error, new_report, staff_headers, this_tests_audit

URL = "/api/v1/admin/routing-rules"
CITADEL_WARD = "19753"  # Phường Phú Xuân, where the Citadel is (tests.support.CITADEL)
NEXT_VINTAGE = "2026-10-01"  # after the shipped vintage's 2025-07-01


def shipped_wards() -> dict:
    return json.loads((DEFAULT_DATA_DIR / "wards.geojson").read_text(encoding="utf-8"))



def routed(category: str, **kw) -> Report:
    report = new_report(category, **kw)
    routing.route(report.id, detect_duplicates=False)
    db.session.refresh(report)
    return report


def city_code() -> str:
    return db.session.scalar(select(AdminArea.code).where(AdminArea.tier == 1, AdminArea.valid_to.is_(None)))


def agency_code(report: Report) -> str:
    db.session.expire_all()
    return db.session.scalar(select(Agency.code).join(Report, Report.agency_id == Agency.id)
                             .where(Report.id == report.id))


def test_the_citadel_is_in_the_ward_the_tests_assume(db_session):
    report = new_report("road_damage")
    assert db.session.get(AdminArea, report.ward_id).code == CITADEL_WARD


def test_a_new_rule_routes_new_reports_and_leaves_routed_ones_where_they_are(client, admin):
    before = routed("road_damage")
    assert agency_code(before) == "SXD"
    response = client.post(URL, json={"category": "road_damage", "area": CITADEL_WARD, "agency": "HEPCO"},
                           headers=admin)
    assert response.status_code == 201, response.get_json()
    rule = response.get_json()
    assert (rule["category"], rule["area"]["code"], rule["agency"], rule["priority"]) == (
        "road_damage", CITADEL_WARD, "HEPCO", 100)
    after = routed("road_damage")
    assert agency_code(after) == "HEPCO"  # the ward rule beats the city's
    assert agency_code(before) == "SXD"  # a rule change moves nothing already routed
    elsewhere = routed("road_damage", lat=16.4560, lon=107.6050)  # another ward: the city rule
    assert db.session.get(AdminArea, elsewhere.ward_id).code != CITADEL_WARD and agency_code(elsewhere) == "SXD"
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "rule.create",
                                                               this_tests_audit())).all()
    assert entry.object_key == str(rule["id"]) and entry.after["agency"] == "HEPCO"


def test_a_duplicate_rule_is_409_and_writes_nothing(client, admin):
    city = city_code()
    existing = db.session.scalar(select(RoutingRule.id).join(Category).join(AdminArea).where(
        Category.code == "road_damage", AdminArea.code == city, RoutingRule.priority == 100))
    body = error(client.post(URL, json={"category": "road_damage", "area": city, "agency": "HEPCO"}, headers=admin),
                 409, "duplicate_rule")
    assert str(existing) in body["message"] and "priority" in body["fields"]
    other = client.post(URL, json={"category": "road_damage", "area": city, "agency": "HEPCO", "priority": 150},
                        headers=admin)
    assert other.status_code == 201  # another priority is another rule (a fallback)
    error(client.patch(f"{URL}/{other.get_json()['id']}", json={"priority": 100}, headers=admin), 409,
          "duplicate_rule")
    assert db.session.scalar(select(func.count()).select_from(RoutingRule).join(Category).where(
        Category.code == "road_damage", RoutingRule.area_id == db.session.scalar(
            select(AdminArea.id).where(AdminArea.code == city, AdminArea.valid_to.is_(None))))) == 2


def test_a_rule_to_an_inactive_agency_is_refused(client, admin):
    created = client.post("/api/v1/admin/agencies", json={"code": "OFF", "name": "Tạm ngừng", "name_en": "Off",
                                                          "kind": "other", "active": False}, headers=admin)
    assert created.status_code == 201
    body = error(client.post(URL, json={"category": "noise", "area": city_code(), "agency": "OFF"}, headers=admin),
                 422, "agency_inactive")
    assert "agency" in body["fields"]
    rule_id = db.session.scalar(select(RoutingRule.id).join(Category).where(Category.code == "pollution"))
    error(client.patch(f"{URL}/{rule_id}", json={"agency": "OFF"}, headers=admin), 422, "agency_inactive")
    # An inactive rule may point anywhere, but cannot be switched on while its agency is inactive.
    parked = client.post(URL, json={"category": "noise", "area": city_code(), "agency": "OFF", "active": False},
                         headers=admin)
    assert parked.status_code == 201
    error(client.patch(f"{URL}/{parked.get_json()['id']}", json={"active": True}, headers=admin), 422,
          "agency_inactive")


def test_a_rule_on_a_retired_area_can_only_be_deactivated(client, admin):
    """As a new rule must be on a current area, a rule left on an area of a retired vintage is not switched on
    again, retargeted or reprioritised: it routes nothing (routing looks at current areas) and would mislead."""
    rule_id = client.post(URL, json={"category": "noise", "area": CITADEL_WARD, "agency": "HEPCO", "priority": 7},
                          headers=admin).get_json()["id"]
    loaded = client.post("/api/v1/admin/areas", json={"valid_from": NEXT_VINTAGE, "geojson": shipped_wards()},
                         headers=admin)
    assert loaded.status_code == 201, loaded.get_json()
    areas.forget_city()
    rule = db.session.get(RoutingRule, rule_id)
    assert rule.area.valid_to is not None and rule.active  # (its copy is on the new area of the same code)
    for change in ({"agency": "SXD"}, {"priority": 8}, {"active": True, "agency": "SXD"}):
        body = error(client.patch(f"{URL}/{rule_id}", json=change, headers=admin), 422, "validation_error")
        assert "area" in body["fields"] and "retired" in body["message"], change
    off = client.patch(f"{URL}/{rule_id}", json={"active": False}, headers=admin)
    assert off.status_code == 200 and off.get_json()["active"] is False
    error(client.patch(f"{URL}/{rule_id}", json={"active": True}, headers=admin), 422, "validation_error")
    db.session.expire_all()
    rule = db.session.get(RoutingRule, rule_id)
    assert (rule.active, rule.agency.code, rule.priority) == (False, "HEPCO", 7)


@pytest.mark.parametrize("fields, field", [
    ({"category": "no_such"}, "category"),
    ({"area": "00000"}, "area"),
    ({"agency": "NOPE"}, "agency"),
    ({"priority": -1}, "priority"),
    ({"priority": "high"}, "priority"),
    ({"priority": 1.5}, "priority"),
    ({"category": None}, "category"),
])
def test_unknown_references_and_bad_values_are_422(client, admin, fields, field):
    body = error(client.post(URL, json={"category": "noise", "area": CITADEL_WARD, "agency": "HEPCO", **fields},
                             headers=admin), 422, "validation_error")
    assert field in body["fields"]


def test_rules_are_listed_and_deactivated_not_deleted(client, admin):
    rules = client.get(URL, query_string={"category": "road_damage"}, headers=admin).get_json()["rules"]
    assert [(r["area"]["code"], r["agency"]) for r in rules] == [(city_code(), "SXD")]
    rule_id = rules[0]["id"]
    off = client.patch(f"{URL}/{rule_id}", json={"active": False}, headers=admin)
    assert off.status_code == 200 and off.get_json()["active"] is False
    assert agency_code(routed("road_damage")) == "IOC"  # no active rule: the dispatcher
    assert client.get(f"{URL}/{rule_id}", headers=admin).get_json()["active"] is False
    error(client.get(f"{URL}/999999999", headers=admin), 404, "rule_not_found")
    error(client.get(f"{URL}/abc", headers=admin), 404, "rule_not_found")
    error(client.get(URL, query_string={"active": "maybe"}, headers=admin), 422, "validation_error")
    assert client.delete(f"{URL}/{rule_id}", headers=admin).status_code == 405


# -- re-routing ---------------------------------------------------------------------------------------

def test_rerouting_a_category_moves_its_open_reports_as_transfers_with_events(client, admin, redis_conn):
    reports = [routed("road_damage") for _ in range(3)]
    acknowledged = reports[1]
    ack = client.post(f"/api/v1/reports/{acknowledged.id}/transitions", json={"action": "acknowledge"},
                      headers={**staff_headers("sxd.officer"), "If-Match": str(acknowledged.version)})
    assert ack.status_code == 200
    finished = routed("road_damage")
    db.session.execute(Report.__table__.update().where(Report.id == finished.id).values(status="resolved"))
    rule_id = db.session.scalar(select(RoutingRule.id).join(Category).where(Category.code == "road_damage"))
    client.patch(f"{URL}/{rule_id}", json={"agency": "HEPCO"}, headers=admin)
    assert all(agency_code(r) == "SXD" for r in reports)  # the rule alone moves nothing

    preview = client.post("/api/v1/admin/reroute", json={"category": "road_damage", "dry_run": True}, headers=admin)
    assert preview.status_code == 200, preview.get_json()
    assert {m["code"] for m in preview.get_json()["moved"]} == {r.public_code for r in reports}
    assert all(agency_code(r) == "SXD" for r in reports)  # a dry run moves nothing
    audits = db.session.scalar(select(func.count()).where(AuditEntry.action == "reports.reroute", this_tests_audit()))
    assert audits == 0

    response = client.post("/api/v1/admin/reroute", json={"category": "road_damage", "reason": "Phân công lại"},
                           headers=admin)
    body = response.get_json()
    assert response.status_code == 200 and body["moved_count"] == 3 and body["unchanged"] == 0
    assert {(m["from_agency"], m["to_agency"]) for m in body["moved"]} == {("SXD", "HEPCO")}
    assert all(agency_code(r) == "HEPCO" for r in reports) and agency_code(finished) == "SXD"
    admin_id = db.session.scalar(select(AuditEntry.actor_account_id).where(AuditEntry.id == body["audit_id"]))
    for report in reports:
        db.session.refresh(report)
        assert report.status == "routed" and report.acknowledged_at is None
        [event] = db.session.scalars(select(ReportEvent).where(ReportEvent.report_id == report.id,
                                                               ReportEvent.type == "transferred")).all()
        assert (event.actor_kind, event.actor_account_id, event.public) == ("admin", admin_id, True)
        assert event.data["from_agency"] == "SXD" and event.data["to_agency"] == "HEPCO"
        assert event.data["audit_id"] == body["audit_id"] and "Phân công lại" in event.note
    entry = db.session.get(AuditEntry, body["audit_id"])
    assert entry.object_key == "category=road_damage" and entry.after["agencies"] == {
        r.public_code: "HEPCO" for r in reports}
    # Running it again moves nothing: they are where the rules send them.
    again = client.post("/api/v1/admin/reroute", json={"category": "road_damage"}, headers=admin).get_json()
    assert again["moved_count"] == 0 and again["unchanged"] == 3


def test_rerouting_counts_as_a_transfer_in_the_metrics(client, admin):
    """The metrics replay the events: the old agency's custody ended in a transfer, the new one holds it."""
    report = routed("road_damage")
    rule_id = db.session.scalar(select(RoutingRule.id).join(Category).where(Category.code == "road_damage"))
    client.patch(f"{URL}/{rule_id}", json={"agency": "HEPCO"}, headers=admin)
    client.post("/api/v1/admin/reroute", json={"category": "road_damage"}, headers=admin)
    from hue_reports.services import calendar

    [facts] = metrics.load([report.id], 2**62, calendar.city_calendar())
    ids = dict(db.session.execute(select(Agency.code, Agency.id)).tuples().all())
    assert facts.transfers == 1 and facts.agency_id == ids["HEPCO"]
    assert facts.custodies[ids["SXD"]].state == "transferred" and facts.custodies[ids["SXD"]].transfers_out == 1
    assert facts.custodies[ids["HEPCO"]].state == "open"


def test_rerouting_a_ward_moves_only_that_wards_reports_and_tells_the_new_agency(client, admin, redis_conn):
    in_ward = routed("sidewalk_damage")  # the ward committee's work
    assert agency_code(in_ward) == f"UBND-{CITADEL_WARD}"
    elsewhere = routed("sidewalk_damage", lat=16.4560, lon=107.6050)
    client.patch("/api/v1/admin/agencies/HEPCO", json={"webhook_url": "https://hepco.example.vn/h"}, headers=admin)
    created = client.post(URL, json={"category": "sidewalk_damage", "area": CITADEL_WARD, "agency": "HEPCO",
                                     "priority": 50}, headers=admin)
    assert created.status_code == 201
    body = client.post("/api/v1/admin/reroute", json={"ward": CITADEL_WARD}, headers=admin).get_json()
    assert [m["code"] for m in body["moved"]] == [in_ward.public_code]
    assert agency_code(in_ward) == "HEPCO" and agency_code(elsewhere) != "HEPCO"
    told = db.session.scalars(select(OutboxMessage).where(OutboxMessage.report_id == in_ward.id,
                                                          OutboxMessage.kind == "webhook")).all()
    assert [m.payload["type"] for m in told if m.agency_id == db.session.scalar(
        select(Agency.id).where(Agency.code == "HEPCO"))] == ["report.transferred"]


def test_routing_failed_reports_are_rerouted_once_a_rule_covers_them(client, admin, redis_conn):
    report = new_report("other")
    routing.mark_failed(report.id, "no_agency")
    created = client.post(URL, json={"category": "other", "area": city_code(), "agency": "SXD"}, headers=admin)
    assert created.status_code == 201
    body = client.post("/api/v1/admin/reroute", json={"category": "other"}, headers=admin).get_json()
    assert body["moved"] == [{"code": report.public_code, "status": "routing_failed", "from_agency": None,
                              "to_agency": "SXD"}]
    db.session.refresh(report)
    assert report.status == "routed" and report.due_at is not None


def test_reroute_needs_a_ward_or_a_category(client, admin):
    body = error(client.post("/api/v1/admin/reroute", json={}, headers=admin), 422, "validation_error")
    assert "_schema" in body["fields"]
    error(client.post("/api/v1/admin/reroute", json={"ward": "00000"}, headers=admin), 422, "validation_error")
    error(client.post("/api/v1/admin/reroute", json={"category": "nope"}, headers=admin), 422, "validation_error")
    long = error(client.post("/api/v1/admin/reroute", json={"category": "noise", "reason": "x" * 1001},
                             headers=admin), 422, "validation_error")
    assert "reason" in long["fields"]
    assert client.post("/api/v1/admin/reroute", json={"category": "noise"},
                       headers=staff_headers("ioc")).status_code == 403


def test_flask_rules_commands(app, db_session, redis_conn):
    report = routed("road_damage")
    runner = app.test_cli_runner()
    created = runner.invoke(args=["rules", "create", "road_damage", CITADEL_WARD, "HEPCO", "--priority", "10"])
    assert created.exit_code == 0, created.output
    assert f"road_damage in {CITADEL_WARD}" in created.output and "-> HEPCO (priority 10)" in created.output
    duplicate = runner.invoke(args=["rules", "create", "road_damage", CITADEL_WARD, "SXD", "--priority", "10"])
    assert duplicate.exit_code == 1 and "priority 10" in duplicate.output
    dry = runner.invoke(args=["rules", "reroute", "--ward", CITADEL_WARD, "--category", "road_damage", "--dry-run"])
    assert dry.exit_code == 0 and f"{report.public_code} (routed): SXD -> HEPCO" in dry.output
    assert "would move 1 report(s)" in dry.output and agency_code(report) == "SXD"
    moved = runner.invoke(args=["rules", "reroute", "--ward", CITADEL_WARD, "--category", "road_damage"])
    assert moved.exit_code == 0 and "moved 1 report(s)" in moved.output, moved.output
    assert agency_code(report) == "HEPCO"
    event = db.session.scalars(select(ReportEvent).where(ReportEvent.report_id == report.id,
                                                         ReportEvent.type == "transferred")).one()
    assert (event.actor_kind, event.actor_account_id) == ("admin", None)
    entry = db.session.get(AuditEntry, event.data["audit_id"])
    assert entry.via == "cli" and entry.object_key == f"ward={CITADEL_WARD},category=road_damage"
    listed = runner.invoke(args=["rules", "list", "--category", "road_damage"])
    assert listed.output.count("road_damage in") == 2

"""Routing on the real database: agency by rule, dispatcher fallback, deadline, duplicates, events, outbox.

Expected agencies are worked out here from the city's data files (routing.yaml, agencies.yaml) and the
ward polygons (shapely), independently of the SQL under test.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import yaml
from shapely.geometry import shape
from sqlalchemy import func, select, text

from hue_reports.cli import DEFAULT_DATA_DIR
from hue_reports.extensions import db
from hue_reports.models import Agency, AdminArea, Category, OutboxMessage, Report, ReportEvent, RoutingRule
from hue_reports.services import calendar, routing
from tests.support import CITADEL, haversine_m, new_report, wait_for_advisory_waiters

DATA = DEFAULT_DATA_DIR
RULES = yaml.safe_load((DATA / "routing.yaml").read_text())["rules"]
AGENCIES = yaml.safe_load((DATA / "agencies.yaml").read_text())
WARDS = json.loads((DATA / "wards.geojson").read_text())["features"]
DISPATCHER = next(a["code"] for a in AGENCIES["agencies"] if a["kind"] == "dispatcher")


def expected_agency(category: str, ward_code: str) -> str:
    """The agency routing.yaml gives a category in a ward: a ward rule beats a city rule, then priority."""
    rules = [r for r in RULES if r["category"] == category and r.get("active", True)]
    for area in ("each_ward", "city"):
        candidates = sorted((r for r in rules if r["area"] == area), key=lambda r: r.get("priority", 100))
        if candidates:
            agency = candidates[0]["agency"]
            return AGENCIES["ward_committees"]["code"].format(area_code=ward_code) \
                if agency == "ward_committee" else agency
    return DISPATCHER


def ward_points(count: int) -> list[tuple[str, float, float]]:
    """(ward code, lat, lon) of a point well inside each of `count` wards spread through the file."""
    step = max(len(WARDS) // count, 1)
    points = []
    for feature in WARDS[::step][:count]:
        p = shape(feature["geometry"]).representative_point()
        points.append((str(feature["properties"]["code"]), p.y, p.x))
    return points


def events_of(report_id: int, type_: str | None = None) -> list[ReportEvent]:
    stmt = select(ReportEvent).where(ReportEvent.report_id == report_id).order_by(ReportEvent.id)
    if type_:
        stmt = stmt.where(ReportEvent.type == type_)
    return list(db.session.scalars(stmt))


def agency_code(agency_id: int | None) -> str | None:
    return db.session.scalar(select(Agency.code).where(Agency.id == agency_id)) if agency_id else None


def offset(lat: float, lon: float, north_m: float) -> tuple[float, float]:
    return lat + north_m / 111_195, lon


def test_every_seeded_category_reaches_its_agency_in_several_wards(db_session):
    categories = yaml.safe_load((DATA / "categories.yaml").read_text())
    codes = [c["code"] for group in categories["groups"] for c in group["categories"]]
    assert len(codes) > 20
    cal = calendar.city_calendar()
    checked = 0
    for ward_code, lat, lon in ward_points(4):
        for code in codes:
            report = new_report(code, lat, lon)
            outcome = routing.route(report.id, detect_duplicates=False)
            db.session.refresh(report)
            assert outcome.result == "routed", (code, ward_code)
            assert db.session.get(AdminArea, report.ward_id).code == ward_code
            assert agency_code(report.agency_id) == expected_agency(code, ward_code), (code, ward_code)
            assert report.status == "routed" and report.routed_at is not None and report.version == 2
            sla = db.session.scalar(select(Category.sla_hours).where(Category.code == code))
            assert report.due_at == cal.add_working_time(report.submitted_at, sla)
            assert abs(cal.working_time_between(report.submitted_at, report.due_at) - float(sla)) < 1e-6
            [event] = events_of(report.id, "routed")
            assert event.public and event.agency_id == report.agency_id and event.to_status == "routed"
            checked += 1
    assert checked == 4 * len(codes)


def test_a_category_without_a_rule_goes_to_the_dispatcher_with_an_event_saying_so(db_session):
    unruled = {c["code"] for g in yaml.safe_load((DATA / "categories.yaml").read_text())["groups"]
               for c in g["categories"]} - {r["category"] for r in RULES}
    assert unruled, "the seed data should keep a category for the dispatcher"
    report = new_report(sorted(unruled)[0])
    routing.route(report.id)
    db.session.refresh(report)
    assert agency_code(report.agency_id) == DISPATCHER
    [event] = events_of(report.id, "routed")
    assert event.data["reason"] == "no_rule" and event.data["rule_id"] is None
    assert "dispatcher" in event.note and "Trung tâm" in event.note


def test_an_inactive_agency_is_skipped_for_the_next_rule(db_session):
    ward_code, lat, lon = ward_points(1)[0]
    committee = AGENCIES["ward_committees"]["code"].format(area_code=ward_code)
    assert expected_agency("street_vending", ward_code) == committee
    db.session.execute(Agency.__table__.update().where(Agency.code == committee).values(active=False))
    report = new_report("street_vending", lat, lon)
    routing.route(report.id)
    db.session.refresh(report)
    fallback = [r for r in RULES if r["category"] == "street_vending" and r["area"] == "city"]
    assert agency_code(report.agency_id) == fallback[0]["agency"]


def test_among_rules_on_one_area_the_lowest_priority_number_wins(db_session):
    city_area = db.session.scalar(text("SELECT area_id FROM cities LIMIT 1"))
    category = db.session.scalars(select(Category).where(Category.code == "road_damage")).one()
    police = db.session.scalars(select(Agency).where(Agency.code == "CATP")).one()
    db.session.add(RoutingRule(category_id=category.id, area_id=city_area, agency_id=police.id, priority=1))
    db.session.flush()
    report = new_report("road_damage")
    routing.route(report.id)
    db.session.refresh(report)
    assert report.agency_id == police.id


def test_routing_twice_leaves_one_routed_event(db_session):
    report = new_report()
    assert routing.route(report.id).result == "routed"
    assert routing.route(report.id).result == "unchanged"
    assert len(events_of(report.id, "routed")) == 1
    assert routing.route(10**12).result == "missing"


def test_the_database_refuses_a_second_routed_event(db_session):
    report = new_report()
    routing.route(report.id)
    with pytest.raises(Exception, match="uq_report_events_once"):
        with db.session.begin_nested():
            db.session.add(ReportEvent(report_id=report.id, type="routed", actor_kind="system", public=True))
            db.session.flush()


def test_no_rule_and_no_dispatcher_leaves_the_report_routing_failed(db_session):
    db.session.execute(Agency.__table__.update().where(Agency.kind == "dispatcher").values(active=False))
    unruled = sorted({c["code"] for g in yaml.safe_load((DATA / "categories.yaml").read_text())["groups"]
                      for c in g["categories"]} - {r["category"] for r in RULES})[0]
    report = new_report(unruled)
    assert routing.route(report.id).result == "routing_failed"
    db.session.refresh(report)
    assert report.status == "routing_failed" and report.agency_id is None
    assert events_of(report.id, "routing_failed")[0].data == {"reason": "no_agency"}


def test_an_agency_with_a_webhook_gets_an_outbox_message_in_the_same_transaction(db_session):
    db.session.execute(Agency.__table__.update().where(Agency.code == "SXD").values(
        webhook_url="http://127.0.0.1:9/hook", webhook_secret="s" * 32))
    with_hook = new_report("road_damage")
    outcome = routing.route(with_hook.id)
    [message] = db.session.scalars(select(OutboxMessage).where(OutboxMessage.report_id == with_hook.id)).all()
    assert outcome.outbox_ids == (message.id,)
    assert message.agency_id == with_hook.agency_id and message.payload["type"] == "report.routed"
    assert message.payload["event_id"] == events_of(with_hook.id, "routed")[0].id
    without = new_report("uncollected_waste")  # HEPCO: no webhook, it pulls its events
    assert routing.route(without.id).outbox_ids == ()
    assert db.session.scalar(select(func.count()).where(OutboxMessage.report_id == without.id)) == 0


class TestDuplicates:
    def test_a_report_near_an_open_one_of_the_same_category_is_its_duplicate(self, db_session, app):
        first = new_report(submitted_at=datetime.now(timezone.utc) - timedelta(hours=2))
        routing.route(first.id)
        lat, lon = offset(*CITADEL, 30)
        assert haversine_m(CITADEL, (lat, lon)) < app.config["DUPLICATE_RADIUS_M"]
        second = new_report(lat=lat, lon=lon)
        outcome = routing.route(second.id)
        db.session.refresh(first)
        db.session.refresh(second)
        assert outcome.result == "duplicate" and outcome.duplicate_of_id == first.id
        assert second.status == "duplicate" and second.duplicate_of_id == first.id
        assert second.agency_id == first.agency_id and second.due_at is None
        assert first.supporters == 1
        [dup] = events_of(second.id, "duplicate")
        assert dup.data["duplicate_of"] == first.public_code and 25 < dup.data["distance_m"] < 35
        assert events_of(first.id, "supported")[0].data["report"] == second.public_code
        assert not events_of(second.id, "routed")

    @pytest.mark.parametrize("case", ["too_far", "other_category", "too_old", "finished", "later"])
    def test_what_is_not_a_duplicate(self, db_session, app, case):
        radius = app.config["DUPLICATE_RADIUS_M"]
        earlier = datetime.now(timezone.utc) - timedelta(hours=1)
        first_kw = {"submitted_at": earlier}
        second_kw = {"lat": offset(*CITADEL, 20)[0]}
        if case == "too_far":
            second_kw["lat"] = offset(*CITADEL, radius * 1.6)[0]
        elif case == "other_category":
            second_kw["category"] = "flooding"
        elif case == "too_old":
            first_kw["submitted_at"] = datetime.now(timezone.utc) - timedelta(days=app.config["DUPLICATE_DAYS"] + 1)
        elif case == "finished":
            first_kw["status"] = "resolved"
        elif case == "later":  # only an EARLIER report can be the original
            first_kw["submitted_at"] = datetime.now(timezone.utc) + timedelta(minutes=5)
        first = new_report(**first_kw)
        second = new_report(**second_kw)
        assert routing.route(second.id).result == "routed"
        db.session.refresh(first)
        assert first.supporters == 0 and not events_of(first.id, "supported")

    def test_a_duplicate_of_a_duplicate_points_at_the_original(self, db_session):
        now = datetime.now(timezone.utc)
        oldest = new_report(submitted_at=now - timedelta(hours=3))
        routing.route(oldest.id)
        middle = new_report(lat=offset(*CITADEL, 10)[0], submitted_at=now - timedelta(hours=2))
        newest = new_report(lat=offset(*CITADEL, 20)[0], submitted_at=now - timedelta(hours=1))
        # The queue routes the newest first: it links to `middle`, still unrouted ...
        assert routing.route(newest.id).duplicate_of_id == middle.id
        # ... then `middle` joins `oldest`, and takes its own duplicate along.
        assert routing.route(middle.id).duplicate_of_id == oldest.id
        for r in (oldest, middle, newest):
            db.session.refresh(r)
        assert newest.duplicate_of_id == oldest.id and middle.duplicate_of_id == oldest.id
        assert oldest.supporters == 2 and middle.supporters == 0

    def test_the_duplicates_reporter_follows_the_original_in_the_public_view(self, db_session, client):
        first = new_report(submitted_at=datetime.now(timezone.utc) - timedelta(hours=1))
        routing.route(first.id)
        second = new_report(lat=offset(*CITADEL, 5)[0])
        routing.route(second.id)
        body = client.get(f"/api/v1/reports/{second.public_code}").get_json()
        assert body["status"] == "duplicate"
        assert body["duplicate_of"]["code"] == first.public_code
        assert body["duplicate_of"]["status"] == "routed"
        assert body["duplicate_of"]["status_label"]["vi"] == "đã chuyển xử lý"

    def test_an_officer_can_unlink_a_duplicate_which_is_then_routed(self, db_session):
        first = new_report(submitted_at=datetime.now(timezone.utc) - timedelta(hours=1))
        routing.route(first.id)
        second = new_report(lat=offset(*CITADEL, 5)[0])
        routing.route(second.id)
        outcome = routing.unlink_duplicate(second.id)
        db.session.refresh(first)
        db.session.refresh(second)
        assert outcome.result == "routed"
        assert second.status == "routed" and second.duplicate_of_id is None and second.due_at is not None
        assert first.supporters == 0
        assert [e.type for e in events_of(second.id)] == ["submitted", "duplicate", "unlinked", "routed"]
        with pytest.raises(Exception, match="Only a duplicate"):
            routing.unlink_duplicate(second.id)


def test_the_deadline_counts_working_hours_from_submission(db_session):
    # Friday 2026-11-20 16:00 in Huế; a 4-hour SLA: 1 h on Friday, then Monday 07:30 + 3 h = 10:30.
    submitted = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    category = db.session.scalars(select(Category).where(Category.code == "road_damage")).one()
    category.sla_hours = Decimal("4")
    report = new_report(submitted_at=submitted)
    routing.route(report.id)
    db.session.refresh(report)
    assert report.due_at == datetime(2026, 11, 23, 3, 30, tzinfo=timezone.utc)  # 10:30 at UTC+7


def test_two_reports_routed_at_once_both_join_the_open_original(app, committed, database_url):
    """Z is open; A and B, close to it and to each other, are routed by two workers at the same time. In
    either order both end as duplicates of Z, never of each other (a report already a duplicate is never
    an original): the category's lock serialises the decisions, and the second sees the first's."""
    import threading

    import psycopg

    with app.app_context():
        now = datetime.now(timezone.utc)
        z = new_report(submitted_at=now - timedelta(hours=3))
        db.session.commit()
        routing.route(z.id)
        a = new_report(lat=offset(*CITADEL, 10)[0], submitted_at=now - timedelta(hours=2))
        b = new_report(lat=offset(*CITADEL, 20)[0], submitted_at=now - timedelta(hours=1))
        db.session.commit()
        ids = {"z": z.id, "a": a.id, "b": b.id}
        category_id = a.category_id
    holder = psycopg.connect(database_url)  # hold the category's lock until both jobs wait for it
    holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", (routing.DUPLICATE_LOCK_SPACE, category_id))
    errors = []

    def work(report_id):
        try:
            with app.app_context():
                routing.route(report_id)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(ids[k],)) for k in ("a", "b")]
    for t in threads:
        t.start()
    wait_for_advisory_waiters(database_url, 2)
    holder.rollback()
    holder.close()
    for t in threads:
        t.join(30)
    assert not errors
    with app.app_context():
        rows = {k: db.session.get(Report, v) for k, v in ids.items()}
        assert rows["a"].status == rows["b"].status == "duplicate"
        assert rows["a"].duplicate_of_id == rows["b"].duplicate_of_id == ids["z"]
        assert rows["z"].supporters == 2 and rows["a"].supporters == 0 and rows["b"].supporters == 0


def test_a_report_without_a_ward_gets_one_when_routed(db_session):
    report = new_report()
    expected = report.ward_id
    assert expected is not None
    db.session.execute(Report.__table__.update().where(Report.id == report.id).values(ward_id=None))
    assert routing.route(report.id).result == "routed"
    db.session.refresh(report)
    assert report.ward_id == expected


def test_duplicates_of_an_unrouted_report_follow_it_to_its_agency(db_session):
    original = new_report("uncollected_waste", submitted_at=datetime.now(timezone.utc) - timedelta(hours=1))
    duplicate = new_report("uncollected_waste", lat=offset(*CITADEL, 10)[0])
    assert routing.route(duplicate.id).duplicate_of_id == original.id  # joined while the original waits
    db.session.refresh(duplicate)
    assert duplicate.agency_id is None
    routing.route(original.id)
    db.session.refresh(original)
    db.session.refresh(duplicate)
    assert original.agency_id is not None and duplicate.agency_id == original.agency_id

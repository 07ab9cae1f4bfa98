"""The accountability metrics: the two clocks, censoring, the rollups, the API and `flask metrics verify`.

Histories with hand-checkable times are written as events with chosen timestamps (the events are the
source of the metrics); a second history goes through the real services and API (routing, transitions,
transfers, a reopening by a bad rating, a duplicate) and must verify with zero differences.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select, text

from hue_reports.extensions import db
from hue_reports.models import Agency, MetricCustody, MetricReport, Report, ReportEvent
from hue_reports.services import calendar, metrics, metrics_verify, routing
from tests.support import CITADEL, PHOTOS, flask_cli, multipart, new_report, post_report, staff_headers

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
H = 3_600_000_000  # microseconds in an hour
# 2-3 March 2026: an ordinary Monday and Tuesday in Huế (no holiday)
MON = datetime(2026, 3, 2, tzinfo=HCM)
PERIOD = {"from": "2026-03-02", "to": "2026-03-03"}


def at(day: int, hour: float) -> datetime:
    """Local time on 2 (Monday) or 3 (Tuesday) March 2026."""
    return MON + timedelta(days=day - 2, hours=hour)


def agency_id(code: str) -> int:
    return db.session.scalar(select(Agency.id).where(Agency.code == code))


def timed(category: str, submitted: datetime, steps: list[tuple], lat: float = CITADEL[0]) -> Report:
    """A report and its events at chosen times: steps are (type, time, agency code or None, data)."""
    report = new_report(category, lat=lat, submitted_at=submitted)
    for kind, when, agency, data in steps:
        db.session.add(ReportEvent(report_id=report.id, type=kind, actor_kind="system", public=True,
                                   agency_id=agency_id(agency) if agency else None, data=data or {},
                                   created_at=when))
        db.session.flush()
    return report


def march_history() -> dict[str, int]:
    """Five reports of 2-3 March 2026 whose figures are computed by hand in the tests."""
    reports = {
        # SXD acknowledges, holds it 3 h and transfers it to HEPCO, which resolves it the next morning.
        "transferred": timed("uncollected_waste", at(2, 7), [
            ("routed", at(2, 7), "SXD", {}), ("acknowledged", at(2, 8), "SXD", {}),
            ("transferred", at(2, 10), "HEPCO", {}), ("resolved", at(3, 8), "HEPCO", {})]),
        # HEPCO resolves it, the resident rates it 1, it is reopened and resolved again.
        "reopened": timed("uncollected_waste", at(2, 7), [
            ("routed", at(2, 7), "HEPCO", {}), ("started", at(2, 9), "HEPCO", {}),
            ("resolved", at(2, 11), "HEPCO", {}), ("feedback", at(3, 9), "HEPCO", {"rating": 1}),
            ("reopened", at(3, 9), "HEPCO", {}), ("resolved", at(3, 10), "HEPCO", {})]),
        # Routed to HEPCO and left open ever since: censored, overdue and seriously overdue.
        "open": timed("uncollected_waste", at(2, 7), [("routed", at(2, 7), "HEPCO", {})]),
        "duplicate": timed("uncollected_waste", at(2, 12), [("duplicate", at(2, 12), "HEPCO", {})]),
        "rejected": timed("road_damage", at(3, 7), [
            ("routed", at(3, 7), "SXD", {}), ("rejected", at(3, 8), "SXD", {})]),
    }
    return {name: report.id for name, report in reports.items()}


@pytest.fixture
def march(app, committed):
    with app.app_context():
        ids = march_history()
        db.session.commit()
        metrics.refresh()
    return ids


def group(body: dict, key: str) -> dict:
    return next(g for g in body["groups"] if g["key"] == key)


# --- the facts of one report ----------------------------------------------------------------------------------

def test_the_facts_of_a_transferred_report_charge_each_agency_its_own_hours(app, march):
    with app.app_context():
        facts = db.session.get(MetricReport, march["transferred"])
        # resident's clock: Monday 07:00 to Tuesday 08:00 = 25 h; working: Monday 7.5 h + Tuesday 07:30-08:00
        assert (facts.state, facts.resolve_us, facts.resolve_work_us) == ("resolved", 25 * H, 8 * H)
        assert facts.transfers == 1 and facts.on_time is True  # due Tuesday 17:00 (15 working hours)
        custodies = {c.agency_id: c for c in db.session.scalars(
            select(MetricCustody).where(MetricCustody.report_id == march["transferred"]))}
        sxd, hepco = custodies[agency_id("SXD")], custodies[agency_id("HEPCO")]
        # SXD held it 07:00-10:00 (working 07:30-10:00) and acknowledged after 1 h (working 0.5 h)
        assert (sxd.state, sxd.held_us, sxd.held_work_us, sxd.ack_us, sxd.ack_work_us, sxd.transfers_out) == (
            "transferred", 3 * H, int(2.5 * H), H, int(0.5 * H), 1)
        # HEPCO held it from Monday 10:00 to Tuesday 08:00: 22 h, working 1.5 + 3.5 + 0.5 = 5.5 h
        assert (hepco.state, hepco.held_us, hepco.held_work_us, hepco.ack_us) == ("resolved", 22 * H, int(5.5 * H),
                                                                                 22 * H)


def test_a_reopened_ticket_resumes_the_agencys_clock_and_the_residents_runs_on(app, march):
    with app.app_context():
        facts = db.session.get(MetricReport, march["reopened"])
        # resident: Monday 07:00 to the second resolution, Tuesday 10:00 (27 h; working 7.5 + 2.5)
        assert (facts.resolve_us, facts.resolve_work_us, facts.reopens, facts.rating) == (27 * H, 10 * H, 1, 1)
        hepco = db.session.get(MetricCustody, (march["reopened"], agency_id("HEPCO")))
        # HEPCO: 07:00-11:00 and 09:00-10:00 the next day = 5 h (working 3.5 + 1); started after 2 h
        assert (hepco.held_us, hepco.held_work_us, hepco.ack_us, hepco.ack_work_us) == (5 * H, int(4.5 * H), 2 * H,
                                                                                       int(1.5 * H))
        assert (hepco.state, hepco.reopens, hepco.rating) == ("resolved", 1, 1)
        assert db.session.get(MetricReport, march["duplicate"]).state == "duplicate"
        assert db.session.scalar(select(MetricCustody.report_id).where(
            MetricCustody.report_id == march["duplicate"])) is None


# --- the published figures ------------------------------------------------------------------------------------

def test_the_agency_leaderboard_by_hand(app, client, march):
    body = client.get("/api/v1/public/metrics", query_string={"group_by": "agency", **PERIOD}).get_json()
    hepco, sxd = group(body, "HEPCO"), group(body, "SXD")
    # HEPCO held three tickets: two resolved (after 22 h and 5 h in its hands), one still open
    assert (hepco["received"], hepco["resolved"], hepco["open"], hepco["open_overdue"],
            hepco["seriously_overdue"]) == (3, 2, 1, 1, 1)
    # Kaplan-Meier over 5 h, 22 h and one censored far later: S(5) = 2/3, S(22) = 1/3 -> median 22 h;
    # the open one keeps the curve above 0.1 -> no 90th percentile (not "22 h")
    assert (hepco["agency_median_hours"], hepco["agency_p90_hours"]) == (22.0, None)
    assert hepco["agency_median_working_hours"] == 5.5  # (4.5 h and 5.5 h in working hours)
    # the residents waited 25 h and 27 h for HEPCO's two fixes, and the open one is still waiting
    assert (hepco["median_hours"], hepco["p90_hours"], hepco["median_working_hours"]) == (27.0, None, 10.0)
    assert (hepco["on_time_rate"], hepco["reopen_rate"], hepco["transfer_rate"]) == (1.0, 0.5, 0.0)
    assert (hepco["satisfaction_mean"], hepco["satisfaction_count"], hepco["duplicates"]) == (1.0, 1, 1)
    # first responses: 2 h (started), 22 h (resolved without acknowledging), the open one never: median 22 h
    assert hepco["median_hours_to_acknowledge"] == 22.0
    # SXD passed one on and rejected one: the one it passed on is, for SXD, never resolved
    assert (sxd["received"], sxd["resolved"], sxd["rejected"], sxd["transfer_rate"]) == (2, 0, 1, 0.5)
    assert sxd["agency_median_hours"] is None and sxd["median_hours_to_acknowledge"] == 1.0
    total = body["total"]
    assert (total["received"], total["resolved"], total["open"], total["rejected"], total["duplicates"]) == (
        4, 2, 1, 1, 1)
    assert total["transfer_rate"] == 0.25 and total["median_hours"] == 27.0
    assert set(body["fields"]) == set(metrics.FIELDS) and body["fields"]["on_time_rate"]["vi"]


def test_bouncing_a_hard_ticket_on_never_improves_an_agencys_figure(app, client, committed):
    """Agency A resolves one easy ticket in 1 h and passes three hard ones on after 30 minutes."""
    with app.app_context():
        timed("uncollected_waste", at(2, 7), [("routed", at(2, 7), "SXD", {}), ("resolved", at(2, 8), "SXD", {})])
        for minute in range(3):
            timed("uncollected_waste", at(2, 7), [("routed", at(2, 7), "SXD", {}),
                                                  ("transferred", at(2, 7.5 + minute / 60), "HEPCO", {}),
                                                  ("resolved", at(3, 16), "HEPCO", {})])
        db.session.commit()
        metrics.refresh()
    sxd = group(client.get("/api/v1/public/metrics", query_string={"group_by": "agency", **PERIOD}).get_json(),
                "SXD")
    # counted as finished when passed on, SXD's median would be 0.5 h; it is "not reached" instead
    assert sxd["agency_median_hours"] is None and sxd["transfer_rate"] == 0.75 and sxd["resolved"] == 1


def test_every_grouping_and_the_csv(app, client, march):
    by = {g: client.get("/api/v1/public/metrics", query_string={"group_by": g, **PERIOD}).get_json()
          for g in metrics.GROUP_BYS}
    assert [g["key"] for g in by["month"]["groups"]] == ["2026-03"]
    assert group(by["month"], "2026-03")["received"] == 4
    assert {g["key"] for g in by["category"]["groups"]} == {"uncollected_waste", "road_damage"}
    assert group(by["category"], "road_damage")["rejected"] == 1
    assert [g["key"] for g in by["ward"]["groups"]]  # the Citadel's ward
    # the total is the same whatever the grouping
    assert len({str(body["total"]) for body in by.values()}) == 1
    one_day = client.get("/api/v1/public/metrics", query_string={"group_by": "agency", "from": "2026-03-03",
                                                                  "to": "2026-03-03"}).get_json()
    assert one_day["total"]["received"] == 1 and one_day["total"]["rejected"] == 1  # only Tuesday's report
    response = client.get("/api/v1/public/metrics.csv", query_string={"group_by": "agency", **PERIOD})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert [r["key"] for r in rows] == [g["key"] for g in by["agency"]["groups"]] + ["all"]
    hepco = next(r for r in rows if r["key"] == "HEPCO")
    assert hepco["agency_median_hours"] == "22.0" and hepco["agency_p90_hours"] == "" and hepco["received"] == "3"


def test_answers_are_cacheable_and_bad_parameters_are_422(client, db_session):
    first = client.get("/api/v1/public/metrics?group_by=category")
    assert first.status_code == 200 and first.headers["ETag"] and "max-age" in first.headers["Cache-Control"]
    again = client.get("/api/v1/public/metrics?group_by=category", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    for query, field in (("group_by=reporter", "group_by"), ("from=2026-13-01", "from"), ("to=yesterday", "to"),
                         ("from=2026-03-05&to=2026-03-01", "from"), ("from=1800-01-01", "from"),
                         ("from=2026-03-01T00:00", "from")):
        for path in ("/api/v1/public/metrics", "/api/v1/public/metrics.csv"):
            response = client.get(f"{path}?{query}")
            assert response.status_code == 422, (path, query)
            assert field in response.get_json()["error"]["fields"]


def test_nothing_personal_in_the_answers(client, db_session):
    answer = post_report(client, category="uncollected_waste", reporter_name="Nguyễn Thị Hoa",
                         reporter_phone="0905123456", reporter_email="hoa@example.vn").get_json()
    routing.route(answer["id"], detect_duplicates=False)
    db.session.flush()
    for path in ("/api/v1/public/metrics?group_by=agency", "/api/v1/public/metrics.csv?group_by=ward"):
        page = client.get(path).get_data(as_text=True)
        for secret in ("Nguyễn Thị Hoa", "0905123456", "hoa@example.vn", answer["tracking_token"]):
            assert secret not in page


# --- freshness: the refresh follows the events ----------------------------------------------------------------

def test_the_refresh_replays_only_reports_with_new_events_and_answers_follow(app, client, march):
    query = {"group_by": "agency", **PERIOD}
    before = client.get("/api/v1/public/metrics", query_string=query).get_json()
    with app.app_context():
        assert metrics.refresh().reports == 0  # nothing new
        db.session.add(ReportEvent(report_id=march["open"], type="resolved", actor_kind="officer", public=True,
                                   agency_id=agency_id("HEPCO"), created_at=at(3, 16)))
        db.session.commit()
        assert client.get("/api/v1/public/metrics", query_string=query).get_json() == before  # served as stored
        assert metrics.refresh().reports == 1
        assert metrics.refresh_results() >= 5  # the four defaults and this one
    after = group(client.get("/api/v1/public/metrics", query_string=query).get_json(), "HEPCO")
    assert (after["resolved"], after["open"], after["open_overdue"]) == (3, 0, 0)
    # resolved after 33 h in HEPCO's hands (Monday 07:00 to Tuesday 16:00): observations 5, 22, 33
    assert (after["agency_median_hours"], after["agency_p90_hours"]) == (22.0, 33.0)


def test_an_event_of_a_transaction_still_running_waits_for_the_next_refresh(app, march):
    """The cursor stops below the oldest running transaction, so an event that commits late is not skipped."""
    with app.app_context():
        engine = db.engine
        with engine.connect() as slow:
            slow.execute(text("INSERT INTO report_events (report_id, type, actor_kind, public, agency_id, created_at) "
                              "VALUES (:r, 'resolved', 'officer', true, :a, :t)"),
                         {"r": march["open"], "a": agency_id("HEPCO"), "t": at(3, 16)})
            # (meanwhile another report changes and commits)
            db.session.add(ReportEvent(report_id=march["rejected"], type="comment", actor_kind="officer",
                                       public=True, created_at=at(3, 9)))
            db.session.commit()
            slow_txid = slow.execute(text("SELECT (pg_current_xact_id()::text)::bigint")).scalar()
            assert metrics.refresh().events_through <= slow_txid
            assert db.session.get(MetricReport, march["open"]).state == "open"
            slow.commit()
        # (the next refresh takes it, unless a transaction older than it, e.g. autovacuum's, is still running)
        replayed = 0
        for _ in range(50):
            replayed += metrics.refresh().reports
            if metrics.events_through() > slow_txid:
                break
            time.sleep(0.1)
        assert replayed == 2  # the late one, and the commented one again
        db.session.expire_all()
        assert db.session.get(MetricReport, march["open"]).state == "resolved"


# --- verify: the published figures against the events alone --------------------------------------------------

def _real_history(app, client) -> None:
    """Reports through the real services and API: routed, acknowledged, transferred, resolved with a photo,
    rated (one reopened by a 1), rejected, a duplicate, one nobody could route."""
    with app.app_context():
        hepco, sxd, ioc = (staff_headers(u) for u in ("hepco.officer", "sxd.officer", "ioc"))
        db.session.commit()
        answers = [post_report(client, category=c, lat=str(CITADEL[0] + i * 0.004)).get_json()
                   for i, c in enumerate(("uncollected_waste", "uncollected_waste", "road_damage", "road_damage",
                                          "uncollected_waste"))]
        duplicate = post_report(client, category="uncollected_waste", lat=str(CITADEL[0] + 0.00005)).get_json()
        for answer in [*answers, duplicate]:
            routing.route(answer["id"])
        ids = [a["id"] for a in answers]

        fix_photos = iter(sorted((PHOTOS / "jpg/orientation").glob("landscape_*.jpg")))

        def act(report_id, headers, action, **fields):
            version = db.session.scalar(select(Report.version).where(Report.id == report_id))
            if action == "resolve":
                form = {"action": "resolve", "version": str(version), "note": "Đã xử lý",
                        "photos": [(io.BytesIO(next(fix_photos).read_bytes()), "x.jpg")]}
                body, boundary = multipart(form)
                response = client.post(f"/api/v1/reports/{report_id}/transitions", data=body, headers=headers,
                                       content_type=f"multipart/form-data; boundary={boundary}")
            else:
                response = client.post(f"/api/v1/reports/{report_id}/transitions", json={"action": action, **fields},
                                       headers={**headers, "If-Match": f'"{version}"'})
            assert response.status_code == 200, response.get_json()
            db.session.expire_all()

        act(ids[0], hepco, "acknowledge")
        act(ids[0], hepco, "resolve")
        act(ids[1], hepco, "start")
        act(ids[1], hepco, "resolve")
        assert client.post(f"/api/v1/reports/{ids[1]}/feedback", json={"rating": 1},
                           headers={"X-Tracking-Token": answers[1]["tracking_token"]}).status_code == 201
        act(ids[1], hepco, "resolve")
        assert client.post(f"/api/v1/reports/{ids[0]}/feedback", json={"rating": 5},
                           headers={"X-Tracking-Token": answers[0]["tracking_token"]}).status_code == 201
        act(ids[2], sxd, "transfer", agency="HEPCO", reason="Rác, không phải mặt đường")
        act(ids[2], hepco, "acknowledge")
        act(ids[3], sxd, "reject", reason="Không phải phản ánh")
        act(ids[4], ioc, "transfer", agency="SXD", reason="Điều phối")
        assert db.session.get(Report, duplicate["id"]).status == "duplicate"


def test_verify_finds_zero_differences_on_a_real_history_and_every_tampering(app, client, committed, march,
                                                                             process_env):
    _real_history(app, client)
    for g in metrics.GROUP_BYS:  # what people asked for: every grouping, all time and one period
        client.get("/api/v1/public/metrics", query_string={"group_by": g})
        client.get("/api/v1/public/metrics", query_string={"group_by": g, **PERIOD})
    with app.app_context():
        metrics.refresh()
        assert metrics.refresh_results() == 8
        checked, differences = metrics_verify.verify()
        assert (checked, differences) == (8, [])
        body = metrics.published(metrics.Period("agency", None, None))
        assert group(body, "HEPCO")["reopen_rate"] and group(body, "SXD")["transfer_rate"]
        assert body["total"]["duplicates"] == 2  # March's and today's
    result = flask_cli(["metrics", "verify"], process_env)
    assert result.returncode == 0 and "8 answer(s) checked against the events: 0 difference(s)" in result.stdout
    with app.app_context():
        # a published figure altered...
        db.session.execute(text("UPDATE metric_results SET body = jsonb_set(body, '{total,resolved}', '999') "
                                "WHERE key = 'category||'"))
        # ... and a fact altered, then published
        db.session.execute(text("UPDATE metric_reports SET state = 'resolved', resolve_us = 1, resolve_work_us = 1 "
                                "WHERE report_id = :id"), {"id": march["open"]})
        db.session.commit()
        db.session.execute(text("DELETE FROM metric_results WHERE key = 'ward|2026-03-02|2026-03-03'"))
        db.session.commit()
        metrics.published(metrics.Period("ward", MON.date(), MON.date() + timedelta(days=1)))
        _, differences = metrics_verify.verify()
        found = {(d.key, d.group, d.figure) for d in differences}
        assert ("category||", "all", "resolved") in found
        assert ("ward|2026-03-02|2026-03-03", "all", "open") in found
    result = flask_cli(["metrics", "verify", "--group-by", "category"], process_env)
    assert result.returncode == 1 and "published 999, events say" in result.stdout
    with app.app_context():  # a full rebuild from the events repairs it
        metrics.refresh(full=True)
        metrics.refresh_results()
        assert metrics_verify.verify()[1] == []


def test_the_scheduler_runs_the_refresh_as_a_job(app, committed, run_jobs, redis_conn):
    from hue_reports.scheduler import schedule, tick

    with app.app_context():
        march_history()
        db.session.commit()
        assert db.session.scalar(select(MetricReport.report_id).limit(1)) is None
    jobs = [p for p in schedule(app) if p.name == "metrics"]
    assert jobs and jobs[0].interval_s == app.config["METRICS_REFRESH_SECONDS"]
    assert tick(redis_conn, jobs)
    run_jobs()
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(MetricReport)) == 5
        stored = db.session.scalar(text("SELECT body FROM metric_results WHERE key = 'agency||'"))
        assert stored["total"]["received"] == 4


# --- Kaplan-Meier, and the working-time clock -----------------------------------------------------------------

@pytest.mark.parametrize("observations, expected", [
    ([(1, True), (2, True), (3, True), (4, True)], (2, 4)),      # no censoring: the ordinary quantiles
    ([(1, True), (2, True), (9, False), (9, False)], (2, None)),  # S(2) = 0.5: the median; p90 never reached
    ([(1, True), (2, True), (3, False), (3, False), (3, False)], (None, None)),  # 2 of 5 fixed: no median
    ([(5, False), (6, True)], (6, 6)),                           # the last at risk resolved: S drops to 0
    ([], (None, None)),
])
def test_kaplan_meier_quantiles(observations, expected):
    assert metrics_verify.quantiles(observations) == expected


def test_the_sql_and_the_python_kaplan_meier_agree_on_random_data(app, committed):
    """Many reports with random times: every curve's quantiles equal in SQL (the API) and Python (verify)."""
    import random

    rng = random.Random(7)
    with app.app_context():
        for _ in range(60):
            start = at(2, 7) + timedelta(minutes=rng.randrange(0, 600))
            steps = [("routed", start, rng.choice(("HEPCO", "SXD")), {})]
            roll = rng.random()
            if roll < 0.6:
                steps.append(("resolved", start + timedelta(minutes=rng.randrange(1, 3000)), None, {}))
            elif roll < 0.75:
                steps.append(("transferred", start + timedelta(minutes=rng.randrange(1, 300)), "CAY-XANH", {}))
            timed("uncollected_waste", start, steps, lat=CITADEL[0] + rng.random() * 0.01)
        db.session.commit()
        metrics.refresh()
        for g in metrics.GROUP_BYS:
            metrics.published(metrics.Period(g, None, None))
        checked, differences = metrics_verify.verify()
        assert checked == 4 and differences == []
        body = metrics.published(metrics.Period("agency", None, None))
        assert group(body, "HEPCO")["agency_median_hours"] is not None


def test_the_working_time_clock_is_a_running_sum_of_working_time():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from datetime import time

    cal = calendar.WorkCalendar(HCM, range(1, 6), [(time(7, 30), time(11, 30)), (time(13, 30), time(17))],
                                holidays="VN", days_off=[datetime(2026, 9, 1).date()])
    instants = st.datetimes(min_value=datetime(2019, 6, 1), max_value=datetime(2027, 12, 31),
                            timezones=st.just(timezone.utc))

    @settings(max_examples=300, deadline=None)
    @given(instants, instants)
    def check(a, b):
        difference = cal.working_us(b) - cal.working_us(a)
        assert abs(difference / H - cal.working_time_between(a, b)) < 1e-6
        assert (difference >= 0) == (b >= a) or difference == 0

    check()
    assert cal.working_us(datetime(2026, 3, 2, 8, tzinfo=HCM)) - cal.working_us(
        datetime(2026, 3, 2, 7, tzinfo=HCM)) == int(0.5 * H)
    assert Decimal(cal.working_us(datetime(2020, 1, 1, tzinfo=HCM))) == 0


# --- bounded work: the public cannot make the server compute without end -------------------------------------

def test_the_scheduler_keeps_refreshing_only_the_most_recent_answers(app, client, committed, monkeypatch):
    monkeypatch.setattr(metrics, "RESULTS_KEPT_MAX", 2)
    days = ["2026-01-0%d" % d for d in range(1, 6)]
    for day in days:  # five odd periods asked for, oldest first
        assert client.get("/api/v1/public/metrics", query_string={"group_by": "ward", "from": day}).status_code == 200
    with app.app_context():
        db.session.execute(text("UPDATE metric_results SET requested_at = now() - make_interval(secs => "
                                "10 - CAST(substr(key, 15, 1) AS int)) WHERE key LIKE 'ward|2026-01-0%'"))
        db.session.commit()
        assert metrics.refresh_results() == 4 + 2
        kept = set(db.session.scalars(text("SELECT key FROM metric_results")))
    assert kept == {"agency||", "category||", "ward||", "month||", "ward|2026-01-05|", "ward|2026-01-04|"}


def test_an_uncached_period_while_another_is_computed_answers_503_at_once(app, client, committed):
    with app.app_context(), db.engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": metrics.COMPUTE_LOCK})
        try:
            busy = client.get("/api/v1/public/metrics", query_string={"group_by": "month", "from": "2026-02-01"})
        finally:
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": metrics.COMPUTE_LOCK})
    assert busy.status_code == 503 and busy.get_json()["error"]["code"] == "busy" and busy.headers["Retry-After"]
    ok = client.get("/api/v1/public/metrics", query_string={"group_by": "month", "from": "2026-02-01"})
    assert ok.status_code == 200 and ok.get_json()["from"] == "2026-02-01"


# --- each API process's copy of the answers (PUBLIC_METRICS_CACHE_SECONDS) ------------------------------------

def statements_of(app) -> list[str]:
    """Every statement the app's primary engine runs from now on (its replica's, if any, are not in it)."""
    seen: list[str] = []
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda conn, cursor, statement, *_: seen.append(statement))
    return seen


def test_an_answer_is_served_from_memory_for_its_ttl_then_read_again(make_app, committed):
    app = make_app(PUBLIC_METRICS_CACHE_SECONDS=1)
    client = app.test_client()
    seen = statements_of(app)
    first = client.get("/api/v1/public/metrics?group_by=agency")  # (computed and stored: the first time asked)
    assert first.status_code == 200 and seen
    # a hit: the same answer and ETag, no statement at all (JSON, 304 and CSV)
    seen.clear()
    again = client.get("/api/v1/public/metrics?group_by=agency")
    assert (again.status_code, again.data, again.headers["ETag"]) == (200, first.data, first.headers["ETag"])
    assert client.get("/api/v1/public/metrics?group_by=agency",
                      headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    sheet = client.get("/api/v1/public/metrics.csv?group_by=agency")
    assert sheet.status_code == 200 and sheet.get_data(as_text=True).splitlines()[-1].startswith("all,")
    assert seen == []
    # another process's refresh changes the stored answer (and the period was last asked for two hours ago)
    with app.app_context():
        db.session.execute(text("UPDATE metric_results SET body = jsonb_set(body, '{total,received}', '999'), "
                                "requested_at = now() - interval '2 hours' WHERE key = 'agency||'"))
        db.session.commit()
        db.session.remove()
    seen.clear()
    assert client.get("/api/v1/public/metrics?group_by=agency").data == first.data  # (within the TTL: as it was)
    assert seen == []
    time.sleep(1.05)
    changed = client.get("/api/v1/public/metrics?group_by=agency", headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.get_json()["total"]["received"] == 999
    assert changed.headers["ETag"] != first.headers["ETag"] and seen  # (read again)
    # the miss noted that the period is still asked for (the scheduler keeps it refreshed)
    with app.app_context():
        assert db.session.scalar(text("SELECT requested_at > now() - interval '1 minute' FROM metric_results "
                                      "WHERE key = 'agency||'")) is True
        db.session.remove()
    seen.clear()
    csv_again = client.get("/api/v1/public/metrics.csv?group_by=agency").get_data(as_text=True)
    assert csv_again.splitlines()[-1].startswith("all,") and ",999," in csv_again.splitlines()[-1] and seen == []


def test_a_ttl_of_0_reads_the_stored_answer_on_every_request(make_app, committed):
    app = make_app(PUBLIC_METRICS_CACHE_SECONDS=0)
    client = app.test_client()
    first = client.get("/api/v1/public/metrics?group_by=ward")
    assert first.status_code == 200
    seen = statements_of(app)
    for _ in range(2):
        assert client.get("/api/v1/public/metrics?group_by=ward",
                          headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert sum("FROM metric_results" in s for s in seen) == 2
    with app.app_context():
        db.session.execute(text("UPDATE metric_results SET body = jsonb_set(body, '{total,received}', '998') "
                                "WHERE key = 'ward||'"))
        db.session.commit()
        assert len(metrics.served_answers()) == 0
        db.session.remove()
    assert client.get("/api/v1/public/metrics?group_by=ward").get_json()["total"]["received"] == 998


def test_a_refresh_in_the_process_is_served_at_once(make_app, committed):
    app = make_app(PUBLIC_METRICS_CACHE_SECONDS=30)
    client = app.test_client()
    assert client.get("/api/v1/public/metrics?group_by=month").status_code == 200
    with app.app_context():
        assert len(metrics.served_answers()) == 1
        metrics.refresh_results()
        assert len(metrics.served_answers()) == 0
        db.session.remove()


def test_threads_share_the_copy(make_app, committed):
    """As gunicorn's gthread workers do: threads asking at once each get the whole answer, and the database is
    read at most once per thread that missed before the first read was kept."""
    app = make_app(PUBLIC_METRICS_CACHE_SECONDS=30, DATABASE_POOL_SIZE=8)
    assert app.test_client().get("/api/v1/public/metrics?group_by=category").status_code == 200  # (stored)
    with app.app_context():
        metrics.served_answers().clear()
    seen = statements_of(app)
    bodies: list[bytes] = []
    start = threading.Barrier(8)

    def ask():
        client = app.test_client()
        start.wait()
        for _ in range(25):
            response = client.get("/api/v1/public/metrics?group_by=category")
            assert response.status_code == 200
            bodies.append(response.data)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(bodies) == 200 and len(set(bodies)) == 1
    assert 1 <= sum("FROM metric_results" in s for s in seen) <= 8


def test_the_copy_holds_a_bounded_number_of_answers_and_keeps_the_freshest_read():
    answers = metrics.ServedAnswers(2)

    def answer(text_: str, read_at: float) -> metrics.Served:
        return metrics.Served(text_, text_, None, read_at)

    now = time.monotonic()
    answers.put("a", answer("a", now))
    answers.put("b", answer("b", now))
    assert answers.get("a", 60).text == "a"  # (now the most recently served)
    answers.put("c", answer("c", now))
    assert len(answers) == 2 and answers.get("b", 60) is None and answers.get("a", 60).text == "a"
    answers.put("a", answer("older", now - 1))  # a slower thread's older read does not replace it
    assert answers.get("a", 60).text == "a"
    assert answers.get("a", 0.5) is not None and answers.get("c", 60).text == "c"
    answers.put("d", answer("d", now - 10))
    assert answers.get("d", 5) is None  # read longer ago than the TTL


@pytest.mark.parametrize("value", ["-1", "31", "nan", "ten"])
def test_the_ttl_is_within_the_answers_max_age(value):
    from hue_reports.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="PUBLIC_METRICS_CACHE_SECONDS"):
        load_config({"HUE_ENV": "testing", "PUBLIC_METRICS_CACHE_SECONDS": value})
    assert load_config({"HUE_ENV": "testing"})["PUBLIC_METRICS_CACHE_SECONDS"] == 10


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 20), st.booleans()), max_size=60))
def test_the_numpy_curves_match_the_plain_definition(observations):
    """km_quantiles (numpy, what the API publishes) against metrics_verify.quantiles (plain Python, the
    definition), per group, with ties, censored ties and groups without any event."""
    import numpy as np

    g = np.array([o[0] for o in observations], dtype=np.int32)
    t = np.array([o[1] for o in observations], dtype=np.int64)
    ev = np.array([o[2] for o in observations], dtype=bool)
    got = metrics.km_quantiles(g, t, ev)
    for key in set(g.tolist()):
        expected = metrics_verify.quantiles([(o[1], o[2]) for o in observations if o[0] == key])
        assert got.get(key, (None, None)) == expected, key


def test_a_past_day_made_a_day_off_replays_the_facts_with_the_new_calendar(app, march):
    """The facts hold readings of the working-time clock: a calendar change on a past day resets them, and
    the next refresh replays every report with the new calendar (verify agrees)."""
    from hue_reports.models import CalendarDay, City, MetricState
    from hue_reports.services import audit

    with app.app_context():
        assert db.session.get(MetricReport, march["transferred"]).resolve_work_us == 8 * H
        city = db.session.scalars(select(City)).first()
        kept = [calendar.Swap(d.day, d.kind, d.name, d.name_en) for d in db.session.scalars(
            select(CalendarDay).where(CalendarDay.day >= datetime(2026, 1, 1).date(),
                                      CalendarDay.day <= datetime(2026, 12, 31).date()))]
        day_off = calendar.Swap(MON.date(), "day_off", "Nghỉ bù thử nghiệm", "Test day off")
        actor = audit.Actor("test", via="cli")
        try:
            calendar.save_year(city, 2026, [*kept, day_off], actor=actor, replace=True)
            assert db.session.get(MetricState, 1).events_through == 0
            metrics.refresh()
            # Monday is no longer a working day: only Tuesday 07:30-08:00 counts
            assert db.session.get(MetricReport, march["transferred"]).resolve_work_us == int(0.5 * H)
            checked, differences = metrics_verify.verify([metrics.Period("agency", MON.date(), MON.date())])
            assert checked and not differences
            # a change of a future year's days touches no past reading: the facts stay
            through = db.session.get(MetricState, 1).events_through
            calendar.save_year(city, 2030, [calendar.Swap(datetime(2030, 5, 6).date(), "day_off", "Nghỉ", "Off")],
                               actor=actor, replace=True)
            assert db.session.get(MetricState, 1).events_through == through > 0
        finally:  # (the calendar as the seed left it, for the other tests)
            calendar.save_year(city, 2030, [], actor=actor, replace=True)
            calendar.save_year(city, 2026, kept, actor=actor, replace=True)

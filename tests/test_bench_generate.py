"""The benchmarks' generator (bench/generate.py) on a small city history of its own database: are the
histories ones the application could have written, do they follow the fitted parameters, and do the
metrics computed from them survive `metrics verify`?"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from datetime import datetime, timezone
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import text

from hue_reports.extensions import db
from hue_reports.services import metrics, metrics_verify, workflow
from hue_reports.services.calendar import city_calendar
from tests.support import ROOT, close_app, create_database, drop_database, migrate_and_seed, server_url

sys.path.insert(0, str(ROOT / "bench"))
import generate  # noqa: E402

N = 4000
FIT = json.loads(generate.FIT.read_text(encoding="utf-8"))
# Every (from, to, event) the application writes: the workflow's table, routing, and the resident's rating.
ALLOWED = {(r.from_status, r.to_status, r.event) for r in workflow.RULES} | {
    ("submitted", "routed", "routed"), ("submitted", "duplicate", "duplicate"),
    ("resolved", "closed", "closed"), ("resolved", "in_progress", "reopened")}
NO_STATUS = {"feedback", "supported", "overdue", "comment"}


@pytest.fixture(scope="module")
def generated(app_config):
    """An application on a fresh database, migrated, seeded, with N generated reports."""
    from hue_reports import create_app

    name = create_database("hue_gen")
    app = create_app({**app_config, "DATABASE_URL": server_url(name)})
    migrate_and_seed(app)
    now = datetime.now(timezone.utc)
    made = generate.generate(server_url(name), N, now=now, seed=11)
    yield app, made, now
    close_app(app)
    drop_database(name)


def histories() -> dict[int, list]:
    rows = db.session.execute(text(
        "SELECT report_id, id, type, from_status, to_status, created_at, agency_id, data FROM report_events "
        "ORDER BY report_id, id")).all()
    out: dict[int, list] = defaultdict(list)
    for row in rows:
        out[row.report_id].append(row)
    return out


def test_it_makes_what_it_says(generated):
    app, made, _ = generated
    with app.app_context():
        assert db.session.scalar(text("SELECT count(*) FROM reports")) == N == made.reports
        assert db.session.scalar(text("SELECT count(*) FROM report_events")) == made.events
        assert db.session.scalar(text("SELECT count(*) FROM feedback")) == made.feedback
        # every point in its ward (within the polygons' simplification), codes in the city's series
        outside = db.session.scalar(text(
            "SELECT count(*) FROM reports r JOIN admin_areas a ON a.id = r.ward_id "
            "WHERE NOT ST_DWithin(a.geom::geography, r.location::geography, 100)"))
        assert outside == 0
        codes = text("SELECT count(*) FROM reports WHERE public_code !~ '^HUE-20[0-9]{2}-[0-9]{6}$'")
        assert db.session.scalar(codes) == 0
        # the central wards are the dense ones: the most reports per km2 in a small ward, not a big commune
        densest = db.session.execute(text(
            "SELECT a.level, a.area_km2 FROM reports r JOIN admin_areas a ON a.id = r.ward_id "
            "GROUP BY a.id ORDER BY count(*) / a.area_km2 DESC LIMIT 1")).one()
        assert densest.level == "ward" and densest.area_km2 < 30


def test_every_history_is_one_the_application_could_have_written(generated):
    app, _, _ = generated
    with app.app_context():
        reports = {r.id: r for r in db.session.execute(text(
            "SELECT id, status, agency_id, submitted_at, resolved_at, closed_at, due_at, version, supporters, "
            "duplicate_of_id, category_id, location FROM reports"))}
        ratings = dict(db.session.execute(text("SELECT report_id, rating FROM feedback")).all())
        seen = Counter()
        for report_id, events in histories().items():
            report = reports[report_id]
            assert events[0].type == "submitted" and events[0].to_status == "submitted"
            assert events[0].created_at == report.submitted_at
            status, versions = "submitted", 1
            for previous, event in zip(events, events[1:], strict=False):
                assert event.created_at >= previous.created_at, (report_id, event.type)
            for event in events[1:]:
                seen[event.type] += 1
                if event.type in NO_STATUS:
                    assert event.from_status is None and event.to_status is None
                    continue
                assert (event.from_status, event.to_status, event.type) in ALLOWED, (report_id, event.type)
                assert event.from_status == status, (report_id, event.type, status)
                status = event.to_status
                versions += 1
            assert status == report.status, report_id
            assert versions == report.version, report_id
            if status not in ("duplicate", "submitted"):
                holder = next(e.agency_id for e in reversed(events) if e.type in ("routed", "transferred"))
                assert report.agency_id == holder
            rated = [e.data["rating"] for e in events if e.type == "feedback"]
            assert rated == ([ratings[report_id]] if report_id in ratings else [])
            if status == "closed":
                assert report.closed_at == events[-1].created_at
            if status == "resolved":
                assert report.resolved_at == events[-1].created_at
        # every kind of life happens
        for kind in ("routed", "transferred", "acknowledged", "started", "resolved", "rejected", "feedback",
                     "closed", "reopened", "duplicate", "supported", "overdue"):
            assert seen[kind] > 0, kind
        # a duplicate joined an open report of its category, within 50 m, in the 7 days before it
        bad = db.session.scalar(text("""
            SELECT count(*) FROM reports d JOIN reports o ON o.id = d.duplicate_of_id
            WHERE d.status = 'duplicate' AND (o.category_id <> d.category_id OR o.submitted_at > d.submitted_at
               OR d.submitted_at - o.submitted_at > interval '7 days'
               OR NOT ST_DWithin(o.location::geography, d.location::geography, 50)
               OR EXISTS (SELECT 1 FROM report_events e WHERE e.report_id = o.id
                          AND e.type IN ('resolved', 'rejected') AND e.created_at < d.submitted_at))"""))
        assert bad == 0
        supporters = db.session.scalar(text(
            "SELECT count(*) FROM reports o WHERE o.supporters <> "
            "(SELECT count(*) FROM reports d WHERE d.duplicate_of_id = o.id)"))
        assert supporters == 0


def test_deadlines_are_the_city_calendars(generated):
    app, _, _ = generated
    with app.app_context():
        cal = city_calendar()
        rows = db.session.execute(text(
            "SELECT e.data FROM report_events e WHERE e.type IN ('routed', 'reopened') ORDER BY e.id LIMIT 300"))
        for (data,) in rows:
            due = cal.add_working_time(datetime.fromisoformat(data["due_from"]), Decimal(str(data["sla_hours"])))
            assert datetime.fromisoformat(data["due_at"]) == due


def test_resolve_times_follow_the_fitted_parameters(generated):
    """Per kind of work: the share resolved on time is the fitted one, and the late ones' times are the
    upper part of the fitted quantile table (probability-integral transform uniform)."""
    app, _, now = generated
    with app.app_context():
        rows = db.session.execute(text("""
            SELECT g.code AS grp, CAST(extract(epoch FROM (:now - r.submitted_at)) * 1e6 AS float8) AS seen,
                   CAST(extract(epoch FROM (res.created_at - r.submitted_at)) * 1e6 AS float8) AS d,
                   CAST(extract(epoch FROM (CAST(rt.data->>'due_at' AS timestamptz) - r.submitted_at)) * 1e6
                        AS float8) AS w
            FROM reports r JOIN categories c ON c.id = r.category_id JOIN category_groups g ON g.id = c.group_id
            JOIN report_events rt ON rt.report_id = r.id AND rt.type = 'routed'
            JOIN LATERAL (SELECT created_at FROM report_events e WHERE e.report_id = r.id AND e.type = 'resolved'
                          ORDER BY e.id LIMIT 1) res ON true"""), {"now": now}).all()
    assert len(rows) > N * 0.7
    # (reports a year old or more: the late ones that are still open are too few to bias the share)
    old = [r for r in rows if r.seen > 365 * 24 * 3600e6]
    expected = sum(FIT["groups"][r.grp]["on_time"] for r in old) / len(old)
    on_time = sum(r.d <= r.w for r in old) / len(old)
    assert len(old) > 1000
    assert abs(on_time - expected) < 3.5 * (expected * (1 - expected) / len(old)) ** 0.5  # binomial
    pit, below = [], 0
    for r in rows:
        group = FIT["groups"][r.grp]
        table = generate.Durations(FIT["probs"], group["quantiles"])
        p, f = group["on_time"], float(table.cdf(np.array([r.d]))[0])
        low = max(p, float(table.cdf(np.array([r.w]))[0]))  # (below that, late draws are moved past the deadline)
        # (a time longer than the report has existed is still open: the ones seen are those below F(seen))
        high = float(table.cdf(np.array([r.seen]))[0])
        if r.d > r.w + 61e6 and f < low - 1e-6:
            below += 1  # a late one from the table's part below its on-time share
        if r.d > r.w + 61e6 and f > low + 1e-9 and high > low + 1e-3:  # (not the ones moved past it)
            pit.append((f - low) / (high - low))
    assert below == 0
    assert len(pit) > 100
    values = np.sort(pit)
    ks = np.max(np.abs(values - (np.arange(1, len(values) + 1) / len(values))))
    assert ks < 1.63 / len(values) ** 0.5 + 0.02  # Kolmogorov-Smirnov at 1%, plus the table's interpolation
    # the on-time ones are within their deadline, the late ones after it
    assert all(r.d <= r.w for r in rows if r.d <= r.w)


def test_some_reports_are_open_and_overdue_with_their_overdue_events(generated):
    app, made, now = generated
    with app.app_context():
        overdue = db.session.execute(text(
            "SELECT id FROM reports WHERE status IN ('routed', 'acknowledged', 'in_progress') AND due_at < :now"),
            {"now": now}).scalars().all()
        assert len(overdue) == made.open_overdue > N * 0.01
        flagged = db.session.scalar(text(
            "SELECT count(DISTINCT report_id) FROM report_events WHERE type = 'overdue' AND report_id = ANY(:ids)"),
            {"ids": overdue})
        assert flagged >= len(overdue) * 0.95  # (the last few minutes' deadlines are not swept yet)


def test_metrics_verify_finds_no_difference(generated):
    app, _, _ = generated
    with app.app_context():
        stats = metrics.refresh(full=True)
        assert stats.reports == N
        metrics.refresh_results()
        checked, differences = metrics_verify.verify()
        assert checked == len(metrics.GROUP_BYS)
        assert differences == []
        total = metrics.published(metrics.Period("agency", None, None))["total"]
        assert 0.7 < total["on_time_rate"] < 0.92
        assert total["open_overdue"] > 0 and total["satisfaction_count"] > 0 and total["reopen_rate"] > 0

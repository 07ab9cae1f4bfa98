"""Demo reports for `make run` (`flask seed --demo`): a few months of history so the map and the
accountability page show something. Never in production (the CLI refuses --demo there).

Reports are placed at random points of the city, routed by the real routing rules with deadlines on the
real calendar, and given a plausible life as events with past timestamps (acknowledged, started, resolved,
rated, closed; some transferred, rejected, reopened, or still open). They have no photos and their codes
start with DEMO-.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from geoalchemy2 import WKTElement
from sqlalchemy import func, select, text

from ..extensions import db
from ..models import SRID, AdminArea, Agency, Category, Feedback, Report, ReportEvent
from . import calendar, routing

# `points(p, n)`: :n random points inside the city's outline (rejection sampling in its bounding box),
# numbered. A WITH clause to continue (", more AS (...)"); also used by the benchmarks' generators.
RANDOM_CITY_POINTS = """
WITH city AS (SELECT a.geom, ST_Envelope(a.geom) AS box FROM cities c JOIN admin_areas a ON a.id = c.area_id),
candidates AS (
    SELECT ST_SetSRID(ST_MakePoint(ST_XMin(box) + random() * (ST_XMax(box) - ST_XMin(box)),
                                   ST_YMin(box) + random() * (ST_YMax(box) - ST_YMin(box))), 4326) AS p
    FROM city, generate_series(1, %(n)s * 8)
), points AS (
    SELECT p, row_number() OVER () AS n FROM candidates, city WHERE ST_Covers(city.geom, p) LIMIT %(n)s
)"""

DESCRIPTIONS = ("Phản ánh minh hoạ (demo report)", "Dữ liệu mẫu để xem bản đồ (sample data for the map)")


def create_reports(n: int = 400, days: int = 120, seed: int = 2026) -> int:
    """Create `n` demo reports submitted over the last `days`; returns how many. Commits."""
    rng = random.Random(seed)
    cal = calendar.city_calendar()
    now = datetime.now(timezone.utc)
    points = db.session.execute(text(RANDOM_CITY_POINTS.replace("%(n)s", ":n") +
                                     " SELECT ST_X(p), ST_Y(p) FROM points"), {"n": n}).all()
    categories = db.session.scalars(select(Category).where(Category.active)).all()
    agencies = db.session.scalars(select(Agency.id).where(Agency.active, Agency.kind != "dispatcher")).all()
    made = 0
    for lon, lat in points:
        category = rng.choice(categories)
        submitted = now - timedelta(days=days * rng.random() ** 1.5)
        where = func.ST_SetSRID(func.ST_MakePoint(lon, lat), SRID)
        ward_id = db.session.scalar(select(AdminArea.id).where(
            AdminArea.valid_to.is_(None), AdminArea.tier == 2, func.ST_Covers(AdminArea.geom, where)).limit(1))
        rule = db.session.execute(routing.RULE_SQL, {"area_id": ward_id, "category_id": category.id}).first()
        if ward_id is None or rule is None:
            continue
        made += 1
        report = Report(public_code=f"DEMO-{made:06d}", category_id=category.id,
                        description=rng.choice(DESCRIPTIONS),
                        location=WKTElement(f"POINT({lon!r} {lat!r})", srid=SRID), location_source="client",
                        ward_id=ward_id, status="submitted", submitted_at=submitted, channel="app")
        db.session.add(report)
        db.session.flush()
        _live(report, rule.agency_id, Decimal(category.sla_hours), agencies, cal, rng, now)
    db.session.commit()
    return made


def _live(report: Report, agency_id: int, sla: Decimal, agencies: list[int], cal: calendar.WorkCalendar,
          rng: random.Random, now: datetime) -> None:
    """Give `report` a past: its events (with their times and the agency holding it) and the matching row."""
    events: list[tuple[str, datetime, dict[str, Any], int | None]] = [("submitted", report.submitted_at, {}, None)]
    t = report.submitted_at
    report.due_at = cal.add_working_time(t, sla)
    deadline = {"due_at": report.due_at.isoformat(), "sla_hours": float(sla), "due_from": t.isoformat()}

    def step(kind: str, hours: float, data: dict[str, Any] | None = None) -> bool:
        nonlocal t
        at = t + timedelta(hours=hours)
        if at >= now:
            return False
        t = at
        events.append((kind, at, data or {}, report.agency_id))
        return True

    # How long this agency takes: around the SLA in clock hours (working hours are about a third of them).
    pace = float(sla) * 3 * rng.lognormvariate(0, 0.8)
    report.agency_id = agency_id
    if not step("routed", rng.uniform(0.05, 0.5), deadline):
        report.agency_id = None
        return _write(report, events)
    report.status, report.routed_at = "routed", t
    if rng.random() < 0.08:
        report.agency_id = rng.choice([a for a in agencies if a != agency_id] or [agency_id])
        if not step("transferred", pace * rng.uniform(0.05, 0.3)):
            report.agency_id = agency_id
    if rng.random() < 0.04:
        if step("rejected", pace * 0.2):
            report.status = "rejected"
        return _write(report, events)
    if not step("acknowledged", pace * rng.uniform(0.02, 0.2)):
        return _write(report, events)
    report.status, report.acknowledged_at = "acknowledged", t
    if not step("started", pace * rng.uniform(0.05, 0.3)):
        return _write(report, events)
    report.status = "in_progress"
    if not step("resolved", pace * rng.uniform(0.3, 1.2)):
        return _write(report, events)
    report.status, report.resolved_at = "resolved", t
    rating = rng.choices((1, 2, 3, 4, 5), (5, 5, 15, 35, 40))[0]
    if rng.random() < 0.5 and step("feedback", rng.uniform(2, 48), {"rating": rating}):
        db.session.add(Feedback(report_id=report.id, rating=rating, created_at=t))
        if rating <= 2:
            report.due_at = cal.add_working_time(t, sla)
            reopened = {"reason": "unsatisfied", "rating": rating, "due_at": report.due_at.isoformat(),
                        "sla_hours": float(sla), "due_from": t.isoformat()}
            events.append(("reopened", t, reopened, report.agency_id))
            report.status, report.resolved_at = "in_progress", None
            if step("resolved", pace * rng.uniform(0.2, 0.6)):
                report.status, report.resolved_at = "resolved", t
        else:
            events.append(("closed", t, {"reason": "rated", "rating": rating}, report.agency_id))
            report.status, report.closed_at = "closed", t
    return _write(report, events)


ACTORS = {"submitted": "resident", "feedback": "resident", "routed": "system"}


def _write(report: Report, events: list[tuple[str, datetime, dict[str, Any], int | None]]) -> None:
    for kind, at, data, agency_id in events:
        db.session.add(ReportEvent(report_id=report.id, type=kind, actor_kind=ACTORS.get(kind, "officer"),
                                   public=True, agency_id=agency_id, data=data, created_at=at))
    report.version = len(events)

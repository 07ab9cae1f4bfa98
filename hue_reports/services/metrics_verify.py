"""`flask metrics verify`: the published figures, recomputed from the events alone, compared.

It reads no rollup: every report's events (of the transactions the answer covers) are replayed into
facts (`metrics.replay`), and the counts and Kaplan-Meier quantiles are computed here in Python, not
in SQL, then formatted by the same code as the API's answers. Any difference is reported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text

from ..extensions import db
from ..models import MetricResult
from . import calendar, metrics
from .metrics import KM_EPSILON, NEVER, Facts, Period, us

ALL_DIMS_SQL = text("""
SELECT r.id, r.category_id, r.ward_id, r.submitted_at, c.sla_hours
FROM reports r JOIN categories c ON c.id = r.category_id
""")
ALL_EVENTS_SQL = text("""
SELECT report_id, id, type, created_at, agency_id, data FROM report_events
WHERE txid < :through ORDER BY report_id, id
""")


@dataclass(frozen=True)
class Difference:
    key: str  # the answer (group_by|from|to)
    group: str | None
    figure: str
    published: Any
    recomputed: Any

    def __str__(self) -> str:
        return f"{self.key} [{self.group}] {self.figure}: published {self.published!r}, events say {self.recomputed!r}"


def replay_all(through: int, cal: calendar.WorkCalendar) -> list[Facts]:
    dims = {row.id: metrics.Dims(row.id, row.category_id, row.ward_id, row.submitted_at, row.sla_hours)
            for row in db.session.execute(ALL_DIMS_SQL)}
    facts: list[Facts] = []
    current: int | None = None
    events: list[metrics.Event] = []
    for row in db.session.execute(ALL_EVENTS_SQL, {"through": through}).yield_per(10_000):
        if row.report_id != current:
            if current is not None and current in dims:
                facts.append(metrics.replay(dims[current], events, cal))
            current, events = row.report_id, []
        events.append(metrics.Event(row.id, row.type, row.created_at, row.agency_id, row.data or {}))
    if current is not None and current in dims:
        facts.append(metrics.replay(dims[current], events, cal))
    return facts


def _report_key(group_by: str, f: Facts) -> int | None:
    if group_by == "total":
        return metrics.TOTAL
    if group_by == "month":
        return f.month.year * 100 + f.month.month
    return {"agency": f.agency_id, "category": f.category_id, "ward": f.ward_id}[group_by]


def quantiles(observations: list[tuple[int, bool]]) -> tuple[int | None, int | None]:
    """Kaplan-Meier median and 90th percentile of (time, resolved) observations; None if not reached."""
    tallies: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for t, event in observations:
        tallies[t][0] += int(event)
        tallies[t][1] += 1
    at_risk, survival, gone = len(observations), 1.0, False
    q50 = q90 = None
    for t in sorted(tallies):
        d, c = tallies[t]
        if d:
            if d == at_risk:
                gone = True
            else:
                survival *= 1 - d / at_risk
            if q50 is None and (gone or survival <= 0.5 + KM_EPSILON):
                q50 = t
            if q90 is None and (gone or survival <= 0.1 + KM_EPSILON):
                q90 = t
        at_risk -= c
    return q50, q90


def aggregate(facts: list[Facts], period: Period, as_of: datetime, cal: calendar.WorkCalendar):
    """The same aggregates as metrics.aggregate, from replayed facts, in Python."""
    start, end = metrics._bounds(period, cal.tz)
    wt = cal.working_us(as_of)
    report_counts: dict[int | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    custody_counts: dict[int | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    observations: dict[tuple[str, int | None], list[tuple[int, bool]]] = defaultdict(list)

    def overdue(f: Facts) -> tuple[bool, bool]:
        late = f.due_at is not None and f.due_at < as_of
        serious = f.due_from_w is not None and f.sla_us is not None and wt - f.due_from_w >= 3 * f.sla_us
        return late, serious

    for f in facts:
        if (start and f.submitted_at < start) or (end and f.submitted_at >= end):
            continue
        key = _report_key(period.group_by, f)
        counts = report_counts[key]
        late, serious = overdue(f)
        counts["received"] += f.state != "duplicate"
        counts["resolved"] += f.state == "resolved"
        counts["open"] += f.state == "open"
        counts["open_overdue"] += f.state == "open" and late
        counts["seriously_overdue"] += f.state == "open" and serious
        counts["rejected"] += f.state == "rejected"
        counts["duplicates"] += f.state == "duplicate"
        counts["on_time"] += f.state == "resolved" and bool(f.on_time)
        counts["transferred"] += f.state != "duplicate" and f.transfers > 0
        counts["reopened"] += f.reopens > 0
        counts["ever_resolved"] += f.state == "resolved" or f.reopens > 0
        if f.rating is not None:
            counts["rated"] += 1
            counts["rating_sum"] += f.rating
        if f.state in ("open", "resolved"):
            resolved = f.state == "resolved"
            observations["resident", key].append((f.resolve_us if resolved else us(as_of - f.submitted_at), resolved))
            observations["resident_work", key].append((f.resolve_work_us if resolved else wt - f.submitted_w,
                                                       resolved))
        for c in f.custodies.values():
            ckey = c.agency_id if period.group_by == "agency" else key
            cc = custody_counts[ckey]
            cc["received"] += 1
            cc["resolved"] += c.state == "resolved"
            cc["open"] += c.state == "open"
            cc["open_overdue"] += c.state == "open" and late
            cc["seriously_overdue"] += c.state == "open" and serious
            cc["rejected"] += c.state == "rejected"
            cc["on_time"] += c.state == "resolved" and bool(c.on_time)
            cc["transferred"] += c.transfers_out > 0
            cc["reopened"] += c.reopens > 0
            cc["ever_resolved"] += c.state == "resolved" or c.reopens > 0
            if c.rating is not None:
                cc["rated"] += 1
                cc["rating_sum"] += c.rating
            running = us(as_of - c.open_since) if c.open_since is not None else 0
            running_work = wt - c.open_since_w if c.open_since_w is not None else 0
            if c.state != "rejected":
                done = c.state == "resolved"
                wall = c.held_us if done else c.held_us + running if c.state == "open" else NEVER
                work = c.held_work_us if done else c.held_work_us + running_work if c.state == "open" else NEVER
                observations["agency", ckey].append((wall, done))
                observations["agency_work", ckey].append((work, done))
            acked = c.ack_us is not None
            observations["ack", ckey].append((c.ack_us if acked else c.held_us + running, acked))
            observations["ack_work", ckey].append((c.ack_work_us if acked else c.held_work_us + running_work,
                                                   c.ack_work_us is not None))
    curves = {name: quantiles(obs) for name, obs in observations.items()}
    return ({k: dict(v) for k, v in report_counts.items()}, {k: dict(v) for k, v in custody_counts.items()},
            curves)


def aggregates(facts: list[Facts], period: Period, as_of: datetime, cal: calendar.WorkCalendar):
    """(groups, total), as metrics.aggregate."""
    return (aggregate(facts, period, as_of, cal), aggregate(facts, Period("total", period.start, period.end),
                                                            as_of, cal))


def recompute(body: dict[str, Any], facts: list[Facts], cal: calendar.WorkCalendar) -> dict[str, Any]:
    period = Period(body["group_by"], *(datetime.fromisoformat(body[k]).date() if body[k] else None
                                       for k in ("from", "to")))
    as_of = datetime.fromisoformat(body["as_of"])
    groups, total = aggregates(facts, period, as_of, cal)
    return metrics.assemble(period, as_of, body["events_through"], groups, total)


def compare(key: str, published: dict[str, Any], recomputed: dict[str, Any]) -> list[Difference]:
    found: list[Difference] = []
    mine = {g["key"]: g for g in recomputed["groups"]}
    theirs = {g["key"]: g for g in published["groups"]}
    for group in sorted(set(mine) | set(theirs), key=lambda k: (k is None, k or "")):
        a, b = theirs.get(group), mine.get(group)
        if a is None or b is None:
            found.append(Difference(key, group, "(group)", a is not None, b is not None))
            continue
        found += [Difference(key, group, name, a.get(name), b.get(name))
                  for name in metrics.FIELDS if a.get(name) != b.get(name)]
    found += [Difference(key, "all", name, published["total"].get(name), recomputed["total"].get(name))
              for name in metrics.FIELDS if published["total"].get(name) != recomputed["total"].get(name)]
    return found


def verify(periods: list[Period] | None = None) -> tuple[int, list[Difference]]:
    """Compare the published answers (these periods, else every stored one) with the events.
    Returns (answers checked, differences)."""
    if periods:
        for period in periods:
            metrics.published(period)
        keys = [p.key for p in periods]
        rows = db.session.scalars(select(MetricResult).where(MetricResult.key.in_(keys))).all()
    else:
        rows = db.session.scalars(select(MetricResult)).all()
    cal = calendar.city_calendar()
    replayed: dict[int, list[Facts]] = {}
    differences: list[Difference] = []
    for row in rows:
        through = row.body["events_through"]
        if through not in replayed:
            replayed[through] = replay_all(through, cal)
        differences += compare(row.key, row.body, recompute(row.body, replayed[through], cal))
    return len(rows), differences

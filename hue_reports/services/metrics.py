"""Accountability metrics: how long each agency takes, derived from `report_events`.

Three layers, each recomputable from the one before:

1. **Events** (`report_events`, append-only): the truth.
2. **Facts** (`metric_reports`, one row per report; `metric_custodies`, one row per report and agency
   that held it). `replay` turns one report's events into its facts; `refresh` replays the reports
   whose events arrived since the last refresh (a cursor on the events' transaction ids, so a late
   commit is never skipped) and is run by the scheduler every METRICS_REFRESH_SECONDS.
3. **Answers** (`metric_results`): `compute` aggregates the facts (the counts in SQL, the curves in numpy)
   for one grouping and period, as of an instant; the answer is stored and served until the next refresh recomputes it
   (each API process keeping the answers it served in memory for PUBLIC_METRICS_CACHE_SECONDS: `served`).

The two clocks (README, "Methodology"):

* the resident's clock runs from submission to the last resolution, whatever happens in between;
  a report still open is censored at `as_of` (Kaplan-Meier), so leaving hard tickets open makes a
  median longer, never shorter;
* an agency's clock runs only while the ticket is in its hands: from each routing or transfer to it
  (or reopening) until it resolved, rejected or transferred it. A ticket it passed on counts for it as
  never resolved (it stays in its curve's risk set), so bouncing hard tickets cannot lower its figures.

Durations are integer microseconds; working durations are differences of readings of the city's
working-time clock (`WorkCalendar.working_us`), stored with the facts.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from time import monotonic
from typing import Any

import flask
import numpy as np
from sqlalchemy import delete, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.http import generate_etag
from zoneinfo import ZoneInfo

from ..errors import ApiError
from ..extensions import db, try_xact_lock
from ..models import AdminArea, Agency, Category, MetricCustody, MetricReport, MetricResult, MetricState
from ..replica import primary
from . import calendar

log = logging.getLogger(__name__)

GROUP_BYS = ("agency", "category", "ward", "month")
US_PER_HOUR = 3_600_000_000
# A custody passed on: for that agency the ticket is never resolved (larger than any duration).
NEVER = 2**62
# Kaplan-Meier survival is compared with this slack (floating point), in SQL and in `verify` alike.
KM_EPSILON = 1e-9
REFRESH_LOCK = 0x6875656D  # advisory lock key: one refresher at a time ("huem")
COMPUTE_LOCK = 0x68756563  # one answer computed on demand at a time ("huec")
RESULTS_KEPT_DAYS = 1  # an answer nobody asked for in this long is no longer refreshed
RESULTS_KEPT_MAX = 50  # ... nor one beyond the most recently asked for (bounds the scheduler's work)
MAX_PERIOD_YEARS = 50

# Labels of the published figures (vi, en), in the CSV's column order after key and name.
FIELDS: dict[str, tuple[str, str]] = {
    "received": ("Tiếp nhận", "Received"),
    "resolved": ("Đã xử lý", "Resolved"),
    "open": ("Đang mở", "Open"),
    "open_overdue": ("Đang mở, quá hạn", "Open and overdue"),
    "seriously_overdue": ("Quá hạn nghiêm trọng (quá 3 lần thời hạn)", "Seriously overdue (open past 3x the SLA)"),
    "rejected": ("Không tiếp nhận", "Rejected"),
    "duplicates": ("Trùng lặp", "Duplicates"),
    "median_hours": ("Trung vị thời gian xử lý, người dân (giờ)", "Median time to resolve, resident's clock (h)"),
    "p90_hours": ("Phân vị 90 thời gian xử lý, người dân (giờ)", "90th percentile, resident's clock (h)"),
    "median_working_hours": ("Trung vị, người dân (giờ hành chính)", "Median, resident's clock (working h)"),
    "p90_working_hours": ("Phân vị 90, người dân (giờ hành chính)", "90th percentile, resident's clock (working h)"),
    "agency_median_hours": ("Trung vị thời gian xử lý, đơn vị (giờ)", "Median time to resolve, agency's clock (h)"),
    "agency_p90_hours": ("Phân vị 90, đơn vị (giờ)", "90th percentile, agency's clock (h)"),
    "agency_median_working_hours": ("Trung vị, đơn vị (giờ hành chính)", "Median, agency's clock (working h)"),
    "agency_p90_working_hours": ("Phân vị 90, đơn vị (giờ hành chính)", "90th percentile, agency's clock (working h)"),
    "median_hours_to_acknowledge": ("Trung vị thời gian tiếp nhận (giờ)", "Median time to acknowledge (h)"),
    "median_working_hours_to_acknowledge": ("Trung vị thời gian tiếp nhận (giờ hành chính)",
                                            "Median time to acknowledge (working h)"),
    "on_time_rate": ("Tỷ lệ đúng hạn", "On-time rate"),
    "transfer_rate": ("Tỷ lệ chuyển đơn vị", "Transfer rate"),
    "reopen_rate": ("Tỷ lệ mở lại", "Reopen rate"),
    "satisfaction_mean": ("Mức hài lòng (1-5)", "Satisfaction (1-5)"),
    "satisfaction_count": ("Số lượt đánh giá", "Ratings"),
}
COUNTS = ("received", "resolved", "open", "open_overdue", "seriously_overdue", "rejected", "duplicates",
          "on_time", "transferred", "reopened", "ever_resolved", "rated", "rating_sum")
# The Kaplan-Meier curves: (name, figure for the median, figure for the 90th percentile or None).
CURVES = (
    ("resident", "median_hours", "p90_hours"),
    ("resident_work", "median_working_hours", "p90_working_hours"),
    ("agency", "agency_median_hours", "agency_p90_hours"),
    ("agency_work", "agency_median_working_hours", "agency_p90_working_hours"),
    ("ack", "median_hours_to_acknowledge", None),
    ("ack_work", "median_working_hours_to_acknowledge", None),
)
NO_GROUP = {"vi": "Chưa xác định", "en": "Not assigned"}
TOTAL_NAME = {"vi": "Toàn thành phố", "en": "Whole city"}


# --- replay: one report's events -> its facts -----------------------------------------------------------------

@dataclass
class Custody:
    agency_id: int
    state: str = "open"
    held_us: int = 0
    held_work_us: int = 0
    open_since: datetime | None = None
    open_since_w: int | None = None
    ack_us: int | None = None
    ack_work_us: int | None = None
    on_time: bool | None = None
    transfers_out: int = 0
    reopens: int = 0
    rating: int | None = None


@dataclass
class Facts:
    report_id: int
    category_id: int
    ward_id: int | None
    submitted_at: datetime
    month: date
    submitted_w: int
    agency_id: int | None = None
    state: str = "open"
    resolved_at: datetime | None = None
    resolve_us: int | None = None
    resolve_work_us: int | None = None
    due_at: datetime | None = None
    due_from_w: int | None = None
    sla_us: int | None = None
    on_time: bool | None = None
    transfers: int = 0
    reopens: int = 0
    rating: int | None = None
    custodies: dict[int, Custody] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "custodies"}

    def custody_rows(self) -> list[dict[str, Any]]:
        return [{"report_id": self.report_id, **c.__dict__} for c in self.custodies.values()]


@dataclass(frozen=True)
class Dims:
    """What the metrics take from the report row: what it is about and where (not what happened)."""

    report_id: int
    category_id: int
    ward_id: int | None
    submitted_at: datetime
    sla_hours: Decimal


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    created_at: datetime
    agency_id: int | None
    data: dict[str, Any]


def us(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def replay(dims: Dims, events: Sequence[Event], cal: calendar.WorkCalendar) -> Facts:
    """A report's facts from its events (in id order, which is the order they were written under the
    report's lock). Only the events say what happened; `dims` say what and where."""
    submitted_at = next((e.created_at for e in events if e.type == "submitted"), dims.submitted_at)
    local = submitted_at.astimezone(cal.tz)
    facts = Facts(dims.report_id, dims.category_id, dims.ward_id, submitted_at, local.date().replace(day=1),
                  cal.working_us(submitted_at))
    holder: int | None = None

    def start(agency_id: int, at: datetime) -> None:
        nonlocal holder
        custody = facts.custodies.setdefault(agency_id, Custody(agency_id))
        custody.state, custody.open_since, custody.open_since_w = "open", at, cal.working_us(at)
        holder = agency_id

    def stop(at: datetime, state: str) -> Custody | None:
        custody = facts.custodies.get(holder) if holder is not None else None
        if custody is None:
            return None
        if custody.open_since is not None:
            custody.held_us += max(0, us(at - custody.open_since))
            custody.held_work_us += max(0, cal.working_us(at) - (custody.open_since_w or 0))
        custody.state, custody.open_since, custody.open_since_w = state, None, None
        return custody

    def respond(at: datetime) -> None:
        custody = facts.custodies.get(holder) if holder is not None else None
        if custody is None or custody.ack_us is not None or custody.open_since is None:
            return
        custody.ack_us = custody.held_us + max(0, us(at - custody.open_since))
        custody.ack_work_us = custody.held_work_us + max(0, cal.working_us(at) - (custody.open_since_w or 0))

    def deadline(data: dict[str, Any], default_from: datetime) -> None:
        begins = _instant(data.get("due_from")) or default_from
        sla = data.get("sla_hours")
        sla_hours = Decimal(str(sla)) if isinstance(sla, (int, float)) else dims.sla_hours
        facts.due_at = _instant(data.get("due_at")) or cal.add_working_time(begins, sla_hours)
        facts.due_from_w = cal.working_us(begins)
        facts.sla_us = int(sla_hours * US_PER_HOUR)

    for event in events:
        at = event.created_at
        kind = event.type
        if kind == "routed":
            deadline(event.data, submitted_at)
            if event.agency_id is not None:
                start(event.agency_id, at)
            facts.state = "open"
        elif kind == "transferred":
            previous = stop(at, "transferred")
            if previous is not None:
                previous.transfers_out += 1
                facts.transfers += 1
            if "due_at" in event.data or facts.due_at is None:
                deadline(event.data, submitted_at)
            if event.agency_id is not None:
                start(event.agency_id, at)
            facts.state = "open"
        elif kind in ("acknowledged", "started"):
            respond(at)
        elif kind == "resolved":
            respond(at)
            custody = stop(at, "resolved")
            facts.state, facts.resolved_at = "resolved", at
            facts.on_time = facts.due_at is None or at <= facts.due_at
            if custody is not None:
                custody.on_time = facts.on_time
        elif kind == "rejected":
            respond(at)
            stop(at, "rejected")
            facts.state = "rejected"
        elif kind == "reopened":
            facts.state, facts.resolved_at, facts.on_time = "open", None, None
            facts.reopens += 1
            deadline(event.data, at)
            agency = event.agency_id if event.agency_id is not None else holder
            if agency is not None:
                custody = facts.custodies.setdefault(agency, Custody(agency))
                custody.reopens += 1
                custody.on_time = None
                start(agency, at)
        elif kind == "duplicate":
            facts.state = "duplicate"
            facts.agency_id = event.agency_id
        elif kind == "unlinked":
            facts.state = "open"
            facts.agency_id = None
        elif kind == "feedback":
            rating = event.data.get("rating")
            if isinstance(rating, int) and not isinstance(rating, bool):
                facts.rating = rating
                if holder is not None and holder in facts.custodies:
                    facts.custodies[holder].rating = rating
        # submitted, routing_failed, closed, overdue, comment, supported: no change to the figures
    if holder is not None:
        facts.agency_id = holder
    if facts.state == "resolved" and facts.resolved_at is not None:
        facts.resolve_us = max(0, us(facts.resolved_at - submitted_at))
        facts.resolve_work_us = max(0, cal.working_us(facts.resolved_at) - facts.submitted_w)
    return facts


# --- refresh: new events -> facts -----------------------------------------------------------------------------

DIMS_SQL = text("""
SELECT r.id, r.category_id, r.ward_id, r.submitted_at, c.sla_hours
FROM reports r JOIN categories c ON c.id = r.category_id WHERE r.id = ANY(:ids)
""")
EVENTS_SQL = text("""
SELECT report_id, id, type, created_at, agency_id, data FROM report_events
WHERE report_id = ANY(:ids) AND txid < :through ORDER BY report_id, id
""")
XMIN_SQL = text("SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint")


@dataclass
class RefreshStats:
    reports: int
    events_through: int
    seconds: float


def load(ids: Sequence[int], through: int, cal: calendar.WorkCalendar) -> list[Facts]:
    """The facts of reports `ids` from their events of transactions below `through`."""
    dims = {row.id: Dims(row.id, row.category_id, row.ward_id, row.submitted_at, row.sla_hours)
            for row in db.session.execute(DIMS_SQL, {"ids": list(ids)})}
    by_report: dict[int, list[Event]] = {}
    for row in db.session.execute(EVENTS_SQL, {"ids": list(ids), "through": through}):
        by_report.setdefault(row.report_id, []).append(Event(row.id, row.type, row.created_at, row.agency_id,
                                                             row.data or {}))
    return [replay(dims[rid], evs, cal) for rid, evs in by_report.items() if rid in dims]


REPORT_COLUMNS = tuple(c.name for c in MetricReport.__table__.columns)
CUSTODY_COLUMNS = tuple(c.name for c in MetricCustody.__table__.columns)


def _copy(table: str, columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> None:
    """COPY rows into a table on the session's connection (in its transaction)."""
    cursor = db.session.connection().connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def _store(ids: Sequence[int], facts: list[Facts]) -> None:
    db.session.execute(text("DELETE FROM metric_custodies WHERE report_id = ANY(:ids)"), {"ids": list(ids)})
    # (reports without events below the cursor have no facts yet)
    db.session.execute(text("DELETE FROM metric_reports WHERE report_id = ANY(:ids)"), {"ids": list(ids)})
    _copy("metric_reports", REPORT_COLUMNS, (f.row() for f in facts))
    _copy("metric_custodies", CUSTODY_COLUMNS, (row for f in facts for row in f.custody_rows()))


def refresh(batch: int = 5000, full: bool = False) -> RefreshStats | None:
    """Bring the facts up to the events of every finished transaction, in one transaction with the cursor
    (an answer computed meanwhile sees the facts before or after, never half). None if another refresh is
    running. `full` replays every report."""
    import time as clock

    began = clock.monotonic()
    session = db.session
    try:
        if not try_xact_lock(REFRESH_LOCK):
            return None
        # The batches' statements run hundreds of times: the driver prepares them, and PostgreSQL's generic
        # plan for `report_id = ANY(:ids)` scanned every event for each batch (a full replay at 1M reports
        # spent 11 minutes there); a custom plan per batch uses the index.
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        state = session.get(MetricState, 1, with_for_update=True)
        previous = 0 if full or state is None else state.events_through
        through = session.scalar(XMIN_SQL)
        if previous == 0:  # every report (the events' DISTINCT hashed 29M rows for 23 min at 5M reports)
            ids = session.scalars(text("SELECT id FROM reports ORDER BY id")).all()
        else:
            ids = session.scalars(text("SELECT DISTINCT report_id FROM report_events WHERE txid >= :a AND txid < :b"),
                                  {"a": previous, "b": through}).all()
        if previous == 0:  # a replay of everything reads the calendar afresh (it may have just changed)
            calendar.forget_calendars()
        cal = calendar.city_calendar()
        if full:
            session.execute(delete(MetricCustody))
            session.execute(delete(MetricReport))
        for i in range(0, len(ids), batch):
            chunk = ids[i:i + batch]
            _store(chunk, load(chunk, through, cal))
        stmt = pg_insert(MetricState).values(id=1, events_through=through, refreshed_at=text("now()"))
        session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={
            "events_through": through, "refreshed_at": text("now()")}))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return RefreshStats(len(ids), through, clock.monotonic() - began)


def calendar_changed(days: Iterable[date] | None) -> bool:
    """The city's working calendar changes on `days` (None: its settings, so every day). The facts hold
    readings of the working-time clock at past instants: if a changed day is not in the future, reset the
    facts' cursor so that the next refresh replays every report with the new calendar. Call it in the
    transaction that changes the calendar. Returns whether the facts were reset."""
    tomorrow = date.today() + timedelta(days=1)  # (a day of margin for the city's time zone)
    if days is not None and all(day > tomorrow for day in days):
        return False
    db.session.execute(text("UPDATE metric_state SET events_through = 0 WHERE id = 1"))
    log.info("working calendar changed: the metrics' facts will be replayed at the next refresh")
    return True


def events_through() -> int:
    return db.session.scalar(select(MetricState.events_through).where(MetricState.id == 1)) or 0


# --- compute: facts -> an answer ------------------------------------------------------------------------------

TOTAL = 0  # the key of the city's total
CURVE_NAMES = tuple(name for name, _, _ in CURVES)
NULL_KEY = -1  # a group key that is NULL (no agency, no ward) in the packed arrays

# One statement (one snapshot, so a refresh committing meanwhile cannot mix two states of the facts) reads
# a period's facts as packed binary columns, every grouping's key included: the counts and the curves of
# every grouping are then made in numpy from one read (sorting millions of durations per answer is what
# made SQL window functions slow: 55 s an answer at 1M reports).
FACTS_SQL = """
WITH base AS MATERIALIZED (
    SELECT mr.*, CAST(extract(year FROM mr.month) * 100 + extract(month FROM mr.month) AS int) AS month_key,
           (state = 'open' AND due_at < CAST(:T AS timestamptz)) AS overdue,
           coalesce(:wt - due_from_w >= 3 * sla_us, false) AS serious
    FROM metric_reports mr
    WHERE (CAST(:start AS timestamptz) IS NULL OR mr.submitted_at >= CAST(:start AS timestamptz))
      AND (CAST(:end AS timestamptz) IS NULL OR mr.submitted_at < CAST(:end AS timestamptz))
)
SELECT r.*, c.*, (SELECT events_through FROM metric_state WHERE id = 1) AS events_through
FROM (
    SELECT string_agg(int4send(coalesce(agency_id, {null})), '') AS r_agency,
           string_agg(int4send(category_id), '') AS r_category,
           string_agg(int4send(coalesce(ward_id, {null})), '') AS r_ward,
           string_agg(int4send(month_key), '') AS r_month,
           string_agg(int2send(CAST(CASE state WHEN 'open' THEN 0 WHEN 'resolved' THEN 1 WHEN 'rejected' THEN 2
                                          ELSE 3 END AS smallint)), '') AS r_state,
           string_agg(int2send(CAST(CASE WHEN overdue THEN 1 ELSE 0 END
                                    + CASE WHEN state = 'open' AND serious THEN 2 ELSE 0 END
                                    + CASE WHEN on_time THEN 4 ELSE 0 END + CASE WHEN transfers > 0 THEN 8 ELSE 0 END
                                    + CASE WHEN reopens > 0 THEN 16 ELSE 0 END AS smallint)), '') AS r_flags,
           string_agg(int2send(CAST(coalesce(rating, 0) AS smallint)), '') AS r_rating,
           -- the resident's clocks: resolved, or open and censored at :T (others are not observations)
           string_agg(int8send(CASE state WHEN 'resolved' THEN resolve_us WHEN 'open' THEN {since_submitted}
                                          ELSE 0 END), '') AS r_t0,
           string_agg(int8send(CASE state WHEN 'resolved' THEN resolve_work_us WHEN 'open' THEN :wt - submitted_w
                                          ELSE 0 END), '') AS r_t1
    FROM base
) r, (
    SELECT string_agg(int4send(mc.agency_id), '') AS c_agency,
           string_agg(int4send(b.category_id), '') AS c_category,
           string_agg(int4send(coalesce(b.ward_id, {null})), '') AS c_ward,
           string_agg(int4send(b.month_key), '') AS c_month,
           string_agg(int2send(CAST(CASE mc.state WHEN 'open' THEN 0 WHEN 'resolved' THEN 1 WHEN 'rejected' THEN 2
                                             ELSE 3 END AS smallint)), '') AS c_state,
           string_agg(int2send(CAST(CASE WHEN mc.state = 'open' AND b.due_at < CAST(:T AS timestamptz) THEN 1
                                         ELSE 0 END
                                    + CASE WHEN mc.state = 'open' AND b.serious THEN 2 ELSE 0 END
                                    + CASE WHEN mc.on_time THEN 4 ELSE 0 END
                                    + CASE WHEN mc.transfers_out > 0 THEN 8 ELSE 0 END
                                    + CASE WHEN mc.reopens > 0 THEN 16 ELSE 0 END AS smallint)), '') AS c_flags,
           string_agg(int2send(CAST(coalesce(mc.rating, 0) AS smallint)), '') AS c_rating,
           -- the agency's clocks: a custody passed on is never resolved; acknowledgement over every custody
           string_agg(int8send(CASE mc.state WHEN 'resolved' THEN held_us WHEN 'open' THEN held_us + {since_open}
                                             WHEN 'transferred' THEN :never ELSE 0 END), '') AS c_t2,
           string_agg(int8send(CASE mc.state WHEN 'resolved' THEN held_work_us
                                             WHEN 'open' THEN held_work_us + :wt - open_since_w
                                             WHEN 'transferred' THEN :never ELSE 0 END), '') AS c_t3,
           string_agg(int8send(coalesce(ack_us, held_us + coalesce({since_open}, 0))), '') AS c_t4,
           string_agg(int8send(coalesce(ack_work_us, held_work_us + coalesce(:wt - open_since_w, 0))), '') AS c_t5,
           string_agg(CASE WHEN ack_us IS NOT NULL THEN '\\x01'::bytea ELSE '\\x00'::bytea END, '') AS c_ack
    FROM metric_custodies mc JOIN base b ON b.report_id = mc.report_id
) c
"""
# States and flags as packed by FACTS_SQL.
OPEN, RESOLVED, REJECTED, DUPLICATE_OR_PASSED = 0, 1, 2, 3
OVERDUE, SERIOUS, ON_TIME, TRANSFERRED, REOPENED = 1, 2, 4, 8, 16
# (:T - x) in microseconds, exactly (extract(epoch) of an interval is numeric).
_US = "CAST(extract(epoch FROM (CAST(:T AS timestamptz) - {x})) * 1000000 AS bigint)"


@dataclass(frozen=True)
class Period:
    group_by: str
    start: date | None  # first local day included
    end: date | None  # last local day included

    @property
    def key(self) -> str:
        return f"{self.group_by}|{self.start or ''}|{self.end or ''}"


def parse_period(args: Any) -> Period:
    """group_by, from and to from a query string; 422 naming the field otherwise."""
    group_by = args.get("group_by") or "agency"
    if group_by not in GROUP_BYS:
        raise ApiError(422, "validation_error", f"group_by is one of {', '.join(GROUP_BYS)}.",
                       message_vi="group_by không hợp lệ.", fields={"group_by": [f"One of {', '.join(GROUP_BYS)}."]})
    bounds: dict[str, date | None] = {}
    for name in ("from", "to"):
        raw = args.get(name)
        if raw in (None, ""):
            bounds[name] = None
            continue
        try:
            bounds[name] = date.fromisoformat(raw) if len(raw) == 10 else None
        except ValueError:
            bounds[name] = None
        if bounds[name] is None:
            raise ApiError(422, "validation_error", f"{name} is a date, YYYY-MM-DD.",
                           message_vi=f"{name} phải là ngày dạng YYYY-MM-DD.", fields={name: ["A date, YYYY-MM-DD."]})
    if bounds["from"] and bounds["to"] and bounds["from"] > bounds["to"]:
        raise ApiError(422, "validation_error", "from is after to.", message_vi="Ngày bắt đầu sau ngày kết thúc.",
                       fields={"from": ["Not after to."]})
    for name, value in bounds.items():
        if value is not None and not 2000 <= value.year <= date.today().year + MAX_PERIOD_YEARS:
            raise ApiError(422, "validation_error", f"{name} is out of range.", message_vi=f"{name} không hợp lệ.",
                           fields={name: ["Out of range."]})
    return Period(group_by, bounds["from"], bounds["to"])


def _bounds(period: Period, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    start = datetime.combine(period.start, time(), tz) if period.start else None
    end = datetime.combine(period.end + timedelta(days=1), time(), tz) if period.end else None
    return start, end


Aggregates = tuple[dict[int | None, dict[str, int]], dict[int | None, dict[str, int]],
                   dict[tuple[str, int | None], tuple[int | None, int | None]]]


@dataclass
class FactArrays:
    """One period's facts as columns (FACTS_SQL), ready for any grouping."""

    reports: dict[str, np.ndarray]
    custodies: dict[str, np.ndarray]
    events_through: int


def read_facts(period: Period, as_of: datetime, cal: calendar.WorkCalendar) -> FactArrays:
    """The facts of the reports submitted in `period`, as of `as_of`, in one statement."""
    start, end = _bounds(period, cal.tz)
    params = {"start": start, "end": end, "T": as_of, "wt": cal.working_us(as_of), "never": NEVER}
    sql = FACTS_SQL.format(null=NULL_KEY, since_submitted=_US.format(x="submitted_at"),
                           since_open=_US.format(x="open_since"))
    row = db.session.execute(text(sql), params).mappings().one()
    types = {"agency": ">i4", "category": ">i4", "ward": ">i4", "month": ">i4", "state": ">i2", "flags": ">i2",
             "rating": ">i2", "t0": ">i8", "t1": ">i8", "t2": ">i8", "t3": ">i8", "t4": ">i8", "t5": ">i8",
             "ack": "?"}

    def columns(prefix: str) -> dict[str, np.ndarray]:
        return {name: np.frombuffer(row[f"{prefix}_{name}"] or b"", dtype=dtype).astype(
                    np.dtype(dtype).newbyteorder("=")) for name, dtype in types.items() if f"{prefix}_{name}" in row}

    return FactArrays(columns("r"), columns("c"), row["events_through"] or 0)


def _counts(cols: dict[str, np.ndarray], keys: np.ndarray, custody: bool) -> dict[int, dict[str, int]]:
    """Each group's counts (COUNTS) from packed facts, reports' or custodies'."""
    state, flags, rating = cols["state"], cols["flags"], cols["rating"]
    opened, resolved = state == OPEN, state == RESOLVED
    reopened = (flags & REOPENED) > 0
    # for reports, state 3 is a duplicate; for custodies, a ticket passed on (which still counts as received)
    kept = np.ones(len(state), dtype=bool) if custody else state != DUPLICATE_OR_PASSED
    masks = {
        "received": kept, "resolved": resolved, "open": opened,
        "open_overdue": opened & ((flags & OVERDUE) > 0), "seriously_overdue": opened & ((flags & SERIOUS) > 0),
        "rejected": state == REJECTED,
        "duplicates": np.zeros(len(state), dtype=bool) if custody else state == DUPLICATE_OR_PASSED,
        "on_time": resolved & ((flags & ON_TIME) > 0), "transferred": kept & ((flags & TRANSFERRED) > 0),
        "reopened": reopened, "ever_resolved": resolved | reopened, "rated": rating > 0,
    }
    values, rank = np.unique(keys, return_inverse=True)
    size = len(values)
    table = {name: np.bincount(rank[mask], minlength=size) for name, mask in masks.items()}
    table["rating_sum"] = np.bincount(rank, weights=rating.astype(np.float64), minlength=size)
    groups = np.bincount(rank, minlength=size)
    out = {}
    for i, value in enumerate(values.tolist()):
        if groups[i]:
            out[None if value == NULL_KEY else value] = {name: int(column[i]) for name, column in table.items()}
    return out


def aggregate_facts(facts: FactArrays, group_by: str) -> tuple[Aggregates, Aggregates]:
    """The raw aggregates for one grouping, for its groups and for the city's total (key TOTAL):
    report-level counts, custody-level counts and the curves' quantiles (integers)."""
    r, c = facts.reports, facts.custodies
    r_keys, c_keys = r[group_by], c[group_by]
    levels: tuple[Aggregates, Aggregates] = (({}, {}, {}), ({}, {}, {}))
    for level, rk, ck in ((levels[0], r_keys, c_keys),
                          (levels[1], np.zeros(len(r_keys), np.int32), np.zeros(len(c_keys), np.int32))):
        level[0].update(_counts(r, rk, custody=False))
        level[1].update(_counts(c, ck, custody=True))
        observed = (r["state"] == OPEN) | (r["state"] == RESOLVED)
        held = c["state"] != REJECTED
        r_ev, c_ev = r["state"] == RESOLVED, c["state"] == RESOLVED
        observations = (
            (rk[observed], r["t0"][observed], r_ev[observed]), (rk[observed], r["t1"][observed], r_ev[observed]),
            (ck[held], c["t2"][held], c_ev[held]), (ck[held], c["t3"][held], c_ev[held]),
            (ck, c["t4"], c["ack"]), (ck, c["t5"], c["ack"]),
        )
        for curve, (g, t, ev) in zip(CURVE_NAMES, observations, strict=True):
            for key, quantile in km_quantiles(g, t, ev).items():
                level[2][curve, None if key == NULL_KEY else key] = quantile
    return levels


def km_quantiles(g: np.ndarray, t: np.ndarray, ev: np.ndarray, eps: float = KM_EPSILON
                 ) -> dict[int, tuple[int | None, int | None]]:
    """Kaplan-Meier median and 90th percentile per group of (time, resolved?) observations: for each group
    key, the first event time u at which S(u) = prod over event times v <= u of (1 - d_v / n_v) falls to
    1 - q (within `eps`), None where it never does. n_v counts the observations with time >= v (censored
    ones at v are still at risk). `metrics_verify.quantiles` is the plain-Python definition it must match."""
    if len(t) == 0:
        return {}
    # Keys ranked to small integers: a stable sort of them (radix) after a sort by time orders by (g, t).
    keys, rank = np.unique(g, return_inverse=True)
    rank = rank.astype(np.int16 if len(keys) < 2**15 else np.int64)
    order = np.argsort(t, kind="stable")
    order = order[np.argsort(rank[order], kind="stable")]
    gs, ts, evs = rank[order], t[order], ev[order].astype(np.int64)
    n_total = len(ts)
    new_group = np.r_[True, gs[1:] != gs[:-1]]
    new_time = new_group | np.r_[True, ts[1:] != ts[:-1]]
    starts = np.flatnonzero(new_time)  # each distinct (g, t)
    group_starts = np.flatnonzero(new_group)
    group_end = np.repeat(np.r_[group_starts[1:], n_total], np.diff(np.r_[group_starts, n_total]))
    d = np.add.reduceat(evs, starts)
    n = group_end[starts] - starts
    event = d > 0
    starts, d, n = starts[event], d[event], n[event]
    group = gs[starts]
    if len(group) == 0:  # no group has an event: no quantile is reached
        return {}
    gone = d == n
    term = np.log(np.where(gone, 1.0, 1.0 - d / n.astype(np.float64)))  # (a factor 0 is `gone`)
    # Cumulative sums within each group (sequentially, as the definition multiplies).
    out: dict[int, tuple[int | None, int | None]] = {}
    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    bounds = np.r_[first, len(group)]
    for i in range(len(first)):
        a, b = bounds[i], bounds[i + 1]
        survival = np.exp(np.cumsum(term[a:b]))
        ended = np.cumsum(gone[a:b]) > 0
        times = ts[starts[a:b]]
        answer = []
        for remaining in (0.5, 0.1):  # the median, the 90th percentile
            hit = np.flatnonzero(ended | (survival <= remaining + eps))
            answer.append(int(times[hit[0]]) if len(hit) else None)
        out[int(keys[group[a]])] = (answer[0], answer[1])
    return out


def _hours(value: int | None) -> float | None:
    return None if value is None else round(value / US_PER_HOUR, 2)


def _rate(part: int, whole: int, digits: int = 4) -> float | None:
    return round(part / whole, digits) if whole else None


def figures(counts: dict[str, int] | None, curves: dict, key: int | None,
            duplicates: int | None = None) -> dict[str, Any]:
    """One group's published figures from its counts and quantiles (the same code formats `verify`'s)."""
    c = {name: int((counts or {}).get(name) or 0) for name in COUNTS}
    out: dict[str, Any] = {name: c[name] for name in ("received", "resolved", "open", "open_overdue",
                                                       "seriously_overdue", "rejected")}
    out["duplicates"] = c["duplicates"] if duplicates is None else duplicates
    for curve, median, p90 in CURVES:
        q50, q90 = curves.get((curve, key), (None, None))
        out[median] = _hours(q50)
        if p90:
            out[p90] = _hours(q90)
    out["on_time_rate"] = _rate(c["on_time"], c["resolved"])
    out["transfer_rate"] = _rate(c["transferred"], c["received"])
    out["reopen_rate"] = _rate(c["reopened"], c["ever_resolved"])
    out["satisfaction_mean"] = _rate(c["rating_sum"], c["rated"], 2)
    out["satisfaction_count"] = c["rated"]
    return out


def group_names(group_by: str, keys: Iterable[int | None]) -> dict[int, tuple[str, dict[str, str], dict[str, Any]]]:
    """Each key's public code, name (vi, en) and extra fields. A ward's row says which boundary vintage it
    belongs to (`valid_from`, `valid_to`): after a reorganisation a code can name an old and a new ward,
    and a retired ward's name says until when it existed."""
    keys = [k for k in keys if k is not None]
    if group_by == "month":
        return {k: (f"{k // 100:04d}-{k % 100:02d}", {"vi": f"Tháng {k % 100:02d}/{k // 100:04d}",
                                                      "en": f"{k // 100:04d}-{k % 100:02d}"}, {}) for k in keys}
    if group_by == "ward":
        rows = db.session.execute(select(AdminArea.id, AdminArea.code, AdminArea.name, AdminArea.name_en,
                                         AdminArea.valid_from, AdminArea.valid_to).where(AdminArea.id.in_(keys)))
        return {row.id: (row.code, _ward_name(row), {"valid_from": row.valid_from.isoformat(),
                                                     "valid_to": row.valid_to and row.valid_to.isoformat()})
                for row in rows}
    model = {"agency": Agency, "category": Category}[group_by]
    rows = db.session.execute(select(model.id, model.code, model.name, model.name_en).where(model.id.in_(keys)))
    return {row.id: (row.code, {"vi": row.name, "en": row.name_en}, {}) for row in rows}


def _ward_name(row: Any) -> dict[str, str]:
    if row.valid_to is None:
        return {"vi": row.name, "en": row.name_en}
    return {"vi": f"{row.name} (đến {row.valid_to:%d/%m/%Y})", "en": f"{row.name_en} (until {row.valid_to})"}


def assemble(period: Period, as_of: datetime, through: int, groups: Aggregates, total: Aggregates
             ) -> dict[str, Any]:
    """The published answer from the aggregates (shared with `verify`). An agency's row counts the tickets
    in its custody; every other row counts reports."""
    report_counts, custody_counts, curves = groups
    by_custody = period.group_by == "agency"
    keys = set(report_counts) | set(custody_counts) | {g for _, g in curves}
    names = group_names(period.group_by, keys)
    rows = []
    for key in keys:
        code, name, extra = names.get(key, (None, NO_GROUP, {})) if key is not None else (None, NO_GROUP, {})
        if period.group_by == "ward" and not extra:
            extra = {"valid_from": None, "valid_to": None}
        # (reports nobody holds have no custody: their row counts the reports)
        counts = custody_counts.get(key) if by_custody and key is not None else report_counts.get(key)
        duplicates = (report_counts.get(key) or {}).get("duplicates", 0)
        rows.append({"key": code, "name": name, **extra, **figures(counts, curves, key, int(duplicates or 0))})
    # (a ward code of two vintages: the older first)
    rows.sort(key=lambda g: (g["key"] is None, g["key"] or "", g.get("valid_from") or ""))
    total_reports, _, total_curves = total
    return {
        "as_of": as_of.isoformat(),
        "events_through": through,
        "group_by": period.group_by,
        "from": period.start.isoformat() if period.start else None,
        "to": period.end.isoformat() if period.end else None,
        "groups": rows,
        "total": {"key": "all", "name": TOTAL_NAME, **figures(total_reports.get(TOTAL), total_curves, TOTAL)},
        "fields": {name: {"vi": vi, "en": en} for name, (vi, en) in FIELDS.items()},
        "methodology": "README.md#methodology",
    }


def compute_many(periods: Sequence[Period], as_of: datetime | None = None) -> list[dict[str, Any]]:
    """The answers for `periods` from the facts, as of `as_of` (default now), in the city's time zone: the
    facts are read once per distinct period (the groupings of one period share the read)."""
    cal = calendar.city_calendar()
    as_of = (as_of or datetime.now(timezone.utc)).astimezone(cal.tz)
    read: dict[tuple, FactArrays] = {}
    answers = []
    for period in periods:
        span = (period.start, period.end)
        if span not in read:
            read[span] = read_facts(period, as_of, cal)
        facts = read[span]
        groups, total = aggregate_facts(facts, period.group_by)
        answers.append(assemble(period, as_of, facts.events_through, groups, total))
    return answers


def compute(period: Period, as_of: datetime | None = None) -> dict[str, Any]:
    """The answer for `period` from the facts, as of `as_of` (default now), in the city's time zone."""
    return compute_many([period], as_of)[0]


# --- answers: stored, served, refreshed -----------------------------------------------------------------------

def _save(period: Period, body: dict[str, Any], requested: bool) -> None:
    values = {"key": period.key, "body": body, "as_of": datetime.fromisoformat(body["as_of"]),
              "events_through": body["events_through"]}
    stmt = pg_insert(MetricResult).values(**values, requested_at=text("now()"))
    update = {"body": stmt.excluded.body, "as_of": stmt.excluded.as_of,
              "events_through": stmt.excluded.events_through}
    if requested:
        update["requested_at"] = text("now()")
    db.session.execute(stmt.on_conflict_do_update(index_elements=["key"], set_=update))


def published(period: Period) -> dict[str, Any]:
    """The answer the API serves, as a dict (see `published_json`)."""
    return json.loads(published_json(period))


def published_json(period: Period) -> str:
    """The answer the API serves, as JSON text (PostgreSQL's rendering of the stored JSONB: stable, so its
    ETag is): stored by the last refresh, or computed now (and stored) the first time a grouping and period
    is asked for."""
    stored = text("SELECT body::text, requested_at FROM metric_results WHERE key = :k")
    row = db.session.execute(stored, {"k": period.key}).first()  # (from the replica, when the view uses one)
    if row is not None:
        if row.requested_at < datetime.now(timezone.utc) - timedelta(hours=1):
            # Best effort (it keeps the period refreshed): with the primary down, the replica still answers.
            try:
                with primary():
                    db.session.execute(text("UPDATE metric_results SET requested_at = now() WHERE key = :k"),
                                       {"k": period.key})
                    db.session.commit()
            except SQLAlchemyError:
                db.session.rollback()
                log.warning("metrics: could not note that %s was asked for (the primary is down?)", period.key)
        return row[0]
    with primary():
        # A period nobody asked for yet: computed here, one at a time; while one is being computed, others
        # get a 503 at once (a flood of odd periods can neither run many heavy aggregations nor hold threads).
        if not try_xact_lock(COMPUTE_LOCK):
            raise ApiError(503, "busy", "The figures for another period are being computed: try again shortly.",
                           message_vi="Hệ thống đang tính số liệu, vui lòng thử lại sau ít phút.",
                           headers={"Retry-After": "10"})
        row = db.session.execute(stored, {"k": period.key}).first()  # (a replica may not have it yet)
        if row is None:
            _save(period, compute(period), requested=True)
            db.session.commit()
            row = db.session.execute(stored, {"k": period.key}).one()
        return row[0]


@dataclass(frozen=True)
class Served:
    """A stored answer as this process serves it (see `served`)."""

    text: str  # the JSON, as PostgreSQL renders the stored JSONB
    etag: str  # of `text` (werkzeug's, as add_etag would compute it)
    database: str | None  # the X-Database of the request that read it (None without a replica)
    read_at: float  # time.monotonic() just before it was read


class ServedAnswers:
    """This process's copy of the stored answers it served lately, each kept PUBLIC_METRICS_CACHE_SECONDS from
    when it was read: a hit runs no SQL. At most `size` answers (the stored ones are bounded too: the 4
    defaults and RESULTS_KEPT_MAX), the least recently served forgotten first. Shared by the process's threads
    (gunicorn's gthread workers): a lock around the dictionary only, never around a read of the database (two
    threads that miss together both read, and the fresher read stays)."""

    def __init__(self, size: int):
        self.size = size
        self._answers: OrderedDict[str, Served] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, ttl: float) -> Served | None:
        with self._lock:
            answer = self._answers.get(key)
            if answer is None or monotonic() - answer.read_at >= ttl:
                return None
            self._answers.move_to_end(key)
            return answer

    def put(self, key: str, answer: Served) -> None:
        with self._lock:
            before = self._answers.get(key)
            if before is not None and before.read_at > answer.read_at:
                return
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()

    def __len__(self) -> int:
        return len(self._answers)


SERVED = "hue_metrics_served"  # app.extensions key of the app's ServedAnswers


def served_answers() -> ServedAnswers:
    """This app's (and process's) copy of the answers served lately."""
    return flask.current_app.extensions.setdefault(SERVED, ServedAnswers(RESULTS_KEPT_MAX + len(GROUP_BYS)))


def served(period: Period) -> Served:
    """The answer the API serves for `period` (JSON and CSV): `published_json`, kept in this process's memory
    for PUBLIC_METRICS_CACHE_SECONDS (0: read on every request), so that a hit costs no round trip. Nothing
    is staler than the contract allows: a figure is at most METRICS_REFRESH_SECONDS plus this old (the
    answers say `Cache-Control: max-age=60`, and their `as_of` says when they were computed). A period asked
    for often still has its `requested_at` kept fresh: every miss (once a TTL) reads it and bumps it once it
    is an hour old. A hit's `X-Database` is the database it was read from."""
    ttl = flask.current_app.config["PUBLIC_METRICS_CACHE_SECONDS"]
    answers = served_answers()
    if ttl > 0:
        answer = answers.get(period.key, ttl)
        if answer is not None:
            if answer.database is not None:
                flask.g.hue_database = answer.database  # (the header of a replica-readable view, replica.py)
            return answer
    read_at = monotonic()
    text_ = published_json(period)
    answer = Served(text_, generate_etag(text_.encode()), flask.g.get("hue_database"), read_at)
    if ttl > 0:
        answers.put(period.key, answer)
    return answer


def default_periods() -> list[Period]:
    return [Period(group_by, None, None) for group_by in GROUP_BYS]


def refresh_results() -> int:
    """Recompute every answer asked for recently (and the defaults); forget the others."""
    defaults = [p.key for p in default_periods()]
    recent = select(MetricResult.key).where(MetricResult.key.not_in(defaults)).order_by(
        MetricResult.requested_at.desc()).limit(RESULTS_KEPT_MAX)
    db.session.execute(delete(MetricResult).where(MetricResult.key.not_in(defaults), or_(
        MetricResult.requested_at < datetime.now(timezone.utc) - timedelta(days=RESULTS_KEPT_DAYS),
        MetricResult.key.not_in(recent))))
    db.session.commit()
    keys = set(db.session.scalars(select(MetricResult.key)))
    periods = {p.key: p for p in default_periods()}
    for key in keys:
        group_by, start, end = key.split("|")
        periods[key] = Period(group_by, date.fromisoformat(start) if start else None,
                              date.fromisoformat(end) if end else None)
    ordered = sorted(periods.values(), key=lambda p: (str(p.start), str(p.end)))  # (a period's groupings together)
    for at in range(0, len(ordered), len(GROUP_BYS)):
        batch = ordered[at:at + len(GROUP_BYS)]
        for period, body in zip(batch, compute_many(batch), strict=True):
            _save(period, body, requested=False)
        db.session.commit()
    if SERVED in flask.current_app.extensions:  # (this process's copies; the API's other processes wait their TTL)
        flask.current_app.extensions[SERVED].clear()
    return len(periods)


def refresh_all() -> dict[str, Any]:
    """The scheduler's job: facts from the new events, then every answer in use."""
    stats = refresh()
    if stats is None:  # another refresh is running; it will recompute the answers
        return {"reports": None, "answers": 0}
    return {"reports": stats.reports, "answers": refresh_results()}


def to_csv(body: dict[str, Any]) -> str:
    """The answer as CSV: a row per group and the city's total last; column names as in the JSON."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns = list(FIELDS)
    writer.writerow(["key", "name_vi", "name_en", *columns])
    for group in [*body["groups"], body["total"]]:
        writer.writerow([group["key"] or "", group["name"]["vi"], group["name"]["en"],
                         *("" if group[c] is None else group[c] for c in columns)])
    return out.getvalue()

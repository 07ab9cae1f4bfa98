"""Routing: a submitted report reaches the agency that must fix it, with a working-time deadline.

`route()` runs in the `route_report` job, once per report however often it runs:
the report row is locked and only a report still `submitted` is routed. In one
transaction it decides

- the ward (stored at intake; looked up again only if intake had none),
- whether it duplicates an earlier open report of the same category nearby
  (DUPLICATE_RADIUS_M, DUPLICATE_DAYS): then it is `duplicate`, linked to that
  report, whose supporter count grows. Only positions count: a report located
  by its address (the ward's representative point, APPROXIMATE_LOCATION_SOURCES)
  is never looked for duplicates nor found as one's original, since every
  address-only report of a ward sits at that same point;
- otherwise the agency: the active rule for the category on the most specific
  area covering the report (its ward, then the ward's parents), ties by
  priority; no rule sends it to the dispatcher, with an event saying so. A
  report whose ward was retired by a reorganisation since it was filed keeps
  that ward, and is routed by the rules of the current area at its location
  (areas.rule_area_id, as re-routing does);
- `due_at`: submission time plus the category's SLA in working hours on the
  city's calendar;

and writes the `routed` event and the agency's webhook message (outbox) with
the change. A report nobody can take (no rule and no dispatcher) or whose job
keeps failing becomes `routing_failed`, which the dispatcher sees.

The two statements are plain SQL: routing is the hot path of the workers
(bench/routing.py measures it against this SQL alone).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import select, text

from ..extensions import db
from ..models import APPROXIMATE_LOCATION_SOURCES, OPEN_STATUSES
from ..models.base import sql_in
from . import areas, calendar, committing, outbox

log = logging.getLogger(__name__)

# Advisory lock namespace (first key of pg_advisory_xact_lock(int, int)) for duplicate decisions,
# one lock per category: two reports of one category are never both checked against each other
# at the same time, so of two near-simultaneous reports one always becomes the other's duplicate.
DUPLICATE_LOCK_SPACE = 7401

# Open statuses a new report can duplicate (a duplicate itself is finished, so never a target).
DUPLICATE_TARGET_STATUSES = OPEN_STATUSES

# The best rule's agency for a category at an area: the rule on the deepest area of the area's
# ancestry (ward, then its parents), then by priority; inactive rules and agencies are skipped.
RULE_QUERY = """
WITH RECURSIVE chain(id, parent_id, tier) AS (
    SELECT a.id, a.parent_id, a.tier FROM admin_areas a WHERE a.id = {area}
    UNION ALL
    SELECT p.id, p.parent_id, p.tier FROM admin_areas p JOIN chain ON p.id = chain.parent_id
)
SELECT rr.id AS rule_id, rr.agency_id, ag.webhook_url IS NOT NULL AS has_webhook, chain.id AS rule_area_id
FROM routing_rules rr
JOIN chain ON chain.id = rr.area_id
JOIN agencies ag ON ag.id = rr.agency_id AND ag.active
WHERE rr.category_id = {category} AND rr.active
ORDER BY chain.tier DESC, rr.priority, rr.id
LIMIT 1
"""
RULE_SQL = text(RULE_QUERY.format(area=":area_id", category=":category_id"))

# Statement 1: lock the category's duplicate decisions. (A statement of its own: under READ COMMITTED a
# statement sees the data of its start, so the search below must start after the wait for this lock, to
# see what the job that held it has just committed.)
LOCK_SQL = text("SELECT pg_advisory_xact_lock(:lock_space, category_id) FROM reports WHERE id = :id") \
    .bindparams(lock_space=DUPLICATE_LOCK_SPACE)

# Statement 2: lock the report and read what routing needs: the best rule at its ward, and the nearest
# earlier open report of its category nearby.
FETCH_SQL = text("""
WITH r AS (
    SELECT r.id, r.status, r.category_id, r.ward_id, r.submitted_at, r.location, r.location_source, r.supporters,
           c.sla_hours, c.code AS category_code
    FROM reports r JOIN categories c ON c.id = r.category_id
    WHERE r.id = :id
    FOR UPDATE OF r
)
SELECT r.id, r.status, r.category_id, r.ward_id, r.submitted_at, r.sla_hours, r.supporters, r.category_code,
       ST_Y(r.location) AS lat, ST_X(r.location) AS lon, rule.*,
       (SELECT w.valid_to IS NULL FROM admin_areas w WHERE w.id = r.ward_id) AS ward_current,
       EXISTS (SELECT 1 FROM reports m JOIN report_contacts c ON c.report_id = m.id
                WHERE (m.id = r.id OR m.duplicate_of_id = r.id) AND c.notify_url IS NOT NULL) AS notify,
       (SELECT o.id FROM reports o
         WHERE :radius_m > 0 AND o.category_id = r.category_id AND o.id <> r.id
           AND NOT (""" + sql_in("coalesce(r.location_source, '')", APPROXIMATE_LOCATION_SOURCES) + """)
           AND NOT (""" + sql_in("coalesce(o.location_source, '')", APPROXIMATE_LOCATION_SOURCES) + """)
           AND o.status = ANY(CAST(:targets AS text[]))
           AND o.submitted_at >= r.submitted_at - make_interval(days => :days)
           AND (o.submitted_at, o.id) < (r.submitted_at, r.id)
           AND ST_DWithin(o.location, r.location, :radius_deg)
           AND ST_DWithin(o.location::geography, r.location::geography, :radius_m)
         ORDER BY ST_Distance(o.location::geography, r.location::geography), o.submitted_at, o.id
         LIMIT 1) AS duplicate_of_id
FROM r LEFT JOIN LATERAL (""" + RULE_QUERY.format(area="r.ward_id", category="r.category_id") + """) rule ON true
""")

def lock_categories(category_ids) -> None:
    """Take the duplicate-decision locks of these categories, in id order (as every holder of several
    does: no deadlock). While they are held, no report of these categories is being routed or transferred."""
    for category_id in sorted(set(category_ids)):
        db.session.execute(text("SELECT pg_advisory_xact_lock(:space, :id)"),
                           {"space": DUPLICATE_LOCK_SPACE, "id": category_id})


DISPATCHER_SQL = text("""
SELECT id AS agency_id, webhook_url IS NOT NULL AS has_webhook FROM agencies
WHERE kind = 'dispatcher' AND active ORDER BY id LIMIT 1
""")

# Statement 3 (routed): the report, its event and, for an agency with a webhook, the message.
ROUTED_SQL = text("""
WITH upd AS (
    UPDATE reports SET status = 'routed', agency_id = :agency_id, ward_id = :ward_id, routed_at = now(),
                       due_at = :due_at, version = version + 1, updated_at = now()
    WHERE id = :id AND status = :from_status
    RETURNING id, public_code
), followers AS (  -- duplicates that joined it while it was unrouted go to its agency too
    UPDATE reports SET agency_id = :agency_id, updated_at = now()
    FROM upd WHERE reports.duplicate_of_id = upd.id
    RETURNING reports.id
), ev AS (
    INSERT INTO report_events (report_id, type, actor_kind, from_status, to_status, agency_id, public, note, data)
    SELECT id, 'routed', 'system', :from_status, 'routed', :agency_id, true, :note, CAST(:data AS jsonb) FROM upd
    RETURNING id, report_id
)
INSERT INTO outbox (kind, target, report_id, agency_id, payload, dedupe_key)
SELECT 'webhook', 'agency', ev.report_id, :agency_id,
       jsonb_build_object('type', 'report.routed', 'event_id', ev.id),
       'report.routed:' || ev.report_id
FROM ev JOIN upd ON upd.id = ev.report_id
WHERE :has_webhook
RETURNING id
""")

# Statement 3 (duplicate): link to the original (and move the report's own duplicates there), count
# the supporters, and write both reports' events.
DUPLICATE_SQL = text("""
WITH orig AS (  -- still open (an officer may have closed it meanwhile), and held until commit
    SELECT id, public_code, agency_id FROM reports
    WHERE id = :original_id AND status = ANY(CAST(:targets AS text[]))
    FOR UPDATE
), upd AS (
    UPDATE reports SET status = 'duplicate', duplicate_of_id = orig.id, agency_id = orig.agency_id,
                       ward_id = :ward_id, supporters = 0, version = version + 1, updated_at = now()
    FROM orig WHERE reports.id = :id AND reports.status = :from_status
    RETURNING reports.id, reports.public_code
), moved AS (
    UPDATE reports SET duplicate_of_id = :original_id, agency_id = orig.agency_id, updated_at = now()
    FROM upd, orig WHERE reports.duplicate_of_id = upd.id
    RETURNING reports.id
), supported AS (
    UPDATE reports SET supporters = supporters + 1 + :supporters, updated_at = now()
    FROM upd WHERE reports.id = :original_id
    RETURNING reports.id
), ev AS (
    INSERT INTO report_events (report_id, type, actor_kind, from_status, to_status, agency_id, public, data)
    SELECT upd.id, 'duplicate', 'system', :from_status, 'duplicate', orig.agency_id, true,
           jsonb_build_object('duplicate_of', orig.public_code, 'distance_m', CAST(:distance_m AS numeric))
    FROM upd, orig
    UNION ALL
    SELECT orig.id, 'supported', 'system', NULL, NULL, orig.agency_id, true,
           jsonb_build_object('report', upd.public_code, 'moved', (SELECT count(*) FROM moved))
    FROM upd, orig
    RETURNING id
)
SELECT count(*) FROM ev
""")

FAILED_SQL = text("""
WITH upd AS (
    UPDATE reports SET status = 'routing_failed', version = version + 1, updated_at = now()
    WHERE id = :id AND status = 'submitted'
    RETURNING id
)
INSERT INTO report_events (report_id, type, actor_kind, from_status, to_status, public, data)
SELECT id, 'routing_failed', 'system', 'submitted', 'routing_failed', true, CAST(:data AS jsonb) FROM upd
RETURNING id
""")


@dataclass
class Outcome:
    report_id: int
    result: str  # routed | duplicate | unchanged | missing | routing_failed
    agency_id: int | None = None
    due_at: datetime | None = None
    duplicate_of_id: int | None = None
    outbox_ids: tuple[int, ...] = ()
    notified: bool = False  # push messages for reporters were queued too


def route(report_id: int, *, detect_duplicates: bool = True, from_status: str = "submitted") -> Outcome:
    """Route one report and commit. Running it again changes nothing (`unchanged`)."""
    with committing():
        return route_in_transaction(report_id, detect_duplicates=detect_duplicates, from_status=from_status)


def route_in_transaction(report_id: int, *, detect_duplicates: bool = True,
                         from_status: str = "submitted") -> Outcome:
    """The work of route() inside the caller's transaction (which commits it)."""
    config = current_app.config
    radius = config["DUPLICATE_RADIUS_M"] if detect_duplicates else 0
    session = db.session
    session.execute(LOCK_SQL, {"id": report_id})
    row = session.execute(FETCH_SQL, {
        "id": report_id, "radius_m": radius, "radius_deg": bounding_degrees(radius), "days": config["DUPLICATE_DAYS"],
        "targets": list(DUPLICATE_TARGET_STATUSES)}).mappings().first()
    if row is None:
        return Outcome(report_id, "missing")
    if row["status"] != from_status:
        return Outcome(report_id, "unchanged")
    city = areas.current_city()
    if city is None:
        raise RuntimeError("no city is loaded (flask seed)")
    ward_id = row["ward_id"]
    if ward_id is None:
        ward_id = session.scalar(select(areas.location_columns(city, row["lon"], row["lat"])[1]))

    if row["duplicate_of_id"] is not None:
        original = row["duplicate_of_id"]
        distance = session.scalar(text(
            "SELECT ST_Distance(a.location::geography, b.location::geography) FROM reports a, reports b "
            "WHERE a.id = :a AND b.id = :b"), {"a": report_id, "b": original})
        linked = session.scalar(DUPLICATE_SQL, {
            "id": report_id, "original_id": original, "ward_id": ward_id, "from_status": from_status,
            "supporters": row["supporters"], "distance_m": round(distance or 0, 1),
            "targets": list(DUPLICATE_TARGET_STATUSES)})
        if linked:
            if row["notify"]:
                _notify(report_id, "duplicate")
            return Outcome(report_id, "duplicate", duplicate_of_id=original, notified=row["notify"])
        # (the original was closed since the search: this report is routed on its own)

    # The rule at the report's ward, read with it; else at the ward found now, or the city; a ward retired since
    # the report was filed (it keeps it): at the current area covering its location, as a new report there.
    rule: Any = row
    if row["ward_id"] is None:
        rule = session.execute(RULE_SQL, {"area_id": ward_id if ward_id is not None else city.area_id,
                                          "category_id": row["category_id"]}).mappings().first()
    elif not row["ward_current"]:
        rule = session.execute(RULE_SQL, {"area_id": areas.rule_area_id(report_id, ward_id, city.area_id),
                                          "category_id": row["category_id"]}).mappings().first()
    data: dict[str, Any]
    if rule is not None and rule["rule_id"] is not None:
        agency_id, has_webhook = rule["agency_id"], rule["has_webhook"]
        data = {"rule_id": rule["rule_id"], "area_id": rule["rule_area_id"]}
        note = None
    else:
        dispatcher = session.execute(DISPATCHER_SQL).mappings().first()
        if dispatcher is None:
            log.error("report %s: no routing rule for %s and no active dispatcher", report_id, row["category_code"])
            mark_failed_in_transaction(report_id, "no_agency")
            return Outcome(report_id, "routing_failed")
        agency_id, has_webhook = dispatcher["agency_id"], dispatcher["has_webhook"]
        data = {"rule_id": None, "reason": "no_rule"}
        note = NO_RULE_NOTE
    due_at = calendar.city_calendar(city.id).add_working_time(row["submitted_at"], Decimal(row["sla_hours"]))
    data["sla_hours"] = float(row["sla_hours"])
    data["due_at"] = due_at.isoformat()
    data["due_from"] = row["submitted_at"].isoformat()
    outbox_ids = session.scalars(ROUTED_SQL, {
        "id": report_id, "agency_id": agency_id, "ward_id": ward_id, "due_at": due_at, "from_status": from_status,
        "note": note, "data": json.dumps(data), "has_webhook": bool(has_webhook)}).all()
    if row["notify"]:
        _notify(report_id, "routed")
    return Outcome(report_id, "routed", agency_id=agency_id, due_at=due_at, outbox_ids=tuple(outbox_ids),
                   notified=row["notify"])


def _notify(report_id: int, event_type: str) -> None:
    """Queue the push message of the event just written to the reporters who asked for them."""
    event_id = db.session.scalar(text("SELECT max(id) FROM report_events WHERE report_id = :id AND type = :t"),
                                 {"id": report_id, "t": event_type})
    outbox.notify_status(report_id, event_id)


NO_RULE_NOTE = ("Không có quy tắc phân công cho lĩnh vực và địa bàn này: chuyển Trung tâm điều hành xử lý. / "
                "No routing rule for this category and area: sent to the dispatcher.")


def mark_failed(report_id: int, reason: str) -> bool:
    """Leave a report the queue could not route as `routing_failed`, for the dispatcher. True if changed."""
    with committing():
        return mark_failed_in_transaction(report_id, reason)


def mark_failed_in_transaction(report_id: int, reason: str) -> bool:
    event_id = db.session.scalar(FAILED_SQL, {"id": report_id, "data": json.dumps({"reason": reason})})
    if event_id is not None:
        outbox.notify_status(report_id, event_id)
    return event_id is not None


def unrouted(older_than_s: int, limit: int = 1000) -> list[tuple[int, int]]:
    """Reports still `submitted` this long after submission (their routing job may be lost), with how
    often the sweep queued them again: [(id, requeues)]."""
    rows = db.session.execute(text(
        "SELECT id, routing_requeues FROM reports WHERE status = 'submitted' "
        "AND submitted_at < now() - make_interval(secs => :s) ORDER BY submitted_at LIMIT :limit"),
        {"s": older_than_s, "limit": limit}).tuples().all()
    db.session.rollback()
    return list(rows)


def count_requeue(report_id: int) -> None:
    db.session.execute(text("UPDATE reports SET routing_requeues = routing_requeues + 1 WHERE id = :id"),
                       {"id": report_id})
    db.session.commit()


def bounding_degrees(metres: float) -> float:
    """A bounding distance in degrees for `metres` anywhere below 80° latitude (the index pre-filter;
    the exact test is on the geography)."""
    return metres / 111_320 / 0.17 if metres else 0.0


def unlink_duplicate(report_id: int, actor_account_id: int | None = None) -> Outcome:
    """An officer says a `duplicate` is a problem of its own: it leaves the original (one supporter
    less) and is routed like a new report, without looking for duplicates again. Commits."""
    from ..errors import ApiError

    try:
        db.session.execute(LOCK_SQL, {"id": report_id})  # before any row lock, in routing's order
        row = db.session.execute(text(
            "SELECT r.status, r.duplicate_of_id, o.public_code FROM reports r "
            "LEFT JOIN reports o ON o.id = r.duplicate_of_id WHERE r.id = :id FOR UPDATE OF r"),
            {"id": report_id}).first()
        if row is None:
            raise ApiError(404, "report_not_found", "No such report.", message_vi="Không tìm thấy phản ánh.")
        if row.status != "duplicate":
            raise ApiError(409, "invalid_transition", "Only a duplicate report can be unlinked.",
                           message_vi="Chỉ tách được phản ánh trùng lặp.")
        db.session.execute(text("""
            WITH upd AS (
                UPDATE reports SET status = 'submitted', duplicate_of_id = NULL, agency_id = NULL,
                                   version = version + 1, updated_at = now()
                WHERE id = :id RETURNING id
            ), orig AS (
                UPDATE reports SET supporters = greatest(supporters - 1, 0), updated_at = now()
                WHERE id = :original_id RETURNING id
            )
            INSERT INTO report_events (report_id, type, actor_kind, actor_account_id, from_status, to_status,
                                       public, data)
            SELECT upd.id, 'unlinked', :actor_kind, :account_id, 'duplicate', 'submitted', true,
                   jsonb_build_object('was_duplicate_of', CAST(:original_code AS text))
            FROM upd
        """), {"id": report_id, "original_id": row.duplicate_of_id, "original_code": row.public_code,
               "account_id": actor_account_id, "actor_kind": "officer" if actor_account_id else "system"})
        outcome = route_in_transaction(report_id, detect_duplicates=False)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return outcome


def warm_up() -> None:
    """Load what every routing job needs (the city, its calendar and this year's and next year's
    holidays) once in a worker before it starts: a forking worker's work horses inherit it instead
    of each computing it again. Best effort: a worker starts even if the database is not ready."""
    try:
        city = areas.current_city()
        if city is not None:
            work_calendar = calendar.city_calendar(city.id)
            now = datetime.now().astimezone()
            work_calendar.add_working_time(now, 1)
            work_calendar.is_working_day(now.date().replace(year=now.year + 1, month=1, day=1))
    except Exception as exc:  # noqa: BLE001 - only a cache warm-up
        log.warning("routing warm-up skipped: %s", exc)
    finally:
        db.session.remove()

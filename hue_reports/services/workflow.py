"""The officers' workflow: one table says who may do what from which status.

Every transition locks the report, checks the version the officer saw (412 if
it moved on), checks the table (409 if the action is not allowed from this
status or for this account), and writes the change, its `report_events` row
with the actor, and the reporter's push message (outbox) in one transaction.
Comments are events too (public or internal). The resident's side: feedback
after a resolution (a 1 or 2 within FEEDBACK_DAYS reopens the report to the
same agency), and resolved reports nobody rated close after FEEDBACK_DAYS.
A reopened report whose agency was deactivated meanwhile goes on to the
dispatcher (away_from_inactive_agency): an inactive agency receives nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import marshmallow as ma
from flask import current_app
from sqlalchemy import select, text, update
from zoneinfo import ZoneInfo

from ..errors import ApiError
from ..extensions import db
from ..models import Account, Agency, Category, Feedback, Photo, Report, ReportEvent
from ..schemas.report import Text
from . import areas, calendar, committing, intake, outbox, routing

log = logging.getLogger(__name__)

STAFF = ("officer", "agency_admin", "dispatcher", "admin")
DISPATCH = ("dispatcher", "admin")
# Roles that act on any report; the others only on their agency's.
ALL_AGENCIES = DISPATCH


@dataclass(frozen=True)
class Rule:
    action: str
    from_status: str
    to_status: str
    roles: tuple[str, ...]
    event: str


# The workflow, in one place. (action, from, to, who, event type)
RULES: tuple[Rule, ...] = tuple(Rule(*row) for row in (
    ("acknowledge", "routed", "acknowledged", STAFF, "acknowledged"),
    ("start", "routed", "in_progress", STAFF, "started"),
    ("start", "acknowledged", "in_progress", STAFF, "started"),
    ("resolve", "acknowledged", "resolved", STAFF, "resolved"),
    ("resolve", "in_progress", "resolved", STAFF, "resolved"),
    ("reject", "routed", "rejected", STAFF, "rejected"),
    ("reject", "acknowledged", "rejected", STAFF, "rejected"),
    ("reject", "in_progress", "rejected", STAFF, "rejected"),
    ("reject", "submitted", "rejected", DISPATCH, "rejected"),
    ("reject", "routing_failed", "rejected", DISPATCH, "rejected"),
    ("transfer", "routed", "routed", STAFF, "transferred"),
    ("transfer", "acknowledged", "routed", STAFF, "transferred"),
    ("transfer", "in_progress", "routed", STAFF, "transferred"),
    ("transfer", "submitted", "routed", DISPATCH, "transferred"),
    ("transfer", "routing_failed", "routed", DISPATCH, "transferred"),
    # (an agency closing its own fix at once would take the resident's rating away: the rating, or
    # FEEDBACK_DAYS without one, closes it; the dispatcher may close earlier)
    ("close", "resolved", "closed", DISPATCH, "closed"),
    ("reopen", "resolved", "in_progress", DISPATCH, "reopened"),
    ("reopen", "closed", "in_progress", DISPATCH, "reopened"),
))
ACTIONS = tuple(dict.fromkeys(rule.action for rule in RULES))
# What each action needs besides the version.
NEEDS_NOTE = {"resolve": "note", "reject": "reason", "transfer": "reason", "reopen": "reason"}
NOTE_MAX = 2000


def rule_for(action: str, status: str, role: str) -> Rule | None:
    return next((r for r in RULES if r.action == action and r.from_status == status and role in r.roles), None)


def allowed_actions(report: Report, account: Account) -> list[str]:
    """The actions this account may take on this report now (for the officer view and the console)."""
    if not may_handle(account, report):
        return []
    return [a for a in ACTIONS if rule_for(a, report.status, account.role)]


def may_handle(account: Account, report: Report) -> bool:
    """Dispatchers and admins handle every report; officers and agency admins their agency's."""
    if account.role in ALL_AGENCIES:
        return True
    return account.agency_id is not None and report.agency_id == account.agency_id


def parse_version(if_match: str | None, field: Any) -> int:
    """The version the client saw: the If-Match header (`"3"`, `W/"3"` or `3`) or the `version` field."""
    raw = if_match if if_match is not None else field
    if raw is None or raw == "":
        raise ApiError(428, "version_required", "Send the report's version (If-Match header or version field).",
                       message_vi="Cần gửi phiên bản của phản ánh (If-Match hoặc version).",
                       fields={"version": ["Required."]})
    value = str(raw).strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not (value.isascii() and value.isdecimal() and len(value) <= 9):
        raise ApiError(422, "validation_error", "version must be a positive integer.",
                       message_vi="version phải là số nguyên dương.", fields={"version": ["A positive integer."]})
    return int(value)


def _text(raw: Any, name: str, required: bool) -> str | None:
    """People's text (a note, a reason, a comment): NFC, no control characters, 1 to NOTE_MAX characters;
    422 naming the field otherwise."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise ApiError(422, "validation_error", f"{name} is required.",
                           message_vi=f"Cần {'lý do' if name == 'reason' else 'nội dung'}.",
                           fields={name: ["Required."]})
        return None
    if not isinstance(raw, str):
        raise ApiError(422, "validation_error", f"{name} must be text.", message_vi="Phải là văn bản.",
                       fields={name: ["Text."]})
    try:
        return Text(validate=ma.validate.Length(min=1, max=NOTE_MAX)).deserialize(raw)
    except ma.ValidationError as exc:
        raise ApiError(422, "validation_error", f"Invalid {name}.", message_vi="Nội dung không hợp lệ.",
                       fields={name: exc.messages}) from exc


def _note(fields: dict, action: str) -> str | None:
    """The note (resolve) or reason (reject, transfer, reopen) an action needs; optional for the others."""
    name = NEEDS_NOTE.get(action, "note")
    raw = fields.get("note") if name == "note" else fields.get("reason", fields.get("note"))
    return _text(raw, name, required=action in NEEDS_NOTE)


def _lock(report_id: int) -> Report:
    # populate_existing: the row as it is now that it is locked, not as this session loaded it earlier.
    report = db.session.scalars(select(Report).where(Report.id == report_id).with_for_update()
                                .execution_options(populate_existing=True)).first()
    if report is None:
        raise ApiError(404, "report_not_found", "No such report.", message_vi="Không tìm thấy phản ánh.")
    return report


def _target_agency(fields: dict, report: Report) -> Agency:
    code = fields.get("agency")
    if not isinstance(code, str) or not code.strip():
        raise ApiError(422, "validation_error", "transfer names the agency (its code, or `dispatcher`).",
                       message_vi="Cần chọn đơn vị nhận (mã đơn vị, hoặc `dispatcher`).",
                       fields={"agency": ["Required."]})
    stmt = select(Agency).where(Agency.active)
    stmt = stmt.where(Agency.kind == "dispatcher") if code.strip() == "dispatcher" else \
        stmt.where(Agency.code == code.strip())
    agency = db.session.scalars(stmt).first()
    if agency is None:
        raise ApiError(422, "validation_error", f"No active agency {code!r}.",
                       message_vi="Không có đơn vị này (hoặc đơn vị đã ngừng hoạt động).",
                       fields={"agency": ["Unknown or inactive."]})
    if agency.id == report.agency_id:
        raise ApiError(422, "validation_error", "The report is already with this agency.",
                       message_vi="Phản ánh đã thuộc đơn vị này.", fields={"agency": ["The same agency."]})
    return agency


def transition(report_id: int, account: Account, action: str, version: int, fields: dict,
               uploads: list[intake.Upload] | None = None) -> Report:
    """Apply `action` to a report for `account`, exactly as the table allows. Commits; returns the report."""
    if action not in ACTIONS:
        raise ApiError(422, "validation_error", f"action must be one of {', '.join(ACTIONS)}.",
                       message_vi="Thao tác không hợp lệ.", fields={"action": [f"One of {', '.join(ACTIONS)}."]})
    uploads = uploads or []
    note = _note(fields, action)
    infos = []
    if action == "resolve":
        if not 1 <= len(uploads) <= current_app.config["MAX_PHOTOS"]:
            raise ApiError(422, "validation_error", "resolve needs 1 to "
                           f"{current_app.config['MAX_PHOTOS']} photos of the fix.",
                           message_vi="Cần ít nhất một ảnh kết quả xử lý.", fields={"photos": ["Required."]})
        city = areas.current_city()
        infos = intake.inspect_uploads(uploads, ZoneInfo(city.timezone if city else "UTC"))
    elif uploads:
        raise ApiError(422, "validation_error", "Only resolve takes photos.",
                       message_vi="Chỉ thao tác xử lý xong mới kèm ảnh.", fields={"photos": ["Not for this action."]})
    created: list[str] = []
    try:
        report, photo_ids = _apply(report_id, account, action, version, note, fields, uploads, infos, created)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        intake.discard(created)
        raise
    after_commit(photo_ids)
    return report


@dataclass(frozen=True)
class CommandAdmin:
    """An administrator acting through a `flask` command: admin rights, no account of its own (the audit
    log names the system user). Its events are the admin's, without an account id."""

    id: int | None = None
    role: str = "admin"
    agency_id: int | None = None


def transfer_in_transaction(report_id: int, account: Account | CommandAdmin, version: int, agency: str,
                            reason: str, data: dict[str, Any] | None = None) -> Report:
    """What transition() does for a transfer, inside the caller's transaction (which commits, then calls
    after_commit): for transfers made together, e.g. re-routing a ward's open reports. `data` is added to
    the event's data."""
    note = _text(reason, "reason", required=True)
    report, _ = _apply(report_id, account, "transfer", version, note, {"agency": agency}, [], [], [], data)
    return report


def _apply(report_id: int, account: Account | CommandAdmin, action: str, version: int, note: str | None,
           fields: dict, uploads: list[intake.Upload], infos: list, created: list[str],
           extra_data: dict[str, Any] | None = None) -> tuple[Report, list[int]]:
    """The change, its event, photos and messages, flushed in the caller's transaction. Returns the report
    and the ids of the photos stored."""
    if action in ("transfer", "reopen"):  # it moves duplicates, or may hand the report to the dispatcher (its
        # agency inactive): the category's lock first, in routing's order, as an agency's deactivation waits for it
        db.session.execute(routing.LOCK_SQL, {"id": report_id})
    report = _lock(report_id)
    if not may_handle(account, report):
        # Another agency's report: as if it did not exist (its existence is not the officer's business).
        raise ApiError(404, "report_not_found", "No such report.", message_vi="Không tìm thấy phản ánh.")
    if report.version != version:
        raise ApiError(412, "version_mismatch",
                       f"The report changed since you loaded it (version {report.version}, not {version}): "
                       "reload it.", message_vi="Phản ánh đã thay đổi, vui lòng tải lại.",
                       headers={"ETag": f'"{report.version}"'})
    rule = rule_for(action, report.status, account.role)
    if rule is None:
        allowed = ", ".join(allowed_actions(report, account)) or "none"
        raise ApiError(409, "invalid_transition",
                       f"{action} is not allowed from {report.status} for a {account.role}.",
                       message_vi="Không thể thực hiện thao tác này ở trạng thái hiện tại.",
                       fields={"action": [f"Allowed now: {allowed}."]})
    now = datetime.now(timezone.utc)
    data: dict[str, Any] = {}
    from_status, from_agency = report.status, report.agency_id
    if action == "transfer":
        target = _target_agency(fields, report)
        report.agency_id = target.id
        report.acknowledged_at = None  # the new agency has not acknowledged it
        # Its duplicates follow it (their reporters follow it, and the old agency is out of it).
        db.session.execute(update(Report).where(Report.duplicate_of_id == report.id)
                           .values(agency_id=target.id))
        data = {"from_agency": _code(from_agency), "from_agency_id": from_agency, "to_agency": target.code}
        if report.routed_at is None:
            report.routed_at = now
        if report.due_at is None:  # (manual routing of an unrouted report: its deadline starts at submission)
            report.due_at = _deadline(report, report.submitted_at, data)
    elif action == "acknowledge":
        report.acknowledged_at = now
    elif action == "start" and report.acknowledged_at is None:
        report.acknowledged_at = now  # starting the work acknowledges it
    elif action == "resolve":
        report.resolved_at = now
    elif action == "close":
        report.closed_at = now
    elif action == "reopen":
        report.resolved_at = report.closed_at = None
        report.due_at = _deadline(report, now, data)  # a fresh deadline for the rework
    data.update(extra_data or {})
    report.status = rule.to_status
    report.version += 1
    event = ReportEvent(report_id=report.id, type=rule.event, actor_kind=_actor_kind(account),
                        actor_account_id=account.id, from_status=from_status, to_status=rule.to_status,
                        agency_id=report.agency_id, note=note, public=True, data=data, created_at=now)
    db.session.add(event)
    db.session.flush()
    if infos:
        attached = set(db.session.scalars(select(Photo.sha256).where(Photo.report_id == report.id)))
        if attached & {i.sha256 for i in infos}:
            raise ApiError(422, "photo_already_attached", "A photo of the fix is already on this report: "
                           "send a photo taken after the work.",
                           message_vi="Ảnh này đã có trong phản ánh: hãy gửi ảnh chụp sau khi xử lý.",
                           fields={"photos": ["Already attached to this report."]})
        intake.lock_content(*{i.sha256 for i in infos})
        intake.store_originals(uploads, infos, created)
        for photo in intake.photo_rows(infos, "resolution"):
            photo.report_id, photo.event_id = report.id, event.id
            db.session.add(photo)
    db.session.flush()
    outbox.notify_status(report.id, event.id)
    if action == "transfer":
        outbox.tell_agency(report.id, report.agency_id, "report.transferred", event.id)
    elif action == "reopen":
        away_from_inactive_agency(report, now)
    photo_ids = [p.id for p in report.photos if p.event_id == event.id] if infos else []
    return report, photo_ids


def after_commit(photo_ids: list[int]) -> None:
    """After a commit: queue the derivatives of the photos stored, and the outbox messages due."""
    from ..jobs import photos as photo_jobs
    from ..jobs.notifications import enqueue_due_soon

    for photo_id in photo_ids:
        photo_jobs.enqueue_derivatives(photo_id)
    enqueue_due_soon()


INACTIVE_AGENCY_NOTE = ("Đơn vị đã xử lý phản ánh này đã ngừng hoạt động: chuyển Trung tâm điều hành xử lý. / "
                        "The agency that handled this report is inactive: sent to the dispatcher.")


def away_from_inactive_agency(report: Report, now: datetime) -> ReportEvent | None:
    """After a reopening (flushed): a report whose agency is inactive, which receives nothing, goes to the
    dispatcher as routing sends it what no rule covers: a `transferred` event by the system (`reason`
    `agency_inactive`, the note saying so), so the custody moves as in a transfer; the reopening's fresh
    deadline stays, as a transfer keeps its deadline. No active dispatcher: `routing_failed`, for the admins.
    Returns the event written, or None if the agency is active. (The caller holds the category's lock.)"""
    if report.agency_id is None or db.session.scalar(select(Agency.active).where(Agency.id == report.agency_id)):
        return None
    from_status, from_agency = report.status, report.agency_id
    data: dict[str, Any] = {"reason": "agency_inactive", "from_agency": _code(from_agency),
                            "from_agency_id": from_agency}
    dispatcher = db.session.execute(routing.DISPATCHER_SQL).mappings().first()
    if dispatcher is None:
        log.error("report %s reopened at inactive agency %s, and no active dispatcher", report.id, data["from_agency"])
        event_type, to_status = "routing_failed", "routing_failed"
    else:
        event_type, to_status = "transferred", "routed"
        report.agency_id, report.acknowledged_at = dispatcher["agency_id"], None
        data["to_agency"] = _code(report.agency_id)
        db.session.execute(update(Report).where(Report.duplicate_of_id == report.id)
                           .values(agency_id=report.agency_id))
    report.status = to_status
    report.version += 1
    event = ReportEvent(report_id=report.id, type=event_type, actor_kind="system", from_status=from_status,
                        to_status=to_status, agency_id=report.agency_id, note=INACTIVE_AGENCY_NOTE, public=True,
                        data=data, created_at=now)
    db.session.add(event)
    db.session.flush()
    outbox.notify_status(report.id, event.id)
    if dispatcher is not None:
        outbox.tell_agency(report.id, report.agency_id, "report.transferred", event.id)
    return event


def _code(agency_id: int | None) -> str | None:
    return db.session.scalar(select(Agency.code).where(Agency.id == agency_id)) if agency_id else None


def _actor_kind(account: Account) -> str:
    return "admin" if account.role == "admin" else "officer"


def _deadline(report: Report, start: datetime, data: dict[str, Any]) -> datetime:
    """The deadline `start` + the category's SLA in working hours; recorded in the event's `data` (the
    metrics read deadlines from the events)."""
    sla = db.session.scalar(select(Category.sla_hours).where(Category.id == report.category_id))
    due = calendar.city_calendar().add_working_time(start, Decimal(sla))
    data.update(due_at=due.isoformat(), sla_hours=float(sla), due_from=start.isoformat())
    return due


def comment(report_id: int, account: Account, fields: dict) -> ReportEvent:
    """A comment on a report: public (on the timeline) or internal (officer endpoints only). Commits."""
    body = _text(fields.get("text", fields.get("note")), "text", required=True)
    public = fields.get("public", False)
    if not isinstance(public, bool):
        raise ApiError(422, "validation_error", "public must be true or false.",
                       message_vi="public phải là true/false.", fields={"public": ["A boolean."]})
    with committing():
        report = _lock(report_id)
        if not may_handle(account, report):
            raise ApiError(404, "report_not_found", "No such report.", message_vi="Không tìm thấy phản ánh.")
        event = ReportEvent(report_id=report.id, type="comment", actor_kind=_actor_kind(account),
                            actor_account_id=account.id, agency_id=report.agency_id, note=body, public=public,
                            data={})
        db.session.add(event)
    return event


def feedback(report: Report, fields: dict) -> Feedback:
    """The reporter rates the fix, once, after it was resolved. A 1 or 2 within FEEDBACK_DAYS reopens the
    report to the same agency (to the dispatcher if that agency is inactive now); a better rating closes it.
    Commits."""
    rating = fields.get("rating")
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise ApiError(422, "validation_error", "rating is an integer from 1 to 5.",
                       message_vi="Điểm đánh giá từ 1 đến 5.", fields={"rating": ["An integer from 1 to 5."]})
    comment_text = _text(fields.get("comment"), "comment", required=False)
    days = current_app.config["FEEDBACK_DAYS"]
    try:
        if rating <= 2:  # (it may hand the report to the dispatcher: the category's lock first, as transfers)
            db.session.execute(routing.LOCK_SQL, {"id": report.id})
        locked = _lock(report.id)
        if db.session.scalar(select(Feedback.id).where(Feedback.report_id == locked.id)) is not None:
            raise ApiError(409, "feedback_exists", "This report was already rated.",
                           message_vi="Bạn đã đánh giá phản ánh này.")
        if locked.status != "resolved" or locked.resolved_at is None:
            raise ApiError(409, "not_resolved", "Only a resolved report can be rated.",
                           message_vi="Chỉ đánh giá được phản ánh đã xử lý xong.")
        now = datetime.now(timezone.utc)
        if now - locked.resolved_at > timedelta(days=days):
            raise ApiError(409, "feedback_closed", f"Ratings are taken for {days} days after the fix.",
                           message_vi=f"Chỉ đánh giá trong {days} ngày sau khi xử lý xong.")
        row = Feedback(report_id=locked.id, rating=rating, comment=comment_text)
        db.session.add(row)
        db.session.add(ReportEvent(report_id=locked.id, type="feedback", actor_kind="resident", public=True,
                                   agency_id=locked.agency_id, data={"rating": rating}, created_at=now))
        if rating <= 2:
            status, event_type, data = "in_progress", "reopened", {"reason": "unsatisfied", "rating": rating}
            locked.resolved_at = None
            locked.due_at = _deadline(locked, now, data)
        else:
            status, event_type, data = "closed", "closed", {"reason": "rated", "rating": rating}
            locked.closed_at = now
        event = ReportEvent(report_id=locked.id, type=event_type, actor_kind="resident", from_status="resolved",
                            to_status=status, agency_id=locked.agency_id, public=True, data=data, created_at=now)
        locked.status = status
        locked.version += 1
        db.session.add(event)
        db.session.flush()
        outbox.notify_status(locked.id, event.id)
        if rating <= 2:
            away_from_inactive_agency(locked, now)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    after_commit([])
    return row


CLOSE_UNRATED_SQL = text("""
WITH due AS (
    SELECT r.id FROM reports r
    WHERE r.status = 'resolved' AND r.resolved_at < now() - make_interval(days => :days)
      AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.report_id = r.id AND f.created_at >= r.resolved_at)
    ORDER BY r.resolved_at LIMIT :limit
    FOR UPDATE SKIP LOCKED
), upd AS (
    UPDATE reports r SET status = 'closed', closed_at = now(), version = version + 1, updated_at = now()
    FROM due WHERE r.id = due.id
    RETURNING r.id, r.agency_id
)
INSERT INTO report_events (report_id, type, actor_kind, from_status, to_status, agency_id, public, data)
SELECT id, 'closed', 'system', 'resolved', 'closed', agency_id, true, '{"reason": "no_feedback"}'::jsonb FROM upd
RETURNING id, report_id
""")


def close_unrated(limit: int = 1000) -> int:
    """Close the resolved reports nobody rated within FEEDBACK_DAYS. Returns how many."""
    with committing():
        rows = db.session.execute(CLOSE_UNRATED_SQL, {"days": current_app.config["FEEDBACK_DAYS"],
                                                      "limit": limit}).all()
        for event_id, report_id in rows:
            outbox.notify_status(report_id, event_id)
    return len(rows)

"""Reading reports: by id or public code, the reporter's access, the public timeline."""

from __future__ import annotations

import hmac
import re

from sqlalchemy import and_, or_, select, text, tuple_
from sqlalchemy.orm import selectinload

from ..errors import ApiError
from ..extensions import db
from ..models import Report, ReportEvent
from .intake import token_hash


ID_REF = re.compile(r"^\d{1,18}$")  # fits a BIGINT
CODE_REF = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")


def find(ref: str) -> Report:
    """A report by its numeric id or its public code (HUE-2026-000123); 404 otherwise."""
    not_found = ApiError(404, "report_not_found", "No such report.", message_vi="Không tìm thấy phản ánh.")
    stmt = select(Report).options(selectinload(Report.photos), selectinload(Report.category))
    if ID_REF.match(ref):
        stmt = stmt.where(Report.id == int(ref))
    elif CODE_REF.match(ref):
        stmt = stmt.where(Report.public_code == ref.upper())
    else:
        raise not_found
    report = db.session.scalars(stmt).first()
    if report is None:
        raise not_found
    return report


def is_reporter(report: Report, token: str | None) -> bool:
    """Does `token` prove the caller filed this report? (Compared in constant time.)"""
    if not token or report.tracking_token_hash is None:
        return False
    return hmac.compare_digest(token_hash(token), report.tracking_token_hash)


def public_events(report: Report) -> list[ReportEvent]:
    return list(db.session.scalars(select(ReportEvent).where(
        ReportEvent.report_id == report.id, ReportEvent.public).order_by(ReportEvent.id)))


FEED_MAX = 500
CURSOR = re.compile(r"^(\d{1,19})-(\d{1,19})$")


def parse_cursor(value: str | None) -> tuple[int, int]:
    """A feed cursor: `<txid>-<id>` as given in `next_since`, or 0 / nothing for the beginning."""
    if value is None or value == "0":
        return (0, 0)
    match = CURSOR.match(value)
    if match is None or max(int(match[1]), int(match[2])) > 2**63 - 1:
        raise ApiError(422, "validation_error", "since must be a cursor from next_since (or 0).",
                       message_vi="since phải là giá trị next_since đã nhận (hoặc 0).",
                       fields={"since": ["A cursor from next_since, or 0."]})
    return int(match[1]), int(match[2])


def format_cursor(event: ReportEvent) -> str:
    return f"{event.txid}-{event.id}"


def agency_events(account, since: tuple[int, int], limit: int) -> list[ReportEvent]:
    """An agency's feed of what happened to its reports after the cursor `since`, in the order of the
    transactions that wrote them. Only events of transactions older than the oldest still running are
    given: an event committed late (a long transaction) then still comes after the cursor, never before
    it. The dispatcher and admins see every agency's."""
    horizon = text("(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint")
    own = text("(pg_current_xact_id_if_assigned()::text)::bigint")  # (this transaction's writes are final to it)
    stmt = (select(ReportEvent)
            .where(tuple_(ReportEvent.txid, ReportEvent.id) > tuple_(*since),
                   or_(ReportEvent.txid < horizon, ReportEvent.txid == own))
            .options(selectinload(ReportEvent.report)).order_by(ReportEvent.txid, ReportEvent.id).limit(limit))
    if account.role not in ("dispatcher", "admin"):
        if account.agency_id is None:  # (the accounts table forbids it; never widen the feed if it happens)
            raise ApiError(403, "forbidden", "This account belongs to no agency.",
                           message_vi="Tài khoản này không thuộc đơn vị nào.")
        # Its reports' events, and the transfers that took a report away from it.
        stmt = stmt.where(or_(ReportEvent.agency_id == account.agency_id,
                              and_(ReportEvent.type == "transferred",
                                   ReportEvent.data["from_agency_id"].as_integer() == account.agency_id)))
    return list(db.session.scalars(stmt))

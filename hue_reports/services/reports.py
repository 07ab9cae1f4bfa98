"""Reading reports: by id or public code, the reporter's access, the public timeline."""

from __future__ import annotations

import hmac
import re

from sqlalchemy import select
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


def agency_events(account, since: int, limit: int) -> list[ReportEvent]:
    """An agency's feed of what happened to its reports, after event id `since`, oldest first.
    The dispatcher and admins see every agency's."""
    stmt = (select(ReportEvent).where(ReportEvent.id > since)
            .options(selectinload(ReportEvent.report)).order_by(ReportEvent.id).limit(limit))
    if account.role not in ("dispatcher", "admin"):
        stmt = stmt.where(ReportEvent.agency_id == account.agency_id)
    return list(db.session.scalars(stmt))

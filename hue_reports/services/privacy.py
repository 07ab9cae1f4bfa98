"""Personal data retention (Vietnam's Decree 13/2023/ND-CP on personal data protection).

A reporter's personal data is kept while it serves the report, then for
PERSONAL_DATA_RETENTION_MONTHS (default 12) after the report is *closed*, then
erased by the scheduled job (`jobs.maintenance.purge_personal_data`) or by
`flask privacy purge`. What the public and the metrics use stays: the report,
its location and description, its timeline, the rating, the public derivatives.

When a report is closed, from the workflow's statuses (services/workflow.py):
- `closed`: at `closed_at` (the rating, FEEDBACK_DAYS without one, or the dispatcher closed it);
- `rejected`: at its rejection (the latest event into `rejected`; no rule leaves that status);
- `duplicate`: when its original is closed or rejected, as above: until then its reporter follows the
  original (push messages), so a duplicate of an open report is not closed;
- every other status is open, `resolved` included (the reporter may still rate, or it is reopened).
The dispatcher may reopen a closed report, even after its data was erased; when it closes again, the
retention starts again and anything added meanwhile (photos of a new fix) is erased in its turn.

What is erased, per report, in one transaction (all of it or, on any failure, none of it):
- the contact (`report_contacts`: name, phone, e-mail, device id, push address), its row kept with
  `erased_at`;
- the tracking token's hash (the reporter's private link stops working), the Idempotency-Keys of the
  submission (their scope names the device), the push messages' addresses in the outbox, the
  feedback's comment (free text; the rating stays);
- the photos' originals: each photo is marked `original_deleted_at` (served no more: 410), its camera
  metadata (GPS, capture time) is cleared, and the stored original is deleted through the storage
  interface unless a photo of another report still within retention (open, or closed more recently)
  shares its content (originals are content-addressed: several reports may hold the same file; the
  last one to leave retention takes it); the derivatives stay (they are the public view, without
  metadata);
- and a `personal_data_erased` event (internal, not public) records that it happened and how much,
  never what.
The files are deleted last, under the contents' locks (intake cannot attach the same content meanwhile),
before the commit: a failure rolls the report back whole and the next run does it again (deleting a
missing file is no error).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import select, text, update

from ..extensions import db
from ..models import Feedback, IdempotencyKey, OutboxMessage, Photo, Report, ReportContact, ReportEvent
from .intake import lock_content
from .storage import get_storage

log = logging.getLogger(__name__)

EVENT = "personal_data_erased"
BATCH = 100
# The scheduled job stops after this long and leaves the rest to its next run, so that it never holds
# the `periodic` queue's worker long (heartbeats, sweeps and routing share it).
JOB_BUDGET_S = 30.0
ERASED_TARGET = "erased:"

# The time a report was closed (see the module's docstring); NULL while it is open.
_CLOSED_TIME = """CASE
    WHEN {r}.status = 'closed' AND {r}.closed_at IS NOT NULL THEN {r}.closed_at
    WHEN {r}.status IN ('closed', 'rejected') THEN
        (SELECT max(e.created_at) FROM report_events e WHERE e.report_id = {r}.id AND e.to_status = {r}.status)
END"""
CLOSED_AT_SQL = f"""CASE WHEN r.status = 'duplicate' THEN
    (SELECT CASE WHEN x.original_closed IS NOT NULL THEN GREATEST(x.original_closed, x.linked) END FROM (
        SELECT {_CLOSED_TIME.format(r="o")} AS original_closed,
               (SELECT max(e.created_at) FROM report_events e
                WHERE e.report_id = r.id AND e.to_status = 'duplicate') AS linked
        FROM reports o WHERE o.id = r.duplicate_of_id) x)
ELSE {_CLOSED_TIME.format(r="r")} END"""
DUE_SQL = text(f"""
SELECT id FROM (
    SELECT r.id, r.privacy_erased_at, {CLOSED_AT_SQL} AS closed_at FROM reports r
    WHERE r.status IN ('closed', 'rejected', 'duplicate') AND (CAST(:id AS bigint) IS NULL OR r.id = :id)
) f
WHERE f.closed_at < now() - make_interval(months => :months)
  AND (f.privacy_erased_at IS NULL OR f.privacy_erased_at < f.closed_at)
  AND (CAST(:after AS bigint) IS NULL OR f.id > :after)
ORDER BY f.id LIMIT :limit
""")
# Whether a stored original may go with this report's photos: no photo of another report still within
# retention (open, or closed more recently than the retention) holds it and still has it. (By sha256 too:
# that column is indexed.)
DELETABLE_SQL = text(f"""
SELECT NOT EXISTS (
    SELECT 1 FROM photos p JOIN reports r ON r.id = p.report_id
    WHERE p.sha256 = :sha AND p.storage_key = :key AND p.report_id <> :id AND p.original_deleted_at IS NULL
      AND COALESCE(({CLOSED_AT_SQL}) >= now() - make_interval(months => :months), true)
)
""")


@dataclass
class PurgeResult:
    """What a run did (or, dry, would do)."""

    dry_run: bool = False
    reports: int = 0
    contacts: int = 0
    photos: int = 0
    originals: set[str] = field(default_factory=set)  # the stored originals deleted (distinct keys)
    failed: list[int] = field(default_factory=list)
    more: bool = False  # stopped by its limit or time budget with reports left

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "reports": self.reports, "contacts": self.contacts, "photos": self.photos,
                "originals_deleted": len(self.originals), "failed": len(self.failed), "more": self.more}


def retention_months() -> int:
    return current_app.config["PERSONAL_DATA_RETENTION_MONTHS"]


def due_reports(limit: int = BATCH, after: int | None = None, report_id: int | None = None) -> list[int]:
    """Ids of reports closed longer than the retention whose personal data is still there (or came back
    with a reopening), in id order after `after`."""
    rows = db.session.execute(DUE_SQL, {"months": retention_months(), "limit": limit, "after": after,
                                        "id": report_id}).all()
    return [row.id for row in rows]


def purge(dry_run: bool = False, limit: int | None = None, budget_s: float | None = None) -> PurgeResult:
    """Erase the personal data of every report past its retention, in batches of BATCH reports, each
    report in its own transaction. `limit`: at most this many reports; `budget_s`: stop starting new
    reports after this long. A report that fails is left whole (and logged); the others go on.
    Dry: counts what would be erased, changes nothing."""
    result = PurgeResult(dry_run=dry_run)
    started = time.monotonic()
    after = None
    while True:
        batch = due_reports(BATCH, after)
        db.session.rollback()  # (no transaction held between reports)
        if not batch:
            return result
        for report_id in batch:
            if (limit is not None and result.reports >= limit) or (
                    budget_s is not None and time.monotonic() - started > budget_s):
                result.more = True
                return result
            after = report_id
            try:
                done = erase_report(report_id, dry_run=dry_run)
            except Exception:
                db.session.rollback()
                log.exception("report %s: personal data not erased (left whole; the next run tries again)",
                              report_id)
                result.failed.append(report_id)
                continue
            if done is not None:
                result.reports += 1
                result.contacts += done.contacts
                result.photos += done.photos
                result.originals |= done.originals


def erase_report(report_id: int, dry_run: bool = False) -> PurgeResult | None:
    """Erase one report's personal data if it is due, in one transaction (see the module's docstring).
    Returns what was (dry: would be) erased, or None if it is not due (any more) or busy (an officer's
    change holds it: the next run takes it). Raises if anything fails, having rolled back."""
    try:
        query = select(Report).where(Report.id == report_id).execution_options(populate_existing=True)
        report = db.session.scalars(query if dry_run else query.with_for_update(skip_locked=True)).first()
        if report is None or not due_reports(1, report_id=report_id):  # (re-checked under the lock)
            db.session.rollback()
            return None
        done = PurgeResult(dry_run=dry_run, reports=1)
        contact = db.session.get(ReportContact, report_id)
        if contact is not None and contact.erased_at is None:
            done.contacts = 1
        photos = db.session.scalars(select(Photo).where(Photo.report_id == report_id,
                                                        Photo.original_deleted_at.is_(None))
                                    .order_by(Photo.id)).all()
        done.photos = len(photos)
        keys = {photo.storage_key: photo.sha256 for photo in photos}
        if keys and not dry_run:
            lock_content(*keys.values())  # (intake and the orphan sweep wait: nobody attaches it meanwhile)
        deletable = [key for key in sorted(keys) if db.session.scalar(
            DELETABLE_SQL, {"key": key, "sha": keys[key], "id": report_id, "months": retention_months()})]
        done.originals = set(deletable)
        if dry_run:
            db.session.rollback()
            return done
        now = db.session.scalar(select(text("now()")))
        if contact is not None:
            contact.name = contact.phone = contact.email = contact.device_id = contact.notify_url = None
            contact.erased_at = contact.erased_at or now
        for photo in photos:
            photo.original_deleted_at = now
            photo.gps = photo.taken_at = None
        report.tracking_token_hash = None
        report.privacy_erased_at = now
        db.session.execute(update(Feedback).where(Feedback.report_id == report_id, Feedback.comment.is_not(None))
                           .values(comment=None))
        db.session.execute(IdempotencyKey.__table__.delete().where(IdempotencyKey.report_id == report_id))
        # The reporter's push messages (to their notify_url; agencies' webhooks have an agency): their address
        # goes, and any still pending is given up.
        db.session.execute(update(OutboxMessage).where(
            OutboxMessage.report_id == report_id, OutboxMessage.agency_id.is_(None),
            OutboxMessage.target != ERASED_TARGET).values(
            target=ERASED_TARGET, gave_up_at=text("COALESCE(gave_up_at, CASE WHEN delivered_at IS NULL "
                                                  "THEN now() END)")))
        db.session.add(ReportEvent(
            report_id=report_id, type=EVENT, actor_kind="system", agency_id=report.agency_id, public=False,
            created_at=now, data={"retention_months": retention_months(), "contact": bool(done.contacts),
                                  "photos": done.photos, "originals_deleted": len(deletable)}))
        db.session.flush()
        storage = get_storage()
        for key in deletable:  # last: a failure before here leaves every file in place
            storage.delete(key)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    log.info("report %s: personal data erased (%s photos, %s originals deleted)", report_id, done.photos,
             len(deletable))
    return done

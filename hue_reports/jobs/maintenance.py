"""Housekeeping jobs."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select

from ..extensions import db
from ..models import IdempotencyKey, Photo
from ..services import privacy
from ..services.intake import remove_if_unreferenced
from ..services.storage import get_storage, recent_originals, remove_stale_spools
from . import job

# A request holds its spooled uploads for seconds; an hour-old one was left by a dead worker.
STALE_SPOOL_SECONDS = 3600
# An original stored by a request that crashed before its commit: looked for in this window of age
# (younger ones may still be committing; older ones were checked by earlier sweeps).
ORPHAN_MIN_AGE_S, ORPHAN_MAX_AGE_S = 600, 3 * 86400


@job
def expire_idempotency_keys() -> int:
    """Forget Idempotency-Keys older than IDEMPOTENCY_KEY_HOURS. Returns how many were removed."""
    hours = current_app.config["IDEMPOTENCY_KEY_HOURS"]
    removed = db.session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.created_at < func.now() - timedelta(hours=hours))).rowcount
    db.session.commit()
    return removed


@job
def remove_stale_uploads() -> int:
    """Delete spooled uploads abandoned by a worker that died mid-request. Returns how many."""
    return remove_stale_spools(get_storage(), STALE_SPOOL_SECONDS)


@job
def sweep_orphan_originals() -> int:
    """Delete originals that no photo refers to: a request that crashed (killed, out of memory, power
    cut) between storing its photos and committing its report. Returns how many were removed."""
    keys = recent_originals(get_storage(), ORPHAN_MAX_AGE_S, ORPHAN_MIN_AGE_S)
    if not keys:
        return 0
    referenced = set(db.session.scalars(select(Photo.storage_key).where(Photo.storage_key.in_(keys),
                                                                        Photo.original_deleted_at.is_(None))))
    db.session.rollback()
    return sum(remove_if_unreferenced(key) for key in keys if key not in referenced)


class PurgeFailed(RuntimeError):
    """Some reports' personal data could not be erased (each left whole; the next run tries again)."""


@job
def purge_personal_data() -> dict:
    """Erase the personal data of the reports closed longer than PERSONAL_DATA_RETENTION_MONTHS ago
    (services/privacy.py), for at most privacy.JOB_BUDGET_S; what is left goes to the next run. Fails
    (so the job failure shows in RQ and /metrics) if a report could not be erased. Returns the counts."""
    result = privacy.purge(budget_s=privacy.JOB_BUDGET_S)
    if result.failed:
        raise PurgeFailed(f"{len(result.failed)} reports not erased (ids {result.failed[:20]}); "
                          f"erased {result.reports}")
    return result.as_dict()

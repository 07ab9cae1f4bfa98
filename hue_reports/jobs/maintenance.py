"""Housekeeping jobs."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func

from ..extensions import db
from ..models import IdempotencyKey
from ..services.storage import get_storage, remove_stale_spools
from . import job

# A request holds its spooled uploads for seconds; an hour-old one was left by a dead worker.
STALE_SPOOL_SECONDS = 3600


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

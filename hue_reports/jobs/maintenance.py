"""Housekeeping jobs."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func

from ..extensions import db
from ..models import IdempotencyKey
from . import job


@job
def expire_idempotency_keys() -> int:
    """Forget Idempotency-Keys older than IDEMPOTENCY_KEY_HOURS. Returns how many were removed."""
    hours = current_app.config["IDEMPOTENCY_KEY_HOURS"]
    removed = db.session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.created_at < func.now() - timedelta(hours=hours))).rowcount
    db.session.commit()
    return removed

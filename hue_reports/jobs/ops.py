"""Operational jobs."""

from __future__ import annotations

from sqlalchemy import text

from ..extensions import db
from ..services import health
from . import job


@job
def heartbeat(sent_at: float) -> None:
    """Prove the scheduler -> Redis -> worker -> database path works; /readyz reports its age."""
    db.session.execute(text("SELECT 1"))
    health.record_heartbeat(sent_at)

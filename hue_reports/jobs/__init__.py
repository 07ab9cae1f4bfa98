"""RQ entry points. Each takes ids (never ORM objects), runs in an app context and calls a service.

The @job decorator gives every job its own application context, so its own
database session, closed when the job ends: nothing (a transaction, `now()`,
the identity map) carries over from one job to the next, whether the worker
forks a work horse per job or runs jobs in-process. (A forked horse never
reuses its parent's database connections: see extensions.py.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from datetime import datetime, timedelta, timezone

from flask import Flask, current_app, has_app_context

F = TypeVar("F", bound=Callable[..., Any])

_app: Flask | None = None


def _app_for_jobs() -> Flask:
    """The worker's app if there is one (`flask worker`), else one made for this process."""
    global _app
    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined]
    if _app is None:
        from .. import create_app

        _app = create_app()
    return _app


def job(func: F) -> F:
    """Run `func` in a fresh application context (and so a fresh session)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from rq import get_current_job

        from ..observability import enter_job, leave_job

        tags = enter_job(get_current_job())  # (its log lines carry its id and its request's)
        try:
            with _app_for_jobs().app_context():  # popping it removes the session
                return func(*args, **kwargs)
        finally:
            leave_job(tags)

    return wrapper  # type: ignore[return-value]


def queue_names() -> list[str]:
    return list(current_app.config["RQ_QUEUES"])


def pending(job_id: str, stale_after: timedelta) -> bool:
    """Whether the job of this id is waiting for a worker (or for its retry) or running now, as a sweep
    asks before queueing its work again. A job `started` longer ago than `stale_after` (twice its timeout:
    RQ stops a job at its timeout) is not running: its worker died with it (SIGKILL, out of memory, a lost
    machine), and RQ itself would notice only when the job's heartbeat runs out, a minute or more later."""
    from rq.job import Job

    from ..extensions import get_redis

    try:
        existing = Job.fetch(job_id, connection=get_redis())
        status = existing.get_status(refresh=False)
    except Exception:  # NoSuchJobError, or a job hash a flush left half-written
        return False
    if status in ("queued", "scheduled", "deferred"):
        return True
    started = existing.started_at
    if status == "started" and started is not None:
        return datetime.now(timezone.utc) - started.replace(tzinfo=started.tzinfo or timezone.utc) < stale_after
    return False

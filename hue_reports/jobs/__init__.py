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


class QueueIndex:
    """The job ids waiting in each queue, read once (one LRANGE a queue) for a sweep's many questions."""

    def __init__(self, connection):
        self.connection = connection
        self.ids: dict[str, set[str]] = {}

    def holds(self, queue: str, job_id: str) -> bool:
        from rq import Queue

        if queue not in self.ids:
            self.ids[queue] = set(Queue(queue, connection=self.connection).get_job_ids())
        return job_id in self.ids[queue]


def pending(job_id: str, stale_after: timedelta, index: QueueIndex | None = None) -> bool:
    """Whether the job of this id is waiting for a worker (or for its retry) or running now, as a sweep
    asks before queueing its work again.

    Not pending, so lost: no job; a finished or failed one; one `started` longer ago than `stale_after`
    (twice its timeout: RQ stops a job at its timeout), whose worker died with it (SIGKILL, out of memory,
    a lost machine), which RQ itself would notice only when the job's heartbeat runs out, a minute or more
    later; and one still `queued` that is no longer in its queue: a worker listening to several queues
    pops a job (BLPOP) before it marks it started, and a worker killed in between takes the job with it.
    (`index`: the queues as read once by the caller.) Jobs are idempotent: one taken for lost that was in
    fact just being started, or queued after the index was read, runs twice and does its work once."""
    from rq.job import Job

    from ..extensions import get_redis

    try:
        existing = Job.fetch(job_id, connection=get_redis())
        status = existing.get_status(refresh=False)
    except Exception:  # NoSuchJobError, or a job hash a flush left half-written
        return False
    if status == "queued":
        return (index or QueueIndex(get_redis())).holds(existing.origin, job_id)
    if status in ("scheduled", "deferred"):
        return True
    started = existing.started_at
    if status == "started" and started is not None:
        return datetime.now(timezone.utc) - started.replace(tzinfo=started.tzinfo or timezone.utc) < stale_after
    return False

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

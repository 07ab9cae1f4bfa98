"""RQ entry points. Each takes ids (never ORM objects), runs in an app context and calls a service.

Jobs run in a forked work horse: the @job decorator gives each one an app
context (the worker's own, or a fresh app when run elsewhere) and makes sure
the child never reuses database connections inherited from its parent.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, has_app_context

F = TypeVar("F", bound=Callable[..., Any])

_app = None
_engine_pid: int | None = None


def _app_for_jobs():
    global _app
    if _app is None:
        from .. import create_app

        _app = create_app()
    return _app


def _forget_inherited_connections() -> None:
    """After a fork, drop (without closing) the pool's connections: they belong to the parent."""
    global _engine_pid
    from ..extensions import db

    if _engine_pid != os.getpid():
        db.engine.dispose(close=False)
        _engine_pid = os.getpid()


def job(func: F) -> F:
    """Run `func` inside an application context, fork-safe."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if has_app_context():
            _forget_inherited_connections()
            return func(*args, **kwargs)
        with _app_for_jobs().app_context():
            _forget_inherited_connections()
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def queue_names() -> list[str]:
    return list(current_app.config["RQ_QUEUES"])

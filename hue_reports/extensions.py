"""Extension objects, created unbound and attached to an app in create_app()."""

from __future__ import annotations

import os

import flask_smorest
import redis
from flask import Flask, current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from rq import Queue

from . import errors
from .models.base import Base
from .schemas.common import ErrorSchema

db = SQLAlchemy(model_class=Base)
migrate = Migrate()


def _drop_inherited_connections() -> None:
    """In a forked child (an RQ work horse), never use the parent's pooled connections.

    SQLAlchemy's recipe for os.fork(): dispose(close=False) forgets the parent's
    connections without closing them (psycopg never finalises a connection in a
    process other than the one that opened it), and the child opens its own.
    `_app_engines` (app -> engines) is Flask-SQLAlchemy's registry of engines.
    """
    for engines in list(db._app_engines.values()):
        for engine in engines.values():
            engine.dispose(close=False)


os.register_at_fork(after_in_child=_drop_inherited_connections)


class Api(flask_smorest.Api):
    """flask-smorest, answering and documenting its errors in our one JSON error shape.

    No catch-all `default` answer in the document: each operation lists its statuses (api/openapi.py)."""

    ERROR_SCHEMA = ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None

    def init_app(self, app, *, spec_kwargs=None):
        from .api.openapi import register_components

        super().init_app(app, spec_kwargs=spec_kwargs)
        register_components(self.spec)

    def handle_http_exception(self, error):
        return errors.handle_http_exception(error)


api = Api()


def try_xact_lock(key: int) -> bool:
    """Take a transaction-scoped advisory lock if nobody holds it; if somebody does, roll the session's
    transaction back and answer False (the caller gives up instead of waiting)."""
    from sqlalchemy import text

    if db.session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}):
        return True
    db.session.rollback()
    return False


def init_redis(app: Flask) -> None:
    # Short timeouts: a request never hangs on a sick Redis. An RQ worker raises
    # the socket timeout of its own connection above its blocking dequeue time.
    app.extensions["hue_redis"] = redis.Redis.from_url(
        app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5)


def get_redis() -> redis.Redis:
    """The app's Redis connection."""
    return current_app.extensions["hue_redis"]


class TaggedQueue(Queue):
    """An RQ queue whose jobs carry the id of the request that enqueued them (their log lines show it)."""

    def create_job(self, *args, **kwargs):
        from .observability import job_meta

        kwargs["meta"] = {**job_meta(), **(kwargs.get("meta") or {})}
        return super().create_job(*args, **kwargs)


def get_queue(name: str) -> Queue:
    """An RQ queue by purpose (routing, photos, notifications, periodic, rollups)."""
    return TaggedQueue(name, connection=get_redis())

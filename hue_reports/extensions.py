"""Extension objects, created unbound and attached to an app in create_app()."""

from __future__ import annotations

import os
import select
import time

import flask_smorest
import redis
from flask import Flask, current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from rq import Queue
from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

from . import errors
from .models.base import Base
from .replica import RoutingSession
from .schemas.common import ErrorSchema

# (the session reads from the replica inside a replica-readable view: hue_reports/replica.py)
db = SQLAlchemy(model_class=Base, session_options={"class_": RoutingSession})
migrate = Migrate()


def _close_inherited_sockets() -> None:
    """Release this (forked) process's copies of the parent's connected sockets: nothing is sent, the parent's
    connections are untouched. Each descriptor is pointed at /dev/null rather than closed, so that its number
    is not reused while the parent's objects still name it (a socket object closing "its" descriptor later
    must not close another connection). (Linux; elsewhere nothing is done.)

    Without it a long-lived child keeps the parent's connections open after the parent dies. Seen under the
    load test with workers SIGKILLed: the RQ scheduler process a worker had forked kept the worker's database
    session open, in the middle of a routing job, with the locks it held, for as long as it lived, and
    routing stopped; and a dead worker's blocking pop on Redis stays registered, so Redis would hand the next
    job to a socket nobody reads.
    """
    import socket

    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    devnull = None
    for fd in fds:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:  # not a socket (or already closed: the listing's own descriptor)
            continue
        try:
            connected = sock.family in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX) and bool(sock.getpeername())
        except OSError:  # a listening socket (gunicorn's), or not connected
            connected = False
        sock.detach()
        if connected:
            if devnull is None:
                devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, fd)
    if devnull is not None:
        os.close(devnull)


def _drop_inherited_connections() -> None:
    """In a forked child (an RQ work horse, RQ's scheduler process), never use the parent's connections.

    SQLAlchemy's recipe for os.fork(): dispose(close=False) forgets the parent's
    connections without closing them (psycopg never finalises a connection in a
    process other than the one that opened it), and the child opens its own (so does
    redis-py, which checks the process id). The child's copies of the parent's sockets
    are closed (see _close_inherited_sockets).
    `_app_engines` (app -> engines) is Flask-SQLAlchemy's registry of engines.
    """
    _close_inherited_sockets()
    for engines in list(db._app_engines.values()):
        for engine in engines.values():
            engine.dispose(close=False)


os.register_at_fork(after_in_child=_drop_inherited_connections)


# The pool's liveness check, in place of pool_pre_ping (a round trip, and ~0.1 ms of this process's CPU, on
# every checkout: every request). A connection handed out of the pool is known dead without a round trip
# when its socket has something to read while it sits idle: a server that restarts, crashes, or ends the
# session (pg_terminate_backend, idle timeouts, a proxy or failover cutting it) sends its last message or
# closes the socket, and PostgreSQL sends nothing unasked to an idle session otherwise (no LISTEN here). A
# connection idle longer than PING_AFTER_IDLE_SECONDS is pinged as before (a peer gone silently, a NAT that
# forgot the flow): under load no connection idles that long, so the pings are where traffic is light.
# A dead connection is replaced before the request uses it (as a failed pre-ping was).
PING_AFTER_IDLE_SECONDS = 10.0
_IDLE_SINCE = "hue_idle_since"  # (the connection record's info: emptied when its connection is replaced)


def watch_connections(engine: Engine) -> None:
    """Check each connection the engine's pool hands out (see PING_AFTER_IDLE_SECONDS)."""
    dialect = engine.dialect

    def checkout(dbapi_connection, record, _proxy) -> None:
        if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
            raise DisconnectionError("the connection is closed")
        try:
            poller = select.poll()
            poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
            readable = poller.poll(0)  # (POLLHUP and POLLERR are always reported)
        except (OSError, ValueError) as exc:  # (no socket any more)
            raise DisconnectionError(f"the connection's socket is gone: {exc}") from exc
        if readable:
            raise DisconnectionError("the server closed the connection or ended the session while it was idle")
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is not None and time.monotonic() - idle_since > PING_AFTER_IDLE_SECONDS:
            try:
                dialect.do_ping(dbapi_connection)
            except dialect.loaded_dbapi.Error as exc:
                raise DisconnectionError(f"the connection did not answer a ping: {exc}") from exc

    def checkin(_dbapi_connection, record) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    event.listen(engine.pool, "checkout", checkout)
    event.listen(engine.pool, "checkin", checkin)


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

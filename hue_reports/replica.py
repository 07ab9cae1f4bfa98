"""Public reads from a PostgreSQL streaming replica, when DATABASE_REPLICA_URL is set.

The replica is a second engine (Flask-SQLAlchemy's SQLALCHEMY_BINDS key `replica`); the models do not know
it. A view marked `@replica_readable` (the public map data, tiles, metrics, public pages, Open311 lists) runs
its GET with the request's session routed to the replica; everything else — writes, a resident's own
report, the tracking page, officers, admins, jobs, the CLI — stays on the primary. A write inside a
replica-read view (metrics answers computed on demand) goes to the primary within `with primary():`; the
session then holds one connection to each, and its commit commits both.

The replica is used only while it is usable, judged per process and remembered for a few seconds:

* down (connection refused, timed out, lost): the primary, and the replica is not tried again for
  REPLICA_RETRY_SECONDS (no request pays a connect timeout meanwhile). A request that finds it down midway
  is answered again from the primary, as is a 404 (a report not replicated yet);
* lagging more than REPLICA_MAX_LAG_SECONDS: the primary. The lag is bounded from LSNs, never from the last
  replayed commit's time alone (an idle primary commits nothing, which would look like lag): caught up when
  the replica has replayed the primary's flushed WAL position; otherwise at most the time since the newest
  earlier sample of the primary's position the replica has passed (or since its last replayed commit).

Which database answered: the response header `X-Database` (`replica` or `primary`), the counter
`hue_db_reads_total{database}`, the gauges `hue_db_replica_usable` and `hue_db_replica_lag_seconds` on
/metrics, and a log line whenever the verdict changes.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import flask_sqlalchemy.session
from flask import Flask, current_app, g, has_app_context, request
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

log = logging.getLogger(__name__)

BIND = "replica"  # the SQLALCHEMY_BINDS key of the replica's engine
ROUTE = "hue_read_from"  # session.info key: the session reads from the replica while it is set
AUTOCOMMIT = "hue_autocommit"  # session.info key: the session's reads run outside a transaction while it is set
HEADER = "X-Database"
SAMPLES_KEPT = 256


class RoutingSession(flask_sqlalchemy.session.Session):
    """Flask-SQLAlchemy's session, sending every statement to the replica while the session is routed there
    (by `replica_readable`), to the primary otherwise; in autocommit (no BEGIN and ROLLBACK around the reads)
    while `replica_readable` says the view only reads."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if bind is None and self.info.get(ROUTE) == BIND:
            engine = self._db.engines.get(BIND)
            if engine is not None:
                return _autocommit(engine) if self.info.get(AUTOCOMMIT) else engine
        engine = super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)
        if bind is None and self.info.get(AUTOCOMMIT) and isinstance(engine, Engine):
            return _autocommit(engine)
        return engine  # (a test's Connection as it is)


_autocommit_engines: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _autocommit(engine: Engine) -> Engine:
    """The engine's autocommit twin (the same pool; a connection it hands out is in autocommit until it goes back
    to the pool): a read-only view's statements each run on their own, without the two round trips of BEGIN and
    ROLLBACK. In READ COMMITTED each statement sees its own snapshot anyway, so reads see what they saw.

    psycopg prepares a statement run 5 times on a connection, so the public reads' statements are prepared
    (their parse is saved); the connections' plan_cache_mode=force_custom_plan (config.py) has PostgreSQL plan
    each run for its own parameters all the same, as for a statement sent afresh."""
    twin = _autocommit_engines.get(engine)
    if twin is None:
        twin = engine.execution_options(isolation_level="AUTOCOMMIT")
        _autocommit_engines[engine] = twin
    return twin


def _db():
    from .extensions import db

    return db


@contextmanager
def primary() -> Iterator[None]:
    """Statements in this block go to the primary, even in a replica-read view (its writes, and the reads
    that must see them), in a transaction (never in a read-only view's autocommit)."""
    info = _db().session.info
    previous = info.pop(ROUTE, None)
    autocommit = info.pop(AUTOCOMMIT, None)
    try:
        yield
    finally:
        if previous is not None:
            info[ROUTE] = previous
        if autocommit is not None:
            info[AUTOCOMMIT] = autocommit


def lsn(value: str) -> int:
    """A PostgreSQL WAL position ('16/B374D848') as a number."""
    high, _, low = value.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True)
class Verdict:
    use: bool  # read from the replica
    reason: str  # ok, primary_down (used); down, lagging, not_a_replica (not used)
    lag: float | None  # seconds, an upper bound (0: caught up); None: unknown
    until: float  # time.monotonic() until which it holds


class ReplicaMonitor:
    """This process's judgement of the replica: usable or not, and why; remembered for a while."""

    def __init__(self, max_lag: float, check_seconds: float, retry_seconds: float):
        self.max_lag = max_lag
        self.check_seconds = check_seconds
        self.retry_seconds = retry_seconds
        self.verdict = Verdict(False, "unknown", None, 0.0)
        self.samples: deque[tuple[float, int]] = deque(maxlen=SAMPLES_KEPT)  # (monotonic, primary's LSN)
        self._lock = threading.Lock()

    def choose(self) -> Verdict:
        """The verdict, checked again once it has expired (by one thread; the others keep the last one)."""
        verdict = self.verdict
        if time.monotonic() < verdict.until or not self._lock.acquire(blocking=False):
            return verdict
        try:
            self._set(self._check())
        finally:
            self._lock.release()
        return self.verdict

    def mark_down(self, why: str) -> None:
        """The replica failed a connection: the primary answers for REPLICA_RETRY_SECONDS."""
        if self.verdict.reason != "down" or self.verdict.until <= time.monotonic():
            self._set(Verdict(False, "down", None, time.monotonic() + self.retry_seconds), why)

    def _set(self, verdict: Verdict, why: str = "") -> None:
        before, self.verdict = self.verdict, verdict
        if (before.use, before.reason) == (verdict.use, verdict.reason):
            return
        lag = "" if verdict.lag is None else f" (lag at most {verdict.lag:.1f} s)"
        if verdict.use:
            log.info("replica: reading from it%s%s", lag, "" if verdict.reason == "ok" else f" ({verdict.reason})")
        else:
            log.warning("replica: reading from the primary: replica %s%s%s", verdict.reason, lag,
                        f": {why}" if why else "")

    def _check(self) -> Verdict:
        db = _db()
        began = time.monotonic()
        try:
            primary_at = lsn(_scalar(db.engines[None], "SELECT pg_current_wal_flush_lsn()::text"))
        except SQLAlchemyError as exc:
            # (the primary is down: the replica, as fresh as anything can be now, keeps the public reads up)
            log.warning("replica: cannot read the primary's WAL position: %s", _first_line(exc))
            primary_at = None
        try:
            with db.engines[BIND].connect() as conn:
                standby, replayed, since_commit = conn.execute(text(
                    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
                    "extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8")).one()
        except SQLAlchemyError:
            return Verdict(False, "down", None, time.monotonic() + self.retry_seconds)  # (logged by _on_error)
        now = time.monotonic()
        until = now + self.check_seconds
        if not standby or replayed is None:
            return Verdict(False, "not_a_replica", None, until)
        if primary_at is None:
            return Verdict(True, "primary_down", None, until)
        lag = self._lag(lsn(replayed), primary_at, since_commit, now)
        self.samples.append((began, primary_at))
        return Verdict(lag <= self.max_lag, "ok" if lag <= self.max_lag else "lagging", lag, until)

    def _lag(self, replayed: int, primary_at: int, since_commit: float | None, now: float) -> float:
        """An upper bound of how stale the replica's data is, in seconds."""
        if replayed >= primary_at:
            return 0.0
        passed = next((at for at, position in reversed(self.samples) if position <= replayed), None)
        bounds = [] if passed is None else [now - passed]
        if since_commit is not None:
            bounds.append(max(0.0, since_commit))
        return min(bounds) if bounds else math.inf


def _scalar(bind, sql: str) -> Any:
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return conn.scalar(text(sql))
    return bind.scalar(text(sql))  # (a test's Connection in place of the engine)


def _first_line(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def monitor() -> ReplicaMonitor | None:
    """This app's replica monitor; None without a replica."""
    return current_app.extensions.get("hue_replica")


def _fall_back(why: str) -> None:
    db = _db()
    db.session.rollback()
    db.session.info.pop(ROUTE, None)
    g.hue_database = "primary"
    log.info("replica: request answered again from the primary: %s", why)


def replica_readable(view: Callable) -> Callable:
    """Mark a view whose GET may read from the replica (public data, where a few seconds' lag is within what
    its Cache-Control already allows). Its writes must be inside `with primary():`: outside it, its statements
    run in autocommit, each on its own (reads without BEGIN and ROLLBACK), on the replica or the primary."""

    @functools.wraps(view)
    def read_only(*args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            return view(*args, **kwargs)
        info = _db().session.info
        info[AUTOCOMMIT] = True
        try:
            return routed(*args, **kwargs)
        finally:
            info.pop(AUTOCOMMIT, None)

    def routed(*args, **kwargs):
        from .errors import ApiError

        watch = monitor()
        if watch is None:
            return view(*args, **kwargs)
        session = _db().session
        if not watch.choose().use:
            g.hue_database = "primary"
            return view(*args, **kwargs)
        g.hue_database = BIND
        g.hue_replica_failed = False
        session.info[ROUTE] = BIND
        try:
            return view(*args, **kwargs)
        except OperationalError as exc:
            if not g.hue_replica_failed:
                raise  # (the primary's)
            _fall_back(_first_line(exc))
        except ApiError as exc:
            if exc.status != 404:
                raise
            _fall_back("not found on the replica (not replicated yet?)")
        finally:
            session.info.pop(ROUTE, None)
        return view(*args, **kwargs)

    return read_only


def _on_error(app: Flask, context) -> None:
    """An error on the replica's engine: the request in progress answers from the primary; a failed or lost
    connection makes the replica `down` for REPLICA_RETRY_SECONDS. (A pooled connection found dead at checkout
    is not one, extensions.watch_connections: the pool reconnects, and that attempt's own failure comes here;
    nor a pre-ping's, should an engine use pool_pre_ping.)"""
    if context.is_pre_ping:
        return
    if has_app_context():
        g.hue_replica_failed = True
    sqlstate = getattr(context.original_exception, "sqlstate", None)
    if sqlstate is None or sqlstate.startswith(("08", "57P")):  # (no connection, or the server going away)
        watch = app.extensions.get("hue_replica")
        if watch is not None:
            watch.mark_down(_first_line(context.original_exception))


def _reads_counter():
    from prometheus_client import Counter

    global _READS
    if _READS is None:
        _READS = Counter("hue_db_reads_total", "Replica-readable requests, by the database that answered.",
                         ["database"])
    return _READS


_READS = None


def _say_database(response):
    database = g.pop("hue_database", None)
    if database is not None:
        response.headers[HEADER] = database
        _reads_counter().labels(database).inc()
    return response


def state_metrics() -> list:
    """/metrics: whether this process reads from the replica now, and its lag (checked if stale)."""
    from .observability import _gauge

    watch = monitor()
    if watch is None:
        return []
    verdict = watch.choose()
    families = [_gauge("hue_db_replica_usable", "Whether public reads go to the replica (1) or the primary (0), "
                       "and why.", ["reason"], [([verdict.reason], 1.0 if verdict.use else 0.0)])]
    if verdict.lag is not None:
        families.append(_gauge("hue_db_replica_lag_seconds", "How stale the replica's data is at most.", [],
                               [([], verdict.lag if math.isfinite(verdict.lag) else -1.0)]))
    return families


def init_app(app: Flask) -> None:
    """Watch the replica's engine when DATABASE_REPLICA_URL is set (after db.init_app)."""
    app.after_request(_say_database)
    if not app.config.get("DATABASE_REPLICA_URL"):
        return
    app.extensions["hue_replica"] = ReplicaMonitor(app.config["REPLICA_MAX_LAG_SECONDS"],
                                                   app.config["REPLICA_CHECK_SECONDS"],
                                                   app.config["REPLICA_RETRY_SECONDS"])
    with app.app_context():
        engine = _db().engines[BIND]
    event.listen(engine, "handle_error", lambda context: _on_error(app, context))

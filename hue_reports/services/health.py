"""Liveness and readiness: can this process serve, and is the pipeline behind it moving?"""

from __future__ import annotations

import logging
import math
import time
from functools import lru_cache

import redis
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .. import MIGRATIONS_DIR
from ..extensions import db, get_redis

HEARTBEAT_KEY = "hue:heartbeat"
log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def schema_heads() -> frozenset[str]:
    """The migration heads this code expects the database to be at."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def check_database() -> dict[str, str]:
    """Reach PostgreSQL, check PostGIS and that the schema is at the migrations' head.

    Returns {"database": ..., "schema": ...}, each "ok" or the reason it is not.
    """
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 3000"))
            postgis, migrated = conn.execute(text(
                "SELECT to_regproc('postgis_lib_version') IS NOT NULL, "
                "to_regclass('alembic_version') IS NOT NULL")).one()
            current = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars()) \
                if migrated else set()
            expected = set(schema_heads())
            # Routing needs a city with its working calendar (flask seed).
            city = conn.execute(text("SELECT bool_or(calendar IS NOT NULL) FROM cities")).scalar() \
                if current == expected else None
    except SQLAlchemyError as exc:
        # The driver's message (host, role, port) goes to the log, not to a public answer.
        log.warning("readiness: database: %s", str(getattr(exc, "orig", None) or exc).strip().splitlines()[0])
        return {"database": "unreachable", "schema": "unknown"}
    if not postgis:
        return {"database": "PostGIS extension missing: run `flask db upgrade`", "schema": "unknown"}
    if not migrated:
        return {"database": "ok", "schema": "not migrated: run `flask db upgrade`"}
    if current != expected:
        return {"database": "ok",
                "schema": f"at {sorted(current) or 'nothing'}, expected {sorted(expected)}: run `flask db upgrade`"}
    if city is None:
        return {"database": "ok", "schema": "no city loaded: run `flask seed`"}
    if not city:
        return {"database": "ok", "schema": "the city has no working calendar: run `flask seed --if-empty`"}
    return {"database": "ok", "schema": "ok"}


def check_redis() -> str:
    try:
        get_redis().ping()
    except redis.RedisError as exc:
        log.warning("readiness: redis: %s", exc)
        return "unreachable"
    return "ok"


def record_heartbeat(sent_at: float) -> None:
    """Called by the heartbeat job in a worker: the scheduler -> queue -> worker path works."""
    now = time.time()
    get_redis().hset(HEARTBEAT_KEY, mapping={"received_at": now, "latency_s": round(now - sent_at, 3)})


def heartbeat() -> dict[str, float] | None:
    """When a worker last ran the scheduler's heartbeat job, or None if never (or Redis is down)."""
    try:
        values = get_redis().hgetall(HEARTBEAT_KEY)
    except redis.RedisError:
        return None
    if not values:
        return None
    received = float(values[b"received_at"])
    return {"age_s": round(time.time() - received, 1), "latency_s": float(values[b"latency_s"])}


def replica() -> dict | None:
    """Where this process sends the public reads (None without a replica): information, never a condition
    of readiness (the primary answers them when the replica cannot)."""
    from ..replica import monitor

    watch = monitor()
    if watch is None:
        return None
    verdict = watch.choose()
    lag = verdict.lag
    if lag is not None:
        lag = round(lag, 1) if math.isfinite(lag) else -1  # (-1: unknown, nothing replayed to measure from)
    return {"used": verdict.use, "reason": verdict.reason, "lag_s": lag}


def readiness() -> tuple[bool, dict]:
    """(ready, details). Ready when the database, its schema and Redis all answer."""
    checks = check_database()
    checks["redis"] = check_redis()
    ready = all(value == "ok" for value in checks.values())
    details = {"checks": checks, "heartbeat": heartbeat()}
    if (where := replica()) is not None:
        details["replica"] = where
    return ready, details

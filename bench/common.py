"""What the benchmarks share: a throw-away database on the project-local (or configured) servers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hue_reports.devstack import BIN, Stack, server_database_url  # noqa: E402


def run_flask(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)


@contextlib.contextmanager
def bench_stack(redis_db: int = 14) -> Iterator[dict[str, str]]:
    """PostgreSQL and Redis up, a fresh database migrated and seeded, an empty Redis database, and a
    temporary MEDIA_ROOT: yields the environment for the application's processes; removes it all after."""
    import psycopg
    from redis import Redis
    from redis.exceptions import BusyLoadingError

    stack = Stack()
    services = stack.up(need_database=False, any_port=True)
    database = f"hue_bench_{uuid.uuid4().hex[:8]}"
    admin_url = server_database_url(services["DATABASE_URL"])
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    media = tempfile.mkdtemp(prefix="hue-bench-media-")
    env = {**os.environ, "HUE_ENV": "development",
           "DATABASE_URL": server_database_url(services["DATABASE_URL"], database),
           "REDIS_URL": services["REDIS_URL"].rsplit("/", 1)[0] + f"/{redis_db}", "MEDIA_ROOT": media,
           "RATE_LIMIT_PER_MINUTE": "0", "RATE_LIMIT_PER_DAY": "0", "LOG_LEVEL": "WARNING"}
    try:
        for _ in range(300):  # a Redis just started answers LOADING while it reads its dump
            try:
                Redis.from_url(env["REDIS_URL"]).flushdb()
                break
            except BusyLoadingError:
                time.sleep(0.1)
        run_flask(["db", "upgrade"], env)
        run_flask(["seed"], env)
        yield env
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        subprocess.run(["rm", "-rf", media], check=False)
        Redis.from_url(env["REDIS_URL"]).flushdb()
        stack.down()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


from hue_reports.services.demo import RANDOM_CITY_POINTS  # noqa: E402,F401  (the generators' points)


# --- the summary table of `make bench` --------------------------------------------------------------------------
# Each benchmark appends its headline figures to the JSON-lines file named by $BENCH_SUMMARY (when set, as
# `make bench` does); bench/summary.py prints them as one table at the end.

SUMMARY_ENV = "BENCH_SUMMARY"


def peak_rss_mb() -> float:
    """The peak resident memory (MB) of this process and of the largest child process it waited for (the
    servers it started as daemons, PostgreSQL and Redis, are not its children and are not counted)."""
    import resource

    return max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def record(benchmark: str, figure: str, value: float, floor: float | None = None, unit: str = "",
           higher_is_better: bool = False, peak_mb: float | None = None) -> None:
    """One row of the summary: a figure, the same work done directly (its floor) and what the processes
    the benchmark drove peaked at (default: peak_rss_mb()). Ratio: our cost over the floor's (times over
    times, or the floor's rate over ours)."""
    import json

    path = os.environ.get(SUMMARY_ENV)
    if not path:
        return
    ratio = None
    if floor:
        ratio = floor / value if higher_is_better else value / floor
    row = {"benchmark": benchmark, "figure": figure, "value": value, "floor": floor, "unit": unit, "ratio": ratio,
           "peak_mb": peak_rss_mb() if peak_mb is None else peak_mb}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")

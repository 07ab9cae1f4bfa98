"""Public map benchmark: the map data (GeoJSON, clusters) and vector tiles at city scale.

    python bench/public.py [--n 100000[,1000000,...]] [--repeat 30]      (or: make bench)
    python bench/public.py --database-url URL [--database-url URL2]      (databases generated before)

For each size N: starts the real stack (a throw-away database migrated and seeded with the city), generates a
realistic history of N reports (bench/generate.py: where, what and how long as in a city, with every report's
events), and times each endpoint through the application (Flask's WSGI interface, in this process) alternately
with its floor: the very SQL statements the request ran, captured as it ran them and replayed directly with
psycopg as psql runs them (each on its own, in autocommit, parsed and planned each time). Prints p50 and p95
per endpoint, the floor's, and their ratio, and what the request adds to its SQL (/healthz, with no SQL, shows
the framework's own cost). The stored metrics answers are kept in each process's memory
(PUBLIC_METRICS_CACHE_SECONDS): their requests are timed as deployed (hits, no SQL) and with the cache off
(read on every request), both beside the statement a miss runs. Goals (issue 6, at 1M reports): bbox, tiles
and metrics p95 <= 50 ms, each within 2x of its SQL.
Also times the rollups the scheduler refreshes every METRICS_REFRESH_SECONDS: the metrics' full replay
of the events, an incremental refresh, each grouping's answer, and the map's counts per grid cell.
Several sizes (--n 100000,1000000) are printed side by side, to show how each cost grows with the data.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate as generator  # noqa: E402
from common import bench_stack, peak_rss_mb, percentile, record  # noqa: E402


def metrics_build(app, replay: bool = True) -> list[tuple[str, float]]:
    """The rollups' costs: the first full replay of every report's events, an incremental refresh after a
    few new events, and each grouping's answer computed from the facts (what the scheduler redoes every
    METRICS_REFRESH_SECONDS); without `replay`, only the map's rollup (the metrics stored before)."""
    from sqlalchemy import text

    from hue_reports.extensions import db
    from hue_reports.services import metrics

    out = []
    with app.app_context():
        if replay:
            started = time.perf_counter()
            stats = metrics.refresh(full=True)
            out.append((f"full replay of {stats.reports:,} reports", time.perf_counter() - started))
            db.session.execute(text("ANALYZE metric_reports; ANALYZE metric_custodies"))
            db.session.execute(text("""
                INSERT INTO report_events (report_id, type, actor_kind, agency_id, public, note)
                SELECT id, 'comment', 'officer', agency_id, true, 'bench' FROM reports ORDER BY id DESC LIMIT 1000"""))
            db.session.commit()
            started = time.perf_counter()
            stats = metrics.refresh()
            out.append((f"incremental refresh, {stats.reports:,} reports", time.perf_counter() - started))
            for group_by in metrics.GROUP_BYS:
                started = time.perf_counter()
                metrics.published(metrics.Period(group_by, None, None))
                out.append((f"compute group_by={group_by}", time.perf_counter() - started))
        from hue_reports.services import mapgrid

        for label in ("map rollup, first refresh", "map rollup, refresh with nothing new"):
            stats = mapgrid.refresh()
            out.append((f"{label} ({stats.cells:,} rows)", stats.seconds))
    return out


def tile_of(lat: float, lon: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


CENTRE = (16.4637, 107.5909)  # lat, lon: the middle of the city's old core


def cases() -> list[tuple[str, str, dict[str, float | None]]]:
    """(label, path, {row label: PUBLIC_METRICS_CACHE_SECONDS while it is timed, None as configured}): one row
    per timing, the timings' requests alternating, beside the same SQL."""
    lat, lon = CENTRE
    out = [
        ("city-wide bbox, clusters (zoom 11)", "/api/v1/public/reports?bbox=107.2,16.0,108.2,16.8&zoom=11"),
        # (points, or finer clusters where the view holds more than PUBLIC_MAP_POINTS_MAX reports)
        ("street-level bbox (zoom 17)",
         f"/api/v1/public/reports?bbox={lon - 0.004},{lat - 0.003},{lon + 0.004},{lat + 0.003}&zoom=17"),
        ("street-level bbox, a page of 1,000 points (no zoom)",
         f"/api/v1/public/reports?bbox={lon - 0.004},{lat - 0.003},{lon + 0.004},{lat + 0.003}&limit=1000"),
    ]
    for z in (12, 15, 18):
        x, y = tile_of(lat, lon, z)
        out.append((f"tile z{z} at the centre", f"/api/v1/public/tiles/{z}/{x}/{y}.mvt"))
    out = [(label, path, {label: None}) for label, path in out]
    # The stored metrics answers, as deployed (kept in the process's memory: these requests are hits, which run
    # no SQL; a miss comes once per PUBLIC_METRICS_CACHE_SECONDS) and read on every request (the cache off);
    # both beside the statement a miss runs.
    for group_by in ("agency", "ward"):
        out.append((f"metrics by {group_by}", f"/api/v1/public/metrics?group_by={group_by}",
                    {f"metrics by {group_by}: in memory (hits)": None,
                     f"metrics by {group_by}: read each request": 0}))
    healthz = "/healthz (no SQL: the framework's cost)"
    out.append((healthz, "/healthz", {healthz: None}))
    return out


def measure(app, path: str, repeat: int, url: str, timings: list[float | None]
            ) -> tuple[list[list[float]], list[float], int]:
    """Times of the request (one list per PUBLIC_METRICS_CACHE_SECONDS in `timings`, None as configured),
    times of its SQL replayed with psycopg, and the answer's size. The requests and their SQL alternate, so
    that a machine whose speed drifts (this one's moves by 2x over a day) slows both alike. The SQL is captured
    with the metrics answers read on every request (a hit in the process's memory runs none: its floor is
    the statement of the miss it saves)."""
    import psycopg
    from sqlalchemy import event

    from hue_reports.extensions import db

    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    client = app.test_client()
    configured = app.config["PUBLIC_METRICS_CACHE_SECONDS"]
    app.config["PUBLIC_METRICS_CACHE_SECONDS"] = 0  # (every request reads: the SQL of a miss)
    # As psql runs them: each statement on its own (autocommit: no BEGIN or ROLLBACK around them, as the
    # public views read), parsed and planned each time (psql never prepares; psycopg would from the fifth run).
    # (With the application's server settings: JIT off, as its connections have it.)
    with psycopg.connect(url, autocommit=True, prepare_threshold=None, options="-c jit=off") as conn:
        try:
            client.get(path)  # warm up (and the plan cache)
            with app.app_context():
                event.listen(db.engine, "before_cursor_execute", capture)
                size = len(client.get(path).data)
                event.remove(db.engine, "before_cursor_execute", capture)
            statements = [(s, p) for s, p in captured if not s.lstrip().upper().startswith(("SELECT 1", "SET"))]
            ttls = [configured if ttl is None else ttl for ttl in timings]
            for _ in range(5):  # warm up as deployed (the driver prepares a statement from its fifth run)
                for ttl in ttls:
                    app.config["PUBLIC_METRICS_CACHE_SECONDS"] = ttl
                    client.get(path)  # (the first: a miss, kept in memory when the cache is on)
                for statement, parameters in statements:
                    conn.execute(statement, parameters).fetchall()
            times: list[list[float]] = [[] for _ in ttls]
            floor: list[float] = []
            for _ in range(repeat):
                for ttl, kept in zip(ttls, times, strict=True):
                    app.config["PUBLIC_METRICS_CACHE_SECONDS"] = ttl
                    started = time.perf_counter()
                    response = client.get(path)
                    response.close()
                    kept.append(time.perf_counter() - started)
                started = time.perf_counter()
                for statement, parameters in statements:
                    conn.execute(statement, parameters).fetchall()
                floor.append(time.perf_counter() - started if statements else 0.0)  # (none: no SQL)
        finally:
            app.config["PUBLIC_METRICS_CACHE_SECONDS"] = configured
    return times, floor, size


def run(n: int, repeat: int) -> dict:
    """Everything measured at one size, on a database of its own (this process's environment as it was after)."""
    saved = dict(os.environ)
    try:
        return _run(n, repeat)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run(n: int, repeat: int) -> dict:
    with bench_stack() as env:
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "HUE_ENV")})
        os.environ["LOG_LEVEL"] = "WARNING"
        made = generator.generate(env["DATABASE_URL"], n)
        print(f"generated {made}", flush=True)
        return _measure_all(n, made, repeat, env["DATABASE_URL"])


def existing(url: str, repeat: int, replay: bool = True) -> dict:
    """Everything measured on a database generated before (bench/generate.py --database-url URL): nothing is
    generated, and nothing dropped after (the metrics' full replay and rollups are rebuilt in it)."""
    import psycopg

    with psycopg.connect(url) as conn:
        reports, events, feedback, open_, overdue = conn.execute("""
            SELECT (SELECT count(*) FROM reports), (SELECT count(*) FROM report_events),
                   (SELECT count(*) FROM feedback),
                   (SELECT count(*) FROM reports WHERE status IN ('submitted', 'routed', 'acknowledged',
                                                                  'in_progress', 'routing_failed')),
                   (SELECT count(*) FROM reports WHERE status IN ('submitted', 'routed', 'acknowledged',
                                                                  'in_progress', 'routing_failed')
                                                  AND due_at < now())""").fetchone()
    made = generator.Made(reports, events, feedback, open_, overdue, float("nan"), {})
    saved = dict(os.environ)
    try:
        os.environ.update({"DATABASE_URL": url, "HUE_ENV": "development", "LOG_LEVEL": "WARNING",
                           "RATE_LIMIT_PER_MINUTE": "0", "RATE_LIMIT_PER_DAY": "0"})
        return _measure_all(reports, made, repeat, url, replay)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _measure_all(n: int, made, repeat: int, url: str, replay: bool = True) -> dict:
    from hue_reports import create_app
    from hue_reports.extensions import db

    app = create_app()
    built = metrics_build(app, replay)
    rows = []
    for _label, path, timings in cases():
        times, floor, size = measure(app, path, repeat, url, list(timings.values()))
        rows += [(label, kept, floor, size) for label, kept in zip(timings, times, strict=True)]
    with app.app_context():
        db.engine.dispose()
    return {"n": n, "made": made, "built": built, "rows": rows, "peak": peak_rss_mb(),
            "cache_seconds": app.config["PUBLIC_METRICS_CACHE_SECONDS"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", default="100000", help="reports, or several sizes separated by commas")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database-url", action="append", default=[],
                        help="measure this database, generated before by bench/generate.py --database-url "
                             "(repeatable; instead of --n; it needs REDIS_URL's Redis)")
    parser.add_argument("--no-replay", action="store_true",
                        help="with --database-url: keep the metrics as stored (no full replay, no answers computed)")
    args = parser.parse_args()
    if args.database_url:
        runs = [existing(url, args.repeat, not args.no_replay) for url in args.database_url]
    else:
        runs = [run(int(x.replace("_", "")), args.repeat) for x in args.n.split(",")]
    counts = ", ".join(f"{r['n']:,}" for r in runs)
    print(f"\nPublic map benchmark: {counts} reports, {args.repeat} requests each, "
          f"{os.cpu_count()} CPUs, in-process WSGI; floor = the request's own SQL replayed with psycopg")
    for r in runs:
        when = "before" if math.isnan(r["made"].seconds) else f"in {r['made'].seconds:.1f} s"
        print(f"  {r['n']:,} reports: generated {when} ({r['made'].events:,} events, "
              f"{r['made'].open:,} open, {r['made'].open_overdue:,} open and overdue)")
    width = 38
    heads = [f"{r['n']:,}: p50 / p95 (SQL p95) ratio" for r in runs]
    print(f"{'endpoint':<42}" + "".join(f"{h:>{width}}" for h in heads) + f"{'bytes':>10}")
    for i, (label, *_rest) in enumerate(runs[0]["rows"]):
        cells = []
        for r in runs:
            _, times, floor, size = r["rows"][i]
            p50, p95 = statistics.median(times) * 1000, percentile(times, 95) * 1000
            f95 = percentile(floor, 95) * 1000
            ratio = f"{p95 / f95:.2f}x" if f95 else "-"
            cells.append(f"{p50:.1f} / {p95:.1f} ({f95:.1f}) {ratio}")
            record("public", f"{label}, p95, {r['n']:,} reports", p95, f95 or None, "ms", peak_mb=r["peak"])
        print(f"{label:<42}" + "".join(f"{c:>{width}}" for c in cells) + f"{size:>10,}")
    print("(ratio: p95 over the SQL's p95. Metrics: the SQL is the statement a miss runs, beside requests "
          "served from the process's memory with no SQL (PUBLIC_METRICS_CACHE_SECONDS = "
          f"{runs[0]['cache_seconds']:g} s; one miss per that time) and read on every request (0))")
    print("\nMetrics and map rollups (the scheduler's work, not a request's), ms:")
    for i, (label, _) in enumerate(runs[0]["built"]):
        values = [r["built"][i][1] * 1000 for r in runs]
        name = re.sub(r" of [\d,]+ reports|, [\d,]+ reports| \([\d,]+ rows\)", "", label)
        print(f"{name:<42}" + "".join(f"{v:>{width}.0f}" for v in values))
        for r, v in zip(runs, values, strict=True):
            record("public", f"rollup: {name}, {r['n']:,} reports", v, None, "ms", peak_mb=r["peak"])
    for r in runs:
        if not math.isnan(r["made"].seconds):  # (not a database generated before)
            record("generate", f"generate {r['n']:,} reports", r["made"].seconds, None, "s", peak_mb=r["peak"])
    print(f"peak RSS of this process (the application in-process): {runs[-1]['peak']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

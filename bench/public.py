"""Public map benchmark: the map data (GeoJSON, clusters) and vector tiles at city scale.

    python bench/public.py [--n 100000] [--repeat 30]      (or: make bench)

Starts the real stack (a throw-away database migrated and seeded with the city), generates N routed
reports at random points of the city (random categories and agencies, submitted over two years, a
quarter of them open), and times each endpoint through the application (Flask's WSGI interface, in
this process) beside its floor: the very SQL statements the request ran, captured as it ran them and
replayed directly with psycopg (what psql would take). Prints p50 and p95 per endpoint, the floor's,
and their ratio, and what the request adds to its SQL (/healthz, with no SQL, shows the framework's own
cost). Goals (issue 6, at 1M reports): bbox, tiles and metrics p95 <= 50 ms, each within 2x of its SQL.
Also times the rollups the scheduler refreshes every METRICS_REFRESH_SECONDS: the metrics' full replay
of the events, an incremental refresh, each grouping's answer, and the map's counts per grid cell.
This generator is a stand-in until bench/generate.py (the benchmark issue) makes realistic histories.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RANDOM_CITY_POINTS, bench_stack, percentile  # noqa: E402

GENERATE_SQL = RANDOM_CITY_POINTS + """
, cats AS (SELECT array_agg(id) AS ids FROM categories),
ags AS (SELECT array_agg(id) AS ids FROM agencies WHERE kind <> 'dispatcher'),
rows AS (
    SELECT n, p, cats.ids[1 + floor(random() * cardinality(cats.ids))] AS category_id,
           ags.ids[1 + floor(random() * cardinality(ags.ids))] AS agency_id,
           now() - random() * interval '730 days' AS submitted_at, random() AS r
    FROM points, cats, ags
)
INSERT INTO reports (public_code, category_id, description, location, location_source, status, agency_id,
                     channel, submitted_at, routed_at, due_at, resolved_at, supporters)
SELECT 'BENCH-' || n, category_id, 'benchmark', p, 'client',
       CASE WHEN r < 0.25 THEN 'routed' WHEN r < 0.3 THEN 'in_progress' WHEN r < 0.9 THEN 'closed'
            ELSE 'resolved' END,
       agency_id, 'app', submitted_at, submitted_at + interval '10 minutes',
       submitted_at + interval '7 days',
       CASE WHEN r >= 0.3 THEN submitted_at + random() * interval '20 days' END, 0
FROM rows
"""


# Each report's ward, and its history as events (what the metrics are made of): submitted; routed (one in
# ten to the dispatcher first, then transferred to its agency); acknowledged for most; resolved and closed
# as the report's status says.
HISTORY_SQL = """
UPDATE reports r SET ward_id = w.id
FROM admin_areas w WHERE w.tier = 2 AND w.valid_to IS NULL AND ST_Covers(w.geom, r.location);
WITH d AS (SELECT id FROM agencies WHERE kind = 'dispatcher' ORDER BY id LIMIT 1)
INSERT INTO report_events (report_id, type, actor_kind, to_status, agency_id, public, created_at, data)
SELECT id, 'submitted', 'resident', 'submitted', NULL, true, submitted_at, '{}'::jsonb FROM reports
UNION ALL
SELECT r.id, 'routed', 'system', 'routed', CASE WHEN r.id % 10 = 0 THEN d.id ELSE r.agency_id END, true,
       r.routed_at, jsonb_build_object('due_at', r.due_at, 'due_from', r.submitted_at, 'sla_hours', 52.5)
FROM reports r, d
UNION ALL
SELECT id, 'transferred', 'officer', 'routed', agency_id, true,
       routed_at + (coalesce(resolved_at, routed_at + interval '2 days') - routed_at) * random() / 3, '{}'::jsonb
FROM reports WHERE id % 10 = 0
UNION ALL
SELECT id, 'acknowledged', 'officer', 'acknowledged', agency_id, true,
       coalesce(resolved_at, now()) - (coalesce(resolved_at, now()) - routed_at) * (0.5 + random() / 2), '{}'::jsonb
FROM reports WHERE id % 4 <> 0 AND id % 10 <> 0
UNION ALL
SELECT id, 'resolved', 'officer', 'resolved', agency_id, true, resolved_at, '{}'::jsonb
FROM reports WHERE resolved_at IS NOT NULL
UNION ALL
SELECT id, 'closed', 'system', 'closed', agency_id, true, resolved_at + interval '7 days', '{}'::jsonb
FROM reports WHERE status = 'closed'
"""


def generate(url: str, n: int) -> float:
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(GENERATE_SQL, {"n": n})
        conn.execute(HISTORY_SQL)
        conn.execute("VACUUM ANALYZE reports")
        conn.execute("VACUUM ANALYZE report_events")
    return time.perf_counter() - started


def metrics_build(app) -> list[tuple[str, float]]:
    """The rollups' costs: the first full replay of every report's events, an incremental refresh after a
    few new events, and each grouping's answer computed from the facts (what the scheduler redoes every
    METRICS_REFRESH_SECONDS)."""
    from sqlalchemy import text

    from hue_reports.extensions import db
    from hue_reports.services import metrics

    out = []
    with app.app_context():
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


def cases() -> list[tuple[str, str]]:
    lat, lon = CENTRE
    out = [
        ("city-wide bbox, clusters (zoom 11)", "/api/v1/public/reports?bbox=107.2,16.0,108.2,16.8&zoom=11"),
        ("street-level bbox, points (zoom 17)",
         f"/api/v1/public/reports?bbox={lon - 0.004},{lat - 0.003},{lon + 0.004},{lat + 0.003}&zoom=17"),
    ]
    for z in (12, 15, 18):
        x, y = tile_of(lat, lon, z)
        out.append((f"tile z{z} at the centre", f"/api/v1/public/tiles/{z}/{x}/{y}.mvt"))
    out += [("metrics by agency (stored answer)", "/api/v1/public/metrics?group_by=agency"),
            ("metrics by ward (stored answer)", "/api/v1/public/metrics?group_by=ward"),
            ("/healthz (no SQL: the framework's cost)", "/healthz")]
    return out


def measure(app, path: str, repeat: int, url: str) -> tuple[list[float], list[float], int]:
    """Times of the request, times of its SQL replayed with psycopg, and the answer's size."""
    import psycopg
    from sqlalchemy import event

    from hue_reports.extensions import db

    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    client = app.test_client()
    client.get(path)  # warm up (and the plan cache)
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", capture)
        size = len(client.get(path).data)
        event.remove(db.engine, "before_cursor_execute", capture)
    statements = [(s, p) for s, p in captured if not s.lstrip().upper().startswith(("SELECT 1", "SET"))]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        response.close()
        times.append(time.perf_counter() - started)
    floor = []
    if not statements:  # (an endpoint without SQL)
        return times, [0.0] * repeat, size
    with psycopg.connect(url) as conn:
        for statement, parameters in statements:  # warm up, as the request was
            conn.execute(statement, parameters).fetchall()
        conn.rollback()
        for _ in range(repeat):
            started = time.perf_counter()
            for statement, parameters in statements:
                conn.execute(statement, parameters).fetchall()
            conn.rollback()
            floor.append(time.perf_counter() - started)
    return times, floor, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with bench_stack() as env:
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "HUE_ENV")})
        os.environ["LOG_LEVEL"] = "WARNING"
        seconds = generate(env["DATABASE_URL"], args.n)
        from hue_reports import create_app

        app = create_app()
        built = metrics_build(app)
        rows = []
        for label, path in cases():
            times, floor, size = measure(app, path, args.repeat, env["DATABASE_URL"])
            rows.append((label, times, floor, size))
    print(f"\nPublic map benchmark: {args.n:,} reports (generated in {seconds:.1f} s), {args.repeat} requests each, "
          f"{os.cpu_count()} CPUs, in-process WSGI; floor = the request's own SQL replayed with psycopg")
    print(f"{'endpoint':<42}{'p50 ms':>8}{'p95 ms':>8}{'SQL p50':>8}{'SQL p95':>8}{'ratio':>7}{'+ms p50':>8}"
          f"{'bytes':>9}")
    for label, times, floor, size in rows:
        p50, p95 = statistics.median(times) * 1000, percentile(times, 95) * 1000
        f50, f95 = statistics.median(floor) * 1000, percentile(floor, 95) * 1000
        ratio = f"{p95 / f95:>6.2f}x" if f95 else f"{'-':>7}"
        print(f"{label:<42}{p50:>8.1f}{p95:>8.1f}{f50:>8.1f}{f95:>8.1f}{ratio}{p50 - f50:>8.1f}{size:>9,}")
    print("(ratio: p95 over the SQL's p95; +ms: what the request adds to its SQL, at the median)")
    print("\nMetrics rollups (the scheduler's work, not a request's):")
    for label, seconds in built:
        print(f"{label:<40}{seconds * 1000:>12.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Routing benchmark: routed reports per second per RQ worker, beside the routing SQL alone.

    python bench/routing.py [--reports 2000]      (or: make bench)

Starts the real stack (a throw-away database migrated and seeded with the city), inserts submitted
reports at random points of the city with random categories (as intake leaves them: ward included),
queues their `route_report` jobs, and times one real `flask worker --burst --queues routing`
draining the queue: with the non-forking worker (SimpleWorker, the default) and with RQ's forking
worker (a work horse per job), each with routing batches (ROUTING_BATCH, the default: a job also routes
the reports of the jobs waiting behind it) and with one report per job (ROUTING_BATCH=0). The floor is the routing SQL alone, run by one psycopg connection
for the same number of fresh reports: the same statements (the category lock; the fetch with the row
lock, the rule and the duplicate search; the update with its event and outbox row) and a commit per
report, with no queue, no calendar and no Python around them. A trivial job (SELECT 1) through the same
worker shows what the queue itself costs per job. Prints reports/s, the ratio to the floor, and each worker's
peak memory. Goal: a worker routes at least 200 reports/s, within 3x of the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RANDOM_CITY_POINTS, ROOT, bench_stack, record  # noqa: E402

from hue_reports.devstack import BIN  # noqa: E402

INSERT_SQL = RANDOM_CITY_POINTS + """
, cats AS (SELECT array_agg(id) AS ids FROM categories WHERE active)
INSERT INTO reports (public_code, category_id, description, location, location_source, ward_id, status,
                     channel, submitted_at, supporters)
SELECT 'BENCH-' || %(batch)s || '-' || row_number() OVER (), cats.ids[1 + floor(random() * cardinality(cats.ids))],
       'benchmark', points.p, 'client',
       (SELECT w.id FROM admin_areas w WHERE w.valid_to IS NULL AND w.tier = 2 AND ST_Covers(w.geom, points.p)
         ORDER BY w.code LIMIT 1),
       'submitted', 'app', now() - random() * interval '2 days', 0
FROM points, cats
RETURNING id
"""


def insert_reports(url: str, n: int, batch: str) -> list[int]:
    import psycopg

    with psycopg.connect(url) as conn:
        ids = [row[0] for row in conn.execute(INSERT_SQL, {"n": n, "batch": batch})]
        conn.execute("ANALYZE reports")
    return ids


def queue_jobs(env: dict[str, str], ids: list[int]) -> None:
    """Queue the route_report jobs as intake does (deterministic ids, retries), in one pipeline."""
    code = ("import sys, json\nfrom hue_reports import create_app\nfrom hue_reports.jobs.routing import enqueue_route\n"
            "app = create_app()\nwith app.app_context():\n    for i in json.load(sys.stdin): enqueue_route(i)\n")
    subprocess.run([sys.executable, "-c", code], input=json.dumps(ids), text=True, cwd=ROOT, env=env, check=True)


def queue_trivial_jobs(env: dict[str, str], n: int) -> None:
    """The queue's own cost: jobs that only run SELECT 1 (the scheduler's heartbeat) in the same worker."""
    code = ("import sys, time\nfrom hue_reports import create_app\nfrom hue_reports.extensions import get_queue\n"
            "app = create_app()\nwith app.app_context():\n    q = get_queue('routing')\n"
            "    for i in range(int(sys.argv[1])): q.enqueue('hue_reports.jobs.ops.heartbeat', time.time())\n")
    subprocess.run([sys.executable, "-c", code, str(n)], cwd=ROOT, env=env, check=True)


def run_worker(env: dict[str, str], worker_class: str) -> tuple[float, float, int]:
    """Drain the routing queue with one worker: (seconds per job from its first to its last job, peak RSS MB,
    how many jobs RQ ran itself; the others were routed by a batch)."""
    from redis import Redis
    from rq import Queue
    from rq.registry import FinishedJobRegistry

    conn = Redis.from_url(env["REDIS_URL"])
    worker = subprocess.Popen([str(BIN / "flask"), "--app", "wsgi", "worker", "--burst", "--queues", "routing",
                               "--class", worker_class], cwd=ROOT, env=env)
    _, status, usage = os.wait4(worker.pid, 0)  # the worker and any work horses it forked
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the {worker_class} worker failed")
    queue = Queue("routing", connection=conn)
    registry = FinishedJobRegistry("routing", connection=conn)
    jobs = [j for j in (queue.fetch_job(i) for i in registry.get_job_ids()) if j and j.started_at and j.ended_at]
    wall = (max(j.ended_at for j in jobs) - min(j.started_at for j in jobs)).total_seconds()
    ran = sum(1 for j in jobs if j.latest_result() and j.latest_result().execution_id)
    for job_id in registry.get_job_ids():
        registry.remove(job_id, delete_job=True)
    return wall / len(jobs) if jobs else float("nan"), usage.ru_maxrss / 1024, ran


def floor(url: str, ids: list[int], radius_m: int, days: int) -> float:
    """Seconds per report for the routing SQL alone, as routing runs it, on one connection."""
    import psycopg
    from psycopg.rows import dict_row

    from hue_reports.services import routing

    def raw(stmt) -> str:  # SQLAlchemy's :name placeholders -> psycopg's %(name)s
        import re

        return re.sub(r"(?<!:):(\w+)", r"%(\1)s", str(stmt.text).replace("%", "%%"))

    lock, fetch, routed = raw(routing.LOCK_SQL), raw(routing.FETCH_SQL), raw(routing.ROUTED_SQL)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        started = time.perf_counter()
        for report_id in ids:
            conn.execute(lock, {"id": report_id, "lock_space": routing.DUPLICATE_LOCK_SPACE})
            row = conn.execute(fetch, {"id": report_id, "radius_m": radius_m,
                                       "radius_deg": routing.bounding_degrees(radius_m), "days": days,
                                       "targets": list(routing.DUPLICATE_TARGET_STATUSES)}).fetchone()
            conn.execute(routed, {"id": report_id, "agency_id": row["agency_id"], "ward_id": row["ward_id"],
                                  "due_at": row["submitted_at"], "from_status": "submitted", "note": None,
                                  "data": "{}", "has_webhook": False})
            conn.commit()
        return (time.perf_counter() - started) / len(ids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=2000, help="reports per run (the forking worker gets a "
                                                                    "quarter as many: it is slower)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every configuration, alternating; "
                                                                 "the best of each is printed")
    args = parser.parse_args()
    with bench_stack() as env:
        env = {**env, "LOG_LEVEL": "WARNING"}
        url = env["DATABASE_URL"]
        from hue_reports.config import load_config

        config = load_config(env)
        results: dict[str, tuple[float, float, int, int]] = {}
        for round_ in range(args.rounds):  # alternating, the best round of each kept
            for name, worker_class, batch, n in (
                    ("simple", "simple", None, args.reports), ("simple, one per job", "simple", "0", args.reports),
                    ("fork", "fork", None, args.reports),
                    ("fork, one per job", "fork", "0", max(args.reports // 4, 50))):
                run_env = {**env, "ROUTING_BATCH": batch} if batch is not None else env
                ids = insert_reports(url, n, f"{round_}-{name}".replace(" ", "").replace(",", "-"))
                queue_jobs(run_env, ids)
                per_report, peak, ran = run_worker(run_env, worker_class)
                if name not in results or per_report < results[name][0]:
                    results[name] = (per_report, peak, len(ids), ran)
        queue_trivial_jobs(env, args.reports)
        trivial, _, _ = run_worker(env, "simple")
        floor_ids = insert_reports(url, args.reports, "floor")
        floor_s = floor(url, floor_ids, config["DUPLICATE_RADIUS_M"], config["DUPLICATE_DAYS"])

    print(f"\nRouting benchmark: {args.reports} reports at random points of the city, {os.cpu_count()} CPUs, "
          "one worker, duplicates on")
    print(f"{'figure':<52}{'value':>10}{'floor':>10}{'ratio':>8}")
    labels = {"simple": "routed reports/s, non-forking worker (default)",
              "simple, one per job": "routed reports/s, non-forking, ROUTING_BATCH=0",
              "fork": "routed reports/s, forking worker",
              "fork, one per job": "routed reports/s, forking, ROUTING_BATCH=0"}
    for name, label in labels.items():
        per_report, peak, n, ran = results[name]
        print(f"{label:<52}{1 / per_report:>10.1f}{1 / floor_s:>10.1f}{per_report / floor_s:>7.2f}x"
              f"   ({n} reports, {ran} jobs run by RQ, peak RSS {peak:.0f} MB)")
        record("routing", label, 1 / per_report, 1 / floor_s, "/s", True, peak_mb=peak)
    print(f"{'routing SQL alone, ms per report':<52}{floor_s * 1000:>10.2f}")
    print(f"{'a trivial job (SELECT 1) in the same worker, ms':<52}{trivial * 1000:>10.2f}")
    print(f"{'ms per report (non-forking worker, default)':<52}{results['simple'][0] * 1000:>10.2f}")
    best = min(results, key=lambda k: results[k][0])
    print(f"faster: the {best} worker; goal: at least 200 reports/s within 3x of the floor "
          f"({1 / results['simple'][0]:.0f}/s at {results['simple'][0] / floor_s:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

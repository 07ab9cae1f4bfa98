"""Monitoring: request ids that follow a submission into its jobs' logs, JSON logs, and /metrics for
Prometheus (request counts and latencies, queue depths, failed jobs, outbox backlog, open and overdue
reports), summed over gunicorn's worker processes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rq import Queue
from sqlalchemy import text

from hue_reports.devstack import free_port
from hue_reports.observability import JsonFormatter, request_id_var
from hue_reports.services import routing
from tests.support import ROOT, new_report, post_report


def samples(body: str) -> dict[tuple, float]:
    """{(name, (label, value)...): value} of a Prometheus text answer."""
    out = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def scrape(client) -> dict[tuple, float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return samples(response.get_data(as_text=True))


def test_every_answer_carries_a_request_id_and_a_sane_one_is_kept(client):
    fresh = client.get("/healthz").headers["X-Request-Id"]
    assert len(fresh) == 32 and int(fresh, 16) >= 0
    assert client.get("/healthz", headers={"X-Request-Id": "app-7f3a:42"}).headers["X-Request-Id"] == "app-7f3a:42"
    for bad in ("has space", "x" * 65, "<script>", "ngày"):
        answered = client.get("/healthz", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert answered != bad and len(answered) == 32
    assert client.get("/no/such/page").headers["X-Request-Id"]  # errors too


def test_requests_are_counted_by_route_method_and_status_never_by_path(client):
    before = scrape(client)
    for _ in range(3):
        client.get("/healthz")
    assert client.get("/api/v1/public/reports/NO-SUCH-CODE-77").status_code == 404
    after = scrape(client)
    ok = ("hue_http_requests_total", (("endpoint", "ops.healthz"), ("method", "GET"), ("status", "200")))
    assert after[ok] - before.get(ok, 0) == 3
    seen = ("hue_http_request_duration_seconds_count", ok[1])
    assert after[seen] - before.get(seen, 0) == 3
    missing = ("hue_http_requests_total", (("endpoint", "public.public_report"), ("method", "GET"),
                                           ("status", "404")))
    assert after[missing] - before.get(missing, 0) == 1
    assert "NO-SUCH-CODE-77" not in client.get("/metrics").get_data(as_text=True)


def test_the_state_gauges_are_the_queues_and_the_databases(client, db_session, redis_conn):
    reports = [new_report("road_damage", lat=16.46 + i / 1000, lon=107.58) for i in range(3)]
    for report in reports:
        routing.route(report.id, detect_duplicates=False)
    reports[0].due_at = datetime.now(timezone.utc) - timedelta(hours=1)
    db_session.flush()
    db_session.execute(text("INSERT INTO outbox (kind, target, payload) VALUES ('webhook', 'http://127.0.0.1:9/', "
                            "'{}'), ('webhook', 'http://127.0.0.1:9/', '{}')"))
    queue = Queue("photos", connection=redis_conn)
    for n in range(2):
        queue.enqueue("hue_reports.jobs.ops.heartbeat", n)
    got = scrape(client)
    assert got[("hue_queue_jobs", (("queue", "photos"),))] == 2
    assert got[("hue_queue_jobs", (("queue", "routing"),))] == Queue("routing", connection=redis_conn).count
    open_by_status = dict(db_session.execute(text(
        "SELECT status, count(*) FROM reports WHERE status IN ('submitted', 'routed', 'acknowledged', "
        "'in_progress', 'routing_failed') GROUP BY status")).all())
    assert {labels[0][1]: v for (name, labels), v in got.items() if name == "hue_reports_open"} == open_by_status
    assert got[("hue_reports_overdue", (("status", "routed"),))] == 1
    backlog = db_session.scalar(text("SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL"))
    assert got[("hue_outbox_backlog", ())] == backlog >= 2
    assert got[("hue_outbox_backlog_age_seconds", ())] >= 0


def test_a_submissions_request_id_follows_it_into_its_jobs_log_lines(client, db_session, redis_conn, run_jobs,
                                                                    caplog):
    response = post_report(client, headers={"X-Request-Id": "req-resident-42"})
    assert response.status_code == 201, response.get_json()
    jobs = Queue("routing", connection=redis_conn).get_jobs()
    assert jobs and all(j.meta.get("request_id") == "req-resident-42" for j in jobs)
    with caplog.at_level(logging.INFO):
        run_jobs()
    tagged = [r for r in caplog.records if getattr(r, "hue_job_id", None)]
    routed = [r for r in tagged if r.name == "hue_reports.jobs.routing"]
    assert routed and all(r.hue_request_id == "req-resident-42" for r in routed)
    assert {r.hue_job_id for r in routed} == {jobs[0].id}
    assert request_id_var.get() is None  # nothing leaks into what runs next


def test_a_json_log_line_has_the_ids_and_the_exception():
    token = request_id_var.set("req-1")
    try:
        logger = logging.getLogger("hue_reports.test")
        try:
            raise ValueError("boom")
        except ValueError:
            record = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "failed %s", ("x",),
                                       sys.exc_info())
    finally:
        request_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed x" and line["level"] == "ERROR" and line["request_id"] == "req-1"
    assert "ValueError: boom" in line["exception"] and line["ts"].endswith("+00:00")


def test_a_scrape_while_redis_is_down_still_answers_and_says_so(make_app):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    got = scrape(app.test_client())
    assert got[("hue_up", (("source", "redis"),))] == 0 and got[("hue_up", (("source", "database"),))] == 1
    assert not any(name == "hue_queue_jobs" for name, _ in got)


def test_gunicorns_worker_processes_are_summed_in_one_scrape(app, process_env, tmp_path):
    """Two gunicorn workers (prometheus_client's multiprocess mode): every request is counted once."""
    port = free_port()
    env = {**process_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    with open(tmp_path / "gunicorn.log", "w") as log, subprocess.Popen(
            [gunicorn, "--config", "python:hue_reports.gunicorn_conf", "--workers", "2", "--threads", "2",
             "--bind", f"127.0.0.1:{port}", "wsgi:app"], cwd=ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT) as proc:
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=2).read()
                    break
                except OSError:
                    assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                    time.sleep(0.2)
            key = ("hue_http_requests_total", (("endpoint", "ops.healthz"), ("method", "GET"), ("status", "200")))
            before = samples(urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode())[key]
            for _ in range(20):
                urllib.request.urlopen(f"{base}/healthz", timeout=5).read()
            # The worker that counted so far is stopped (gunicorn starts another): its counts must stay, and
            # the next requests are counted by another process.
            first = {int(p.stem.rsplit("_", 1)[-1]) for p in tmp_path.glob("counter_*.db")}
            for pid in first:
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while any(Path(f"/proc/{pid}").exists() for pid in first):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            for _ in range(20):
                urllib.request.urlopen(f"{base}/healthz", timeout=5).read()
            after = samples(urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode())[key]
            assert after - before == 40
            writers = {int(p.stem.rsplit("_", 1)[-1]) for p in tmp_path.glob("counter_*.db")}
            assert writers - first, writers
        finally:
            proc.terminate()
            proc.wait(timeout=30)

"""Routing and delivery on the real stack: real RQ workers, a flushed Redis, a killed worker, and an
agency's webhook receiver (a real HTTP server on 127.0.0.1) that is down, then up."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select, text

from hue_reports.extensions import db
from hue_reports.models import Agency, OutboxMessage, Report, ReportEvent
from hue_reports.services import outbox
from hue_reports.devstack import free_port
from tests.support import ROOT, flask_cli, kill_when_waiting_on_a_lock, post_report

SECRET = "agency-webhook-secret-" + "x" * 16
# A reporter's personal data, sent with every test submission: it must never leave in a webhook.
REPORTER = {"reporter_name": "Nguyễn Thị Hoa", "reporter_phone": "0905123456", "reporter_email": "hoa@example.vn",
            "device_id": "device-7f3a9c2e"}


def routed_events(report_ids) -> dict[int, int]:
    rows = db.session.execute(select(ReportEvent.report_id, func.count()).where(
        ReportEvent.type == "routed", ReportEvent.report_id.in_(list(report_ids))).group_by(ReportEvent.report_id))
    return dict(rows.tuples().all())


def submit(app, count: int) -> list[int]:
    client = app.test_client()
    ids = []
    for n in range(count):
        response = post_report(client, description=f"Ổ gà số {n}", lat=str(16.4698 + n * 0.002), **REPORTER)
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    return ids


def test_a_submission_is_routed_once_by_the_queue(app, committed, redis_conn, run_jobs):
    [report_id] = submit(app, 1)
    assert redis_conn.exists("rq:job:route-%d" % report_id)
    run_jobs()
    run_jobs()  # nothing more to do
    with app.app_context():
        report = db.session.get(Report, report_id)
        assert report.status == "routed" and report.agency_id is not None and report.due_at is not None
        assert routed_events([report_id]) == {report_id: 1}


def test_after_redis_is_flushed_the_sweep_routes_every_report_exactly_once(make_app, app, committed, redis_conn,
                                                                           run_jobs):
    ids = submit(app, 3)
    redis_conn.flushdb()  # the queue lost everything
    sweeping = make_app(ROUTING_SWEEP_SECONDS=0)
    from hue_reports.jobs.routing import sweep_unrouted

    with sweeping.app_context():
        assert sweep_unrouted() == 3
        assert sweep_unrouted() == 0  # queued, not lost: not queued twice
    run_jobs()
    with sweeping.app_context():
        assert sweep_unrouted() == 0  # nothing left submitted
    with app.app_context():
        assert routed_events(ids) == {i: 1 for i in ids}


def test_a_worker_killed_in_the_middle_of_a_job_still_routes_the_report_once(app, committed, redis_conn,
                                                                            process_env, database_url, tmp_path):
    [report_id] = submit(app, 1)
    env = {**process_env, "WORKER_CLASS": "simple", "ROUTING_SWEEP_SECONDS": "0", "ROUTING_JOB_TIMEOUT_SECONDS": "1"}
    # Hold the report's row: the job starts, takes its locks and waits inside its transaction.
    holder = psycopg.connect(database_url)
    holder.execute("SELECT id FROM reports WHERE id = %s FOR UPDATE", (report_id,))
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "worker", "--burst",
                               "--queues", "routing"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    watcher = psycopg.connect(database_url, autocommit=True)  # (a transaction sees a frozen pg_stat_activity)
    try:
        kill_when_waiting_on_a_lock(worker, watcher, "%FOR UPDATE OF r%", tmp_path / "worker.log")
    finally:
        holder.rollback()
        holder.close()
        watcher.close()
        log.close()
    with app.app_context():
        assert db.session.get(Report, report_id).status == "submitted"  # the killed job committed nothing
        db.session.remove()
    # The sweep finds it (its job is `started` forever, for more than twice its timeout) and a new worker
    # routes it.
    time.sleep(2.5)
    assert _cli(["worker", "--burst", "--queues", "periodic,routing"], env, after=["scheduler", "--once"])
    with app.app_context():
        assert db.session.get(Report, report_id).status == "routed"
        assert routed_events([report_id]) == {report_id: 1}


def _cli(args, env, after=None) -> bool:
    if after:
        assert flask_cli(after, env).returncode == 0
    result = flask_cli(args, env)
    assert result.returncode == 0, result.stdout + result.stderr
    return True


def test_a_job_that_keeps_failing_leaves_the_report_routing_failed(app, committed, redis_conn, run_jobs):
    [report_id] = submit(app, 1)
    with app.app_context():  # no calendar: routing cannot compute the deadline, whatever it tries
        saved = db.session.scalar(text("SELECT calendar FROM cities LIMIT 1"))
        db.session.execute(text("UPDATE cities SET calendar = NULL"))
        db.session.commit()
        from hue_reports.services import calendar
        calendar.forget_calendars()
    from rq import Queue
    from rq.job import Job

    try:
        job = Job.fetch(f"route-{report_id}", connection=redis_conn)
        job.retries_left = 0  # the last try now (the retries' waits are minutes long)
        job.save()
        run_jobs()
        with app.app_context():
            report = db.session.get(Report, report_id)
            assert report.status == "routing_failed"
            [event] = db.session.scalars(select(ReportEvent).where(
                ReportEvent.report_id == report_id, ReportEvent.type == "routing_failed")).all()
            assert event.public and event.data["reason"]
        assert Queue("routing", connection=redis_conn).failed_job_registry.count == 1
    finally:
        with app.app_context():
            db.session.execute(text("UPDATE cities SET calendar = CAST(:c AS jsonb)"), {"c": json.dumps(saved)})
            db.session.commit()
            calendar.forget_calendars()


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict, bytes]] = []
    paths: list[str] = []
    status = 200

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver_port():
    return free_port()


def serve(port: int, status: int = 200):
    handler = type("Handler", (Receiver,), {"received": [], "paths": [], "status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


def test_a_webhook_down_then_up_gets_each_message_once_with_a_valid_signature(app, committed, redis_conn,
                                                                             run_jobs, receiver_port):
    with app.app_context():
        db.session.execute(Agency.__table__.update().where(Agency.code == "SXD").values(
            webhook_url=f"http://127.0.0.1:{receiver_port}/hue", webhook_secret=SECRET))
        db.session.commit()
    try:
        ids = submit(app, 2)  # road damage: the Department of Construction (SXD)
        run_jobs()  # routes both; each delivery attempt meets a closed port
        with app.app_context():
            messages = db.session.scalars(select(OutboxMessage).where(OutboxMessage.report_id.in_(ids))).all()
            assert len(messages) == 2
            for m in messages:
                assert m.delivered_at is None and m.attempts == 1 and "Connection refused" in m.last_error
                assert m.next_attempt_at > datetime.now(timezone.utc) + timedelta(seconds=20)
            # The receiver comes back; the backoff has passed.
            db.session.execute(OutboxMessage.__table__.update().values(next_attempt_at=func.now()))
            db.session.commit()
        server, handler = serve(receiver_port)
        try:
            from hue_reports.jobs.notifications import deliver_due

            with app.app_context():
                assert deliver_due() == {"delivered": 2}
                assert deliver_due() == {}  # delivered: never again
        finally:
            server.shutdown()
            server.server_close()
        assert len(handler.received) == 2
        seen = set()
        for headers, body in handler.received:
            assert outbox.verify_signature(SECRET, headers[outbox.SIGNATURE_HEADER], body)
            assert not outbox.verify_signature("another secret", headers[outbox.SIGNATURE_HEADER], body)
            assert not outbox.verify_signature(SECRET, headers[outbox.SIGNATURE_HEADER], body + b" ")
            payload = json.loads(body)
            assert payload["type"] == "report.routed" and payload["report"]["agency"]["code"] == "SXD"
            assert payload["event"]["type"] == "routed"
            text_body = body.decode()
            assert "reporter" not in payload["report"]
            for value in (*REPORTER.values(), "905123456", "+84"):
                assert value not in text_body, value
            seen.add(payload["report"]["id"])
        assert seen == set(ids)
        with app.app_context():
            for m in db.session.scalars(select(OutboxMessage).where(OutboxMessage.report_id.in_(ids))):
                assert m.delivered_at is not None and m.attempts == 2 and m.last_error is None
    finally:
        with app.app_context():
            db.session.execute(Agency.__table__.update().where(Agency.code == "SXD").values(
                webhook_url=None, webhook_secret=None))
            db.session.commit()


def test_a_webhook_that_fails_for_a_day_is_given_up(app, committed, redis_conn, receiver_port):
    server, handler = serve(receiver_port, status=500)
    try:
        with app.app_context():
            db.session.execute(Agency.__table__.update().where(Agency.code == "SXD").values(
                webhook_url=f"http://127.0.0.1:{receiver_port}/hue", webhook_secret=SECRET))
            message = OutboxMessage(kind="webhook", target="agency", agency_id=db.session.scalar(
                select(Agency.id).where(Agency.code == "SXD")), payload={"type": "test"})
            db.session.add(message)
            db.session.commit()
            first = outbox.deliver(message.id)
            assert first.outcome == "retry" and first.status == 500
            db.session.execute(OutboxMessage.__table__.update().values(
                created_at=func.now() - timedelta(hours=app.config["WEBHOOK_RETRY_HOURS"] + 1)))
            db.session.commit()
            assert outbox.deliver(message.id, force=True).outcome == "gave_up"
            assert outbox.deliver(message.id, force=True).outcome == "skipped"
            row = db.session.get(OutboxMessage, message.id)
            assert row.gave_up_at is not None and row.attempts == 2 and "HTTP 500" in row.last_error
        assert len(handler.received) == 2
    finally:
        server.shutdown()
        server.server_close()
        with app.app_context():
            db.session.execute(Agency.__table__.update().where(Agency.code == "SXD").values(
                webhook_url=None, webhook_secret=None))
            db.session.commit()


def test_overdue_reports_are_flagged_once_and_told_to_the_agency_and_the_dispatcher(app, committed, redis_conn,
                                                                                    run_jobs, receiver_port):
    ids = submit(app, 2)
    run_jobs()
    with app.app_context():
        for code in ("SXD", "IOC"):
            db.session.execute(Agency.__table__.update().where(Agency.code == code).values(
                webhook_url=f"http://127.0.0.1:{receiver_port}/{code}", webhook_secret=SECRET))
        db.session.execute(Report.__table__.update().where(Report.id == ids[0]).values(
            due_at=func.now() - timedelta(minutes=1)))
        db.session.commit()
    server, handler = serve(receiver_port)
    try:
        from hue_reports.jobs.notifications import flag_overdue

        with app.app_context():
            assert flag_overdue() == 1
            assert flag_overdue() == 0
        run_jobs()  # the deliveries
        with app.app_context():
            [event] = db.session.scalars(select(ReportEvent).where(ReportEvent.type == "overdue")).all()
            assert event.report_id == ids[0] and event.public
        assert sorted(handler.paths) == ["/IOC", "/SXD"]
        bodies = [json.loads(b) for _, b in handler.received]
        assert {b["type"] for b in bodies} == {"report.overdue"} and {b["report"]["id"] for b in bodies} == {ids[0]}
        assert bodies[0]["event"]["type"] == "overdue" and bodies[0]["report"]["overdue"] is True
    finally:
        server.shutdown()
        server.server_close()
        with app.app_context():
            db.session.execute(Agency.__table__.update().where(Agency.code.in_(["SXD", "IOC"])).values(
                webhook_url=None, webhook_secret=None))
            db.session.commit()


def test_the_scheduler_knows_the_routing_jobs(app):
    from hue_reports import scheduler

    names = {p.name: p.func for p in scheduler.schedule(app)}
    assert names["routing-sweep"] == "hue_reports.jobs.routing.sweep_unrouted"
    assert names["outbox-delivery"] == "hue_reports.jobs.notifications.deliver_due"
    assert names["overdue"] == "hue_reports.jobs.notifications.flag_overdue"


def test_a_failing_job_is_retried_before_the_report_is_given_up(app, committed, redis_conn, run_jobs):
    """A try that is not the last leaves the report `submitted` and the job scheduled for its retry."""
    [report_id] = submit(app, 1)
    with app.app_context():
        saved = db.session.scalar(text("SELECT calendar FROM cities LIMIT 1"))
        db.session.execute(text("UPDATE cities SET calendar = NULL"))
        db.session.commit()
        from hue_reports.services import calendar
        calendar.forget_calendars()
    from rq.job import Job

    try:
        run_jobs()
        job = Job.fetch(f"route-{report_id}", connection=redis_conn)
        assert job.get_status() == "scheduled" and job.retries_left == app.config["ROUTING_ATTEMPTS"] - 2
        with app.app_context():
            assert db.session.get(Report, report_id).status == "submitted"
    finally:
        with app.app_context():
            db.session.execute(text("UPDATE cities SET calendar = CAST(:c AS jsonb)"), {"c": json.dumps(saved)})
            db.session.commit()
            calendar.forget_calendars()


def test_a_report_whose_job_is_lost_again_and_again_ends_routing_failed(make_app, app, committed, redis_conn):
    [report_id] = submit(app, 1)
    sweeping = make_app(ROUTING_SWEEP_SECONDS=0, ROUTING_ATTEMPTS=2)
    from hue_reports.jobs.routing import sweep_unrouted

    for expected in (1, 1):
        redis_conn.flushdb()  # the queue loses the job (a flush, a worker killed before it started)
        with sweeping.app_context():
            assert sweep_unrouted() == expected
    redis_conn.flushdb()
    with sweeping.app_context():
        assert sweep_unrouted() == 0
        report = db.session.get(Report, report_id)
        assert report.status == "routing_failed" and report.routing_requeues == 2
        [event] = db.session.scalars(select(ReportEvent).where(
            ReportEvent.report_id == report_id, ReportEvent.type == "routing_failed")).all()
        assert event.data == {"reason": "abandoned"}


class Redirecting(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.send_response(302)
        self.send_header("Location", "https://example.invalid/hue")
        self.end_headers()

    def do_GET(self):  # noqa: N802 - a followed redirect would land here, without the body
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _garbage_server(port: int):
    """A receiver that answers anything but HTTP."""
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"garbage\r\n\r\n")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return sock


@pytest.mark.parametrize("receiver", ["redirect", "garbage", "no_secret"])
def test_a_receiver_that_misbehaves_is_a_failed_attempt_retried_later(app, committed, redis_conn, receiver_port,
                                                                     receiver):
    stop = None
    if receiver == "redirect":
        server = http.server.ThreadingHTTPServer(("127.0.0.1", receiver_port), Redirecting)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stop = lambda: (server.shutdown(), server.server_close())  # noqa: E731
    elif receiver == "garbage":
        sock = _garbage_server(receiver_port)
        stop = sock.close
    try:
        with app.app_context():
            db.session.execute(Agency.__table__.update().where(Agency.code == "SXD").values(
                webhook_url=f"http://127.0.0.1:{receiver_port}/hue",
                webhook_secret=None if receiver == "no_secret" else SECRET))
            ids = []
            for _ in range(2):
                message = OutboxMessage(kind="webhook", target="agency", agency_id=db.session.scalar(
                    select(Agency.id).where(Agency.code == "SXD")), payload={"type": "test"})
                db.session.add(message)
                db.session.commit()
                ids.append(message.id)
            from hue_reports.jobs.notifications import deliver_due

            assert deliver_due() == {"retry": 2}  # both tried: one bad receiver never stops the sweep
            db.session.expire_all()
            for message_id in ids:
                row = db.session.get(OutboxMessage, message_id)
                assert row.delivered_at is None and row.attempts == 1 and row.gave_up_at is None
                assert row.next_attempt_at > datetime.now(timezone.utc) + timedelta(seconds=20)
                assert {"redirect": "not followed", "garbage": "BadStatusLine",
                        "no_secret": "no secret"}[receiver] in row.last_error
    finally:
        if stop:
            stop()
        with app.app_context():
            db.session.execute(Agency.__table__.update().where(Agency.code == "SXD").values(
                webhook_url=None, webhook_secret=None))
            db.session.commit()


# --- a backlog: one routing job routes the reports of the jobs waiting behind it (ROUTING_BATCH) ----------

def _work_routing(app, redis_conn):
    """Drain the routing queue with a real SimpleWorker in this process; returns how many jobs RQ itself ran."""
    from rq import SimpleWorker

    with app.app_context():
        worker = SimpleWorker(["routing"], connection=redis_conn)
        worker.work(burst=True)
        worker.refresh()
        return worker.successful_job_count


def _statuses(redis_conn, ids) -> dict[int, str]:
    from rq.job import Job

    return {i: Job.fetch(f"route-{i}", connection=redis_conn).get_status() for i in ids}


def test_a_backlog_is_routed_by_the_first_job_each_report_once_each_job_finished(app, committed, redis_conn):
    ids = submit(app, 5)
    assert _work_routing(app, redis_conn) == 1  # RQ ran one job; it took the four waiting behind it
    with app.app_context():
        assert routed_events(ids) == {i: 1 for i in ids}
        assert all(db.session.get(Report, i).status == "routed" for i in ids)
    assert _statuses(redis_conn, ids) == {i: "finished" for i in ids}
    from rq.job import Job

    claimed = Job.fetch(f"route-{ids[3]}", connection=redis_conn)
    assert claimed.return_value() == "routed" and claimed.started_at and claimed.ended_at
    assert redis_conn.llen("rq:queue:routing") == 0


def test_with_routing_batch_0_each_job_routes_its_own_report(make_app, committed, redis_conn):
    single = make_app(ROUTING_BATCH=0)
    ids = submit(single, 3)
    assert _work_routing(single, redis_conn) == 3
    with single.app_context():
        assert routed_events(ids) == {i: 1 for i in ids}


def test_a_claimed_job_that_fails_goes_back_to_rq_with_its_own_retries(app, committed, redis_conn, monkeypatch):
    ids = submit(app, 4)
    from hue_reports.services import routing

    real_route = routing.route

    def route(report_id, **kwargs):
        if report_id == ids[2]:
            raise RuntimeError("injected: this report cannot be routed now")
        return real_route(report_id, **kwargs)

    monkeypatch.setattr(routing, "route", route)
    # The first job takes the other three; the failing one goes back to the queue, where RQ runs it as its
    # own job, which fails and is scheduled for its retry (not the last try: the report stays submitted).
    assert _work_routing(app, redis_conn) == 1
    with app.app_context():
        assert routed_events(ids) == {i: 1 for i in ids if i != ids[2]}
        assert db.session.get(Report, ids[2]).status == "submitted"
    from rq.job import Job

    failing = Job.fetch(f"route-{ids[2]}", connection=redis_conn)
    assert failing.get_status() == "scheduled" and failing.retries_left == app.config["ROUTING_ATTEMPTS"] - 2
    assert _statuses(redis_conn, [i for i in ids if i != ids[2]]) == {i: "finished" for i in ids if i != ids[2]}


def test_claimed_jobs_not_started_before_the_batch_budget_go_back_to_the_head_of_the_queue(
        make_app, committed, redis_conn, monkeypatch):
    # A batch stops a quarter of the job's timeout after it began (1 s here): the second report takes longer,
    # so the first job stops after it and puts the two it claimed and did not start back in front.
    slow = make_app(ROUTING_JOB_TIMEOUT_SECONDS=4)
    ids = submit(slow, 4)
    from hue_reports.services import routing

    real_route = routing.route

    def route(report_id, **kwargs):
        if report_id == ids[1]:
            time.sleep(1.2)
        return real_route(report_id, **kwargs)

    monkeypatch.setattr(routing, "route", route)
    from hue_reports.extensions import get_queue

    with slow.app_context():
        from rq.job import Job

        first = Job.fetch(f"route-{ids[0]}", connection=redis_conn)
        get_queue("routing").remove(first.id)  # as a worker pops it
        assert first.perform() == "routed"
        assert [j.decode() for j in redis_conn.lrange("rq:queue:routing", 0, -1)] == \
            [f"route-{ids[2]}", f"route-{ids[3]}"]
        assert _statuses(redis_conn, ids[2:]) == {i: "queued" for i in ids[2:]}
        assert routed_events(ids) == {ids[0]: 1, ids[1]: 1}
    assert _work_routing(slow, redis_conn) == 1
    with slow.app_context():
        assert routed_events(ids) == {i: 1 for i in ids}


def test_jobs_claimed_by_a_worker_that_died_are_queued_again_by_the_sweep(make_app, app, committed, redis_conn):
    ids = submit(app, 3)
    from hue_reports.extensions import get_queue
    from hue_reports.jobs.routing import claim_waiting, sweep_unrouted

    with app.app_context():
        assert claim_waiting(get_queue("routing"), 10) == [f"route-{i}" for i in ids]
        assert claim_waiting(get_queue("routing"), 10) == []  # each job is claimed once
    # ... and the worker that claimed them is killed: they stay `started`, as RQ leaves a killed worker's job.
    assert _statuses(redis_conn, ids) == {i: "started" for i in ids}
    sweeping = make_app(ROUTING_SWEEP_SECONDS=0, ROUTING_JOB_TIMEOUT_SECONDS=1)
    with sweeping.app_context():
        assert sweep_unrouted() == 0  # being routed, for all the sweep knows
    time.sleep(2.1)  # twice the timeout: lost
    with sweeping.app_context():
        assert sweep_unrouted() == 3
        assert sweep_unrouted() == 0
    assert _work_routing(app, redis_conn) == 1
    with app.app_context():
        assert routed_events(ids) == {i: 1 for i in ids}

"""The scheduler -> Redis -> worker path, with real `flask scheduler` and `flask worker` processes."""

import contextlib
import signal
import subprocess
import sys
import time

from rq import Queue, Worker
from rq.job import Job

from hue_reports import scheduler
from tests.support import ROOT, flask_cli


def _wait_for(predicate, timeout: float = 30, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")


@contextlib.contextmanager
def _running(args, env, log_path):
    """A real `flask --app wsgi <args>` process, killed if the test leaves it running."""
    with open(log_path, "w") as log, subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def test_one_periodic_job_per_period_however_many_schedulers_tick(app, redis_conn):
    """Do two scheduler replicas ticking in the same period enqueue the job once?"""
    jobs = [p for p in scheduler.schedule(app) if p.name == "heartbeat"]
    interval = app.config["HEARTBEAT_SECONDS"]
    now = 1_700_000_000.0
    first = scheduler.tick(redis_conn, jobs, now)
    second = scheduler.tick(redis_conn, jobs, now + interval / 2)  # another replica, same period
    third = scheduler.tick(redis_conn, jobs, now + interval)  # the next period
    assert first == [f"periodic-heartbeat-{int(now // interval)}"]
    assert second == []
    assert third == [f"periodic-heartbeat-{int(now // interval) + 1}"]
    assert Queue("periodic", connection=redis_conn).count == 2


def test_every_periodic_job_names_a_real_job(app):
    import importlib

    for periodic in scheduler.schedule(app):
        module, name = periodic.func.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), name)), periodic.func


def test_a_real_worker_runs_the_heartbeat_and_readyz_reports_it(client, redis_conn, process_env):
    result = flask_cli(["scheduler", "--once"], process_env)
    assert result.returncode == 0, result.stderr
    job_id = next(word for word in result.stdout.split() if word.startswith("periodic-heartbeat-"))
    assert client.get("/readyz").get_json()["heartbeat"] is None

    result = flask_cli(["worker", "--burst"], process_env)
    assert result.returncode == 0, result.stderr

    assert Job.fetch(job_id, connection=redis_conn).get_status() == "finished"
    heartbeat = client.get("/readyz").get_json()["heartbeat"]
    assert 0 <= heartbeat["age_s"] < 60 and heartbeat["latency_s"] >= 0


def test_the_scheduler_runs_until_sigterm_and_its_healthcheck_follows(redis_conn, process_env, tmp_path):
    assert flask_cli(["healthcheck", "scheduler"], process_env).returncode != 0
    with _running(["scheduler"], process_env, tmp_path / "scheduler.log") as proc:
        _wait_for(lambda: Queue("periodic", connection=redis_conn).count >= 1)
        _wait_for(lambda: redis_conn.exists(scheduler.alive_key()))
        check = flask_cli(["healthcheck", "scheduler"], process_env)
        assert check.returncode == 0, check.stdout + check.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert flask_cli(["healthcheck", "scheduler"], process_env).returncode != 0


def test_the_worker_registers_until_sigterm_and_its_healthcheck_follows(redis_conn, process_env, tmp_path):
    assert flask_cli(["healthcheck", "worker"], process_env).returncode != 0
    with _running(["worker"], process_env, tmp_path / "worker.log") as proc:
        _wait_for(lambda: Worker.all(connection=redis_conn))
        check = flask_cli(["healthcheck", "worker"], process_env)
        assert check.returncode == 0, check.stdout + check.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert Worker.all(connection=redis_conn) == []
    assert flask_cli(["healthcheck", "worker"], process_env).returncode != 0


def test_jobs_in_a_non_forking_worker_leave_no_transaction_open(app, redis_conn, database_url):
    """Does each job get its own session, closed afterwards (no 'idle in transaction' left)?"""
    from rq import SimpleWorker
    from sqlalchemy import create_engine, text

    queue = Queue("periodic", connection=redis_conn)
    for n in range(3):
        queue.enqueue("hue_reports.jobs.ops.heartbeat", time.time(), job_id=f"inproc-{n}")
    with app.app_context():  # as `flask worker` runs: jobs inside the worker's own app context
        SimpleWorker([queue], connection=redis_conn).work(burst=True)
    assert all(Job.fetch(f"inproc-{n}", connection=redis_conn).get_status() == "finished" for n in range(3))

    probe = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with probe.connect() as conn:
        idle = conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()")).scalar()
    probe.dispose()
    assert idle == 0

"""Faults on the real stack, each bounded in time: Redis stopped, PostgreSQL unreachable (a TCP proxy cut in
front of the test server, never the shared server itself), a worker killed in the middle of a derivatives job.

(The queue flushed and a routing job's worker killed: tests/jobs/test_routing_jobs.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from hue_reports.extensions import db
from hue_reports.models import IdempotencyKey, Photo, Report, ReportEvent
from tests.stack import BIN, Gunicorn, TcpProxy, redis_server, request, small_jpeg
from tests.support import ROOT, kill_when_waiting_on_a_lock, multipart, post_report, report_form


def _routed_events(report_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(ReportEvent).where(
        ReportEvent.report_id == report_id, ReportEvent.type == "routed"))


def _burst(app, url: str) -> None:
    """A real RQ worker in this process runs what is queued, as `flask worker --burst` would."""
    from rq import SimpleWorker

    from hue_reports.jobs import queue_names

    connection = redis_lib.Redis.from_url(url)
    try:
        with app.app_context():
            SimpleWorker(queue_names(), connection=connection).work(burst=True)
    finally:
        connection.close()


def test_with_redis_stopped_a_report_is_accepted_and_routed_once_redis_is_back(make_app, committed, tmp_path):
    """Redis (the test's own server) stops: the resident gets 201 all the same, the report waits `submitted`;
    Redis comes back empty: the same app, not restarted, queues it again from the sweeps, and it is routed once
    and its derivatives made."""
    with redis_server(tmp_path) as server:
        app = make_app(REDIS_URL=server.url, ROUTING_SWEEP_SECONDS=0, PHOTO_SWEEP_SECONDS=0,
                       RATE_LIMIT_PER_MINUTE=10)
        client = app.test_client()
        server.stop()
        response = post_report(client, photos=[(small_jpeg(900_001), "r.jpg")])
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        assert body["status"] == "submitted" and body["photos"][0]["state"] == "processing"
        assert client.get(f"/api/v1/reports/{body['id']}").status_code == 200  # reading needs no queue

        server.start()  # the same port, nothing in it
        from hue_reports.jobs.photos import sweep_photos
        from hue_reports.jobs.routing import sweep_unrouted

        with app.app_context():
            assert sweep_unrouted() == 1 and sweep_photos() == 1
            assert sweep_unrouted() == 0 and sweep_photos() == 0  # queued, not twice
        _burst(app, server.url)
        with app.app_context():
            report = db.session.get(Report, body["id"])
            assert report.status == "routed" and _routed_events(report.id) == 1
            assert report.photos[0].derivatives_ready_at is not None
            assert sweep_unrouted() == 0 and sweep_photos() == 0
        _burst(app, server.url)
        with app.app_context():
            assert _routed_events(body["id"]) == 1


@pytest.fixture
def db_proxy(database_url):
    """A TCP proxy in front of the test database's server (the server itself is shared: never stopped)."""
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    yield proxy
    proxy.cut()


@pytest.fixture
def api_through_proxy(db_proxy, database_url, process_env, committed, tmp_path):
    """gunicorn whose DATABASE_URL goes through the proxy, with its own media directory."""
    media = tmp_path / "media"
    env = {**process_env, "DATABASE_URL": db_proxy.url(database_url), "MEDIA_ROOT": str(media),
           "DATABASE_POOL_SIZE": "2"}
    server = Gunicorn(env, tmp_path / "gunicorn.log", workers=1, threads=4)
    yield server, media
    server.stop()


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _submit(base: str, photo: bytes, key: str | None = None, **fields) -> tuple[int, dict, dict | None]:
    body, boundary = multipart(report_form([(photo, "p.jpg")], lat="16.4698", lon="107.5786", **fields))
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if key:
        headers["Idempotency-Key"] = key
    return request(base, "POST", "/api/v1/reports", body, headers, timeout=30)


def _unavailable(answer) -> None:
    status, headers, body = answer
    assert status == 503, (status, body)
    assert 1 <= int(headers["retry-after"]) <= 60
    assert body["error"]["code"] == "database_unavailable" and body["error"]["message_vi"]


def test_with_postgresql_unreachable_the_api_answers_503_and_recovers_without_a_restart(api_through_proxy,
                                                                                       db_proxy):
    server, media = api_through_proxy
    status, _, first = _submit(server.base, small_jpeg(900_002))
    assert status == 201, first  # (the pool holds connections through the proxy now)

    db_proxy.cut()
    files = _files(media)
    _unavailable(_submit(server.base, small_jpeg(900_003), key="pg-down-0123456789abcdef"))
    assert _files(media) == files  # no photo stored for a report that does not exist
    for path in (f"/api/v1/reports/{first['id']}", "/api/v1/public/reports", "/api/v1/services",
                 "/api/v1/public/metrics"):
        _unavailable(request(server.base, "GET", path, timeout=30))
    _unavailable(request(server.base, "POST", "/api/v1/auth/token", b'{"username": "admin", "password": "x"}',
                         {"Content-Type": "application/json"}, timeout=30))
    status, headers, _ = request(server.base, "GET", "/", timeout=30)  # a page: an error page, not a 500
    assert status == 503 and headers["retry-after"]
    status, _, ready = request(server.base, "GET", "/readyz", timeout=30)
    assert status == 503 and ready["error"]["code"] == "not_ready"
    assert request(server.base, "GET", "/healthz", timeout=30)[0] == 200  # the process is alive: no restart

    db_proxy.restore()
    status, _, again = _submit(server.base, small_jpeg(900_003), key="pg-down-0123456789abcdef")
    assert status == 201, again  # the same key: nothing of the failed try was kept
    assert request(server.base, "GET", f"/api/v1/reports/{first['id']}", timeout=30)[0] == 200
    assert request(server.base, "GET", "/readyz", timeout=30)[0] == 200


def test_a_connection_lost_in_the_middle_of_a_submission_leaves_no_report_and_no_file(api_through_proxy,
                                                                                     db_proxy, app):
    """The database goes away after the photo is stored, before the report is committed (a restart of the
    server, a failover): 503, the stored photo removed again, the key free for the retry."""
    server, media = api_through_proxy
    assert _submit(server.base, small_jpeg(900_004))[0] == 201
    files = _files(media)
    db_proxy.cut_on(b"INSERT INTO report_events")
    key = "pg-cut-0123456789abcdef"
    _unavailable(_submit(server.base, small_jpeg(900_005), key=key, description="cut mid-transaction"))
    assert _files(media) == files
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Report).where(
            Report.description == "cut mid-transaction")) == 0
        assert db.session.scalar(select(func.count()).select_from(IdempotencyKey).where(
            IdempotencyKey.key == key)) == 0
        db.session.remove()
    status, _, body = _submit(server.base, small_jpeg(900_005), key=key, description="cut mid-transaction")
    assert status == 201, body
    assert len(_files(media) - files) == 1  # the original, once


def test_a_worker_killed_during_a_derivatives_job_makes_them_later_exactly_once(app, make_app, committed, redis_conn,
                                                                               process_env, database_url, tmp_path):
    """The worker dies after writing the derivatives' files and before recording them (it waits on the photo's
    row, which the test holds, then is SIGKILLed). The job stays `started` in Redis; the photo sweep takes it
    for lost after twice the job's timeout, queues it again, and a new worker records the files already made."""
    from hue_reports.jobs.photos import sweep_photos
    from hue_reports.services import photos as photo_service
    from hue_reports.services.storage import derivative_key, get_storage

    body = post_report(app.test_client(), photos=[(small_jpeg(900_006, size=800), "k.jpg")]).get_json()
    photo_id = body["photos"][0]["id"]
    holder = psycopg.connect(database_url)
    holder.execute("SELECT id FROM photos WHERE id = %s FOR UPDATE", (photo_id,))
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([str(BIN / "flask"), "--app", "wsgi", "worker", "--burst", "--queues", "photos"],
                              cwd=ROOT, env=process_env, stdout=log, stderr=subprocess.STDOUT)
    watcher = psycopg.connect(database_url, autocommit=True)
    try:
        kill_when_waiting_on_a_lock(worker, watcher, "UPDATE photos%", tmp_path / "worker.log")
    finally:
        holder.rollback()
        holder.close()
        watcher.close()
        log.close()
    with app.app_context():
        photo = db.session.get(Photo, photo_id)
        assert photo.derivatives_ready_at is None  # the killed job recorded nothing...
        storage = get_storage()
        name = photo_service.derivative_name(photo.sha256)
        keys = [derivative_key(name, size) for size in ("display", "thumb")]
        assert all(storage.exists(k) for k in keys)  # ...after writing its files
        db.session.remove()
    from rq.job import Job

    assert Job.fetch(f"derivatives-{photo_id}", connection=redis_conn).get_status() == "started"

    sweeping = make_app(PHOTO_JOB_TIMEOUT_SECONDS=1, PHOTO_SWEEP_SECONDS=0)
    with sweeping.app_context():
        assert sweep_photos() == 0  # started a moment ago: maybe running
    time.sleep(2.2)  # twice the (sweeping app's) job timeout
    with sweeping.app_context():
        assert sweep_photos() == 1
        assert sweep_photos() == 0
    _burst(app, app.config["REDIS_URL"])
    with app.app_context():
        photo = db.session.get(Photo, photo_id)
        assert photo.derivatives_ready_at is not None and photo.display_key == keys[0]
        ready_at = photo.derivatives_ready_at
        db.session.remove()
    with sweeping.app_context():
        assert sweep_photos() == 0
    _burst(app, app.config["REDIS_URL"])
    with app.app_context():
        assert db.session.get(Photo, photo_id).derivatives_ready_at == ready_at  # recorded once
    root = Path(app.config["MEDIA_ROOT"])
    made = {p.name for p in (root / keys[0]).parent.iterdir()}
    assert made == {"display.jpg", "thumb.jpg"}  # each file once, no temporary left
    with app.test_client().get(f"/api/v1/photos/{photo_id}/display") as display:
        assert display.status_code == 200


FORK_AND_DIE = """
import os, signal, time
from sqlalchemy import text
from hue_reports import create_app
from hue_reports.extensions import db

app = create_app()
with app.app_context():
    db.session.execute(text("SELECT pg_advisory_xact_lock(424242)"))  # a job's transaction, holding a lock
    child = os.fork()  # as RQ forks its scheduler process (or a work horse)
    if child == 0:
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the worker is killed in the middle of its job
"""


def test_a_killed_process_never_leaves_its_transaction_open_through_a_forked_child(process_env, database_url):
    """The child a worker forked outlives it: the worker's database session must end with the worker (its
    locks released), not live on through the child's copy of its socket."""
    worker = subprocess.Popen([str(BIN / "python"), "-c", FORK_AND_DIE], cwd=ROOT, env=process_env,
                              stdout=subprocess.PIPE, text=True)
    child = int(worker.stdout.readline())  # (the child keeps the pipe open: no waiting for its end)
    worker.wait(30)
    worker.stdout.close()
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            deadline = time.monotonic() + 10
            while not conn.execute("SELECT pg_try_advisory_lock(424242)").fetchone()[0]:
                assert time.monotonic() < deadline, "the dead worker's transaction still holds its lock"
                time.sleep(0.1)
            conn.execute("SELECT pg_advisory_unlock(424242)")
    finally:
        os.kill(child, signal.SIGKILL)


def test_jobs_a_killed_worker_popped_before_starting_them_are_queued_again(make_app, app, committed, redis_conn):
    """A worker listening to several queues pops a job (BLPOP) before it marks it started: killed in between,
    it takes the job with it, which stays `queued` in its hash but is in no queue. The sweeps see it."""
    from rq import Queue

    from hue_reports.jobs.photos import sweep_photos
    from hue_reports.jobs.routing import sweep_unrouted

    body = post_report(app.test_client(), photos=[(small_jpeg(900_007), "q.jpg")]).get_json()
    sweeping = make_app(ROUTING_SWEEP_SECONDS=0, PHOTO_SWEEP_SECONDS=0)
    with sweeping.app_context():
        assert sweep_unrouted() == 0 and sweep_photos() == 0  # waiting in their queues
    for queue in ("routing", "photos"):
        assert redis_conn.lpop(f"rq:queue:{queue}")  # what the dead worker's BLPOP took
        assert Queue(queue, connection=redis_conn).count == 0
    with sweeping.app_context():
        assert sweep_unrouted() == 1 and sweep_photos() == 1
        assert sweep_unrouted() == 0 and sweep_photos() == 0
    _burst(app, app.config["REDIS_URL"])
    with app.app_context():
        report = db.session.get(Report, body["id"])
        assert report.status == "routed" and _routed_events(report.id) == 1
        assert report.photos[0].derivatives_ready_at is not None


def test_a_forking_worker_runs_jobs_in_work_horses_that_released_the_parents_sockets(app, committed, redis_conn,
                                                                                    process_env):
    """WORKER_CLASS=fork: each job in a forked work horse, which opens its own connections (the parent's
    copies are released at fork): the report is routed once and its derivatives made."""
    from tests.support import flask_cli

    body = post_report(app.test_client(), photos=[(small_jpeg(900_008), "f.jpg")]).get_json()
    result = flask_cli(["worker", "--burst", "--class", "fork"], process_env)
    assert result.returncode == 0, result.stdout + result.stderr
    with app.app_context():
        report = db.session.get(Report, body["id"])
        assert report.status == "routed" and _routed_events(report.id) == 1
        assert report.photos[0].derivatives_ready_at is not None
    result = flask_cli(["worker", "--burst", "--class", "fork"], process_env)  # the worker itself still works
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr

"""Helpers shared by tests: the test database server, and the application's real CLI."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from hue_reports.devstack import server_database_url, shared_data

ROOT = Path(__file__).resolve().parent.parent


SHARED_DATA = shared_data()  # real photos, read in place, never copied into the project


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the tests with `make test`", returncode=2)
    return value


def server_url(database: str = "postgres") -> str:
    """psycopg URL of a database on the test server."""
    return server_database_url(required_env("TEST_DATABASE_URL"), database)


def create_database(prefix: str = "hue_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'')
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flask_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real `flask --app wsgi ...` in a subprocess (for worker and scheduler tests)."""
    return subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "wsgi", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)


def gunicorn_settings():
    """hue_reports/gunicorn_conf.py, imported without keeping the PROMETHEUS_MULTIPROC_DIR it sets up for a
    gunicorn master: left in this process's environment, it would switch the tests' /metrics to reading
    an empty directory instead of this process's counters."""
    import shutil

    before = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    from hue_reports import gunicorn_conf

    if before is None and "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        shutil.rmtree(os.environ.pop("PROMETHEUS_MULTIPROC_DIR"), ignore_errors=True)
    return gunicorn_conf


def migrate_and_seed(app) -> None:
    """Apply the real Alembic migrations to the app's database and load Huế's data set with the demo
    accounts (committed)."""
    from flask_migrate import upgrade

    from hue_reports.cli import DEFAULT_DATA_DIR
    from hue_reports.extensions import db
    from hue_reports.services import seed

    with app.app_context():
        upgrade()
        seed.load_city(DEFAULT_DATA_DIR, demo=True)
        db.session.remove()


def close_app(app) -> None:
    """Close an app's database pool and Redis connections (the GC would warn about open ones)."""
    from hue_reports.extensions import db

    with app.app_context():
        for engine in db.engines.values():  # (the primary's, and the replica's when one is set)
            engine.dispose()
    app.extensions["hue_redis"].close()
    storage = app.extensions.get("hue_storage")
    if hasattr(storage, "close"):
        storage.close()


PHOTOS = SHARED_DATA / "photos"
NOKIA = PHOTOS / "jpg/mobile/HMD_Nokia_8.3_5G.jpg"
CITADEL = (16.4698, 107.5786)  # lat, lon: the Imperial City, Huế (Phường Phú Xuân)


class _Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@contextmanager
def http_receiver(path: str = "/"):
    """A web server on this machine that answers 204 to every POST: (its URL at `path`, the list of what it
    received: (path, headers, body)). For webhooks and push gateways."""
    from hue_reports.devstack import free_port

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Receiver)
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{path}", server.received
    finally:
        server.shutdown()
        server.server_close()


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle metres between two (lat, lon) points, computed independently of PostGIS."""
    import math

    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    return float(degrees), float(minutes), round((value - degrees - minutes / 60) * 3600, 4)


def photo_with_gps(lat: float, lon: float, source=PHOTOS / "jpg/orientation/landscape_1.jpg",
                   fmt: str = "JPEG") -> bytes:
    """A real photo re-encoded with EXIF GPS written at (lat, lon)."""
    import io

    from PIL import Image

    exif = Image.Exif()
    exif[0x8825] = {1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)}
    out = io.BytesIO()
    with Image.open(source) as im:
        im.convert("RGB").save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


def report_form(photos: list[tuple[bytes, str]], **fields) -> dict:
    """A multipart body for POST /api/v1/reports (Werkzeug's test client encodes it)."""
    import io

    form = {"category": "road_damage", "description": "Ổ gà lớn giữa đường", **fields}
    form = {k: v for k, v in form.items() if v is not None}
    form["photos"] = [(io.BytesIO(data), name) for data, name in photos]
    return form


def post_report(client, photos: list[tuple[bytes, str]] | None = None, headers: dict | None = None,
                environ_base: dict | None = None, **fields):
    """POST a report; by default one Nokia phone photo at the Citadel."""
    if photos is None:
        photos = [(NOKIA.read_bytes(), "nokia.jpg")]
    fields.setdefault("lat", str(CITADEL[0]))
    fields.setdefault("lon", str(CITADEL[1]))
    body, boundary = multipart(report_form(photos, **fields))
    return client.post("/api/v1/reports", data=body, content_type=f"multipart/form-data; boundary={boundary}",
                       headers=headers or {}, environ_base=environ_base or {})


def multipart(form: dict) -> tuple[bytes, str]:
    """Encode a multipart body in memory. (Werkzeug's test client spools bodies over 500 kB to a
    temporary file that it never closes.)"""
    from werkzeug.datastructures import FileStorage, MultiDict
    from werkzeug.test import stream_encode_multipart

    items = MultiDict()
    for name, value in form.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, tuple):  # (stream, filename): a file part
                item = FileStorage(stream=item[0], filename=item[1], content_type="application/octet-stream")
            items.add(name, item)
    stream, _, boundary = stream_encode_multipart(items, use_tempfile=False)
    return stream.getvalue(), boundary


def new_report(category: str = "road_damage", lat: float = CITADEL[0], lon: float = CITADEL[1],
               submitted_at=None, status: str = "submitted"):
    """A report as intake leaves it (its ward included), flushed in the caller's session: for tests of
    what comes after intake, without its photos."""
    from datetime import datetime, timezone

    from geoalchemy2 import WKTElement
    from sqlalchemy import func, select

    from hue_reports.extensions import db
    from hue_reports.models import SRID, AdminArea, Category, Report, ReportEvent

    cat = db.session.scalars(select(Category).where(Category.code == category)).one()
    p = func.ST_SetSRID(func.ST_MakePoint(lon, lat), SRID)
    ward_id = db.session.scalar(select(AdminArea.id).where(
        AdminArea.valid_to.is_(None), AdminArea.tier == 2, func.ST_Covers(AdminArea.geom, p)).order_by(
        AdminArea.code).limit(1))
    report = Report(public_code=f"TEST-{uuid.uuid4().hex[:12].upper()}", category=cat, description="test",
                    location=WKTElement(f"POINT({lon!r} {lat!r})", srid=SRID), location_source="client",
                    ward_id=ward_id, status=status, submitted_at=submitted_at or datetime.now(timezone.utc),
                    supporters=0, channel="app")
    db.session.add(report)
    db.session.flush()
    db.session.add(ReportEvent(report_id=report.id, type="submitted", actor_kind="resident",
                               to_status="submitted", public=True, created_at=report.submitted_at))
    db.session.flush()
    return report


def error(response, status: int, code: str) -> dict:
    """The body of an error answer, after checking its status, code and messages in both languages."""
    assert response.status_code == status, response.get_json()
    body = response.get_json()["error"]
    assert body["code"] == code and body["message"] and body["message_vi"]
    return body


def wait_for_advisory_waiters(database_url: str, count: int, timeout_s: float = 20) -> None:
    """Wait until `count` sessions wait for an advisory lock (or `timeout_s` passed): for concurrency tests
    that hold a lock until the sessions under test are queued behind it."""
    import time

    with psycopg.connect(database_url, autocommit=True) as watcher:
        deadline = time.monotonic() + timeout_s
        while watcher.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                              ).fetchone()[0] < count and time.monotonic() < deadline:
            time.sleep(0.01)


def this_tests_audit():
    """A condition on audit_log for the entries the running test wrote (under db_session): in the test's one
    outer transaction now() is the time it began, and every row it writes carries that very time, while
    the entries other tests committed are older."""
    from sqlalchemy import func

    from hue_reports.models import AuditEntry

    return AuditEntry.created_at >= func.now()


def staff_headers(username: str, **kw) -> dict:
    """Authorization headers with a fresh bearer token for a (demo) staff account, in the caller's session."""
    from sqlalchemy import select

    from hue_reports.extensions import db
    from hue_reports.models import Account
    from hue_reports.services import auth

    account = db.session.scalars(select(Account).where(Account.username == username)).one()
    token, _ = auth.issue_token(account, **kw)
    db.session.flush()
    return {"Authorization": f"Bearer {token}"}


def away_from_window_edge(window_s: int = 60, margin_s: float = 3.0) -> None:
    """Rate limits count in fixed windows (services/ratelimit.py): a test whose requests straddle a
    window's end would see the count start again. Wait for the next window if this one is about to end."""
    import time

    left = window_s - time.time() % window_s
    if left < margin_s:
        time.sleep(left + 0.05)


class S3Server:
    """An S3-compatible HTTP server on 127.0.0.1: moto's S3 in server mode, in this process (its objects live
    in this process, so they survive `stop()` and `start()`). `stop()` is an outage: the port refuses new
    connections and the connections kept alive by clients are dropped without an answer."""

    def __init__(self):
        from hue_reports.devstack import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.down = True
        self.fail_puts_after: int | None = None  # PUTs past this many are dropped (a store failing mid-way)
        self.no_conditional_writes = False  # answer a PUT with If-None-Match 501, as older stores do
        self._puts = 0
        self._server = None

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        server = self

        class Handler(MotoRequestHandler):
            def run_wsgi(self):
                if server.down or (self.command == "PUT" and server._put_refused()):
                    self.close_connection = True  # dropped without an answer
                    return
                if server.no_conditional_writes and self.command == "PUT" and self.headers.get("If-None-Match"):
                    body = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>NotImplemented</Code>"
                            b"<Message>A header you provided implies functionality that is not implemented"
                            b"</Message></Error>")
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    self.send_response(501)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                super().run_wsgi()

            def log_request(self, *args, **kwargs):
                pass

        self._server = make_server("127.0.0.1", self.port, DomainDispatcherApplication(create_backend_app),
                                   threaded=True, request_handler=Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.down = False

    def _put_refused(self) -> bool:
        if self.fail_puts_after is None:
            return False
        self._puts += 1
        return self._puts > self.fail_puts_after

    @contextmanager
    def failing_puts_after(self, count: int):
        """Within: the first `count` PUTs are answered, later ones dropped (reads and deletes still work)."""
        self.fail_puts_after, self._puts = count, 0
        try:
            yield
        finally:
            self.fail_puts_after = None

    def stop(self) -> None:
        self.down = True
        self._server.shutdown()
        self._server.server_close()

    @contextmanager
    def outage(self):
        self.stop()
        try:
            yield
        finally:
            self.start()

    def client(self):
        """A boto3 client of this server (for the tests' own look at the bucket)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="test",
                            aws_secret_access_key="test")

    def keys(self, bucket: str) -> set[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return {item["Key"] for page in paginator.paginate(Bucket=bucket) for item in page.get("Contents", [])}


def kill_when_waiting_on_a_lock(worker: subprocess.Popen, watcher, query_like: str, log_path: Path) -> None:
    """SIGKILL a worker process as soon as a statement like `query_like` (SQL LIKE) waits on a lock the test
    holds (seen by `watcher`, a psycopg connection): the job is killed in the middle. Fails after 30 s."""
    import signal
    import time

    deadline = time.monotonic() + 30
    waiting = 0
    while not waiting and time.monotonic() < deadline:
        waiting = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                  "AND query LIKE %s", (query_like,)).fetchone()[0]
        time.sleep(0.1)
    assert waiting, log_path.read_text()
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)

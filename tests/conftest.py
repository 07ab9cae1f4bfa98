"""Test fixtures: a real PostgreSQL+PostGIS database and a real Redis, never mocks.

`make test` (hue_reports/devstack.py) starts the servers and sets
TEST_DATABASE_URL (a server to make a throw-away database on) and
TEST_REDIS_URL (a Redis database the tests may flush). This file makes one
fresh database per test session from the real Alembic migrations, seeds the
city data (committed, so worker processes can see it), and drops it at the end.

Isolation: `db_session` runs a test inside an outer transaction on one
connection, with the app's sessions joining it through savepoints, rolled back
afterwards. A worker in another process cannot see uncommitted data: tests that
run jobs on reports must commit them and remove them afterwards.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis as redis_lib

from tests.pages.browser import CHROMIUM_ARGS, Visit, chromium_path, remove_reports
from tests.support import close_app, create_database, drop_database, migrate_and_seed, required_env, server_url



def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "error")


@pytest.fixture(scope="session")
def database_url():
    """A fresh database for this test session, dropped at the end."""
    name = create_database()
    yield server_url(name)
    drop_database(name)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return required_env("TEST_REDIS_URL")


@pytest.fixture(scope="session")
def app_config(database_url, redis_url, tmp_path_factory):
    return {
        "HUE_ENV": "testing",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MEDIA_ROOT": str(tmp_path_factory.mktemp("media")),
        "LOG_LEVEL": "WARNING",
        # Every test client comes from 127.0.0.1: the rate limit tests set their own limits.
        "RATE_LIMIT_PER_MINUTE": 0,
        "RATE_LIMIT_PER_DAY": 0,
        # One app serves every test, each with data of its own: the metrics answers are read every time (the
        # process's copy has its own tests, on apps of their own: tests/test_metrics.py).
        "PUBLIC_METRICS_CACHE_SECONDS": 0,
    }


@pytest.fixture(scope="session")
def app(app_config):
    """The application on the session database, migrated with Alembic and seeded with Huế's data."""
    from hue_reports import create_app

    app = create_app(app_config)
    migrate_and_seed(app)
    yield app
    close_app(app)


@pytest.fixture
def make_app(app_config):
    """Build extra apps on the test settings with overrides; their connections are closed afterwards."""
    from hue_reports import create_app

    apps = []

    def make(**overrides):
        apps.append(create_app({**app_config, **overrides}))
        return apps[-1]

    yield make
    for extra in apps:
        close_app(extra)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db_session(app):
    """The app's session inside a transaction that is rolled back after the test.

    Flask-SQLAlchemy 3 ignores a session-level bind, so the default engine is
    replaced by one connection holding the outer transaction, and sessions join
    it with savepoints: a service's commit() releases a savepoint, not the test.
    """
    from hue_reports.extensions import db

    with app.app_context():
        engines = db.engines
        engine = engines[None]
        connection = engine.connect()
        outer = connection.begin()
        engines[None] = connection  # type: ignore[index]
        factory_kw = db.session.session_factory.kw
        factory_kw["join_transaction_mode"] = "create_savepoint"
        db.session.remove()
        try:
            yield db.session
        finally:
            db.session.remove()
            factory_kw.pop("join_transaction_mode", None)
            engines[None] = engine  # type: ignore[index]
            outer.rollback()
            connection.close()


@contextmanager
def _flushed_redis(url: str):
    conn = redis_lib.Redis.from_url(url)
    conn.flushdb()
    try:
        yield conn
    finally:
        conn.flushdb()
        conn.close()


@pytest.fixture
def redis_conn(redis_url):
    """The test Redis database, empty before and after the test."""
    with _flushed_redis(redis_url) as conn:
        yield conn


@pytest.fixture(scope="module")
def redis_module(redis_url):
    """The test Redis database, empty before and after the module (the browser tests' live server)."""
    with _flushed_redis(redis_url) as conn:
        yield conn


@pytest.fixture
def process_env(app_config):
    """Environment for a subprocess of the application pointing at the test database and Redis."""
    env = dict(os.environ)
    env.update({k: str(v) for k, v in app_config.items()})
    return env


@pytest.fixture
def media_files(app):
    """The set of files under MEDIA_ROOT now (call it again to compare)."""
    from pathlib import Path

    root = Path(app.config["MEDIA_ROOT"])
    return lambda: {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible HTTP server on 127.0.0.1 for the session (moto in server mode)."""
    from tests.support import S3Server

    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_settings(s3_server):
    """Settings of the `s3` storage backend on a fresh private bucket of the test server."""
    import uuid

    bucket = f"hue-test-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=bucket)
    return {"STORAGE_BACKEND": "s3", "S3_BUCKET": bucket, "S3_ENDPOINT_URL": s3_server.url, "S3_REGION": "us-east-1",
            "S3_ACCESS_KEY_ID": "test", "S3_SECRET_ACCESS_KEY": "test", "S3_ADDRESSING_STYLE": "path",
            "S3_TIMEOUT_SECONDS": 2}


@pytest.fixture(scope="session")
def s3_backend(s3_settings, app):
    """The `s3` storage backend on the test bucket (one client for the session)."""
    from hue_reports.services.storage import make_storage

    storage = make_storage({**app.config, **s3_settings})
    yield storage
    storage.close()


@pytest.fixture
def s3_storage(app, s3_backend):
    """The app's photos in the S3 server's bucket for this test (the app is the session's; its storage is put
    back afterwards)."""
    from hue_reports.services.storage import get_storage

    with app.app_context():
        saved = get_storage()
    app.extensions["hue_storage"] = s3_backend
    yield s3_backend
    app.extensions["hue_storage"] = saved


@pytest.fixture(params=["local", "s3"])
def storage_backend(request, app):
    """Run the test on each photo storage backend: MEDIA_ROOT's files, then the S3 server's bucket."""
    from hue_reports.services.storage import get_storage

    if request.param == "s3":
        return request.getfixturevalue("s3_storage")
    with app.app_context():
        return get_storage()


@pytest.fixture
def stored_keys(app):
    """Every key the app's storage holds now, local files (spooled uploads included) or objects."""
    from hue_reports.services.storage import LocalStorage, S3Storage, get_storage

    def keys() -> set[str]:
        with app.app_context():
            storage = get_storage()
        if isinstance(storage, S3Storage):
            paginator = storage.client.get_paginator("list_objects_v2")
            return {item["Key"] for page in paginator.paginate(Bucket=storage.bucket)
                    for item in page.get("Contents", [])}
        assert isinstance(storage, LocalStorage)
        return {str(p.relative_to(storage.root)) for p in storage.root.rglob("*") if p.is_file()}

    return keys


@pytest.fixture
def run_jobs(app, redis_conn):
    """Run the queued jobs with a real RQ worker, in this process (burst), as `flask worker` would."""
    from rq import SimpleWorker

    from hue_reports.jobs import queue_names

    def run() -> None:
        with app.app_context():
            SimpleWorker(queue_names(), connection=redis_conn).work(burst=True)

    return run


@pytest.fixture
def committed(app, redis_conn):
    """For tests that need data committed for real (threads, other processes): the report tables are
    emptied before (reports another test's extra app committed must not count: a sweep queues every report
    still waiting) and afterwards."""
    remove_reports(app)
    yield
    remove_reports(app)


# --- the browser tests' (tests/pages/browser.py); each module gives `live`, its server ----------------------

@pytest.fixture(scope="module")
def artifacts(request, tmp_path_factory) -> Path:
    """Where the screenshots go: $HUE_TEST_ARTIFACTS/screenshots, else pytest's temporary directory."""
    base = os.environ.get("HUE_TEST_ARTIFACTS")
    directory = Path(base) / "screenshots" if base else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():  # (said at once, even when the tests pass)
            reporter.write_line(f"\npage screenshots: {directory}")
    return directory


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def visit(browser, live, app, artifacts):
    """Open tabs; afterwards: no script error, no CSP violation, nothing fetched from outside but tiles."""
    visits = []

    def open_tab(**context_args) -> Visit:
        visits.append(Visit(browser, live, app, artifacts, **context_args))
        return visits[-1]

    yield open_tab
    for v in visits:
        v.close()
    for v in visits:
        assert v.traffic.page_errors == [], v.traffic.page_errors
        assert v.traffic.csp_violations() == [], v.traffic.csp_violations()
        assert v.traffic.external == [], f"fetched from outside: {v.traffic.external}"

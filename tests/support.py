"""Helpers shared by tests: the test database server, and the application's real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from hue_reports.devstack import server_database_url

ROOT = Path(__file__).resolve().parent.parent
# Real photos and data shared by the project's sessions (read, never copied in).
SHARED_DATA = ROOT.parent / "shared" / "data"


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


def close_app(app) -> None:
    """Close an app's database pool and Redis connections (the GC would warn about open ones)."""
    from hue_reports.extensions import db

    with app.app_context():
        db.engine.dispose()
    app.extensions["hue_redis"].close()

"""/healthz and /readyz, against real servers that are up, down, or not migrated."""

import pytest

from hue_reports.devstack import free_port  # a free port: nothing listens on it
from tests.support import create_database, drop_database, server_url


def test_healthz_says_the_process_is_alive(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_is_ready_when_database_schema_and_redis_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "schema": "ok", "redis": "ok"}


def test_readyz_is_503_with_the_reason_when_redis_is_down(make_app):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "not_ready" and "redis" in error["message"]
    assert error["fields"]["redis"].startswith("unreachable")
    assert error["fields"]["database"] == "ok"
    assert response.headers["Retry-After"]


def test_readyz_is_503_when_the_database_is_down(make_app):
    app = make_app(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"]["fields"]["database"].startswith("unreachable")


@pytest.fixture
def empty_database():
    name = create_database("hue_empty")
    yield server_url(name)
    drop_database(name)


def test_readyz_is_503_when_postgis_is_missing(make_app, empty_database):
    response = make_app(DATABASE_URL=empty_database).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"]["fields"]["database"].startswith("PostGIS extension missing")


def test_readyz_is_503_when_the_schema_is_not_migrated(make_app, empty_database):
    from hue_reports.extensions import db

    app = make_app(DATABASE_URL=empty_database)
    with app.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION postgis")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "not migrated" in response.get_json()["error"]["fields"]["schema"]

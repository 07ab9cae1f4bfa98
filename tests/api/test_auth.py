"""POST/DELETE /api/v1/auth/token: staff log in for a bearer token and log out; guessing is throttled."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import redis as redis_lib
from sqlalchemy import select

from hue_reports.devstack import free_port
from hue_reports.extensions import db
from hue_reports.models import Account, ApiToken
from hue_reports.services import auth
from tests.support import away_from_window_edge, error

PASSWORD = "hue-demo-2026"
URL = "/api/v1/auth/token"


def login(client, username: str, password: str = PASSWORD, ip: str = "192.0.2.1"):
    return client.post(URL, json={"username": username, "password": password}, environ_base={"REMOTE_ADDR": ip})


def feed(client, token: str):
    return client.get("/api/v1/agency/events", headers={"Authorization": f"Bearer {token}"})


def account(username: str) -> Account:
    db.session.expire_all()
    return db.session.scalars(select(Account).where(Account.username == username)).one()



@pytest.fixture
def limits(app, monkeypatch):
    """Set the log-in thresholds of the session's app for one test (its data is rolled back)."""
    return lambda **settings: [monkeypatch.setitem(app.config, k, v) for k, v in settings.items()]


def test_log_in_gives_a_working_token_that_expires_in_token_hours(client, db_session, redis_conn):
    before = datetime.now(timezone.utc)
    response = login(client, "HEPCO.Officer")
    assert response.status_code == 201, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"token", "token_type", "expires_at", "account"}
    assert body["token"].startswith("hue_") and body["token_type"] == "Bearer"
    assert body["account"] == {"username": "hepco.officer", "display_name": "Cán bộ HEPCO (HEPCO officer)",
                               "role": "officer", "agency": "HEPCO"}
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(hours=12) - timedelta(minutes=1) < expires - before < timedelta(hours=12, minutes=1)
    assert feed(client, body["token"]).status_code == 200
    assert account("hepco.officer").last_login_at >= before
    assert "password" not in response.get_data(as_text=True)


def test_token_hours_is_a_setting(client, db_session, redis_conn, limits):
    limits(TOKEN_HOURS=1)
    expires = datetime.fromisoformat(login(client, "admin").get_json()["expires_at"])
    assert abs(expires - datetime.now(timezone.utc) - timedelta(hours=1)) < timedelta(minutes=1)


def test_the_token_is_stored_hashed(client, db_session, redis_conn):
    token = login(client, "ioc").get_json()["token"]
    row = db.session.scalars(select(ApiToken).where(ApiToken.token_hash == auth.token_digest(token))).one()
    assert row.account.username == "ioc" and row.name == auth.LOGIN_TOKEN_NAME
    assert token not in {row.token_hash, row.name}


def test_an_unknown_username_a_wrong_password_and_a_disabled_account_are_the_same_401(client, db_session,
                                                                                         redis_conn):
    unknown = error(login(client, "nobody.here"), 401, "invalid_credentials")
    wrong = error(login(client, "hepco.officer", "not-the-password"), 401, "invalid_credentials")
    db.session.execute(Account.__table__.update().where(Account.username == "sxd.officer").values(active=False))
    disabled = error(login(client, "sxd.officer"), 401, "invalid_credentials")
    assert unknown == wrong == disabled
    assert account("hepco.officer").failed_logins == 1
    assert account("sxd.officer").failed_logins == 0  # the right password: nothing to count
    assert db.session.scalar(select(ApiToken.id).join(Account).where(Account.username == "sxd.officer")) is None


def test_an_unknown_username_costs_an_argon2_verification_too(client, db_session, redis_conn):
    def fastest(username: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            assert login(client, username, "not-the-password").status_code == 401
            times.append(time.perf_counter() - start)
        return min(times)

    login(client, "nobody.here", "warm-up-the-dummy-hash")
    unknown, wrong = fastest("nobody.here"), fastest("phuxuan.officer")
    assert unknown > 0.5 * wrong, (unknown, wrong)  # (load only makes an attempt slower, never faster)


def test_failures_in_a_row_lock_the_account_even_for_the_right_password(client, db_session, redis_conn, limits):
    limits(LOGIN_MAX_FAILURES=3, LOGIN_LOCKOUT_MINUTES=10)
    for _ in range(3):
        error(login(client, "hepco.officer", "wrong-password"), 401, "invalid_credentials")
    locked = login(client, "hepco.officer")
    error(locked, 429, "account_locked")
    assert 590 <= int(locked.headers["Retry-After"]) <= 600
    error(login(client, "hepco.officer", "wrong-password"), 429, "account_locked")
    assert login(client, "sxd.officer").status_code == 201  # other accounts are not concerned
    db.session.execute(Account.__table__.update().where(Account.username == "hepco.officer")
                       .values(locked_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert login(client, "hepco.officer").status_code == 201  # the lock is over
    assert account("hepco.officer").failed_logins == 0 and account("hepco.officer").locked_until is None


def test_an_unknown_username_locks_like_a_real_one(client, db_session, redis_conn, limits):
    """A lockout must not tell which usernames exist."""
    limits(LOGIN_MAX_FAILURES=3, LOGIN_LOCKOUT_MINUTES=10)
    for name in ("nobody.here", "hepco.officer"):
        answers = [login(client, name, "wrong-password") for _ in range(4)]
        assert [a.status_code for a in answers] == [401, 401, 401, 429], name
        assert answers[-1].get_json()["error"]["code"] == "account_locked"
        assert 590 <= int(answers[-1].headers["Retry-After"]) <= 600


def test_a_successful_log_in_resets_the_failure_count(client, db_session, redis_conn, limits):
    limits(LOGIN_MAX_FAILURES=3)
    for _ in range(2):
        login(client, "hepco.officer", "wrong-password")
    assert account("hepco.officer").failed_logins == 2
    assert login(client, "hepco.officer").status_code == 201
    assert account("hepco.officer").failed_logins == 0
    for _ in range(2):
        login(client, "hepco.officer", "wrong-password")
    assert login(client, "hepco.officer").status_code == 201


def test_failures_from_one_address_are_throttled_whatever_the_accounts(client, db_session, redis_conn, limits):
    limits(LOGIN_IP_MAX_FAILURES=3, LOGIN_IP_WINDOW_MINUTES=15)
    away_from_window_edge(15 * 60)
    ip = "203.0.113.9"
    for username in ("nobody.one", "hepco.officer", "nobody.two"):
        error(login(client, username, "wrong-password", ip=ip), 401, "invalid_credentials")
    throttled = login(client, "nobody.three", "wrong-password", ip=ip)
    error(throttled, 429, "too_many_requests")
    assert 0 < int(throttled.headers["Retry-After"]) <= 15 * 60
    blocked = login(client, "sxd.officer", ip=ip)  # even the right password, while the address waits
    error(blocked, 429, "too_many_requests")
    assert 0 < int(blocked.headers["Retry-After"]) <= 15 * 60
    assert login(client, "sxd.officer", ip="203.0.113.10").status_code == 201  # another address is fine
    keys = b" ".join(redis_conn.keys("*"))
    assert keys and b"203.0.113" not in keys  # addresses are personal data: keyed-hashed in Redis


def test_successful_log_ins_from_one_address_are_not_throttled(client, db_session, redis_conn, limits):
    limits(LOGIN_IP_MAX_FAILURES=2)
    for _ in range(5):  # an office behind one address, everyone logging in at 7:30
        assert login(client, "phuxuan.officer", ip="203.0.113.20").status_code == 201


def test_log_in_works_while_redis_is_down(app, client, db_session, monkeypatch):
    dead = redis_lib.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=2)  # as the app
    monkeypatch.setitem(app.extensions, "hue_redis", dead)
    error(login(client, "hepco.officer", "wrong-password"), 401, "invalid_credentials")
    assert login(client, "hepco.officer").status_code == 201
    dead.close()


def test_log_out_revokes_the_token_used_and_only_it(client, db_session, redis_conn):
    first = login(client, "hepco.admin").get_json()["token"]
    second = login(client, "hepco.admin").get_json()["token"]
    response = client.delete(URL, headers={"Authorization": f"Bearer {first}"})
    assert response.status_code == 204 and response.get_data() == b""
    assert feed(client, first).status_code == 401
    assert client.delete(URL, headers={"Authorization": f"Bearer {first}"}).status_code == 401
    assert feed(client, second).status_code == 200
    error(client.delete(URL), 401, "unauthorized")


def test_an_expired_token_is_refused(client, db_session, redis_conn):
    token = login(client, "hepco.officer").get_json()["token"]
    assert feed(client, token).status_code == 200
    db.session.execute(ApiToken.__table__.update().where(ApiToken.token_hash == auth.token_digest(token))
                       .values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    error(feed(client, token), 401, "unauthorized")
    error(client.delete(URL, headers={"Authorization": f"Bearer {token}"}), 401, "unauthorized")


@pytest.mark.parametrize("body, field", [
    ({"username": "hepco.officer"}, "password"),
    ({"password": PASSWORD}, "username"),
    ({"username": "", "password": PASSWORD}, "username"),
    ({"username": 12, "password": PASSWORD}, "username"),
    ({"username": "hepco.officer", "password": "x" * 1025}, "password"),
    (["hepco.officer", PASSWORD], "_schema"),
])
def test_bad_log_in_bodies_are_422_naming_the_field(client, db_session, redis_conn, body, field):
    assert field in error(client.post(URL, json=body), 422, "validation_error")["fields"]


def test_a_body_that_is_not_json_is_refused(client, db_session, redis_conn):
    error(client.post(URL, data="username=admin&password=x", content_type="application/x-www-form-urlencoded"),
          415, "unsupported_media_type")
    error(client.post(URL, data='{"username": "admin", ', content_type="application/json"), 400, "malformed_body")


def test_the_openapi_document_describes_log_in(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert "requestBody" in paths["/api/v1/auth/token"]["post"]
    assert {"201", "401", "429"} <= set(paths["/api/v1/auth/token"]["post"]["responses"])
    assert "delete" in paths["/api/v1/auth/token"]

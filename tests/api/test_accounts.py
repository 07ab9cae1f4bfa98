"""Agency admins manage their own officers (/api/v1/agency/officers); `flask users` manages any account."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text

from hue_reports.extensions import db
from hue_reports.models import Account, ApiToken
from hue_reports.services import auth
from hue_reports.services.passwords import verify_password
from tests.support import ROOT, error, flask_cli

PASSWORD = "hue-demo-2026"
NEW_PASSWORD = "a-new-long-password"
URL = "/api/v1/agency/officers"
PUBLIC_FIELDS = {"username", "display_name", "email", "role", "agency", "active", "locked_until", "last_login_at",
                 "created_at"}


def headers_for(username: str) -> dict:
    found = db.session.scalars(select(Account).where(Account.username == username)).one()
    token, _ = auth.issue_token(found)
    db.session.flush()
    return {"Authorization": f"Bearer {token}"}


def account(username: str) -> Account | None:
    db.session.expire_all()
    return db.session.scalars(select(Account).where(Account.username == username)).first()


def login(client, username: str, password: str = PASSWORD):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})



def new_officer(**fields) -> dict:
    return {"username": "hepco.new", "display_name": "Nguyễn Văn A", "email": "a@hepco.example.vn",
            "password": NEW_PASSWORD, **fields}


# -- the API -----------------------------------------------------------------------------------------

def test_an_agency_admin_lists_its_agencys_accounts_without_password_hashes(client, db_session):
    response = client.get(URL, headers=headers_for("hepco.admin"))
    assert response.status_code == 200 and response.headers["Cache-Control"] == "private, no-store"
    body = response.get_json()
    usernames = [a["username"] for a in body["accounts"]]
    assert usernames == ["hepco.admin", "hepco.officer"] and body["count"] == 2
    assert all(set(a) == PUBLIC_FIELDS for a in body["accounts"])
    assert {a["agency"] for a in body["accounts"]} == {"HEPCO"}
    assert "argon2" not in response.get_data(as_text=True)
    # ?agency= is for admins: an agency admin always sees its own
    assert client.get(URL, query_string={"agency": "SXD"}, headers=headers_for("hepco.admin")).get_json() == body


def test_an_agency_admin_creates_an_officer_who_can_log_in(client, db_session, redis_conn):
    response = client.post(URL, json=new_officer(username="HEPCO.New"), headers=headers_for("hepco.admin"))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == PUBLIC_FIELDS
    assert body["username"] == "hepco.new" and body["role"] == "officer" and body["agency"] == "HEPCO"
    assert body["active"] is True and body["email"] == "a@hepco.example.vn"
    created = account("hepco.new")
    assert created.password_hash.startswith("$argon2") and verify_password(created.password_hash, NEW_PASSWORD)
    assert login(client, "hepco.new", NEW_PASSWORD).status_code == 201
    listed = client.get(URL, headers=headers_for("hepco.admin")).get_json()["accounts"]
    assert "hepco.new" in [a["username"] for a in listed]


def test_a_taken_username_is_409(client, db_session):
    admin = headers_for("hepco.admin")
    assert client.post(URL, json=new_officer(), headers=admin).status_code == 201
    error(client.post(URL, json=new_officer(), headers=admin), 409, "username_taken")
    error(client.post(URL, json=new_officer(username="SXD.officer"), headers=admin), 409, "username_taken")


@pytest.mark.parametrize("fields, field", [
    ({"password": "short-pw"}, "password"),
    ({"password": "Hepco.New"}, "password"),  # the username, whatever the case
    ({"password": "  hepco.new  "}, "password"),
    ({"password": None}, "password"),
    ({"username": "a b"}, "username"),
    ({"username": "x"}, "username"),
    ({"username": "-dash"}, "username"),
    ({"username": "u" * 101}, "username"),
    ({"email": "not-an-email"}, "email"),
    ({"display_name": ""}, "display_name"),
    ({"display_name": "tab\x07bell"}, "display_name"),
    ({"role": "mayor"}, "role"),
    ({"agency_id": 3}, "agency_id"),
])
def test_bad_fields_are_422_naming_them(client, db_session, fields, field):
    body = new_officer(**fields)
    response = client.post(URL, json=body, headers=headers_for("hepco.admin"))
    assert field in error(response, 422, "validation_error")["fields"]
    assert account("hepco.new") is None


def test_missing_fields_are_422(client, db_session):
    fields = error(client.post(URL, json={}, headers=headers_for("hepco.admin")), 422, "validation_error")["fields"]
    assert {"username", "display_name", "password"} <= set(fields)
    error(client.post(URL, data="x", content_type="text/plain", headers=headers_for("hepco.admin")), 415,
          "unsupported_media_type")
    error(client.post(URL, data="{", content_type="application/json", headers=headers_for("hepco.admin")), 400,
          "malformed_body")


@pytest.mark.parametrize("fields", [{"role": "admin"}, {"role": "dispatcher"}, {"role": "agency_admin"},
                                    {"agency": "SXD"}])
def test_an_agency_admin_creates_only_officers_of_its_own_agency(client, db_session, fields):
    error(client.post(URL, json=new_officer(**fields), headers=headers_for("hepco.admin")), 403, "forbidden")
    assert account("hepco.new") is None


@pytest.mark.parametrize("username", ["sxd.officer", "phuxuan.officer", "ioc", "admin", "nobody.at.all"])
def test_another_agencys_accounts_are_not_found_for_an_agency_admin(client, db_session, username):
    admin = headers_for("hepco.admin")
    before = account(username)
    for action, body in (("disable", None), ("enable", None), ("reset-password", {"password": NEW_PASSWORD})):
        response = client.post(f"{URL}/{username}/{action}", json=body, headers=admin)
        assert error(response, 404, "account_not_found")["fields"] == {}
    if before is not None:
        after = account(username)
        assert after.active and after.password_hash == before.password_hash


def test_an_agency_admin_does_not_manage_agency_admins(client, db_session):
    error(client.post(f"{URL}/hepco.admin/disable", headers=headers_for("hepco.admin")), 403, "forbidden")


@pytest.mark.parametrize("username", ["hepco.officer", "ioc"])
def test_officers_and_dispatchers_may_not_use_these_endpoints(client, db_session, username):
    caller = headers_for(username)
    error(client.get(URL, headers=caller), 403, "forbidden")
    error(client.post(URL, json=new_officer(), headers=caller), 403, "forbidden")
    for action in ("disable", "enable", "reset-password"):
        error(client.post(f"{URL}/hepco.officer/{action}", json={"password": NEW_PASSWORD}, headers=caller), 403,
              "forbidden")
    assert account("hepco.new") is None and account("hepco.officer").active
    error(client.get(URL), 401, "unauthorized")


def test_disabling_an_officer_revokes_its_tokens_and_enabling_lets_it_log_in_again(client, db_session,
                                                                                      redis_conn):
    admin = headers_for("hepco.admin")
    token = login(client, "hepco.officer").get_json()["token"]
    feed = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/agency/events", headers=feed).status_code == 200
    response = client.post(f"{URL}/HEPCO.officer/disable", headers=admin)
    assert response.status_code == 200 and response.get_json()["active"] is False
    assert client.get("/api/v1/agency/events", headers=feed).status_code == 401
    error(login(client, "hepco.officer"), 401, "invalid_credentials")
    assert db.session.scalar(select(ApiToken.revoked_at).where(ApiToken.token_hash == auth.token_digest(token)))
    response = client.post(f"{URL}/hepco.officer/enable", headers=admin)
    assert response.status_code == 200 and response.get_json()["active"] is True
    assert login(client, "hepco.officer").status_code == 201
    assert client.get("/api/v1/agency/events", headers=feed).status_code == 401  # the old token stays revoked


def test_a_new_password_revokes_tokens_and_clears_a_lockout(client, db_session, redis_conn):
    token = login(client, "hepco.officer").get_json()["token"]
    db.session.execute(Account.__table__.update().where(Account.username == "hepco.officer").values(
        failed_logins=3, locked_until=datetime.now(timezone.utc) + timedelta(minutes=10)))
    admin = headers_for("hepco.admin")
    listed = {a["username"]: a for a in client.get(URL, headers=admin).get_json()["accounts"]}
    assert listed["hepco.officer"]["locked_until"] is not None
    url = f"{URL}/hepco.officer/reset-password"
    assert "password" in error(client.post(url, json={"password": "short"}, headers=admin), 422,
                               "validation_error")["fields"]
    assert "password" in error(client.post(url, json={"password": "HEPCO.officer"}, headers=admin), 422,
                               "validation_error")["fields"]
    assert "password" in error(client.post(url, json={}, headers=admin), 422, "validation_error")["fields"]
    response = client.post(url, json={"password": NEW_PASSWORD}, headers=admin)
    assert response.status_code == 200 and response.get_json()["locked_until"] is None
    assert "password" not in response.get_json()
    assert client.get("/api/v1/agency/events", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    error(login(client, "hepco.officer"), 401, "invalid_credentials")
    assert login(client, "hepco.officer", NEW_PASSWORD).status_code == 201


def test_an_admin_manages_every_agencys_accounts(client, db_session, redis_conn):
    admin = headers_for("admin")
    everyone = [a["username"] for a in client.get(URL, headers=admin).get_json()["accounts"]]
    assert {"hepco.admin", "hepco.officer", "sxd.officer", "phuxuan.officer"} <= set(everyone)
    assert "admin" not in everyone and "ioc" not in everyone
    sxd = client.get(URL, query_string={"agency": "SXD"}, headers=admin).get_json()
    assert [a["username"] for a in sxd["accounts"]] == ["sxd.officer"]
    error(client.get(URL, query_string={"agency": "NOPE"}, headers=admin), 422, "validation_error")
    assert "agency" in error(client.post(URL, json=new_officer(username="sxd.new"), headers=admin), 422,
                             "validation_error")["fields"]
    assert "agency" in error(client.post(URL, json=new_officer(username="sxd.new", agency="NOPE"), headers=admin),
                             422, "validation_error")["fields"]
    created = client.post(URL, json=new_officer(username="sxd.new", agency="SXD"), headers=admin)
    assert created.status_code == 201 and created.get_json()["agency"] == "SXD"
    boss = client.post(URL, json=new_officer(username="sxd.boss", agency="SXD", role="agency_admin"), headers=admin)
    assert boss.status_code == 201 and boss.get_json()["role"] == "agency_admin"
    error(client.post(URL, json=new_officer(username="x.admin", role="admin"), headers=admin), 403, "forbidden")
    assert client.post(f"{URL}/sxd.officer/disable", headers=admin).get_json()["active"] is False
    assert client.post(f"{URL}/hepco.admin/reset-password", json={"password": NEW_PASSWORD},
                       headers=admin).status_code == 200
    error(client.post(f"{URL}/ioc/disable", headers=admin), 404, "account_not_found")


def test_the_openapi_document_describes_the_officers_endpoints(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/agency/officers"])
    assert "requestBody" in paths["/api/v1/agency/officers/{username}/reset-password"]["post"]


# -- flask users ---------------------------------------------------------------------------------------

def users_cli(args: list[str], env: dict, password: str | None = None) -> subprocess.CompletedProcess:
    """`flask users ...` in a subprocess (as tests.support.flask_cli), with the password on standard input and
    no terminal to prompt on."""
    stdin = None if password is None else password + "\n"
    return subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "users", *args], cwd=ROOT,
                          env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False,
                          start_new_session=True)


@pytest.fixture
def cli_accounts(app, committed):
    """For CLI tests: accounts named cli-* are committed for real, and removed afterwards."""
    yield
    with app.app_context():
        db.session.execute(text("DELETE FROM accounts WHERE username LIKE 'cli-%'"))
        db.session.commit()
        db.session.remove()


def test_users_create_makes_an_account_that_logs_in(app, client, cli_accounts, process_env):
    created = users_cli(["create", "CLI-Officer", "--role", "officer", "--agency", "HEPCO", "--display-name",
                         "Trần Thị B", "--email", "b@hepco.example.vn", "--password-stdin"], process_env,
                        NEW_PASSWORD)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "created officer cli-officer of HEPCO"
    body = login(client, "cli-officer", NEW_PASSWORD).get_json()
    assert body["account"] == {"username": "cli-officer", "display_name": "Trần Thị B", "role": "officer",
                               "agency": "HEPCO"}
    admin = users_cli(["create", "cli-admin", "--role", "admin", "--password-stdin"], process_env, NEW_PASSWORD)
    assert admin.returncode == 0 and admin.stdout.strip() == "created admin cli-admin", admin.stderr
    with app.app_context():
        found = db.session.scalars(select(Account).where(Account.username == "cli-admin")).one()
        assert found.agency_id is None and found.display_name == "cli-admin" and found.active


def test_users_create_asks_for_the_password_twice(client, cli_accounts, process_env):
    created = users_cli(["create", "cli-prompted", "--role", "dispatcher"], process_env,
                        f"{NEW_PASSWORD}\n{NEW_PASSWORD}")
    assert created.returncode == 0, created.stderr
    assert login(client, "cli-prompted", NEW_PASSWORD).status_code == 201
    mismatch = users_cli(["create", "cli-mismatch", "--role", "dispatcher"], process_env, f"{NEW_PASSWORD}\nother")
    assert mismatch.returncode != 0
    assert login(client, "cli-mismatch", NEW_PASSWORD).status_code == 401


@pytest.mark.parametrize("args, password, message", [
    (["cli-x", "--role", "officer", "--agency", "NOPE"], NEW_PASSWORD, "No agency 'NOPE'"),
    (["cli-x", "--role", "officer"], NEW_PASSWORD, "belongs to an agency"),
    (["cli-x", "--role", "agency_admin"], NEW_PASSWORD, "belongs to an agency"),
    (["cli-x", "--role", "admin", "--agency", "HEPCO"], NEW_PASSWORD, "An admin belongs to no agency"),
    (["cli-x", "--role", "dispatcher", "--agency", "HEPCO"], NEW_PASSWORD, "dispatcher"),
    (["hepco.officer", "--role", "officer", "--agency", "HEPCO"], NEW_PASSWORD, "is taken"),
    (["cli-x", "--role", "admin"], "too-short", "At least 10 characters"),
    (["cli-xxxxxxxx", "--role", "admin"], "CLI-XXXXXXXX", "Must not be the username"),
    (["cli x", "--role", "admin"], NEW_PASSWORD, "username:"),
    (["cli-x", "--role", "admin", "--email", "nope"], NEW_PASSWORD, "email:"),
])
def test_users_create_refuses_with_a_clear_message(app, cli_accounts, process_env, args, password, message):
    refused = users_cli(["create", *args, "--password-stdin"], process_env, password)
    assert refused.returncode == 1 and message in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    with app.app_context():
        assert db.session.scalar(select(Account.id).where(Account.username.like("cli-%"))) is None


def test_users_create_refuses_an_unknown_role(cli_accounts, process_env):
    refused = flask_cli(["users", "create", "cli-x", "--role", "mayor"], process_env)
    assert refused.returncode == 2 and "mayor" in refused.stderr


def test_users_disable_revokes_tokens_and_reset_password_clears_a_lockout(app, client, cli_accounts, process_env,
                                                                           redis_conn):
    assert users_cli(["create", "cli-o", "--role", "officer", "--agency", "SXD", "--password-stdin"], process_env,
                     NEW_PASSWORD).returncode == 0
    token = login(client, "cli-o", NEW_PASSWORD).get_json()["token"]
    feed = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/agency/events", headers=feed).status_code == 200
    disabled = flask_cli(["users", "disable", "cli-o"], process_env)
    assert disabled.returncode == 0 and disabled.stdout.strip() == "disabled cli-o; 1 token(s) revoked"
    assert client.get("/api/v1/agency/events", headers=feed).status_code == 401
    assert login(client, "cli-o", NEW_PASSWORD).status_code == 401
    assert flask_cli(["users", "enable", "cli-o"], process_env).returncode == 0
    token = login(client, "cli-o", NEW_PASSWORD).get_json()["token"]
    with app.app_context():
        db.session.execute(Account.__table__.update().where(Account.username == "cli-o").values(
            failed_logins=2, locked_until=datetime.now(timezone.utc) + timedelta(minutes=10)))
        db.session.commit()
    assert login(client, "cli-o", NEW_PASSWORD).status_code == 429
    short = users_cli(["reset-password", "cli-o", "--password-stdin"], process_env, "short")
    assert short.returncode == 1 and "At least 10 characters" in short.stderr
    reset = users_cli(["reset-password", "cli-o", "--password-stdin"], process_env, "another-long-password")
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.strip() == "password of cli-o reset; 1 token(s) revoked, lockout cleared"
    assert client.get("/api/v1/agency/events", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert login(client, "cli-o", NEW_PASSWORD).status_code == 401
    assert login(client, "cli-o", "another-long-password").status_code == 201
    with app.app_context():
        found = db.session.scalars(select(Account).where(Account.username == "cli-o")).one()
        assert found.failed_logins == 0 and found.locked_until is None


@pytest.mark.parametrize("command", [["disable"], ["enable"], ["reset-password", "--password-stdin"]])
def test_users_commands_name_an_unknown_account(process_env, command):
    refused = users_cli([command[0], "cli-nobody", *command[1:]], process_env, NEW_PASSWORD)
    assert refused.returncode == 1 and "no account 'cli-nobody'" in refused.stderr

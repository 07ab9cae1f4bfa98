"""Admins run accounts and Open311 api_keys, and read the audit log (/api/v1/admin/audit, `flask audit list`):
every change with who, when, before and after, and never a password, key or secret."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from hue_reports.extensions import db
from hue_reports.models import Account, AuditEntry, Open311Key
from hue_reports.services import audit, open311
from tests.support import NOKIA, error, multipart, staff_headers, this_tests_audit

PASSWORD = "a-long-enough-password"



def entries(**where) -> list[AuditEntry]:
    stmt = select(AuditEntry).where(this_tests_audit()).order_by(AuditEntry.id)
    for name, value in where.items():
        stmt = stmt.where(getattr(AuditEntry, name) == value)
    return list(db.session.scalars(stmt))


def test_an_admin_creates_accounts_of_any_role_without_the_password_leaking(client, admin):
    for username, role, agency in (("ioc.night", "dispatcher", None), ("second.admin", "admin", None),
                                   ("sxd.boss", "agency_admin", "SXD")):
        body = {"username": username, "display_name": username.title(), "role": role, "password": PASSWORD,
                **({"agency": agency} if agency else {})}
        response = client.post("/api/v1/admin/accounts", json=body, headers=admin)
        assert response.status_code == 201, response.get_json()
        assert (response.get_json()["role"], response.get_json()["agency"]) == (role, agency)
        assert PASSWORD not in response.get_data(as_text=True) and "argon2" not in response.get_data(as_text=True)
    assert client.post("/api/v1/auth/token", json={"username": "second.admin", "password": PASSWORD}).status_code == 201
    created = entries(action="account.create")
    assert [e.object_key for e in created] == ["ioc.night", "second.admin", "sxd.boss"]
    assert created[2].after == {"username": "sxd.boss", "display_name": "Sxd.Boss", "email": None,
                                "role": "agency_admin", "agency": "SXD", "active": True}
    listed = client.get("/api/v1/admin/accounts", query_string={"role": "admin"}, headers=admin).get_json()
    assert {a["username"] for a in listed["accounts"]} == {"admin", "second.admin"}
    error(client.post("/api/v1/admin/accounts", json={"username": "x.y", "display_name": "x", "role": "officer",
                                                      "password": PASSWORD}, headers=admin), 422, "validation_error")
    error(client.get("/api/v1/admin/accounts", query_string={"role": "mayor"}, headers=admin), 422,
          "validation_error")
    error(client.get("/api/v1/admin/accounts", query_string={"agency": "NOPE"}, headers=admin), 422,
          "validation_error")
    sxd = client.get("/api/v1/admin/accounts", query_string={"agency": "SXD", "active": "true"}, headers=admin)
    assert {a["username"] for a in sxd.get_json()["accounts"]} == {"sxd.officer", "sxd.boss"}


def test_disabling_and_password_resets_are_audited_and_the_last_admin_stays(client, admin):
    error(client.post("/api/v1/admin/accounts/admin/disable", headers=admin), 409, "last_admin")
    assert db.session.scalar(select(Account.active).where(Account.username == "admin")) is True
    off = client.post("/api/v1/admin/accounts/ioc/disable", headers=admin)
    assert off.status_code == 200 and off.get_json()["active"] is False
    reset = client.post("/api/v1/admin/accounts/ioc/reset-password", json={"password": PASSWORD}, headers=admin)
    assert reset.status_code == 200
    error(client.post("/api/v1/admin/accounts/ioc/reset-password", json={"password": "short"}, headers=admin), 422,
          "validation_error")
    error(client.post("/api/v1/admin/accounts/nobody/disable", headers=admin), 404, "account_not_found")
    disable, reset_entry = entries(object_key="ioc")
    assert disable.action == "account.disable" and disable.before["active"] is True
    assert disable.after["active"] is False and disable.after["tokens_revoked"] >= 0
    assert reset_entry.action == "account.reset_password" and reset_entry.after["password_changed"] is True
    assert PASSWORD not in json.dumps([reset_entry.before, reset_entry.after])


def test_an_agency_admins_changes_to_its_officers_are_audited_too(client, db_session):
    hepco_admin = staff_headers("hepco.admin")
    created = client.post("/api/v1/agency/officers", json={"username": "hepco.new", "display_name": "Nguyễn Văn A",
                                                          "password": PASSWORD}, headers=hepco_admin)
    assert created.status_code == 201
    assert client.post("/api/v1/agency/officers/hepco.new/disable", headers=hepco_admin).status_code == 200
    assert [(e.action, e.actor, e.via) for e in entries(object_key="hepco.new")] == [
        ("account.create", "hepco.admin", "api"), ("account.disable", "hepco.admin", "api")]


def test_open311_api_keys_are_shown_once_work_and_are_revoked(client, admin):
    response = client.post("/api/v1/admin/open311-keys", json={"name": "Ứng dụng phường"}, headers=admin)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    key = body["api_key"]
    assert open311.check_api_key(key).id == body["id"]
    assert db.session.get(Open311Key, body["id"]).key_hash == open311.key_hash(key)
    listed = client.get("/api/v1/admin/open311-keys", headers=admin)
    assert key not in listed.get_data(as_text=True) and open311.key_hash(key) not in listed.get_data(as_text=True)
    assert body["id"] in [k["id"] for k in listed.get_json()["keys"]]
    form = {"service_code": "road_damage", "lat": "16.4698", "long": "107.5786", "description": "Ổ gà",
            "api_key": key, "media": [(io.BytesIO(NOKIA.read_bytes()), "a.jpg")]}
    data, boundary = multipart(form)
    accepted = client.post("/open311/v2/requests.json", data=data,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    revoked = client.post(f"/api/v1/admin/open311-keys/{body['id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]
    data, boundary = multipart({**form, "media": [(io.BytesIO(NOKIA.read_bytes()), "a.jpg")]})
    refused = client.post("/open311/v2/requests.json", data=data,
                          content_type=f"multipart/form-data; boundary={boundary}")
    assert refused.status_code == 403
    error(client.post("/api/v1/admin/open311-keys/99999999/revoke", headers=admin), 404, "key_not_found")
    error(client.post("/api/v1/admin/open311-keys/x/revoke", headers=admin), 404, "key_not_found")
    error(client.post("/api/v1/admin/open311-keys", json={"name": ""}, headers=admin), 422, "validation_error")
    made, gone = entries(object_type="open311_key", object_key=str(body["id"]))
    assert (made.action, made.after["name"], gone.action) == ("open311_key.create", "Ứng dụng phường",
                                                              "open311_key.revoke")
    assert gone.before["revoked_at"] is None and gone.after["revoked_at"]
    assert key not in json.dumps([made.after, gone.before, gone.after])


def test_the_audit_log_is_read_with_filters_and_a_cursor(client, admin):
    for name in ("HEPCO", "SXD", "CATP"):
        client.patch(f"/api/v1/admin/agencies/{name}", json={"contact_phone": "0234 000 0000"}, headers=admin)
    client.patch("/api/v1/admin/categories/noise", json={"urgent": True}, headers=admin)
    url = "/api/v1/admin/audit"
    page = client.get(url, query_string={"limit": 2, "action": "agency.update"}, headers=admin)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "private, no-store"
    first = page.get_json()
    assert [e["object_key"] for e in first["entries"]] == ["CATP", "SXD"]  # newest first
    second = client.get(url, query_string={"limit": 2, "action": "agency.update", "cursor": first["next_cursor"]},
                        headers=admin).get_json()
    assert [e["object_key"] for e in second["entries"]] == ["HEPCO"] and second["next_cursor"] is None
    entry = second["entries"][0]
    assert entry["actor"] == "admin" and entry["via"] == "api" and entry["created_at"]
    assert entry["before"]["contact_phone"] is None and entry["after"]["contact_phone"] == "0234 000 0000"
    prefix = client.get(url, query_string={"action": "agency."}, headers=admin).get_json()["entries"]
    assert {e["object_key"] for e in prefix} >= {"HEPCO", "SXD", "CATP"} and all(
        e["action"].startswith("agency.") for e in prefix)
    by_object = client.get(url, query_string={"object_type": "category", "object": "noise"}, headers=admin)
    assert [e["action"] for e in by_object.get_json()["entries"]] == ["category.update"]
    by_actor = client.get(url, query_string={"actor": "nobody"}, headers=admin).get_json()
    assert by_actor["entries"] == []
    today = datetime.now(timezone.utc).astimezone(timezone(timedelta(hours=7))).date()
    window = client.get(url, query_string={"from": today.isoformat(), "to": today.isoformat(),
                                           "object": "noise"}, headers=admin).get_json()["entries"]
    assert len(window) == 1
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert client.get(url, query_string={"from": tomorrow}, headers=admin).get_json()["entries"] == []
    for bad in ({"cursor": "abc"}, {"from": "yesterday"}, {"to": "2026-01-01T10:00"}, {"limit": "0"},
                {"limit": "201"}, {"cursor": "99999999999999999999"}):
        assert client.get(url, query_string=bad, headers=admin).status_code == 422, bad
    for username in ("ioc", "hepco.admin"):
        assert client.get(url, headers=staff_headers(username)).status_code == 403
    assert client.get(url).status_code == 401


def test_no_secret_reaches_the_audit_log(client, admin):
    """Webhook secrets, api_keys, passwords and tokens: made, rotated and used, none of them is logged."""
    secrets = [client.post("/api/v1/admin/agencies", headers=admin, json={
        "code": "LOG-TEST", "name": "Thử", "name_en": "Test", "kind": "other",
        "webhook_url": "https://log.example.vn/h"}).get_json()["webhook_secret"]]
    secrets.append(client.post("/api/v1/admin/agencies/LOG-TEST/webhook-secret", headers=admin)
                   .get_json()["webhook_secret"])
    secrets.append(client.post("/api/v1/admin/open311-keys", json={"name": "x"}, headers=admin).get_json()["api_key"])
    client.post("/api/v1/admin/accounts", json={"username": "log.test", "display_name": "x", "role": "dispatcher",
                                                "password": PASSWORD}, headers=admin)
    client.post("/api/v1/admin/accounts/log.test/reset-password", json={"password": PASSWORD + "2"}, headers=admin)
    secrets += [PASSWORD, PASSWORD + "2", admin["Authorization"].split()[1]]
    logged = db.session.execute(text("SELECT string_agg(before::text || ' ' || after::text, ' ') FROM audit_log"))
    everything = logged.scalar() or ""
    everything += json.dumps(client.get("/api/v1/admin/audit", query_string={"limit": 200},
                                        headers=admin).get_json())
    for secret in secrets:
        assert secret not in everything
    for name in audit.SECRET_KEYS:
        assert f'"{name}"' not in everything


def test_a_snapshot_naming_a_secret_is_refused(db_session):
    with pytest.raises(RuntimeError, match="webhook_secret"):
        audit.record(audit.Actor("test"), "agency.update", "agency", "X", None, {"nested": {"webhook_secret": "s"}})


def test_the_audit_log_is_append_only(db_session):
    entry = audit.record(audit.Actor("test"), "test.entry", "test", "1", None, {"a": 1})
    for statement in ("UPDATE audit_log SET action = 'changed' WHERE id = :id", "DELETE FROM audit_log WHERE id = :id"):
        with pytest.raises(IntegrityError, match="append-only"):
            with db_session.begin_nested():
                db_session.execute(text(statement), {"id": entry.id})
    assert db_session.get(AuditEntry, entry.id).action == "test.entry"


def test_commands_write_the_audit_log_as_cli(app, db_session):
    runner = app.test_cli_runner()
    made = runner.invoke(args=["open311", "keys", "create", "Ứng dụng dòng lệnh"])
    assert made.exit_code == 0, made.output
    key_id = made.output.split()[1]
    assert runner.invoke(args=["open311", "keys", "revoke", key_id]).exit_code == 0
    token = runner.invoke(args=["tokens", "create", "hepco.officer", "--name", "HEPCO system"])
    assert token.exit_code == 0
    swaps = runner.invoke(args=["calendar", "add-year", "2031", "--day-off", "2031-04-28", "Nghỉ bù", "Day off"])
    assert swaps.exit_code == 0, swaps.output
    actions = [(e.action, e.object_key) for e in entries(via="cli")]
    assert ("open311_key.create", key_id) in actions and ("open311_key.revoke", key_id) in actions
    assert ("token.create", "hepco.officer") in actions
    calendar_entry = next(e for e in entries(action="calendar.set_year"))
    assert calendar_entry.after["swaps"] == [{"day": "2031-04-28", "kind": "day_off", "name": "Nghỉ bù",
                                              "name_en": "Day off"}] and calendar_entry.before == {"swaps": []}
    token_text = token.output.strip().splitlines()[-1]
    assert token_text not in json.dumps([e.after for e in entries(via="cli")])
    keys = runner.invoke(args=["open311", "keys", "list"])
    assert f"{key_id}: Ứng dụng dòng lệnh (created " in keys.output and ", revoked " in keys.output
    users = runner.invoke(args=["users", "list", "--agency", "HEPCO"])
    assert users.output.splitlines() == ["hepco.admin: agency_admin of HEPCO, Quản trị HEPCO (HEPCO agency admin)",
                                         "hepco.officer: officer of HEPCO, Cán bộ HEPCO (HEPCO officer)"]
    listed = runner.invoke(args=["audit", "list", "--action", "open311_key.", "--limit", "5"])
    assert listed.exit_code == 0 and "open311_key.revoke open311_key:" in listed.output.splitlines()[0]
    assert "cli:" in listed.output
    bad = runner.invoke(args=["audit", "list", "--from", "nope"])
    assert bad.exit_code == 1 and "from" in bad.output
    assert len(entries(via="cli")) >= 4


def test_every_admin_route_is_for_admins_only_and_documented(app, client, db_session):
    """Each route under /api/v1/admin: 401 without a token, 403 for every role but admin, before any input
    is read; and each is in the OpenAPI document."""
    values = {"code": "HEPCO", "rule_id": "1", "key_id": "1", "username": "hepco.officer"}
    routes = [(rule.rule, method) for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/admin/")
              for method in rule.methods - {"HEAD", "OPTIONS"}]
    assert len(routes) >= 29
    callers = {"none": {}, **{name: staff_headers(name) for name in ("hepco.officer", "hepco.admin", "ioc")}}
    for path, method in routes:
        url = path
        for name, value in values.items():
            url = url.replace(f"<{name}>", value)
        for caller, headers in callers.items():
            response = client.open(url, method=method, json={}, headers=headers)
            assert response.status_code == (401 if caller == "none" else 403), (method, url, caller)
    documented = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path, method in routes:
        openapi_path = path.replace("<", "{").replace(">", "}")
        assert method.lower() in documented[openapi_path], (method, path)
    assert "requestBody" in documented["/api/v1/admin/agencies"]["post"]


ODD_BODIES = [[], "x", 7, None, {"name": None}, {"name": "\u0000"}, {"code": "x" * 5000, "name": "x" * 5000},
              {"priority": 10**30, "sla_hours": 10**30}, {"agency": {"nested": [1]}, "area": ["x"]},
              {"attributes": [{"code": "a\u0000", "datatype": "string", "description": "d\u0000"}]},
              {"webhook_url": "https://x.example.vn/\u0000"}, {"geojson": {"type": "FeatureCollection",
                                                                         "features": [None, 1, "x"]},
                                                            "valid_from": "2030-01-01"},
              {"valid_from": "99999-01-01", "geojson": {}}, {"ward": "\u0000", "category": "x" * 100}]


def test_odd_bodies_are_4xx_never_5xx_and_change_nothing(app, client, admin):
    """Every admin route that takes a body, with bodies of the wrong shape, type, size or characters."""
    values = {"code": "HEPCO", "rule_id": "1", "key_id": "1", "username": "hepco.officer"}
    routes = [(rule.rule, method) for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/admin/")
              for method in rule.methods & {"POST", "PATCH"}]
    before = db.session.scalar(text("SELECT count(*) FROM audit_log"))
    for path, method in routes:
        url = path
        for name, value in values.items():
            url = url.replace(f"<{name}>", value)
        if url.endswith(("/deactivate", "/activate", "/disable", "/enable", "/revoke", "/webhook-secret")):
            continue  # (no body: these act on the object in the path)
        for body in ODD_BODIES:
            response = client.open(url, method=method, data=json.dumps(body), content_type="application/json",
                                   headers=admin)
            assert 400 <= response.status_code < 500, (method, url, body, response.get_json())
            assert response.get_json()["error"]["code"]
    assert db.session.scalar(text("SELECT count(*) FROM audit_log")) == before

"""GET /api/v1/agency/events: an agency pulls what happened to its reports, with a bearer token."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from hue_reports.extensions import db
from hue_reports.models import Account, ApiToken
from hue_reports.services import auth, routing
from tests.support import flask_cli, new_report


def token_for(username: str, **kw) -> str:
    account = db.session.scalars(select(Account).where(Account.username == username)).one()
    token, _ = auth.issue_token(account, **kw)
    db.session.flush()
    return token


def feed(client, token: str | None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get("/api/v1/agency/events", query_string=params, headers=headers)


@pytest.fixture
def routed(db_session):
    """Two reports routed to two agencies: road damage (SXD) and uncollected waste (HEPCO)."""
    road, waste = new_report("road_damage"), new_report("uncollected_waste", lat=16.4598)
    for report in (road, waste):
        routing.route(report.id)
    return road, waste


def test_an_officer_sees_only_its_agencys_events_oldest_first(client, routed):
    road, waste = routed
    body = feed(client, token_for("hepco.officer")).get_json()
    codes = {e["report"]["code"] for e in body["events"]}
    assert codes == {waste.public_code}
    assert [e["type"] for e in body["events"]] == ["routed"]
    assert body["events"][0]["label"]["vi"] == "Đã chuyển đến đơn vị xử lý"
    assert body["has_more"] is False and body["next_since"].endswith(f"-{body['events'][-1]['id']}")


def test_the_dispatcher_sees_every_agency(client, routed):
    road, waste = routed
    codes = {e["report"]["code"] for e in feed(client, token_for("ioc")).get_json()["events"]}
    assert {road.public_code, waste.public_code} <= codes


def test_the_cursor_pages_through_without_gaps_or_repeats(client, db_session):
    for n in range(5):
        routing.route(new_report("uncollected_waste", lat=16.4598 + n * 0.01).id)
    token = token_for("hepco.officer")
    seen, since = [], 0
    while True:
        body = feed(client, token, since=since, limit=2).get_json()
        seen += [e["id"] for e in body["events"]]
        since = body["next_since"]
        if not body["has_more"]:
            break
    assert len(seen) == 5 and seen == sorted(set(seen))
    assert feed(client, token, since=since).get_json()["events"] == []


@pytest.mark.parametrize("params", [{"since": "-1"}, {"since": "abc"}, {"limit": "0"}, {"limit": "501"},
                                    {"limit": "²"}, {"limit": "9" * 5000}])
def test_bad_cursors_are_422(client, db_session, params):
    response = feed(client, token_for("hepco.officer"), **params)
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == set(params)


def test_no_expired_revoked_or_unknown_token_gets_in(client, db_session):
    assert feed(client, None).status_code == 401
    assert feed(client, None).headers["WWW-Authenticate"].startswith("Bearer")
    assert feed(client, "hue_not-a-token").status_code == 401
    expired = token_for("hepco.officer", days=1)
    db.session.execute(ApiToken.__table__.update().values(expires_at=datetime.now(timezone.utc) - timedelta(1)))
    assert feed(client, expired).status_code == 401
    revoked = token_for("hepco.officer")
    db.session.execute(ApiToken.__table__.update().values(revoked_at=datetime.now(timezone.utc)))
    assert feed(client, revoked).status_code == 401
    fine = token_for("hepco.officer")
    assert feed(client, fine).status_code == 200
    db.session.execute(Account.__table__.update().where(Account.username == "hepco.officer").values(active=False))
    assert feed(client, fine).status_code == 401


def test_tokens_are_stored_hashed(db_session):
    token = token_for("hepco.officer")
    hashes = db.session.scalars(select(ApiToken.token_hash)).all()
    assert auth.token_digest(token) in hashes and token not in hashes


def test_the_tokens_command_issues_a_working_token_and_revokes_it(app, client, committed, process_env):
    created = flask_cli(["tokens", "create", "HEPCO.officer", "--name", "HEPCO system", "--days", "2"], process_env)
    assert created.returncode == 0, created.stderr
    token_id = int(created.stdout.split()[1])
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("hue_")
    assert feed(client, token).status_code == 200
    assert flask_cli(["tokens", "revoke", str(token_id)], process_env).returncode == 0
    assert feed(client, token).status_code == 401
    refused = flask_cli(["tokens", "create", "nobody"], process_env)
    assert refused.returncode != 0 and "no active account" in refused.stderr
    with app.app_context():
        db.session.execute(ApiToken.__table__.delete())
        db.session.commit()


def test_an_officer_of_the_originals_agency_unlinks_a_duplicate_and_it_is_routed(client, db_session):
    from tests.support import CITADEL

    first = new_report("uncollected_waste", submitted_at=datetime.now(timezone.utc) - timedelta(hours=1))
    routing.route(first.id)
    second = new_report("uncollected_waste", lat=CITADEL[0] + 0.0001)
    assert routing.route(second.id).result == "duplicate"
    url = f"/api/v1/reports/{second.id}/unlink"
    assert client.post(url).status_code == 401
    other = client.post(url, headers={"Authorization": f"Bearer {token_for('sxd.officer')}"})
    assert other.status_code == 403 and other.get_json()["error"]["code"] == "forbidden"
    hepco = {"Authorization": f"Bearer {token_for('hepco.officer')}"}
    response = client.post(url, headers=hepco)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "routed" and body["duplicate_of"] is None and body["due_at"]
    again = client.post(url, headers=hepco)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "invalid_transition"
    assert client.post("/api/v1/reports/999999999/unlink", headers=hepco).status_code == 404


def test_an_event_committed_late_is_never_skipped_by_the_cursor(app, committed, client, database_url):
    """Event ids are handed out at insert and become visible at commit, out of order. A long
    transaction's event must still come after a cursor that a later, shorter transaction moved on."""
    import psycopg

    with app.app_context():
        hepco = db.session.scalar(select(Account.agency_id).where(Account.username == "hepco.officer"))
        token = token_for("hepco.officer")
        early = new_report("uncollected_waste")
        late = new_report("uncollected_waste", lat=16.4598)
        db.session.commit()
        early_id, late_id = early.id, late.id
    insert = ("INSERT INTO report_events (report_id, type, actor_kind, agency_id, public) "
              "VALUES (%s, 'comment', 'system', %s, true) RETURNING id")
    long_tx = psycopg.connect(database_url)
    first_id = long_tx.execute(insert, (early_id, hepco)).fetchone()[0]  # inserted first, committed last
    with psycopg.connect(database_url) as short_tx:
        second_id = short_tx.execute(insert, (late_id, hepco)).fetchone()[0]
    assert first_id < second_id
    seen = []
    body = feed(client, token).get_json()
    seen += [e["id"] for e in body["events"]]
    assert second_id not in seen  # held back while an older transaction is still running
    long_tx.commit()
    long_tx.close()
    body = feed(client, token, since=body["next_since"]).get_json()
    seen += [e["id"] for e in body["events"]]
    assert first_id in seen and second_id in seen
    with app.app_context():
        db.session.execute(ApiToken.__table__.delete())
        db.session.commit()


@pytest.mark.parametrize("since", ["12", "1-x", "²-1", "9" * 25 + "-1"])
def test_a_cursor_not_from_next_since_is_422(client, db_session, since):
    response = feed(client, token_for("hepco.officer"), since=since)
    assert response.status_code == 422 and "since" in response.get_json()["error"]["fields"]

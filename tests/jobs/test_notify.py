"""The reporter's push gateway (notify_url): every status change of the report, and of the report a
duplicate follows, is pushed there, signed, with the status only: never anyone's contact details."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import select

from hue_reports.extensions import db
from hue_reports.models import OutboxMessage, Report
from hue_reports.services import outbox, routing, workflow
from tests.support import CITADEL, http_receiver, post_report

REPORTER = {"reporter_name": "Lê Thị Mai", "reporter_phone": "0935111222", "reporter_email": "mai@example.vn"}


@pytest.fixture
def gateway():
    with http_receiver("/push/") as (url, received):
        yield url, received


def test_a_notify_url_outside_the_allowed_prefixes_is_refused(make_app, db_session):
    closed = make_app(NOTIFY_URL_PREFIXES=None).test_client()
    response = post_report(closed, notify_url="http://127.0.0.1:6379/")  # e.g. the server's own Redis
    assert response.status_code == 422 and "notify_url" in response.get_json()["error"]["fields"]
    for prefix in ("https://push.example.vn/", "https://push.example.vn"):  # with or without the slash
        allowed = make_app(NOTIFY_URL_PREFIXES=[prefix]).test_client()
        for bypass in ("https://push.example.vn.evil.test/x", "https://push.example.vn@evil.test/x",
                       "https://user:pw@push.example.vn/x", "https://push.example.vn:6379/x",
                       "http://push.example.vn/x", "https://push.example.vnx/x", "https://push.example.vn/\x00",
                       "https://push.example.vn\\@evil.test/", "https://push.example.vn/a/../../x",
                       "https://push.example.vn/a/%2e%2e/x", "https://push.example.vn/a%2f..%2fx"):
            response = post_report(allowed, notify_url=bypass)
            assert response.status_code == 422, (prefix, bypass)
        assert post_report(allowed, notify_url="https://push.example.vn/device/abc").status_code == 201
        assert post_report(allowed, notify_url="https://PUSH.example.vn:443/device/abc").status_code == 201


def test_status_changes_reach_the_reporter_and_the_duplicates_reporter(make_app, committed, redis_conn, gateway):
    base, received = gateway
    app = make_app(NOTIFY_URL_PREFIXES=[base])
    client = app.test_client()
    first = post_report(client, category="uncollected_waste", notify_url=base + "first", **REPORTER).get_json()
    second = post_report(client, category="uncollected_waste", notify_url=base + "second",
                         lat=str(CITADEL[0] + 0.0001), **REPORTER).get_json()
    with app.app_context():
        assert routing.route(first["id"]).result == "routed"
        assert routing.route(second["id"]).result == "duplicate"
        from hue_reports.models import Account

        officer = db.session.scalars(select(Account).where(Account.username == "hepco.officer")).one()
        report = db.session.get(Report, first["id"])
        workflow.transition(report.id, officer, "acknowledge", report.version, {})
        messages = db.session.scalars(select(OutboxMessage).where(OutboxMessage.agency_id.is_(None))
                                      .order_by(OutboxMessage.id)).all()
        assert sorted((m.target.rsplit("/", 1)[1], m.payload["status"]) for m in messages) == [
            ("first", "acknowledged"), ("first", "routed"), ("second", "acknowledged"), ("second", "duplicate")]
        for message in messages:
            assert outbox.deliver(message.id).outcome == "delivered"
    assert len(received) == 4
    tokens = {"/push/first": first["tracking_token"], "/push/second": second["tracking_token"]}
    for path, headers, body in received:
        secret = hashlib.sha256(tokens[path].encode()).hexdigest()
        assert outbox.verify_signature(secret, headers[outbox.SIGNATURE_HEADER], body)
        payload = json.loads(body)
        assert payload["type"] == "report.status"
        text = body.decode()
        for value in (*REPORTER.values(), "+84935111222", first["tracking_token"], second["tracking_token"]):
            assert value not in text
    followed = [json.loads(b) for p, _, b in received if p == "/push/second"]
    assert followed[-1]["follows"] == first["code"] and followed[-1]["status"] == "acknowledged"

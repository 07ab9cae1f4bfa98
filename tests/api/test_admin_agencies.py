"""Admins run the agencies (/api/v1/admin/agencies, `flask agencies`): create, rename, webhook and its secret,
deactivate (refused while tickets are open), with an audit entry for each change and never a secret in it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, func, select

from hue_reports.extensions import db
from hue_reports.models import Agency, AuditEntry, Category, City, RoutingRule
from hue_reports.services import agencies, audit, outbox, routing
from tests.support import (error, http_receiver, new_report, staff_headers, this_tests_audit,
                           wait_for_advisory_waiters)

URL = "/api/v1/admin/agencies"
NEW = {"code": "MOI-TRUONG-2", "name": "Công ty Môi trường số 2", "name_en": "Environment Company No. 2",
       "kind": "company", "contact_email": "lienhe@moitruong2.example.vn", "contact_phone": "0234 3822 123"}



def audit_entries(object_type: str, key: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(this_tests_audit(), AuditEntry.object_type == object_type,
                                                            AuditEntry.object_key == key).order_by(AuditEntry.id)))


def agency(code: str) -> Agency:
    db.session.expire_all()
    return db.session.scalars(select(Agency).where(Agency.code == code)).one()


@pytest.fixture
def receiver():
    """An agency's webhook endpoint on this machine: its URL, and what it received."""
    with http_receiver("/hooks/hue") as (url, received):
        yield url, received


def test_an_admin_creates_an_agency_and_gets_its_webhook_secret_once(client, admin):
    response = client.post(URL, json={**NEW, "webhook_url": "https://mt2.example.vn/hooks"}, headers=admin)
    assert response.status_code == 201, response.get_json()
    assert response.headers["Cache-Control"] == "private, no-store"
    body = response.get_json()
    secret = body["webhook_secret"]
    assert len(secret) >= 40 and body["webhook_secret_set"] is True
    assert (body["code"], body["kind"], body["active"]) == ("MOI-TRUONG-2", "company", True)
    stored = agency("MOI-TRUONG-2")
    assert stored.webhook_secret == secret and stored.name_en == "Environment Company No. 2"
    # ... and never again: not in the agency's answers, its list, or the audit log
    for path in (f"{URL}/MOI-TRUONG-2", URL, "/api/v1/admin/audit"):
        text = client.get(path, headers=admin).get_data(as_text=True)
        assert secret not in text and "webhook_secret\"" not in text.replace("webhook_secret_set", ""), path
    [entry] = audit_entries("agency", "MOI-TRUONG-2")
    assert (entry.action, entry.actor, entry.via, entry.before) == ("agency.create", "admin", "api", None)
    assert entry.after["webhook_secret_set"] is True and secret not in json.dumps(entry.after)


def test_a_rename_is_audited_with_before_and_after(client, admin):
    response = client.patch(f"{URL}/HEPCO", json={"name": "Công ty Môi trường Huế", "name_en": "Hue Environment"},
                            headers=admin)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["name_en"] == "Hue Environment" and "webhook_secret" not in response.get_json()
    [entry] = audit_entries("agency", "HEPCO")
    assert entry.action == "agency.update"
    assert entry.before["name_en"] == "Hue Urban Environment and Public Works JSC (HEPCO)"
    assert entry.after["name_en"] == "Hue Environment" and entry.after["name"] == "Công ty Môi trường Huế"
    assert agency("HEPCO").name_en == "Hue Environment"


def test_a_first_webhook_url_makes_a_secret_that_signs_messages_and_rotation_replaces_it(client, admin):
    first = client.patch(f"{URL}/SXD", json={"webhook_url": "https://sxd.example.vn/hue"}, headers=admin)
    assert first.status_code == 200
    secret = first.get_json()["webhook_secret"]
    assert agency("SXD").webhook_secret == secret
    again = client.patch(f"{URL}/SXD", json={"contact_phone": "0234 111 2222"}, headers=admin)
    assert "webhook_secret" not in again.get_json()  # shown once, not on every change
    rotated = client.post(f"{URL}/SXD/webhook-secret", headers=admin)
    assert rotated.status_code == 200
    new_secret = rotated.get_json()["webhook_secret"]
    assert new_secret != secret and agency("SXD").webhook_secret == new_secret
    # A message signed now verifies with the new secret, not the old one.
    body = b'{"type": "report.routed"}'
    header = f"t=1700000000,v1={outbox.sign(new_secret, body, 1700000000)}"
    assert outbox.verify_signature(new_secret, header, body, now=1700000000)
    assert not outbox.verify_signature(secret, header, body, now=1700000000)
    actions = [e.action for e in audit_entries("agency", "SXD")]
    assert actions == ["agency.update", "agency.update", "agency.rotate_webhook_secret"]
    everything = json.dumps([[e.before, e.after] for e in audit_entries("agency", "SXD")])
    assert secret not in everything and new_secret not in everything
    removed = client.patch(f"{URL}/SXD", json={"webhook_url": None}, headers=admin)
    assert removed.get_json()["webhook_secret_set"] is False and agency("SXD").webhook_secret is None
    error(client.post(f"{URL}/SXD/webhook-secret", headers=admin), 409, "no_webhook")


def test_deactivating_an_agency_with_open_tickets_is_refused_listing_them(client, admin):
    reports = [new_report("uncollected_waste") for _ in range(3)]  # HEPCO's work
    for report in reports:
        routing.route(report.id, detect_duplicates=False)
    codes = {r.public_code for r in reports}
    before = db.session.scalar(select(func.count()).select_from(AuditEntry))
    body = error(client.post(f"{URL}/HEPCO/deactivate", headers=admin), 409, "agency_has_open_reports")
    assert codes <= set(body["fields"]["open_reports"])
    assert all(code in body["message"] for code in codes)
    assert agency("HEPCO").active is True
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == before  # a refusal is no change


def test_an_agency_is_deactivated_once_its_tickets_are_transferred_and_its_rules_retargeted(client, admin):
    report = new_report("water_outage")  # HUEWACO's, by a city-wide rule
    routing.route(report.id, detect_duplicates=False)
    db.session.refresh(report)
    assert report.agency.code == "HUEWACO"
    error(client.post(f"{URL}/HUEWACO/deactivate", headers=admin), 409, "agency_has_open_reports")
    moved = client.post(f"/api/v1/reports/{report.id}/transitions", headers={**admin, "If-Match": str(report.version)},
                        json={"action": "transfer", "agency": "HEPCO", "reason": "Đơn vị khác phụ trách"})
    assert moved.status_code == 200, moved.get_json()
    body = error(client.post(f"{URL}/HUEWACO/deactivate", headers=admin), 409, "agency_has_rules")
    rules = set(db.session.scalars(select(RoutingRule.id).join(Agency).where(Agency.code == "HUEWACO",
                                                                             RoutingRule.active)))
    assert set(body["fields"]["routing_rules"]) == rules and rules
    for rule_id in rules:
        assert client.patch(f"/api/v1/admin/routing-rules/{rule_id}", json={"agency": "HEPCO"},
                            headers=admin).status_code == 200
    done = client.post(f"{URL}/HUEWACO/deactivate", headers=admin)
    assert done.status_code == 200 and done.get_json()["active"] is False
    assert [e.action for e in audit_entries("agency", "HUEWACO")] == ["agency.deactivate"]
    # An inactive agency takes no transfer, and comes back when activated.
    later = new_report("water_outage")
    routing.route(later.id, detect_duplicates=False)
    db.session.refresh(later)
    refused = client.post(f"/api/v1/reports/{later.id}/transitions", headers={**admin, "If-Match": str(later.version)},
                          json={"action": "transfer", "agency": "HUEWACO", "reason": "thử"})
    assert refused.status_code == 422
    assert client.post(f"{URL}/HUEWACO/activate", headers=admin).get_json()["active"] is True


def test_one_active_dispatcher_at_most(client, admin):
    second = {**NEW, "code": "IOC-2", "kind": "dispatcher"}
    error(client.post(URL, json=second, headers=admin), 409, "dispatcher_exists")
    error(client.patch(f"{URL}/HEPCO", json={"kind": "dispatcher"}, headers=admin), 409, "dispatcher_exists")
    created = client.post(URL, json={**second, "active": False}, headers=admin)
    assert created.status_code == 201
    error(client.post(f"{URL}/IOC-2/activate", headers=admin), 409, "dispatcher_exists")
    assert agency("HEPCO").kind == "company"


@pytest.mark.parametrize("fields, field", [
    ({"code": "bad code"}, "code"),
    ({"code": "dispatcher"}, "code"),
    ({"kind": "ministry"}, "kind"),
    ({"name": ""}, "name"),
    ({"webhook_url": "ftp://x.example.vn/"}, "webhook_url"),
    ({"webhook_url": "https://user:pw@x.example.vn/"}, "webhook_url"),
    ({"webhook_url": "not a url"}, "webhook_url"),
    ({"contact_email": "nope"}, "contact_email"),
    ({"contact_phone": "call me"}, "contact_phone"),
    ({"area": "99999"}, "area"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_agency_fields_are_422_naming_them_and_write_nothing(client, admin, fields, field):
    body = error(client.post(URL, json={**NEW, **fields}, headers=admin), 422, "validation_error")
    assert field in body["fields"]
    assert db.session.scalar(select(Agency.id).where(Agency.name == NEW["name"])) is None


def test_a_taken_code_is_409_and_unknown_agencies_404(client, admin):
    error(client.post(URL, json={**NEW, "code": "hepco"}, headers=admin), 409, "agency_exists")
    error(client.patch(f"{URL}/NOPE", json={"name": "x"}, headers=admin), 404, "agency_not_found")
    error(client.post(f"{URL}/NOPE/deactivate", headers=admin), 404, "agency_not_found")
    error(client.post(URL, data="{", content_type="application/json", headers=admin), 400, "malformed_body")
    error(client.post(URL, data="x", content_type="text/plain", headers=admin), 415, "unsupported_media_type")
    error(client.post(URL, json=[NEW], headers=admin), 422, "validation_error")


def test_a_ward_committee_serves_a_current_area(client, admin):
    created = client.post(URL, json={**NEW, "code": "UBND-X", "kind": "ward_committee", "area": "20056"},
                          headers=admin)
    assert created.status_code == 201 and created.get_json()["area"] == "20056"


@pytest.mark.parametrize("username, status", [("hepco.admin", 403), ("ioc", 403), ("hepco.officer", 403),
                                              (None, 401)])
def test_only_admins_run_agencies(client, db_session, username, status):
    headers = staff_headers(username) if username else {}
    for method, path, body in (("get", URL, None), ("post", URL, NEW), ("patch", f"{URL}/HEPCO", {"name": "x"}),
                               ("post", f"{URL}/HEPCO/deactivate", None), ("post", f"{URL}/HEPCO/webhook-secret",
                                                                            None)):
        response = getattr(client, method)(path, json=body, headers=headers)
        assert response.status_code == status, (method, path)
    assert agency("HEPCO").name != "x" and agency("HEPCO").active


def test_flask_agencies_commands_run_the_same_service(app, db_session):
    runner = app.test_cli_runner()
    created = runner.invoke(args=["agencies", "create", "CLI-AG", "--name", "Đơn vị thử", "--name-en", "Test unit",
                                  "--kind", "service", "--webhook-url", "https://cli.example.vn/h"])
    assert created.exit_code == 0, created.output
    secret = agency("CLI-AG").webhook_secret
    assert secret and secret in created.output and "shown once" in created.output
    renamed = runner.invoke(args=["agencies", "update", "CLI-AG", "--name-en", "Renamed unit", "--email", ""])
    assert renamed.exit_code == 0 and "Renamed unit" in renamed.output and secret not in renamed.output
    rotated = runner.invoke(args=["agencies", "rotate-secret", "CLI-AG"])
    assert rotated.exit_code == 0 and agency("CLI-AG").webhook_secret in rotated.output
    report = new_report("uncollected_waste")
    routing.route(report.id, detect_duplicates=False)
    refused = runner.invoke(args=["agencies", "deactivate", "HEPCO"])
    assert refused.exit_code == 1 and report.public_code in refused.output and "Traceback" not in refused.output
    bad = runner.invoke(args=["agencies", "create", "X1", "--name", "x", "--name-en", "x", "--kind", "service",
                              "--webhook-url", "gopher://x"])
    assert bad.exit_code == 1 and "webhook_url" in bad.output
    assert runner.invoke(args=["agencies", "deactivate", "CLI-AG"]).exit_code == 0
    listed = runner.invoke(args=["agencies", "list"])
    assert "CLI-AG: Đơn vị thử / Renamed unit (service, INACTIVE" in listed.output
    entries = audit_entries("agency", "CLI-AG")
    assert [e.action for e in entries] == ["agency.create", "agency.update", "agency.rotate_webhook_secret",
                                           "agency.deactivate"]
    assert all(e.via == "cli" and e.actor.startswith("cli:") and e.actor_account_id is None for e in entries)


def test_a_message_queued_before_a_rotation_is_signed_with_the_new_secret(client, admin, receiver):
    """The outbox signs when it sends: after a rotation, even an older message carries the new signature."""
    url, received = receiver
    first = client.patch(f"{URL}/HEPCO", json={"webhook_url": url}, headers=admin).get_json()["webhook_secret"]
    report = new_report("uncollected_waste")
    [message_id] = routing.route(report.id, detect_duplicates=False).outbox_ids
    rotated = client.post(f"{URL}/HEPCO/webhook-secret", headers=admin).get_json()["webhook_secret"]
    assert outbox.deliver(message_id, force=True).outcome == "delivered"
    [(_, headers, body)] = received
    signature = headers[outbox.SIGNATURE_HEADER]
    now = int(headers[outbox.TIMESTAMP_HEADER])
    assert outbox.verify_signature(rotated, signature, body, now=now)
    assert not outbox.verify_signature(first, signature, body, now=now)
    assert json.loads(body)["type"] == "report.routed"


def test_deactivating_an_agency_while_routing_holds_a_category_never_deadlocks(app, database_url):
    """Routing holds its category's lock, then writes rows that refer to the agency (a foreign key's check takes
    a share lock on the agency's row). Deactivation waits for every category's lock: it must not hold the
    agency's row meanwhile, or each waits for the other and PostgreSQL kills one of them. Two connections."""
    import threading

    import psycopg

    actor = audit.Actor("cli:test", None, "cli")
    with app.app_context():
        agencies.create({**NEW, "code": "LOCK-ORDER", "name": "Đơn vị thử khóa"}, actor)
        agency_id = db.session.scalar(select(Agency.id).where(Agency.code == "LOCK-ORDER"))
        category_id = db.session.scalar(select(func.min(Category.id)))
        area_id = db.session.scalar(select(City.area_id))
        db.session.remove()
    router = psycopg.connect(database_url)  # as a routing job: its category's lock first ...
    router.execute("SELECT pg_advisory_xact_lock(%s, %s)", (routing.DUPLICATE_LOCK_SPACE, category_id))
    outcome: dict = {}

    def deactivate():
        try:
            with app.app_context():
                outcome["active"] = agencies.set_active("LOCK-ORDER", False, actor).active
                db.session.remove()
        except Exception as exc:  # noqa: BLE001
            outcome["error"] = exc

    thread = threading.Thread(target=deactivate)
    thread.start()
    try:
        wait_for_advisory_waiters(database_url, 1)  # (deactivation queued behind the category's lock)
        # ... then a row referring to the agency (rolled back: the agency is left without rules to deactivate)
        try:
            router.execute("INSERT INTO routing_rules (category_id, area_id, agency_id, priority, active) "
                           "VALUES (%s, %s, %s, 32000, false)", (category_id, area_id, agency_id))
        except psycopg.Error as exc:
            outcome["router_error"] = exc
        router.rollback()
    finally:
        router.close()
        thread.join(30)
        with app.app_context():
            db.session.execute(delete(Agency).where(Agency.code == "LOCK-ORDER"))
            db.session.commit()
            db.session.remove()
    assert "router_error" not in outcome and "error" not in outcome, outcome
    assert outcome["active"] is False

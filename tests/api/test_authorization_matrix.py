"""Who may do what: every officer endpoint x every role x own/other agency x no, expired or revoked token.

No cross-agency read or write; no internal comment, reporter contact or original photo reaching a role
that should not see it. One report of HEPCO's (uncollected waste) with its reporter's contact, an internal
comment and the resident's photo is the subject of every request.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from hue_reports.extensions import db
from hue_reports.models import ApiToken, Photo, Report, ReportEvent
from hue_reports.services import routing
from tests.support import post_report, staff_headers

REPORTER = {"reporter_name": "Phạm Quốc Hùng", "reporter_phone": "0987654321", "reporter_email": "hung@example.vn"}
INTERNAL = "Ghi chú nội bộ: xe ép rác hỏng"
SECRETS = (*REPORTER.values(), "+84987654321", INTERNAL)

# Who each actor is; `own`: HEPCO's staff, `other`: another agency's, `all`: every agency's.
ACTORS = {
    "hepco.officer": "own", "hepco.admin": "own", "sxd.officer": "other", "phuxuan.officer": "other",
    "ioc": "all", "admin": "all", "none": "anon", "expired": "anon", "revoked": "anon", "garbage": "anon",
}
SEES_REPORTER = {"ioc", "admin"}
# Endpoints answering with the officer view of the report (GET, and a transition's answer).
OFFICER_VIEWS = ("view", "transition")


@pytest.fixture
def subject(client, db_session):
    answer = post_report(client, category="uncollected_waste", **REPORTER).get_json()
    routing.route(answer["id"], detect_duplicates=False)
    report = db.session.get(Report, answer["id"])
    db.session.add(ReportEvent(report_id=report.id, type="comment", actor_kind="officer", public=False,
                               agency_id=report.agency_id, note=INTERNAL, data={}))
    db.session.flush()
    photo = db.session.scalar(select(Photo.id).where(Photo.report_id == report.id))
    return report, photo


def headers_for(actor: str) -> dict:
    if actor == "none":
        return {}
    if actor == "garbage":
        return {"Authorization": "Bearer hue_not-a-real-token"}
    if actor in ("expired", "revoked"):
        headers = staff_headers("hepco.officer")
        values = {"expires_at": datetime.now(timezone.utc) - timedelta(minutes=1)} if actor == "expired" else {
            "revoked_at": datetime.now(timezone.utc)}
        db.session.execute(ApiToken.__table__.update().where(
            ApiToken.id == db.session.scalar(select(ApiToken.id).order_by(ApiToken.id.desc()).limit(1)))
            .values(**values))
        return headers
    return staff_headers(actor)


def requests(report_id: int, photo_id: int):
    """(name, method, path, json) of every officer endpoint, reading or writing the subject."""
    return [
        ("queue", "get", "/api/v1/agency/reports", None),
        ("view", "get", f"/api/v1/agency/reports/{report_id}", None),
        ("feed", "get", "/api/v1/agency/events", None),
        ("original", "get", f"/api/v1/photos/{photo_id}/original", None),
        ("comment", "post", f"/api/v1/reports/{report_id}/comments", {"text": "Đã nhận"}),
        ("transition", "post", f"/api/v1/reports/{report_id}/transitions", {"action": "acknowledge"}),
        ("unlink", "post", f"/api/v1/reports/{report_id}/unlink", None),
        ("officers", "get", "/api/v1/agency/officers", None),
    ]


@pytest.mark.parametrize("actor", list(ACTORS))
def test_the_authorization_matrix(client, subject, actor):
    report, photo_id = subject
    headers = headers_for(actor)
    scope = ACTORS[actor]
    for name, method, path, body in requests(report.id, photo_id):
        h = dict(headers)
        if name == "transition":
            h["If-Match"] = f'"{report.version}"'
        response = getattr(client, method)(path, json=body, headers=h)
        status = response.status_code
        where = f"{actor} {name}: {status}"
        text = response.get_data(as_text=True) if response.mimetype == "application/json" else ""
        response.close()
        if scope == "anon":
            assert status == 401, where
            continue
        assert status < 500, where
        if name == "officers":  # agency admins and admins manage accounts; nobody else
            assert (status == 200) == (actor in ("hepco.admin", "admin")), where
            assert "password" not in text and "argon2" not in text, where
            continue
        if name == "unlink":  # the subject is no duplicate: refused for whoever may see it, 404/403 otherwise
            assert status in ((409,) if scope in ("own", "all") else (403, 404)), where
            continue
        if name == "queue":
            assert status == 200, where
            codes = [item["code"] for item in response.get_json()["items"]]
            assert (report.public_code in codes) == (scope in ("own", "all")), where
        elif name == "feed":
            assert status == 200, where
            reports = {e["report"]["id"] for e in response.get_json()["events"]}
            assert (report.id in reports) == (scope in ("own", "all")), where
        elif scope == "other":
            assert status == 404, where  # another agency's report does not exist for them
        else:
            assert status in (200, 201), where
        for secret in SECRETS:
            if secret == INTERNAL and scope in ("own", "all") and name in OFFICER_VIEWS + ("feed",):
                continue  # internal comments are for officers
            if secret != INTERNAL and actor in SEES_REPORTER and name in OFFICER_VIEWS:
                continue  # the dispatcher and admins see who reported
            assert secret not in text, f"{where} leaks {secret!r}"
    db.session.refresh(report)
    acknowledged = report.status == "acknowledged"
    assert acknowledged == (scope in ("own", "all")), f"{actor}: status {report.status}"


def test_public_surfaces_never_show_internal_comments_or_the_reporter(client, subject):
    report, photo_id = subject
    for path in (f"/api/v1/reports/{report.id}", f"/api/v1/reports/{report.id}/events"):
        text = client.get(path).get_data(as_text=True)
        for secret in SECRETS:
            assert secret not in text, (path, secret)
    assert client.get(f"/api/v1/photos/{photo_id}/original").status_code == 401

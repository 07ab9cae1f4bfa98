"""The officers' workflow through the API: the state machine, versions, photos of the fix, comments, the
resident's feedback, and who sees the reporter."""

from __future__ import annotations

import io
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from hue_reports.extensions import db
from hue_reports.models import Account, Feedback, Photo, Report, ReportEvent
from hue_reports.services import routing, workflow
from tests.support import NOKIA, PHOTOS, multipart, new_report, post_report, staff_headers

REPORTER = {"reporter_name": "Trần Văn Bình", "reporter_phone": "0912345678", "reporter_email": "binh@example.vn"}


def routed_report(category="uncollected_waste", **kw) -> Report:  # HEPCO's work
    report = new_report(category, **kw)
    routing.route(report.id, detect_duplicates=False)
    db.session.refresh(report)
    return report


def act(client, report, headers, action, version=None, **fields):
    body = {"action": action, **fields}
    h = dict(headers)
    h["If-Match"] = version if isinstance(version, str) else f'"{report.version if version is None else version}"'
    return client.post(f"/api/v1/reports/{report.id}/transitions", json=body, headers=h)


def resolve(client, report, headers, note="Đã thu gom rác", photos=None, version=None):
    form = {"action": "resolve", "version": str(report.version if version is None else version)}
    if note is not None:
        form["note"] = note
    if photos is None:  # a photo of the fix (not the one the resident sent)
        photos = [((PHOTOS / "jpg/orientation/landscape_3.jpg").read_bytes(), "done.jpg")]
    form["photos"] = [(io.BytesIO(data), name) for data, name in photos]
    body, boundary = multipart(form)
    return client.post(f"/api/v1/reports/{report.id}/transitions", data=body, headers=headers,
                       content_type=f"multipart/form-data; boundary={boundary}")


def test_a_ticket_goes_from_routed_to_closed_with_an_event_for_every_step(client, db_session):
    report = routed_report()
    hepco = staff_headers("hepco.officer")
    for action, status in (("acknowledge", "acknowledged"), ("start", "in_progress")):
        response = act(client, report, hepco, action)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["status"] == status
        db.session.refresh(report)
        assert response.headers["ETag"] == f'"{report.version}"'
    response = resolve(client, report, hepco)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "resolved" and body["resolved_at"]
    [photo] = [p for p in body["photos"] if p["kind"] == "resolution"]
    assert photo["urls"]["original"].endswith("/original")
    events = db.session.scalars(select(ReportEvent).where(ReportEvent.report_id == report.id)
                                .order_by(ReportEvent.id)).all()
    assert [e.type for e in events] == ["submitted", "routed", "acknowledged", "started", "resolved"]
    officer_id = events[-1].actor_account_id
    assert officer_id and all(e.actor_account_id == officer_id and e.actor_kind == "officer" for e in events[2:])
    assert events[-1].note == "Đã thu gom rác"
    assert db.session.scalar(select(Photo.event_id).where(Photo.report_id == report.id,
                                                          Photo.kind == "resolution")) == events[-1].id
    db.session.refresh(report)
    assert report.version == 5 and report.acknowledged_at and report.resolved_at


def test_a_stale_version_is_412_a_missing_one_428_and_nothing_changes(client, db_session):
    report = routed_report()
    hepco = staff_headers("hepco.officer")
    stale = act(client, report, hepco, "acknowledge", version=report.version - 1)
    assert stale.status_code == 412 and stale.get_json()["error"]["code"] == "version_mismatch"
    missing = client.post(f"/api/v1/reports/{report.id}/transitions", json={"action": "start"}, headers=hepco)
    assert missing.status_code == 428
    db.session.refresh(report)
    assert report.status == "routed"
    assert act(client, report, hepco, "acknowledge", version=f"W/\"{report.version}\"").status_code == 200


@pytest.mark.parametrize("setup,action,user", [
    ([], "resolve_json", "hepco.officer"),         # resolve needs the photo path; from routed not allowed anyway
    ([], "close", "hepco.officer"),                # close only after resolve
    (["acknowledge"], "acknowledge", "hepco.officer"),
    ([], "reopen", "hepco.officer"),               # reopening is the dispatcher's
    ([], "reopen", "ioc"),                         # ... and only of a resolved or closed report
])
def test_actions_the_table_does_not_allow_are_409(client, db_session, setup, action, user):
    report = routed_report()
    hepco = staff_headers("hepco.officer")
    for step in setup:
        assert act(client, report, hepco, step).status_code == 200
        db.session.refresh(report)
    if action == "resolve_json":
        response = resolve(client, report, staff_headers(user))
    else:
        response = act(client, report, staff_headers(user), action, reason="lý do")
    assert response.status_code == 409, response.get_json()
    assert response.get_json()["error"]["code"] == "invalid_transition"


def test_two_officers_racing_on_one_ticket_never_both_win(app, committed, client):
    with app.app_context():
        report = new_report("uncollected_waste")
        db.session.commit()
        routing.route(report.id, detect_duplicates=False)
        report = db.session.get(Report, report.id)
        headers = [staff_headers("hepco.officer"), staff_headers("hepco.admin")]
        db.session.commit()
        version, report_id = report.version, report.id
    results = []
    barrier = threading.Barrier(2)

    def officer(h, action):
        c = app.test_client()
        barrier.wait()
        r = c.post(f"/api/v1/reports/{report_id}/transitions", json={"action": action, "reason": "x"},
                   headers={**h, "If-Match": f'"{version}"'})
        results.append(r.status_code)

    threads = [threading.Thread(target=officer, args=(headers[0], "acknowledge")),
               threading.Thread(target=officer, args=(headers[1], "reject"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [200, 412]
    with app.app_context():
        events = db.session.scalars(select(ReportEvent.type).where(ReportEvent.report_id == report_id)).all()
        assert len([e for e in events if e in ("acknowledged", "rejected")]) == 1
        db.session.execute(db.text("DELETE FROM api_tokens"))
        db.session.commit()


def test_resolve_needs_a_note_and_a_photo_and_a_bad_photo_writes_nothing(client, db_session, media_files):
    report = routed_report()
    hepco = staff_headers("hepco.officer")
    assert act(client, report, hepco, "start").status_code == 200
    db.session.refresh(report)
    no_note = resolve(client, report, hepco, note=None)
    assert no_note.status_code == 422 and "note" in no_note.get_json()["error"]["fields"]
    no_photo = resolve(client, report, hepco, photos=[])
    assert no_photo.status_code == 422 and "photos" in no_photo.get_json()["error"]["fields"]
    before = media_files()
    cut = NOKIA.read_bytes()[: NOKIA.stat().st_size * 3 // 4]
    broken = resolve(client, report, hepco, photos=[(cut, "x.jpg")])
    assert broken.status_code == 422 and broken.get_json()["error"]["code"] == "invalid_image"
    assert media_files() == before
    db.session.refresh(report)
    assert report.status == "in_progress"
    with_json = act(client, report, hepco, "resolve", note="xong")
    assert with_json.status_code == 422 and "photos" in with_json.get_json()["error"]["fields"]


def test_reject_and_transfer_need_a_reason_and_transfer_an_agency(client, db_session):
    report = routed_report()
    hepco = staff_headers("hepco.officer")
    for action, fields, missing in (("reject", {}, "reason"), ("transfer", {"agency": "SXD"}, "reason"),
                                    ("transfer", {"reason": "không phải việc của chúng tôi"}, "agency"),
                                    ("transfer", {"reason": "x", "agency": "NOPE"}, "agency"),
                                    ("transfer", {"reason": "x", "agency": "HEPCO"}, "agency")):
        response = act(client, report, hepco, action, **fields)
        assert response.status_code == 422, (action, fields)
        assert missing in response.get_json()["error"]["fields"]


def test_a_transfer_moves_the_ticket_to_the_other_agency_and_out_of_reach(client, db_session):
    report = routed_report()
    hepco = staff_headers("hepco.officer")
    moved = act(client, report, hepco, "transfer", agency="SXD", reason="Hư hỏng mặt đường, không phải rác")
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["status"] == "routed" and moved.get_json()["agency"]["code"] == "SXD"
    db.session.refresh(report)
    [event] = db.session.scalars(select(ReportEvent).where(ReportEvent.report_id == report.id,
                                                           ReportEvent.type == "transferred")).all()
    assert event.data["from_agency"] == "HEPCO" and event.data["to_agency"] == "SXD"
    assert event.note.startswith("Hư hỏng")
    assert client.get(f"/api/v1/agency/reports/{report.id}", headers=hepco).status_code == 404
    assert act(client, report, hepco, "acknowledge").status_code == 404
    assert act(client, report, staff_headers("sxd.officer"), "acknowledge").status_code == 200


def test_the_dispatcher_routes_a_report_routing_could_not(client, db_session):
    report = new_report("uncollected_waste")
    routing.mark_failed(report.id, "test")
    db.session.refresh(report)
    assert act(client, report, staff_headers("hepco.officer"), "transfer", agency="SXD", reason="x").status_code == 404
    response = act(client, report, staff_headers("ioc"), "transfer", agency="HEPCO", reason="Giao HEPCO")
    assert response.status_code == 200, response.get_json()
    db.session.refresh(report)
    assert report.status == "routed" and report.due_at is not None and report.routed_at is not None


def test_internal_comments_stay_with_officers(client, db_session):
    report = routed_report()
    hepco = staff_headers("hepco.officer")
    internal = client.post(f"/api/v1/reports/{report.id}/comments", json={"text": "Xe rác hỏng, chờ sửa"},
                           headers=hepco)
    public = client.post(f"/api/v1/reports/{report.id}/comments",
                         json={"text": "Sẽ thu gom trong chiều nay", "public": True}, headers=hepco)
    assert internal.status_code == public.status_code == 201
    timeline = client.get(f"/api/v1/reports/{report.id}/events").get_json()["events"]
    notes = [e.get("note") for e in timeline]
    assert "Sẽ thu gom trong chiều nay" in notes and "Xe rác hỏng, chờ sửa" not in notes
    officer_view = client.get(f"/api/v1/agency/reports/{report.id}", headers=hepco).get_json()
    assert "Xe rác hỏng, chờ sửa" in [e.get("note") for e in officer_view["events"]]
    assert client.post(f"/api/v1/reports/{report.id}/comments", json={"text": "x"},
                       headers=staff_headers("sxd.officer")).status_code == 404
    assert client.post(f"/api/v1/reports/{report.id}/comments", json={"text": ""},
                       headers=hepco).status_code == 422
    assert client.post(f"/api/v1/reports/{report.id}/comments", json={"text": "x", "public": "yes"},
                       headers=hepco).status_code == 422


def _resolved_with_reporter(client):
    """A real submission (with the reporter's contact) routed to HEPCO and resolved; (report, token)."""
    answer = post_report(client, category="uncollected_waste", **REPORTER).get_json()
    routing.route(answer["id"], detect_duplicates=False)
    report = db.session.get(Report, answer["id"])
    hepco = staff_headers("hepco.officer")
    assert act(client, report, hepco, "start").status_code == 200
    db.session.refresh(report)
    assert resolve(client, report, hepco).status_code == 200
    db.session.refresh(report)
    return report, answer["tracking_token"]


def test_only_the_dispatcher_and_admins_see_who_reported(client, db_session):
    report, _ = _resolved_with_reporter(client)
    officer = client.get(f"/api/v1/agency/reports/{report.id}", headers=staff_headers("hepco.officer"))
    assert officer.status_code == 200
    assert officer.get_json()["reporter"] is None
    for value in REPORTER.values():
        assert value not in officer.get_data(as_text=True)
    for user in ("ioc", "admin"):
        seen = client.get(f"/api/v1/agency/reports/{report.id}", headers=staff_headers(user)).get_json()
        assert seen["reporter"]["name"] == REPORTER["reporter_name"]


def test_originals_only_for_the_agency_handling_the_report(client, db_session, storage_backend):
    report, _ = _resolved_with_reporter(client)
    photo_id = db.session.scalar(select(Photo.id).where(Photo.report_id == report.id, Photo.kind == "evidence"))
    url = f"/api/v1/photos/{photo_id}/original"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=staff_headers("sxd.officer")).status_code == 404
    own = client.get(url, headers=staff_headers("hepco.officer"))
    assert own.status_code == 200 and own.data == NOKIA.read_bytes()
    assert own.headers["Cache-Control"] == "private, no-store"
    own.close()
    dispatcher = client.get(url, headers=staff_headers("ioc"))
    assert dispatcher.status_code == 200
    dispatcher.close()


@pytest.mark.parametrize("rating,status,event", [(1, "in_progress", "reopened"), (2, "in_progress", "reopened"),
                                                 (4, "closed", "closed")])
def test_the_reporters_rating_reopens_or_closes_the_report(client, db_session, rating, status, event):
    report, token = _resolved_with_reporter(client)
    agency = report.agency_id
    response = client.post(f"/api/v1/reports/{report.id}/feedback", json={"rating": rating, "comment": "Cảm ơn"},
                           headers={"X-Tracking-Token": token})
    assert response.status_code == 201, response.get_json()
    db.session.refresh(report)
    assert report.status == status and report.agency_id == agency
    types = db.session.scalars(select(ReportEvent.type).where(ReportEvent.report_id == report.id)
                               .order_by(ReportEvent.id)).all()
    assert types[-2:] == ["feedback", event]
    if status == "in_progress":
        assert report.resolved_at is None and report.due_at > datetime.now(timezone.utc)
    again = client.post(f"/api/v1/reports/{report.id}/feedback", json={"rating": 5},
                        headers={"X-Tracking-Token": token})
    assert again.status_code == 409
    assert db.session.scalar(select(db.func.count()).select_from(Feedback).where(
        Feedback.report_id == report.id)) == 1


def _deactivate_hepco(client, admin) -> None:
    """HEPCO's rules go to SXD, then HEPCO is deactivated through the admin API (no report open in its hands)."""
    from hue_reports.models import Agency, RoutingRule

    rules = db.session.scalars(select(RoutingRule.id).join(Agency).where(Agency.code == "HEPCO", RoutingRule.active))
    for rule_id in rules.all():
        patched = client.patch(f"/api/v1/admin/routing-rules/{rule_id}", json={"active": False}, headers=admin)
        assert patched.status_code == 200, patched.get_json()
    done = client.post("/api/v1/admin/agencies/HEPCO/deactivate", headers=admin)
    assert done.status_code == 200 and done.get_json()["active"] is False, done.get_json()


@pytest.mark.parametrize("how", ["rating", "reopen"])
def test_a_report_reopened_after_its_agency_was_deactivated_goes_to_the_dispatcher(client, db_session, how):
    """An inactive agency receives nothing: a resident's 1 or the dispatcher's reopening of a report it resolved
    hands the report to the dispatcher, as a transfer (custody moves; the reopening's fresh deadline stays)."""
    from hue_reports.models import Agency
    from hue_reports.services import metrics

    report, token = _resolved_with_reporter(client)
    hepco, ioc = (db.session.scalar(select(Agency.id).where(Agency.code == code)) for code in ("HEPCO", "IOC"))
    assert report.agency_id == hepco
    _deactivate_hepco(client, staff_headers("admin"))
    if how == "rating":
        response = client.post(f"/api/v1/reports/{report.id}/feedback", json={"rating": 1},
                               headers={"X-Tracking-Token": token})
        assert response.status_code == 201, response.get_json()
    else:
        response = act(client, report, staff_headers("ioc"), "reopen", reason="Chưa xử lý triệt để")
        assert response.status_code == 200, response.get_json()
    db.session.expire_all()
    report = db.session.get(Report, report.id)
    assert report.agency_id == ioc and report.status == "routed" and report.acknowledged_at is None
    assert report.resolved_at is None and report.due_at > datetime.now(timezone.utc)
    events = db.session.scalars(select(ReportEvent).where(ReportEvent.report_id == report.id)
                                .order_by(ReportEvent.id)).all()
    reopened, handed = events[-2:]
    assert (reopened.type, reopened.agency_id, reopened.to_status) == ("reopened", hepco, "in_progress")
    assert (handed.type, handed.actor_kind, handed.agency_id, handed.from_status, handed.to_status) == (
        "transferred", "system", ioc, "in_progress", "routed")
    assert handed.data == {"reason": "agency_inactive", "from_agency": "HEPCO", "from_agency_id": hepco,
                           "to_agency": "IOC"}
    assert "dispatcher" in handed.note and "ngừng hoạt động" in handed.note
    assert report.due_at.isoformat() == reopened.data["due_at"]  # the reopening's deadline, kept
    # The metrics see HEPCO's custody passed on (the reopening counted against it) and the dispatcher's begun.
    cal = metrics.calendar.city_calendar()
    dims = metrics.Dims(report.id, report.category_id, report.ward_id, report.submitted_at,
                        db.session.get(type(report.category), report.category_id).sla_hours)
    facts = metrics.replay(dims, events, cal)
    assert facts.agency_id == ioc and facts.transfers == 1 and facts.reopens == 1
    assert facts.custodies[hepco].state == "transferred" and facts.custodies[hepco].reopens == 1
    assert facts.custodies[ioc].state == "open"
    # ... and the dispatcher handles it from there (e.g. to an active agency).
    moved = act(client, report, staff_headers("ioc"), "transfer", agency="SXD", reason="Đơn vị mới phụ trách")
    assert moved.status_code == 200, moved.get_json()


def test_feedback_needs_the_token_a_resolved_report_and_a_valid_rating(client, db_session):
    report, token = _resolved_with_reporter(client)
    url = f"/api/v1/reports/{report.id}/feedback"
    assert client.post(url, json={"rating": 5}).status_code == 401
    assert client.post(url, json={"rating": 5}, headers={"X-Tracking-Token": "nope"}).status_code == 403
    for bad in ({"rating": 0}, {"rating": 6}, {"rating": "5"}, {"rating": True}, {}):
        response = client.post(url, json=bad, headers={"X-Tracking-Token": token})
        assert response.status_code == 422, bad
    assert client.post(url, data="x", headers={"X-Tracking-Token": token}).status_code == 400
    db.session.execute(Report.__table__.update().where(Report.id == report.id).values(
        resolved_at=datetime.now(timezone.utc) - timedelta(days=8)))
    late = client.post(url, json={"rating": 1}, headers={"X-Tracking-Token": token})
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "feedback_closed"


def test_resolved_reports_nobody_rated_close_after_the_feedback_days(client, db_session, app):
    report, _ = _resolved_with_reporter(client)
    fresh, _ = _resolved_with_reporter(client)
    db.session.execute(Report.__table__.update().where(Report.id == report.id).values(
        resolved_at=datetime.now(timezone.utc) - timedelta(days=app.config["FEEDBACK_DAYS"], hours=1)))
    assert workflow.close_unrated() == 1
    assert workflow.close_unrated() == 0
    db.session.refresh(report)
    db.session.refresh(fresh)
    assert report.status == "closed" and fresh.status == "resolved"
    [event] = db.session.scalars(select(ReportEvent).where(ReportEvent.report_id == report.id,
                                                           ReportEvent.type == "closed")).all()
    assert event.data == {"reason": "no_feedback"} and event.actor_kind == "system"


def test_the_table_is_the_only_source_of_allowed_actions(db_session):
    """Every rule's statuses are real, and the officer view offers exactly what the table allows."""
    from hue_reports.models.report import ALL_STATUSES as STATUSES

    for rule in workflow.RULES:
        assert rule.from_status in STATUSES and rule.to_status in STATUSES
    report = routed_report()
    from hue_reports.models import Account

    officer = db.session.scalars(select(Account).where(Account.username == "hepco.officer")).one()
    assert workflow.allowed_actions(report, officer) == ["acknowledge", "start", "reject", "transfer"]
    other = db.session.scalars(select(Account).where(Account.username == "sxd.officer")).one()
    assert workflow.allowed_actions(report, other) == []


def test_the_residents_own_photo_is_not_a_photo_of_the_fix(client, db_session):
    answer = post_report(client, category="uncollected_waste").get_json()  # the Nokia photo
    routing.route(answer["id"], detect_duplicates=False)
    report = db.session.get(Report, answer["id"])
    hepco = staff_headers("hepco.officer")
    assert act(client, report, hepco, "start").status_code == 200
    db.session.refresh(report)
    response = resolve(client, report, hepco, photos=[(NOKIA.read_bytes(), "same.jpg")])
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "photo_already_attached"
    db.session.refresh(report)
    assert report.status == "in_progress"


def test_a_transfer_takes_the_duplicates_along_and_tells_both_agencies(client, db_session):
    """The old agency loses the report and its duplicates, and its feed says where they went; the new
    agency gets them unacknowledged."""
    from tests.support import CITADEL

    original = new_report("uncollected_waste", submitted_at=datetime.now(timezone.utc) - timedelta(hours=1))
    routing.route(original.id)
    duplicate = new_report("uncollected_waste", lat=CITADEL[0] + 0.0001)
    assert routing.route(duplicate.id).result == "duplicate"
    db.session.refresh(original)
    hepco = staff_headers("hepco.officer")
    assert act(client, original, hepco, "acknowledge").status_code == 200
    db.session.refresh(original)
    assert act(client, original, hepco, "transfer", agency="SXD", reason="Không phải rác").status_code == 200
    db.session.refresh(original)
    db.session.refresh(duplicate)
    assert original.acknowledged_at is None
    assert duplicate.agency_id == original.agency_id != db.session.scalar(
        select(Account.agency_id).where(Account.username == "hepco.officer"))
    assert client.get(f"/api/v1/agency/reports/{duplicate.id}", headers=hepco).status_code == 404
    feed = client.get("/api/v1/agency/events", headers=hepco).get_json()["events"]
    assert [e["type"] for e in feed if e["report"]["id"] == original.id][-1] == "transferred"


def test_a_dispatcher_closes_a_fix_early_an_agency_cannot(client, db_session):
    report, _ = _resolved_with_reporter(client)
    refused = act(client, report, staff_headers("hepco.officer"), "close")
    assert refused.status_code == 409
    assert act(client, report, staff_headers("ioc"), "close").status_code == 200


def test_a_fix_reopened_by_its_rating_and_resolved_again_still_closes_unrated(client, db_session, app):
    report, token = _resolved_with_reporter(client)
    assert client.post(f"/api/v1/reports/{report.id}/feedback", json={"rating": 1},
                       headers={"X-Tracking-Token": token}).status_code == 201
    db.session.refresh(report)
    assert resolve(client, report, staff_headers("hepco.officer"),
                   photos=[((PHOTOS / "jpg/orientation/landscape_5.jpg").read_bytes(), "again.jpg")]
                   ).status_code == 200
    days = app.config["FEEDBACK_DAYS"]
    db.session.execute(Report.__table__.update().where(Report.id == report.id).values(
        resolved_at=datetime.now(timezone.utc) - timedelta(days=days, hours=1)))
    db.session.execute(Feedback.__table__.update().where(Feedback.report_id == report.id).values(
        created_at=datetime.now(timezone.utc) - timedelta(days=days + 2)))  # (rated the first fix)
    assert workflow.close_unrated() == 1
    db.session.refresh(report)
    assert report.status == "closed"


def test_bad_bodies_are_4xx_never_500(client, db_session):
    report = routed_report()
    hepco = staff_headers("hepco.officer")
    url = f"/api/v1/reports/{report.id}/transitions"
    headers = {**hepco, "If-Match": f'"{report.version}"', "Content-Type": "application/json"}
    for body, status in (("[" * 30_000, 400), ("{", 400), ("[1, 2]", 422), ('{"action": "transfer", '
                         '"agency": "S\\u0000XD", "reason": "x"}', 422), ("x" * 70_000, 413)):
        response = client.post(url, data=body, headers=headers)
        assert response.status_code == status, (body[:30], response.get_json())
    db.session.refresh(report)
    assert report.status == "routed"


def test_overdue_is_flagged_once_per_deadline(db_session):
    from hue_reports.services import outbox

    report = routed_report()
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    db.session.execute(Report.__table__.update().where(Report.id == report.id).values(due_at=past))
    assert outbox.flag_overdue()[0] == 1
    assert outbox.flag_overdue()[0] == 0
    # Reopened with a fresh deadline, which passes too: flagged again, once.
    db.session.execute(Report.__table__.update().where(Report.id == report.id).values(
        due_at=past + timedelta(minutes=30)))
    assert outbox.flag_overdue()[0] == 1
    assert outbox.flag_overdue()[0] == 0
    assert len(db.session.scalars(select(ReportEvent).where(ReportEvent.report_id == report.id,
                                                            ReportEvent.type == "overdue")).all()) == 2


def test_with_no_active_dispatcher_such_a_report_is_left_routing_failed_for_the_admins(client, db_session):
    from hue_reports.models import Agency

    report, token = _resolved_with_reporter(client)
    _deactivate_hepco(client, staff_headers("admin"))
    db.session.execute(Agency.__table__.update().where(Agency.code == "IOC").values(active=False))
    response = client.post(f"/api/v1/reports/{report.id}/feedback", json={"rating": 2},
                           headers={"X-Tracking-Token": token})
    assert response.status_code == 201, response.get_json()
    db.session.expire_all()
    report = db.session.get(Report, report.id)
    assert report.status == "routing_failed"
    last = db.session.scalars(select(ReportEvent).where(ReportEvent.report_id == report.id)
                              .order_by(ReportEvent.id.desc()).limit(1)).one()
    assert (last.type, last.actor_kind, last.data["reason"]) == ("routing_failed", "system", "agency_inactive")
    moved = act(client, report, staff_headers("admin"), "transfer", agency="SXD", reason="Đơn vị mới phụ trách")
    assert moved.status_code == 200 and moved.get_json()["status"] == "routed", moved.get_json()

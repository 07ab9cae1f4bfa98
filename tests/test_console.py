"""The officer console (/console) and the residents' pages (/report, /track) through the test client: log-in
(failures and lockout through the API's own log-in service), sessions and CSRF, who may open which ticket,
the workflow's actions with the version the page showed, the resident's report through intake with an
Idempotency-Key, and the tracking page with the rating. The same pages in Chromium: test_console_browser.py.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from hue_reports.extensions import db
from hue_reports.models import Account, ApiToken, Feedback, Photo, Report, ReportEvent
from hue_reports.services import accounts, routing, workflow
from tests.support import NOKIA, PHOTOS, gunicorn_settings, multipart, new_report

PASSWORD = "hue-demo-2026"  # the demo accounts' (hue_reports/data/hue/demo_accounts.yaml)
FIX_PHOTO = PHOTOS / "jpg/orientation/landscape_3.jpg"
REPORTER = {"reporter_name": "Lê Thị Mai", "reporter_phone": "0935111222", "reporter_email": "mai@example.vn"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(response) -> str:
    match = CSRF.search(response.get_data(as_text=True))
    assert match, "the page has a form with its CSRF token"
    return match[1]


def html(response) -> str:
    assert response.mimetype == "text/html", (response.status_code, response.get_data(as_text=True)[:300])
    return response.get_data(as_text=True)


def routed_report(category="uncollected_waste", **kw) -> Report:  # HEPCO's work
    report = new_report(category, **kw)
    routing.route(report.id, detect_duplicates=False)
    db.session.refresh(report)
    return report


def log_in(app, username: str, password: str = PASSWORD):
    """A browser-like test client logged in to the console (its cookies kept)."""
    client = app.test_client()
    token = csrf(client.get("/console/login"))
    response = client.post("/console/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 303, html(response)
    return client


def page_token(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, html(response)
    return csrf(response)


def act(client, report, action: str, version=None, **fields):
    token = page_token(client, f"/console/reports/{report.public_code}")
    form = {"csrf_token": token, "action": action, "version": str(report.version if version is None else version),
            **fields}
    return client.post(f"/console/reports/{report.public_code}/transition", data=form)


@pytest.fixture
def fresh_redis(redis_conn):
    """Log-in counts failures per address and unknown name in Redis: none left from other tests."""
    return redis_conn


# --- log-in -------------------------------------------------------------------------------------------------

def test_the_console_asks_for_a_log_in_and_keeps_the_session_in_a_safe_cookie(app, db_session, fresh_redis):
    client = app.test_client()
    response = client.get("/console/?status=routed")
    assert response.status_code == 302 and "/console/login?next=" in response.headers["Location"]
    login_page = client.get(response.headers["Location"])
    assert login_page.status_code == 200 and 'name="password"' in html(login_page)
    assert "script-src 'self'" in login_page.headers["Content-Security-Policy"]
    assert login_page.headers["Cache-Control"] == "private, no-store"
    token = csrf(login_page)
    answer = client.post("/console/login", data={"username": "hepco.officer", "password": PASSWORD,
                                                 "csrf_token": token, "next": "/console/?status=routed"})
    assert answer.status_code == 303 and answer.headers["Location"] == "/console/?status=routed"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("hue_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # (plain http in tests; production sets it, below)
    queue = client.get("/console/")
    assert queue.status_code == 200 and "Cán bộ HEPCO" in html(queue)
    # The session holds a token of the API's own kind: it shows as the account's log-in token.
    account = db.session.scalars(select(Account).where(Account.username == "hepco.officer")).one()
    assert db.session.scalar(select(ApiToken.name).where(ApiToken.account_id == account.id)
                             .order_by(ApiToken.id.desc()).limit(1)) == "log-in"
    assert account.last_login_at is not None


def test_in_production_the_session_cookie_is_secure(make_app):
    app = make_app(HUE_ENV="production", SECRET_KEY="s" * 40)
    assert app.config["SESSION_COOKIE_SECURE"] is True and app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_a_log_in_never_leads_to_another_site(app, db_session, fresh_redis):
    for target in ("https://evil.example/console", "//evil.example/console", "/\\evil.example", "/api/v1/x",
                   "/console/\r\nX-Evil: 1", "/console/\nx"):
        client = app.test_client()
        token = csrf(client.get("/console/login"))
        answer = client.post("/console/login", data={"username": "hepco.officer", "password": PASSWORD,
                                                     "csrf_token": token, "next": target})
        assert answer.status_code == 303 and answer.headers["Location"] == "/console/", target


def test_a_wrong_password_is_a_401_page_and_five_lock_the_account(app, db_session, fresh_redis):
    """The console's log-in is the API's: the same answer for an unknown name, the same lockout."""
    client = app.test_client()
    token = csrf(client.get("/console/login"))
    unknown = client.post("/console/login", data={"username": "nobody.here", "password": "x" * 12,
                                                  "csrf_token": token})
    assert unknown.status_code == 401 and "Tên đăng nhập hoặc mật khẩu không đúng" in html(unknown)
    empty = client.post("/console/login", data={"username": "", "password": "", "csrf_token": token})
    assert empty.status_code == 422 and "Nhập tên đăng nhập và mật khẩu" in html(empty)
    limit = app.config["LOGIN_MAX_FAILURES"]
    for _ in range(limit):
        wrong = client.post("/console/login", data={"username": "sxd.officer", "password": "wrong-password",
                                                    "csrf_token": token})
        assert wrong.status_code == 401 and 'value="sxd.officer"' in html(wrong)
    locked = client.post("/console/login?lang=en", data={"username": "sxd.officer", "password": PASSWORD,
                                                         "csrf_token": token})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "locked" in html(locked) and "hue_session" not in locked.headers.get("Set-Cookie", "")
    account = db.session.scalars(select(Account).where(Account.username == "sxd.officer")).one()
    db.session.refresh(account)
    assert account.locked_until is not None and account.locked_until > datetime.now(timezone.utc)
    assert client.get("/console/").status_code == 302  # still not logged in


def test_log_out_revokes_the_sessions_token(app, db_session, fresh_redis):
    client = log_in(app, "hepco.officer")
    stolen = client.get_cookie("hue_session").value
    token = page_token(client, "/console/")
    out = client.post("/console/logout", data={"csrf_token": token})
    assert out.status_code == 303 and out.headers["Location"] == "/console/login"
    assert client.get("/console/").status_code == 302
    replay = app.test_client()
    replay.set_cookie("hue_session", stolen)  # the cookie as it was before logging out
    assert replay.get("/console/").status_code == 302


def test_logging_in_over_a_live_session_revokes_its_token(app, db_session, fresh_redis):
    client = log_in(app, "hepco.officer")
    first = client.get_cookie("hue_session").value
    token = page_token(client, "/console/")
    again = client.post("/console/login", data={"username": "hepco.admin", "password": PASSWORD,
                                                "csrf_token": token})
    assert again.status_code == 303
    replay = app.test_client()
    replay.set_cookie("hue_session", first)  # the first session's cookie, kept by someone else
    assert replay.get("/console/").status_code == 302
    assert client.get("/console/").status_code == 200


def test_disabling_an_account_ends_its_console_session(app, db_session, fresh_redis):
    from hue_reports.services import audit

    client = log_in(app, "phuxuan.officer")
    assert client.get("/console/").status_code == 200
    accounts.set_active(accounts.find("phuxuan.officer"), False, actor=audit.Actor.cli())
    db.session.commit()
    response = client.get("/console/")
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]


# --- CSRF ---------------------------------------------------------------------------------------------------

def test_every_form_refuses_a_missing_or_wrong_csrf_token(app, db_session, fresh_redis):
    report = routed_report()
    client = log_in(app, "hepco.officer")
    path = f"/console/reports/{report.public_code}"
    forms = [(f"{path}/transition", {"action": "acknowledge", "version": str(report.version)}),
             (f"{path}/comment", {"text": "ghi chú"}),
             ("/console/logout", {})]
    for url, data in forms:
        for token in (None, "", "not-the-token"):
            sent = dict(data) if token is None else {**data, "csrf_token": token}
            response = client.post(url, data=sent)
            assert response.status_code == 400, (url, token)
            assert "Biểu mẫu đã hết hạn" in html(response)
    db.session.refresh(report)
    assert report.status == "routed" and client.get("/console/").status_code == 200  # nothing happened
    # Log-in, the residents' form and the rating form too.
    anonymous = app.test_client()
    assert anonymous.post("/console/login", data={"username": "hepco.officer", "password": PASSWORD}).status_code == 400
    refused = anonymous.post("/report", data={"category": "road_damage"})
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "csrf_failed"
    assert anonymous.post(f"/track/{report.public_code}/x/feedback", data={"rating": "5"}).status_code == 400
    # A token from another session is no token.
    other = app.test_client()
    foreign = csrf(other.get("/console/login"))
    assert client.post(f"{path}/comment", data={"text": "x", "csrf_token": foreign}).status_code == 400


# --- the queue ----------------------------------------------------------------------------------------------

def test_the_queue_is_the_agencys_by_deadline_with_overdue_marked_and_counts(app, db_session, fresh_redis):
    now = datetime.now(timezone.utc)
    late = routed_report(lat=16.4698, lon=107.5786)
    soon = routed_report(lat=16.4660, lon=107.5850)
    other_agency = routed_report("road_damage", lat=16.4610, lon=107.5900)  # the construction department's
    late.due_at, soon.due_at = now - timedelta(hours=3), now + timedelta(hours=5)
    db.session.flush()
    client = log_in(app, "hepco.officer")
    page = html(client.get("/console/"))
    codes = re.findall(r'class="queue-item[^"]*" data-code="([^"]+)"', page)
    assert codes.index(late.public_code) < codes.index(soon.public_code)
    assert other_agency.public_code not in codes
    assert re.search(rf'class="queue-item is-overdue" data-code="{late.public_code}"', page)
    assert re.search(rf'class="queue-item" data-code="{soon.public_code}" data-status="routed" data-overdue="false"',
                     page)
    assert re.search(r'data-status="routed" data-count="\d+"', page)
    overdue = html(client.get("/console/?overdue=true"))
    assert late.public_code in overdue and soon.public_code not in overdue
    searched = html(client.get(f"/console/?q={soon.public_code.lower()}"))
    assert re.findall(r'class="queue-item[^"]*" data-code="([^"]+)"', searched) == [soon.public_code]
    bad = client.get("/console/?status=nonsense&limit=0")
    assert bad.status_code == 422 and "queue-errors" in html(bad) and "status" in html(bad)
    foreign = client.get("/console/?agency=SXD")  # an officer may not look into another agency's queue
    assert foreign.status_code == 403 and "queue-errors" in html(foreign)
    assert 'id="filter-agency"' not in page


def test_the_dispatcher_sees_every_agency_and_the_unrouted_ones(app, db_session, fresh_redis):
    unrouted = new_report("road_damage", lat=16.4725, lon=107.5715)  # still `submitted`
    hepco = routed_report(lat=16.4630, lon=107.5780)
    client = log_in(app, "ioc")
    page = html(client.get("/console/"))
    assert unrouted.public_code in page and hepco.public_code in page and 'id="filter-agency"' in page
    only_unrouted = html(client.get("/console/?status=submitted,routing_failed"))
    assert unrouted.public_code in only_unrouted and hepco.public_code not in only_unrouted
    by_agency = html(client.get("/console/?agency=HEPCO"))
    assert hepco.public_code in by_agency and unrouted.public_code not in by_agency


# --- a ticket -----------------------------------------------------------------------------------------------

def test_another_agencys_ticket_is_a_404_page_for_an_officer(app, db_session, fresh_redis):
    report = routed_report()
    photo = Photo(report_id=report.id, kind="evidence", storage_key="originals/x", sha256="a" * 64, size_bytes=1,
                  width=1, height=1, content_type="image/jpeg")
    db.session.add(photo)
    db.session.flush()
    client = log_in(app, "sxd.officer")
    for response in (client.get(f"/console/reports/{report.public_code}"),
                     client.get(f"/console/reports/{report.id}"),
                     client.get(f"/console/photos/{photo.id}/original"),
                     client.get("/console/reports/HUE-1999-000000")):
        assert response.status_code == 404 and "Không tìm thấy phản ánh này" in html(response)
    huge = client.get(f"/console/photos/{2**70}/original")  # (beyond the database's integers)
    assert huge.status_code == 404 and huge.mimetype == "text/html"
    acted = act_without_page(client, report, "acknowledge")
    assert acted.status_code == 404
    db.session.refresh(report)
    assert report.status == "routed"


def act_without_page(client, report, action):
    token = page_token(client, "/console/")
    return client.post(f"/console/reports/{report.public_code}/transition",
                       data={"csrf_token": token, "action": action, "version": str(report.version)})


def test_the_ticket_page_offers_exactly_the_allowed_actions_and_hides_the_reporter_from_officers(
        app, client, db_session, fresh_redis):
    from tests.support import post_report

    answer = post_report(client, category="uncollected_waste", lat="16.4690", lon="107.5800", **REPORTER).get_json()
    routing.route(answer["id"], detect_duplicates=False)
    report = db.session.get(Report, answer["id"])
    db.session.add(ReportEvent(report_id=report.id, type="comment", actor_kind="officer", public=False,
                               note="Ghi chú nội bộ của đội", data={}))
    db.session.flush()
    officer = log_in(app, "hepco.officer")
    page = html(officer.get(f"/console/reports/{report.public_code}"))
    forms = re.findall(r'id="action-([a-z]+)"', page)
    account = db.session.scalars(select(Account).where(Account.username == "hepco.officer")).one()
    assert forms == workflow.allowed_actions(report, account) == ["acknowledge", "start", "reject", "transfer"]
    assert f'name="version" value="{report.version}"' in page
    assert "Ghi chú nội bộ của đội" in page and "nội bộ" in page  # internal comments, marked
    assert "Lê Thị Mai" not in page and "0935111222" not in page  # as in Hue-S: not the agency's business
    assert f"/console/photos/{report.photos[0].id}/original" in page
    assert 'id="mini-map"' in page
    dispatcher = html(log_in(app, "ioc").get(f"/console/reports/{report.public_code}"))
    assert "Lê Thị Mai" in dispatcher and "+84935111222" in dispatcher
    original = officer.get(f"/console/photos/{report.photos[0].id}/original")
    try:
        assert original.status_code == 200 and original.headers["Cache-Control"] == "private, no-store"
        assert original.data == NOKIA.read_bytes()
    finally:
        original.close()


def test_acknowledge_start_and_resolve_with_a_photo_go_through_the_workflow(app, db_session, fresh_redis):
    report = routed_report()
    client = log_in(app, "hepco.officer")
    for action, status in (("acknowledge", "acknowledged"), ("start", "in_progress")):
        response = act(client, report, action)
        assert response.status_code == 303 and response.headers["Location"].endswith(report.public_code)
        db.session.refresh(report)
        assert report.status == status
    assert "Đã chuyển sang đang xử lý" in html(client.get(response.headers["Location"]))
    token = page_token(client, f"/console/reports/{report.public_code}")
    body, boundary = multipart({"csrf_token": token, "action": "resolve", "version": str(report.version),
                                "note": "Đã thu gom sạch", "photos": [(io.BytesIO(FIX_PHOTO.read_bytes()), "fix.jpg")]})
    response = client.post(f"/console/reports/{report.public_code}/transition", data=body,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 303, html(response)
    db.session.refresh(report)
    assert report.status == "resolved"
    events = db.session.scalars(select(ReportEvent).where(ReportEvent.report_id == report.id)
                                .order_by(ReportEvent.id)).all()
    assert [e.type for e in events][-3:] == ["acknowledged", "started", "resolved"]
    account = db.session.scalars(select(Account).where(Account.username == "hepco.officer")).one()
    assert {e.actor_account_id for e in events[-3:]} == {account.id} and events[-1].note == "Đã thu gom sạch"
    [fix] = [p for p in report.photos if p.kind == "resolution"]
    assert fix.event_id == events[-1].id
    page = html(client.get(f"/console/reports/{report.public_code}"))
    assert 'id="no-actions"' in page  # resolved: the resident's rating (or the dispatcher) closes it


def test_a_stale_page_gets_the_conflict_message_and_the_ticket_as_it_is_now(app, db_session, fresh_redis):
    report = routed_report()
    seen = report.version
    first, second = log_in(app, "hepco.officer"), log_in(app, "hepco.admin")
    stale_token = page_token(second, f"/console/reports/{report.public_code}")
    assert act(first, report, "acknowledge").status_code == 303
    response = second.post(f"/console/reports/{report.public_code}/transition",
                           data={"csrf_token": stale_token, "action": "reject", "version": str(seen),
                                 "reason": "Không thuộc thẩm quyền"})
    assert response.status_code == 412
    page = html(response)
    db.session.refresh(report)
    assert report.status == "acknowledged" and report.version == seen + 1  # nothing overwritten
    assert "vừa được người khác thay đổi" in page and 'id="ticket-error"' in page
    assert f'data-version="{report.version}"' in page and f'name="version" value="{report.version}"' in page
    assert "Không thuộc thẩm quyền" in page  # what they typed is still in the form, not sent
    assert f'data-canonical="/console/reports/{report.public_code}"' in page


def test_refused_actions_are_clear_pages_and_change_nothing(app, db_session, fresh_redis):
    report = routed_report()
    client = log_in(app, "hepco.officer")
    no_reason = act(client, report, "reject", reason="  ")
    assert no_reason.status_code == 422 and "Cần lý do" in html(no_reason)
    not_allowed = act(client, report, "close")
    assert not_allowed.status_code == 409 and "Không thể thực hiện thao tác này" in html(not_allowed)
    no_version = act(client, report, "acknowledge", version="")
    assert no_version.status_code == 428
    bad_version = act(client, report, "acknowledge", version="abc")
    assert bad_version.status_code == 422
    unknown = act(client, report, "explode")
    assert unknown.status_code == 422
    no_photo = act(client, report, "start")
    assert no_photo.status_code == 303
    db.session.refresh(report)
    resolve = act(client, report, "resolve", note="Đã xong")
    assert resolve.status_code == 422 and "Cần ít nhất một ảnh kết quả xử lý" in html(resolve)
    token = page_token(client, f"/console/reports/{report.public_code}")
    body, boundary = multipart({"csrf_token": token, "action": "resolve", "version": str(report.version),
                                "note": "Đã xong", "photos": [(io.BytesIO(b"not an image at all"), "x.jpg")]})
    bad_photo = client.post(f"/console/reports/{report.public_code}/transition", data=body,
                            content_type=f"multipart/form-data; boundary={boundary}")
    assert bad_photo.status_code in (415, 422) and "Đã xong" in html(bad_photo)
    db.session.refresh(report)
    assert report.status == "in_progress"


def test_transfer_takes_an_agency_and_a_reason_and_the_ticket_leaves_the_queue(app, db_session, fresh_redis):
    report = routed_report()
    client = log_in(app, "hepco.officer")
    page = html(client.get(f"/console/reports/{report.public_code}"))
    assert '<option value="SXD">' in page and '<option value="HEPCO">' not in page
    missing = act(client, report, "transfer", reason="Không đúng chức năng")
    assert missing.status_code == 422
    moved = act(client, report, "transfer", agency="SXD", reason="Thuộc Sở Xây dựng")
    assert moved.status_code == 303 and moved.headers["Location"] == "/console/"
    db.session.refresh(report)
    assert report.agency.code == "SXD" and report.status == "routed"
    assert client.get(f"/console/reports/{report.public_code}").status_code == 404
    assert report.public_code in html(log_in(app, "sxd.officer").get("/console/"))


def test_comments_are_internal_unless_made_public(app, db_session, fresh_redis):
    report = routed_report()
    client = log_in(app, "hepco.officer")
    for text, public in (("Chỉ nội bộ đội xe", None), ("Sẽ thu gom trong sáng mai", "on")):
        token = page_token(client, f"/console/reports/{report.public_code}")
        data = {"csrf_token": token, "text": text, **({"public": public} if public else {})}
        assert client.post(f"/console/reports/{report.public_code}/comment", data=data).status_code == 303
    empty = client.post(f"/console/reports/{report.public_code}/comment",
                        data={"csrf_token": page_token(client, "/console/"), "text": ""})
    assert empty.status_code == 422
    public_page = app.test_client().get(f"/reports/{report.public_code}").get_data(as_text=True)
    assert "Sẽ thu gom trong sáng mai" in public_page and "Chỉ nội bộ đội xe" not in public_page
    assert report.version == db.session.get(Report, report.id).version  # comments change no version


def test_console_errors_are_html_pages(app, db_session, fresh_redis):
    client = log_in(app, "hepco.officer")
    wrong_method = client.get("/console/logout")
    assert wrong_method.status_code == 405 and wrong_method.mimetype == "text/html"
    unknown = client.get("/console/no-such-page?lang=en")
    assert unknown.status_code == 404 and "Not found" in html(unknown) and "Back to the queue" in html(unknown)
    assert app.test_client().get("/api/v1/no-such-thing").mimetype == "application/json"  # the API's stay JSON



def test_a_form_over_the_size_limit_is_a_413_page(make_app):
    small = make_app(MAX_REQUEST_MB=1).test_client()
    for path in ("/console/logout", "/console/login"):
        too_big = small.post(path, data={"text": "x" * (2 * 1024 * 1024)})
        assert too_big.status_code == 413 and too_big.mimetype == "text/html", path


def db_category_name(code: str, lang: str = "vi") -> str:
    from hue_reports.models import Category

    category = db.session.scalars(select(Category).where(Category.code == code)).one()
    return category.name if lang == "vi" else category.name_en


# --- the residents' pages -----------------------------------------------------------------------------------

def submit(client, token: str, key: str | None = "web-page-key-0123456789", **fields):
    form = {"csrf_token": token, "category": "road_damage", "description": "Ổ gà lớn trước số 12",
            "lat": "16.4698", "lon": "107.5786", **fields,
            "photos": [(io.BytesIO((PHOTOS / "jpg/orientation/portrait_2.jpg").read_bytes()), "pothole.jpg")]}
    body, boundary = multipart(form)
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/report", data=body, headers=headers, content_type=f"multipart/form-data; boundary={boundary}")


def test_the_report_form_offers_the_camera_the_map_and_the_categories_in_vietnamese(app, client, db_session):
    page = client.get("/report")
    text = html(page)
    assert page.status_code == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert re.search(r'<input type="file" name="photos" id="photos" accept="image/\*" capture="environment"', text)
    assert 'id="pick-map"' in text and 'id="locate"' in text and 'name="lat"' in text
    categories = re.findall(r'<option value="([a-z_]+)">([^<]+)</option>', text)
    assert ("road_damage", db_category_name("road_damage")) in categories
    assert "<script>" not in text and " onclick=" not in text
    english = html(client.get("/report?lang=en"))
    assert "Report a problem in the street" in english and 'lang="en"' in english


def test_a_report_from_the_page_goes_through_intake_once_and_its_tracking_page_shows_it(
        app, db_session, redis_conn):
    client = app.test_client()
    token = csrf(client.get("/report"))
    first = submit(client, token, **REPORTER)
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert body["tracking_url"] == f"/track/{body['code']}/{body['tracking_token']}"
    assert body["page_url"] == f"/reports/{body['code']}"
    again = submit(client, token, **REPORTER)  # a double tap, or a retry after a lost answer
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["code"] == body["code"]
    report = db.session.get(Report, body["id"])
    assert report.channel == "web" and db.session.scalar(
        select(Report.id).where(Report.public_code != body["code"], Report.description == "Ổ gà lớn trước số 12")) \
        is None
    invalid = submit(client, token, key="another-key-0123456789", category="", lat="")
    assert invalid.status_code == 422 and invalid.get_json()["error"]["fields"]
    page = client.get(body["tracking_url"])
    text = html(page)
    assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["Cache-Control"] == "private, no-store"
    assert body["code"] in text and "chờ tiếp nhận" in text and "Lê Thị Mai" in text
    assert 'id="rating-form"' not in text  # nothing to rate yet
    assert client.get(f"/track/{body['code']}/{'x' * 43}").status_code == 404
    assert client.get(f"/track/HUE-1999-000000/{body['tracking_token']}").status_code == 404


def test_the_resident_rates_the_fix_once_on_the_tracking_page(app, db_session, redis_conn):
    client = app.test_client()
    body = submit(client, csrf(client.get("/report"))).get_json()
    routing.route(body["id"], detect_duplicates=False)
    report = db.session.get(Report, body["id"])
    report.status, report.resolved_at, report.version = "resolved", datetime.now(timezone.utc), report.version + 1
    db.session.flush()
    page = client.get(body["tracking_url"])
    assert 'id="rating-form"' in html(page)
    action = f"{body['tracking_url']}/feedback"
    bad = client.post(action, data={"csrf_token": csrf(page), "rating": "9"})
    assert bad.status_code == 422 and "Điểm đánh giá từ 1 đến 5" in html(bad)
    rated = client.post(action, data={"csrf_token": csrf(page), "rating": "4", "comment": "Sạch sẽ"})
    assert rated.status_code == 303 and rated.headers["Location"] == body["tracking_url"]
    db.session.refresh(report)
    assert report.status == "closed"
    assert db.session.scalar(select(Feedback.rating).where(Feedback.report_id == report.id)) == 4
    after = html(client.get(body["tracking_url"]))
    assert "Cảm ơn bạn đã đánh giá" in after and 'id="rating-given"' in after and 'id="rating-form"' not in after
    twice = client.post(action, data={"csrf_token": csrf(page), "rating": "5"})
    assert twice.status_code == 409 and "Bạn đã đánh giá phản ánh này" in html(twice)
    wrong_token = client.post(f"/track/{body['code']}/{'y' * 43}/feedback", data={"csrf_token": csrf(page),
                                                                                  "rating": "1"})
    assert wrong_token.status_code == 404


def test_the_rating_form_is_gone_once_the_feedback_window_has_closed(app, db_session, redis_conn):
    client = app.test_client()
    body = submit(client, csrf(client.get("/report"))).get_json()
    routing.route(body["id"], detect_duplicates=False)
    report = db.session.get(Report, body["id"])
    days = app.config["FEEDBACK_DAYS"]
    report.status, report.resolved_at = "resolved", datetime.now(timezone.utc) - timedelta(days=days, hours=1)
    db.session.flush()
    assert 'id="rating-form"' not in html(client.get(body["tracking_url"]))
    report.resolved_at = datetime.now(timezone.utc) - timedelta(days=days - 1)
    db.session.flush()
    assert 'id="rating-form"' in html(client.get(body["tracking_url"]))


def test_the_access_log_never_shows_a_tracking_token():
    """gunicorn's access log (hue_reports/gunicorn_conf.py): the request line, path and Referer redacted."""
    from datetime import timedelta as td
    from types import SimpleNamespace

    from gunicorn.config import Config

    from hue_reports.access_log import RedactingLogger

    gunicorn_conf = gunicorn_settings()

    assert gunicorn_conf.logger_class == "hue_reports.access_log.RedactingLogger"
    logger = RedactingLogger(Config())
    path = "/track/HUE-2026-000001/SECRETTOKENabc123"
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": path + "/feedback", "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH_INFO": path + "/feedback", "QUERY_STRING": "", "HTTP_REFERER": "https://hue.example" + path,
               "REMOTE_ADDR": "203.0.113.9"}
    request = SimpleNamespace(headers=[], method="POST", path=path + "/feedback", query="", version=(1, 1),
                              uri=path + "/feedback")
    response = SimpleNamespace(status="303 SEE OTHER", response_length=0, sent=0, headers=[])
    atoms = logger.atoms(response, request, environ, td(milliseconds=5))
    line = " ".join(str(v) for v in atoms.values())
    assert "SECRETTOKENabc123" not in line
    assert atoms["r"] == "POST /track/HUE-2026-000001/[token]/feedback HTTP/1.1"


def test_the_new_pages_run_no_inline_script_and_load_nothing_from_elsewhere(app, db_session, redis_conn):
    """As the public pages (test_pages.py): scripts and styles from this server only, no inline script or
    handler; and the console and the residents' pages are framed by no one."""
    from tests.test_pages import parse

    report = routed_report()
    client = app.test_client()
    body = submit(client, csrf(client.get("/report"))).get_json()
    officer = log_in(app, "hepco.officer")
    pages = [(client, "/report"), (client, body["tracking_url"]), (app.test_client(), "/console/login"),
             (officer, "/console/"), (officer, f"/console/reports/{report.public_code}"),
             (officer, "/console/reports/HUE-1999-000000")]
    for who, path in pages + [(who, path + "?lang=en") for who, path in pages]:
        response = who.get(path)
        page = parse(response)
        assert page.scripts and page.inline_handlers == [], path
        for script in page.scripts:
            assert script["src"] and script["src"].startswith("/static/") and not script["body"].strip(), path
        assert all(h.startswith("/static/") for h in page.stylesheets), path
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Cache-Control"] == "private, no-store", path
    assert "frame-ancestors 'self'" in client.get("/").headers["Content-Security-Policy"]  # the public map: embeddable

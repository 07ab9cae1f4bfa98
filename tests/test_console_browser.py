"""The officer console and the residents' report page in real headless Chromium (Debian's, driven by
Playwright) against a real server on 127.0.0.1: an officer logs in and works a ticket to resolved with a
photo of the fix; a second session on a stale page gets the conflict message; a resident reports from
/report with a photo and a map pin (once, though the first answer is lost), then finds the report on the map
and on its tracking page, where the fix is rated. Every tab is checked for script errors, CSP violations
and requests leaving the server (tests/conftest.py: `visit`).

Screenshots go to $HUE_TEST_ARTIFACTS/screenshots, or to pytest's temporary directory (printed).
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.pages.browser import LiveServer, remove_reports, run_worker, shown, wait_map
from tests.support import PHOTOS, post_report

PASSWORD = "hue-demo-2026"
FIX_PHOTO = PHOTOS / "jpg/orientation/landscape_3.jpg"  # the officer's photo of the fix
RESIDENT_PHOTO = PHOTOS / "jpg/orientation/portrait_2.jpg"  # no GPS: the pin places the report
REPORTER = {"reporter_name": "Hoàng Văn Nam", "reporter_phone": "0905987654"}
# Uncollected waste is HEPCO's; far enough apart to be no duplicates of each other.
TICKETS = {"work": (16.4698, 107.5786), "race": (16.4660, 107.5850)}
RESIDENT_AT = (16.4630, 107.5780)  # where the resident's phone says it is


@pytest.fixture(scope="module")
def tickets(app, redis_module):
    """Two of HEPCO's tickets made through the real intake and routed by a real worker (committed), with
    their reporters' tracking tokens. Everything is removed afterwards."""
    client = app.test_client()
    made = {}
    try:
        for name, (lat, lon) in TICKETS.items():
            response = post_report(client, category="uncollected_waste", lat=str(lat), lon=str(lon),
                                   description=f"Rác chưa thu gom ({name})", **REPORTER)
            assert response.status_code == 201, response.get_json()
            made[name] = response.get_json()
        run_worker(app, redis_module)
        yield made
    finally:
        remove_reports(app)


@pytest.fixture(scope="module")
def live(app, tickets):
    server = LiveServer(app)
    yield server
    server.stop()


def report_row(app, code: str):
    from hue_reports.extensions import db
    from hue_reports.models import Report

    with app.app_context():
        report = db.session.scalars(select(Report).where(Report.public_code == code)).one()
        db.session.expunge(report)
        db.session.remove()
        return report


def log_in(tab, username: str):
    page = tab.go("/console/")
    page.wait_for_url(re.compile(r".*/console/login\?next="))
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(re.compile(r".*/console/$"))
    return page


def status_of(page) -> str:
    return page.locator("#report-status").inner_text()


def test_an_officer_logs_in_and_works_a_ticket_to_resolved_with_a_photo(visit, live, tickets, app, redis_module):
    code = tickets["work"]["code"]
    tab = visit()
    page = log_in(tab, "hepco.officer")
    assert page.locator("#nav-account").inner_text().startswith("Cán bộ HEPCO")
    item = page.locator(f'.queue-item[data-code="{code}"]')
    assert item.count() == 1 and item.get_attribute("data-status") == "routed"
    routed = page.locator('.queue-item[data-status="routed"]').count()
    assert page.locator('#status-counts a[data-status="routed"]').get_attribute("data-count") == str(routed)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=item.locator("img.queue-thumb").element_handle())
    tab.shot("console-queue")

    item.locator("a").click()
    page.wait_for_url(f"**/console/reports/{code}")
    assert status_of(page) == "đã chuyển xử lý"
    assert [f.get_attribute("id") for f in page.locator("form.action-form").all()] == [
        "action-acknowledge", "action-start", "action-reject", "action-transfer"]
    assert "Hoàng Văn Nam" not in page.content()  # officers never see who reported
    tab.shot("console-ticket")

    page.click("#action-acknowledge button")
    page.wait_for_selector(".flash-success")
    assert status_of(page) == "đã tiếp nhận" and page.locator(".flash-success").inner_text() == "Đã tiếp nhận phản ánh."
    page.click("#action-start button")
    page.wait_for_selector("text=Đã chuyển sang đang xử lý.")
    assert status_of(page) == "đang xử lý"
    assert page.locator("#action-resolve").count() == 1 and page.locator("#action-acknowledge").count() == 0

    page.fill("#action-resolve textarea[name=note]", "Đã thu gom và rửa sạch khu vực")
    page.set_input_files("#action-resolve input[type=file]", str(FIX_PHOTO))
    page.click("#action-resolve button[type=submit]")
    page.wait_for_selector("text=Đã báo cáo xử lý xong.")
    assert status_of(page) == "đã xử lý"
    assert page.locator("#no-actions").count() == 1
    assert page.locator('#timeline li[data-event-type="resolved"]').inner_text().count(
        "Đã thu gom và rửa sạch khu vực") == 1
    run_worker(app, redis_module)  # the photo's derivatives
    page.reload()
    fixed = page.locator("#photos-resolution img")
    assert fixed.count() == 1
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=fixed.first.element_handle())
    assert page.locator("#photos-resolution a.photo-original").get_attribute("href").startswith("/console/photos/")
    tab.shot("console-resolved")
    report = report_row(app, code)
    assert report.status == "resolved" and report.version == 5

    # Later, the resident opens the tracking link the report page gave and rates the fix.
    resident = visit()
    track = resident.go(f"/track/{code}/{tickets['work']['tracking_token']}")
    assert status_of(track) == "đã xử lý"
    assert "Đã thu gom và rửa sạch khu vực" in track.locator("#timeline").inner_text()
    track.check('#rating-form input[name=rating][value="5"]')
    track.fill("#rating-form textarea[name=comment]", "Rất nhanh, cảm ơn!")
    resident.shot("track-rating")
    track.click("#rating-submit")
    track.wait_for_selector("#rating-given")
    assert status_of(track) == "đã đóng" and "Cảm ơn bạn đã đánh giá." in track.content()
    resident.shot("track-rated")

    page.click("#logout")
    page.wait_for_url("**/console/login")
    assert page.locator(".flash").inner_text() == "Bạn đã đăng xuất."
    tab.go(f"/console/reports/{code}")
    page.wait_for_url(re.compile(r".*/console/login\?next="))


def test_a_stale_page_gets_the_conflict_message_and_never_overwrites(visit, live, tickets, app):
    code = tickets["race"]["code"]
    first, second = visit(), visit()
    one, two = log_in(first, "hepco.officer"), log_in(second, "hepco.admin")
    one.goto(f"{live.url}/console/reports/{code}")
    two.goto(f"{live.url}/console/reports/{code}")
    seen = two.get_attribute("#ticket", "data-version")
    one.click("#action-acknowledge button")
    one.wait_for_selector(".flash-success")
    # The second officer's page still shows the ticket as it was, and offers `reject`.
    two.fill("#action-reject textarea[name=reason]", "Không thuộc thẩm quyền của đơn vị")
    two.click("#action-reject button[type=submit]")
    two.wait_for_selector("#ticket-error")
    assert "vừa được người khác thay đổi" in two.locator("#ticket-error").inner_text()
    assert status_of(two) == "đã tiếp nhận"  # the page now shows the ticket as it is
    assert int(two.get_attribute("#ticket", "data-version")) == int(seen) + 1
    assert two.input_value("#action-reject textarea[name=reason]") == "Không thuộc thẩm quyền của đơn vị"
    assert two.url == f"{live.url}/console/reports/{code}"  # a reload shows the page, never posts again
    second.shot("console-stale")
    report = report_row(app, code)
    assert report.status == "acknowledged"
    two.click("#lang-toggle")
    two.wait_for_url(re.compile(r".*lang=en.*"))
    assert status_of(two) == "acknowledged" and two.locator("#action-start button").inner_text() == "Start work"
    second.shot("console-ticket-english")


def test_a_resident_reports_with_a_photo_and_a_pin_once_and_finds_it_on_the_map_and_tracking_page(
        visit, live, tickets, app, redis_module):
    tab = visit(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=2,
                geolocation={"latitude": RESIDENT_AT[0], "longitude": RESIDENT_AT[1], "accuracy": 25},
                permissions=["geolocation"])
    page = tab.go("/report")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.get_attribute("#photos", "accept") == "image/*" and page.get_attribute("#photos", "capture") is not None
    page.click("#locate")
    page.wait_for_selector('#pin-status[data-state="set"]')
    assert abs(float(page.input_value("#lat")) - RESIDENT_AT[0]) < 1e-5 and page.input_value("#accuracy_m") == "25"
    page.wait_for_timeout(400)  # (the map's zoom to the position)
    page.locator("#pick-map").scroll_into_view_if_needed()
    box = page.locator("#pick-map").bounding_box()
    before = page.input_value("#lat")
    page.touchscreen.tap(box["x"] + box["width"] / 2 + 40, box["y"] + box["height"] / 2 - 30)  # a pin, moved a little
    page.wait_for_function("(old) => document.getElementById('lat').value !== old", arg=before)
    pin = (float(page.input_value("#lat")), float(page.input_value("#lon")))
    assert page.input_value("#accuracy_m") == "" and abs(pin[0] - RESIDENT_AT[0]) < 0.003
    page.set_input_files("#photos", str(RESIDENT_PHOTO))
    page.wait_for_selector("#photo-previews img")
    page.select_option("#category", "street_light_out")
    page.fill("#description", "Đèn đường tắt cả tuần nay")
    page.fill("#reporter_name", "Phan Thị Lan")
    tab.shot("report-form-phone")

    # The first answer is lost on the way back (the server has stored the report): the page says so, and
    # sending again with the page's same Idempotency-Key makes no second report.
    lost = []

    def lose_first_answer(route):
        if route.request.method == "POST" and not lost:
            lost.append(route.request.headers.get("idempotency-key"))
            route.fetch()
            route.abort("connectionreset")
        else:
            route.fallback()

    page.route("**/report", lose_first_answer)
    page.click("#submit-report")
    page.wait_for_selector("#form-error:not([hidden])")
    assert "gửi lại" in page.locator("#form-error").inner_text()
    page.click("#submit-report")
    page.wait_for_selector("#report-done:not([hidden])")
    code = page.locator("#done-code").inner_text()
    tracking = page.get_attribute("#tracking-link", "href")
    assert lost == [page.get_attribute("#report-form", "data-idempotency-key")] and lost[0]
    assert tracking.startswith(f"/track/{code}/") and page.locator("#tracking-link").inner_text().startswith(live.url)
    tab.shot("report-sent-phone")

    from hue_reports.extensions import db
    from hue_reports.models import Report

    with app.app_context():
        made = db.session.scalars(select(Report).where(Report.description == "Đèn đường tắt cả tuần nay")).all()
        assert [r.public_code for r in made] == [code] and made[0].channel == "web"
        assert made[0].location_source == "client"
        db.session.remove()
    run_worker(app, redis_module)  # routing and the photo's derivatives

    page.click("#tracking-link")
    page.wait_for_url(f"**{tracking}")
    assert page.locator("#track").get_attribute("data-code") == code
    assert status_of(page) == "đã chuyển xử lý" and "Phan Thị Lan" in page.locator("#fact-contact").inner_text()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=page.locator("#photos-evidence img").first.element_handle())
    tab.shot("track-phone")

    page.goto(f"{live.url}/#18/{pin[0]:.5f}/{pin[1]:.5f}")
    wait_map(page, zoom="18")
    assert code in shown(page)["codes"]
    tab.shot("map-resident-report")


def test_the_console_is_usable_on_a_phone(visit, live, tickets):
    tab = visit(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = log_in(tab, "ioc")  # the dispatcher: every agency's tickets, and the agency filter
    assert page.locator(".queue-item").count() >= 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator("#filters-panel").get_attribute("open") is None  # the queue first; filters one tap away
    page.click("#filters-panel summary")
    page.select_option("#filter-agency", "HEPCO")
    page.click("#filter-apply")
    page.wait_for_url(re.compile(r".*agency=HEPCO.*"))
    tab.shot("console-queue-phone")
    page.locator(".queue-item a").first.click()
    page.wait_for_url(re.compile(r".*/console/reports/.+"))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert "Hoàng Văn Nam" in page.locator("#fact-reporter").inner_text()  # the dispatcher sees who reported
    tab.shot("console-ticket-phone")

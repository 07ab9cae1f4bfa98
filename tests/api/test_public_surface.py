"""No personal data on the public surface: a crawler over every GET rule of the app's URL map.

A data set is seeded through the real API (committed): reports with the reporter's name, phone, e-mail,
device id and push address, through the app's API and Open311; tracking tokens; officers' internal
comments; a transfer; a fix with its photo; the reporter's feedback comment; a duplicate; an original
shared by two reports; derivatives, metrics and the map's rollup computed. Every value that must stay
private is then a *sentinel*: the contact fields, the tracking tokens (and their hashes), the internal
comments, the feedback comment, each original's storage key, SHA-256 and URL, the api_key and the staff
tokens the seeding used.

Every GET rule of the URL map must be known here, with the paths that exercise it (FILLERS): a rule
nobody taught the crawler fails the first test instead of being skipped. The crawler requests every
filled path without credentials, follows the links it finds in bodies and Location headers (pages,
JSON, Open311 XML), and fails if a sentinel appears in any body or header (raw, HTML-unescaped,
URL-unquoted, or JSON-decoded, so that escaped non-ASCII cannot hide one). Rules behind a log-in are
crawled too: they must refuse (401/403, or the console's redirect to its log-in page) and leak nothing.

The reporter's tracking page (`/track/<code>/<token>`, and `GET /api/v1/reports/<id>` with
X-Tracking-Token) is not public: its URL is a capability, the reporter's own view, which shows them the
contact *they* gave. It is checked apart: with a wrong token it is a 404 that leaks nothing; with the
right one it shows that reporter's data only, never another's, an internal comment or an original, and
it tells browsers and proxies not to keep or pass it on.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from rq import SimpleWorker
from sqlalchemy import select, text
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from hue_reports.extensions import db
from hue_reports.models import Account, Agency, Feedback, Photo, Report, ReportContact, ReportEvent
from hue_reports.services import audit, auth, mapgrid, metrics, open311
from tests.pages.browser import remove_reports
from tests.support import CITADEL, multipart, photo_with_gps, post_report

PUSH_PREFIX = "http://127.0.0.1:9/push/"
# Distinctive values (an ASCII word in each name, so that no escaping can hide the whole).
PEOPLE = [
    {"reporter_name": "Nguyễn Văn Quyzbeth", "reporter_phone": "0971234519", "reporter_email": "quyzbeth@example.vn",
     "device_id": "device-quyzbeth-7781", "notify_url": PUSH_PREFIX + "quyzbeth-9f2c"},
    {"reporter_name": "Trần Thị Xolmira", "reporter_phone": "0962718354", "reporter_email": "xolmira.tran@example.vn",
     "device_id": "device-xolmira-4410", "notify_url": PUSH_PREFIX + "xolmira-1a7e"},
    {"reporter_name": "Lê Hoàng Vexandr", "reporter_phone": "0938406627", "reporter_email": "vexandr@example.vn",
     "device_id": "device-vexandr-0032"},
    {"reporter_name": "Phạm Minh Ozzilwen", "reporter_phone": "0987033146", "reporter_email": "ozzilwen@example.vn",
     "device_id": "device-ozzilwen-5519"},
]
OPEN311_PERSON = {"first_name": "Hồ Thị", "last_name": "Kwembrulo", "email": "kwembrulo@example.vn",
                  "phone": "0915286043", "device_id": "open311-device-kwembrulo"}
INTERNAL_NOTES = ["Nội bộ: người báo là hàng xóm, gọi lại trước 5 giờ (zintarnote-1)",
                  "Internal: check with the ward before transferring (zintarnote-2)"]
FEEDBACK_COMMENT = "Cảm ơn anh chị, tôi ở số 12 kiệt 5 (zfeedbacknote)"
TRANSFER_REASON = "Thuộc thẩm quyền đơn vị khác"
PUBLIC_COMMENT = "Đội đã đến hiện trường"
# Points about 300 m apart in Phú Xuân (distinct, so that only the intended duplicate is one).
SPOTS = [(CITADEL[0] + 0.003 * i, CITADEL[1] + 0.002 * (i % 2)) for i in range(6)]
ZOOMS = (8, 11, 13, 14, 16, 18)
MAX_REQUESTS = 6000


@dataclass
class Seeded:
    reports: list[dict]  # {id, code, token, photos: [ids], agency}
    sentinels: dict[str, str]  # value -> what it is
    own: dict[int, set[str]]  # report id -> the sentinels its reporter's own view may show
    photo_ids: list[int]
    tokens: dict[str, str] = field(default_factory=dict)


def _tile(lat: float, lon: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


# --- what the crawler knows of each GET rule ------------------------------------------------------------------

def _static_files(seed: Seeded) -> list[str]:
    root = Path(__file__).resolve().parents[2] / "hue_reports" / "web" / "static"
    return [f"/static/{p.relative_to(root).as_posix()}" for p in sorted(root.rglob("*")) if p.is_file()]


def _ids_and_codes(seed: Seeded, template: str) -> list[str]:
    return [template.format(ref=ref) for r in seed.reports for ref in (r["id"], r["code"], r["code"].lower())]


BBOX = f"{CITADEL[1] - 0.05},{CITADEL[0] - 0.05},{CITADEL[1] + 0.05},{CITADEL[0] + 0.05}"

# Public: requested without credentials; at least one answer must be a success.
PUBLIC: dict[str, object] = {
    "/": lambda s: ["/", "/?lang=en", "/?lang=vi"],
    "/stats": lambda s: ["/stats", "/stats?lang=en", "/stats?group_by=category"],
    "/report": lambda s: ["/report", "/report?lang=en"],
    "/reports/<code>": lambda s: _ids_and_codes(s, "/reports/{ref}") + ["/reports/NO-SUCH-CODE"],
    "/static/<path:filename>": _static_files,
    "/api/v1/services": lambda s: ["/api/v1/services"],
    "/api/v1/public/reports": lambda s: [
        "/api/v1/public/reports", f"/api/v1/public/reports?bbox={BBOX}",
        *(f"/api/v1/public/reports?bbox={BBOX}&zoom={z}" for z in ZOOMS),
        f"/api/v1/public/reports?bbox={BBOX}&status=closed", f"/api/v1/public/reports?bbox={BBOX}&overdue=true"],
    "/api/v1/public/reports/<report_id>": lambda s: _ids_and_codes(s, "/api/v1/public/reports/{ref}"),
    "/api/v1/public/tiles/<int:z>/<int:x>/<int:y>.mvt": lambda s: sorted({
        "/api/v1/public/tiles/{}/{}/{}.mvt".format(z, *_tile(lat, lon, z)) for lat, lon in SPOTS for z in ZOOMS}),
    "/api/v1/public/metrics": lambda s: ["/api/v1/public/metrics"] + [
        f"/api/v1/public/metrics?group_by={g}" for g in metrics.GROUP_BYS],
    "/api/v1/public/metrics.csv": lambda s: ["/api/v1/public/metrics.csv"] + [
        f"/api/v1/public/metrics.csv?group_by={g}" for g in metrics.GROUP_BYS],
    "/api/v1/reports/<report_id>": lambda s: _ids_and_codes(s, "/api/v1/reports/{ref}"),
    "/api/v1/reports/<report_id>/events": lambda s: _ids_and_codes(s, "/api/v1/reports/{ref}/events"),
    # display and thumb are public; original must refuse (checked in test_originals_are_never_public)
    "/api/v1/photos/<int:photo_id>/<size>": lambda s: [
        f"/api/v1/photos/{p}/{size}" for p in s.photo_ids for size in ("display", "thumb", "original")],
    "/api/v1/openapi.json": lambda s: ["/api/v1/openapi.json"],
    "/api/docs": lambda s: ["/api/docs"],
    "/healthz": lambda s: ["/healthz"],
    "/readyz": lambda s: ["/readyz"],
    "/metrics": lambda s: ["/metrics"],
    "/console/login": lambda s: ["/console/login", "/console/login?next=/console/"],
    "/open311/v2/discovery.<fmt>": lambda s: ["/open311/v2/discovery.json", "/open311/v2/discovery.xml"],
    "/open311/v2/services.<fmt>": lambda s: ["/open311/v2/services.json", "/open311/v2/services.xml"],
    "/open311/v2/services/<service_code>.<fmt>": lambda s: [
        f"/open311/v2/services/road_damage.{f}" for f in ("json", "xml")],
    "/open311/v2/requests.<fmt>": lambda s: [
        f"/open311/v2/requests.{f}{q}" for f in ("json", "xml") for q in (
            "", "?status=open", "?status=closed", "?service_code=road_damage",
            "?service_request_id=" + ",".join(r["code"] for r in s.reports))],
    "/open311/v2/requests/<request_id>.<fmt>": lambda s: [
        f"/open311/v2/requests/{r['code']}.{f}" for r in s.reports for f in ("json", "xml")],
    "/open311/v2/tokens/<token>.<fmt>": lambda s: [
        f"/open311/v2/tokens/{r['code']}.{f}" for r in s.reports for f in ("json", "xml")],
    "/open311/v2/<path:resource>": lambda s: ["/open311/v2/nothing.json", "/open311/v2/requests/x/y.xml"],
}
# Rules that answer only errors by design (every path is a wrong one).
ALWAYS_ERRORS = {"/open311/v2/<path:resource>"}
# Routes still planned (501 not_implemented, see the README's API section); crawled all the same.
PLANNED: set[str] = set()  # (routes answering 501 until their issue lands: none now)

# Behind a log-in: requested without credentials, they must refuse (and leak nothing).
LOGIN_REQUIRED: dict[str, object] = {
    "/console/": lambda s: ["/console/", "/console/?status=routed"],
    "/console/reports/<ref>": lambda s: _ids_and_codes(s, "/console/reports/{ref}"),
    "/console/photos/<int:photo_id>/original": lambda s: [f"/console/photos/{p}/original" for p in s.photo_ids],
    "/api/v1/agency/reports": lambda s: ["/api/v1/agency/reports"],
    "/api/v1/agency/reports/<report_id>": lambda s: _ids_and_codes(s, "/api/v1/agency/reports/{ref}"),
    "/api/v1/agency/events": lambda s: ["/api/v1/agency/events", "/api/v1/agency/events?since=0"],
    "/api/v1/agency/officers": lambda s: ["/api/v1/agency/officers"],
    "/api/v1/admin/accounts": lambda s: ["/api/v1/admin/accounts"],
    "/api/v1/admin/agencies": lambda s: ["/api/v1/admin/agencies"],
    "/api/v1/admin/agencies/<code>": lambda s: [f"/api/v1/admin/agencies/{r['agency']}" for r in s.reports[:1]],
    "/api/v1/admin/areas": lambda s: ["/api/v1/admin/areas"],
    "/api/v1/admin/audit": lambda s: ["/api/v1/admin/audit"],
    "/api/v1/admin/categories": lambda s: ["/api/v1/admin/categories"],
    "/api/v1/admin/category-groups": lambda s: ["/api/v1/admin/category-groups"],
    "/api/v1/admin/open311-keys": lambda s: ["/api/v1/admin/open311-keys"],
    "/api/v1/admin/routing-rules": lambda s: ["/api/v1/admin/routing-rules"],
    "/api/v1/admin/routing-rules/<rule_id>": lambda s: ["/api/v1/admin/routing-rules/1"],
}
# The reporter's own view (a capability URL): checked by test_the_tracking_page_is_its_reporters_alone.
CAPABILITY = {"/track/<code>/<token>"}


def get_rules(app) -> set[str]:
    return {rule.rule for rule in app.url_map.iter_rules() if "GET" in (rule.methods or ())}


def unknown_rules(app) -> set[str]:
    """GET rules the crawler does not know how to fill (each must be added to PUBLIC or LOGIN_REQUIRED)."""
    return get_rules(app) - set(PUBLIC) - set(LOGIN_REQUIRED) - CAPABILITY


# --- seeding ---------------------------------------------------------------------------------------------------

def _run_jobs(app, redis_conn) -> None:
    with app.app_context():
        SimpleWorker(["routing", "photos"], connection=redis_conn).work(burst=True)


def _version(client, rid, headers) -> str:
    return f'"{client.get(f"/api/v1/agency/reports/{rid}", headers=headers).get_json()["version"]}"'


def _act(client, rid, headers, **body):
    response = client.post(f"/api/v1/reports/{rid}/transitions", json=body,
                           headers={**headers, "If-Match": _version(client, rid, headers)})
    assert response.status_code == 200, response.get_json()


def _seed(app, redis_conn) -> Seeded:
    client = app.test_client()
    with app.app_context():
        ioc = db.session.scalars(select(Account).where(Account.username == "ioc")).one()
        staff_token, _ = auth.issue_token(ioc, name="public surface test")
        api_key, _ = open311.issue_key("Public surface test", actor=audit.Actor("test"))
        db.session.commit()
    staff = {"Authorization": f"Bearer {staff_token}"}
    shared_photo = photo_with_gps(*SPOTS[0])

    def submit(i: int, spot: int, photo: bytes | None = None) -> dict:
        photo = photo or photo_with_gps(SPOTS[spot][0] + i * 1e-5, SPOTS[spot][1])  # (its own, unless given)
        body = post_report(client, photos=[(photo, f"p{i}.jpg")],
                           lat=str(SPOTS[spot][0]), lon=str(SPOTS[spot][1]), **PEOPLE[i])
        assert body.status_code == 201, body.get_json()
        return body.get_json()

    first, second = submit(0, 0, shared_photo), submit(1, 2)
    _run_jobs(app, redis_conn)
    third = submit(2, 2)  # the same problem as the second, 0 m away: its duplicate
    fourth = submit(3, 4, shared_photo)  # another report with the first's photo: one stored original
    form = {"api_key": api_key, "service_code": "road_damage", "lat": str(SPOTS[5][0]), "long": str(SPOTS[5][1]),
            "description": "Ổ gà trước cổng trường", **OPEN311_PERSON,
            "media": [(io.BytesIO(photo_with_gps(*SPOTS[5])), "o.jpg")]}
    body, boundary = multipart(form)
    answer = client.post("/open311/v2/requests.json", data=body,
                         content_type=f"multipart/form-data; boundary={boundary}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    _run_jobs(app, redis_conn)

    # Officers at work: internal and public comments, a transfer, a fix with its photo, a rating.
    for rid, note in zip((first["id"], second["id"]), INTERNAL_NOTES, strict=True):
        assert client.post(f"/api/v1/reports/{rid}/comments", json={"text": note, "public": False},
                           headers=staff).status_code == 201
    assert client.post(f"/api/v1/reports/{first['id']}/comments", json={"text": PUBLIC_COMMENT, "public": True},
                       headers=staff).status_code == 201
    _act(client, first["id"], staff, action="acknowledge")
    fix = {"action": "resolve", "note": "Đã vá xong", "version": _version(client, first["id"], staff).strip('"'),
           "photos": [(io.BytesIO(photo_with_gps(*SPOTS[1])), "fix.jpg")]}
    body, boundary = multipart(fix)
    assert client.post(f"/api/v1/reports/{first['id']}/transitions", data=body, headers=staff,
                       content_type=f"multipart/form-data; boundary={boundary}").status_code == 200
    rated = client.post(f"/api/v1/reports/{first['id']}/feedback", json={"rating": 4, "comment": FEEDBACK_COMMENT},
                        headers={"X-Tracking-Token": first["tracking_token"]})
    assert rated.status_code == 201, rated.get_json()
    with app.app_context():
        current = db.session.scalar(select(Report.agency_id).where(Report.id == second["id"]))
        other = db.session.scalars(select(Agency.code).where(Agency.active, Agency.kind != "dispatcher",
                                                             Agency.id != current).order_by(Agency.code)).first()
    _act(client, second["id"], staff, action="transfer", agency=other, reason=TRANSFER_REASON)
    _run_jobs(app, redis_conn)
    with app.app_context():
        metrics.refresh_all()
        mapgrid.refresh()
        db.session.commit()
        return _sentinels(app, [first, second, third, fourth], answer.get_json()[0]["service_request_id"],
                          {"staff token": staff_token, "api_key": api_key})


def _sentinels(app, created: list[dict], open311_code: str, secrets: dict[str, str]) -> Seeded:
    """Every private value of the seeded data, read back from the database (as stored)."""
    sentinels: dict[str, str] = {value: name for name, value in secrets.items()}
    own: dict[int, set[str]] = {}
    rows = db.session.scalars(select(Report).order_by(Report.id)).all()
    codes = {r["code"] for r in created} | {open311_code}
    assert {r.public_code for r in rows} == codes, "the seeded reports only"
    tokens = {r["id"]: r["tracking_token"] for r in created}
    reports = []
    for report in rows:
        assert report.contact is not None
        mine = set()
        c = report.contact
        for name, value in (("name", c.name), ("phone", c.phone), ("email", c.email), ("device id", c.device_id),
                            ("push address", c.notify_url)):
            if value:
                mine.add(value)
                sentinels[value] = f"reporter {name} of {report.public_code}"
        for word in (c.name or "").split() + ([c.phone[-9:]] if c.phone else []):
            if len(word) >= 8 and word.isascii():  # (the distinctive ASCII word of each name, the bare number)
                mine.add(word)
                sentinels[word] = f"part of the reporter's contact of {report.public_code}"
        if report.id in tokens:
            mine.add(tokens[report.id])
            sentinels[tokens[report.id]] = f"tracking token of {report.public_code}"
        sentinels[report.tracking_token_hash] = f"tracking token hash of {report.public_code}"
        own[report.id] = mine
        reports.append({"id": report.id, "code": report.public_code, "token": tokens.get(report.id),
                        "agency": report.agency.code if report.agency else "IOC"})
    for event in db.session.scalars(select(ReportEvent).where(ReportEvent.public.is_(False),
                                                              ReportEvent.type == "comment")):
        sentinels[event.note] = f"internal comment on report {event.report_id}"
    for note in INTERNAL_NOTES:  # (and their distinctive words, in case the text is cut)
        sentinels[re.search(r"zintarnote-\d", note)[0]] = "internal comment"
    for feedback in db.session.scalars(select(Feedback).where(Feedback.comment.is_not(None))):
        sentinels[feedback.comment] = "the reporter's feedback comment"
        own[feedback.report_id] |= {feedback.comment, "zfeedbacknote"}  # (their own words, on their page)
    sentinels["zfeedbacknote"] = "the reporter's feedback comment"
    photos = db.session.scalars(select(Photo).order_by(Photo.id)).all()
    for photo in photos:
        sentinels[photo.storage_key] = f"storage key of photo {photo.id}'s original"
        sentinels[photo.sha256] = f"SHA-256 of photo {photo.id}'s original (and its derivatives' keys)"
        sentinels[f"/photos/{photo.id}/original"] = f"URL of photo {photo.id}'s original"
    contacts = db.session.scalar(select(text("count(*)")).select_from(ReportContact))
    assert contacts == len(rows) == 5 and len(photos) == 6
    kinds = {(e.type, e.public) for e in db.session.scalars(select(ReportEvent))}
    assert {("comment", False), ("comment", True), ("transferred", True), ("resolved", True), ("closed", True),
            ("duplicate", True)} <= kinds, kinds
    assert len({p.storage_key for p in photos}) == 5, "two photos share one stored original"
    db.session.remove()
    return Seeded(reports=reports, sentinels=sentinels, own=own, photo_ids=[p.id for p in photos])


@pytest.fixture(scope="module")
def seeded(app, redis_module):
    """The data set, committed (the crawl runs many requests on it); the report tables emptied afterwards."""
    remove_reports(app)  # (only this data set)
    prefixes = app.config["NOTIFY_URL_PREFIXES"]
    app.config["NOTIFY_URL_PREFIXES"] = [PUSH_PREFIX]
    media = Path(app.config["MEDIA_ROOT"])
    files = {p for p in media.rglob("*") if p.is_file()}
    try:
        yield _seed(app, redis_module)
    finally:
        app.config["NOTIFY_URL_PREFIXES"] = prefixes
        remove_reports(app)
        for path in {p for p in media.rglob("*") if p.is_file()} - files:  # (its photos went with its rows)
            path.unlink(missing_ok=True)
        with app.app_context():
            db.session.execute(text("DELETE FROM open311_keys WHERE name = 'Public surface test'"))
            db.session.execute(text("DELETE FROM api_tokens WHERE name = 'public surface test'"))
            db.session.commit()


# --- the crawler ------------------------------------------------------------------------------------------------

def texts(response) -> list[str]:
    """The ways a value can be written in this answer: as sent, HTML-unescaped, URL-unquoted, JSON-decoded."""
    raw = response.get_data()
    body = raw.decode("utf-8", "replace")
    found = [body, html.unescape(body), unquote(body), unquote(html.unescape(body))]
    if response.mimetype and "json" in response.mimetype:
        try:
            found.append(json.dumps(json.loads(body), ensure_ascii=False))
        except ValueError:
            pass
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    found += [headers, unquote(headers)]
    return found


def leaks_in(response, sentinels: dict[str, str], allowed: set[str] = frozenset()) -> list[str]:
    haystacks = texts(response)
    raw = response.get_data()
    return [f"{what} ({value!r})" for value, what in sentinels.items() if value not in allowed and (
        any(value in h for h in haystacks) or value.encode() in raw)]


LINK = re.compile(r"""(?:href|src|action)\s*=\s*["']([^"'#]+)|"(/[^"\s<>]*)"|>(https?://localhost/[^<\s]*)<"""
                  r"""|"(https?://localhost/[^"\s]*)\"""")


def links_in(response) -> set[str]:
    if not response.mimetype or not any(t in response.mimetype for t in ("html", "json", "xml")):
        return set()
    body = html.unescape(response.get_data(as_text=True))
    found = {next(g for g in m.groups() if g) for m in LINK.finditer(body)}
    if response.headers.get("Location"):
        found.add(response.headers["Location"])
    out = set()
    for link in found:
        parts = urlsplit(link)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/") or parts.path.startswith("//"):
            continue
        out.add(parts.path + (f"?{parts.query}" if parts.query else ""))
    return out


def rule_of(app, path: str) -> str | None:
    adapter = app.url_map.bind("localhost")
    try:
        rule, _ = adapter.match(urlsplit(path).path, method="GET", return_rule=True)
    except (NotFound, MethodNotAllowed, RequestRedirect):
        return None
    return rule.rule


@dataclass
class Crawl:
    answers: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (rule, status)
    leaks: list[str] = field(default_factory=list)


def crawl(app, seed: Seeded) -> Crawl:
    """Request every filled path and every public link found, without credentials; record the leaks."""
    result = Crawl()
    queue = [(path, rule) for rules in (PUBLIC, LOGIN_REQUIRED) for rule, fill in rules.items()
             for path in fill(seed)]
    while queue:
        path, rule = queue.pop(0)
        if path in result.answers:
            continue
        assert len(result.answers) < MAX_REQUESTS, "the crawl grew past MAX_REQUESTS: a link that never ends?"
        response = app.test_client().get(path)  # (a fresh client: no cookie from a previous page)
        result.answers[path] = (rule, response.status_code)
        echoed = {value for value in seed.sentinels if value in path}  # (what the request itself said)
        result.leaks += [f"GET {path} -> {response.status_code}: {leak}"
                         for leak in leaks_in(response, seed.sentinels, allowed=echoed)]
        for link in links_in(response):
            found = rule_of(app, link)
            if found in PUBLIC and link not in result.answers:
                queue.append((link, found))
        response.close()
    # Last, what counts requests: nothing seen along the way may show in it.
    for path in ("/metrics", "/healthz", "/readyz"):
        response = app.test_client().get(path)
        result.leaks += [f"GET {path} (after the crawl): {leak}" for leak in leaks_in(response, seed.sentinels)]
    return result


# --- the tests --------------------------------------------------------------------------------------------------

def test_every_get_rule_is_crawled_or_needs_a_login(app):
    """A new GET rule must be taught to the crawler (PUBLIC or LOGIN_REQUIRED), never skipped silently; a rule
    that is gone must leave the lists."""
    assert unknown_rules(app) == set(), "GET rules the crawler does not know how to fill"
    assert (set(PUBLIC) | set(LOGIN_REQUIRED) | CAPABILITY) - get_rules(app) == set(), "rules the app no longer has"


def test_a_new_public_rule_fails_the_check(make_app):
    """Can the check above fail? A rule added to an app is reported."""
    extra = make_app()
    extra.add_url_rule("/api/v1/public/new-thing/<thing_id>", "new_thing", lambda thing_id: "")
    assert unknown_rules(extra) == {"/api/v1/public/new-thing/<thing_id>"}


def test_no_public_answer_carries_personal_data(app, seeded):
    result = crawl(app, seeded)
    print(f"crawled {len(result.answers)} paths of {len(set(r for r, _ in result.answers.values()))} rules")
    assert result.leaks == []
    by_rule: dict[str, set[int]] = {}
    for rule, status in result.answers.values():
        by_rule.setdefault(rule, set()).add(status)
    assert [(path, status) for path, (rule, status) in result.answers.items()
            if status >= 500 and not (rule in PLANNED and status == 501)] == []
    for rule in PUBLIC:
        ok = {s for s in by_rule[rule] if s < 400}
        if rule not in PLANNED:
            assert ok if rule not in ALWAYS_ERRORS else not ok, f"{rule}: {by_rule[rule]}"
    for rule in LOGIN_REQUIRED:
        assert by_rule[rule] <= {401, 403, 302}, f"{rule} answered {by_rule[rule]} without credentials"
    for path, (rule, status) in result.answers.items():
        if rule in LOGIN_REQUIRED and status == 302:
            assert urlsplit(app.test_client().get(path).headers["Location"]).path == "/console/login", path
    followed = [p for p, (rule, _) in result.answers.items() if p not in {
        q for fill in PUBLIC.values() for q in fill(seeded)} | {q for fill in LOGIN_REQUIRED.values()
                                                                for q in fill(seeded)}]
    assert followed, "the crawler followed no link it found"


def test_originals_are_never_public(app, seeded):
    client = app.test_client()
    for photo_id in seeded.photo_ids:
        response = client.get(f"/api/v1/photos/{photo_id}/original")
        assert response.status_code == 401 and response.get_json()["error"]["message_vi"]
        console = client.get(f"/console/photos/{photo_id}/original")
        assert console.status_code == 302 and urlsplit(console.headers["Location"]).path == "/console/login"


def test_the_tracking_page_is_its_reporters_alone(app, seeded):
    """The reporter's own view shows their contact to them only: nothing of another reporter, no internal
    comment, no original; a wrong token is a plain 404; the page is neither cached nor indexed nor sent on
    as a Referer."""
    client = app.test_client()
    tracked = [r for r in seeded.reports if r["token"]]
    assert len(tracked) >= 4
    for report, other in zip(tracked, tracked[1:] + tracked[:1], strict=True):
        page = client.get(f"/track/{report['code']}/{report['token']}")
        assert page.status_code == 200
        mine = seeded.own[report["id"]]
        assert leaks_in(page, seeded.sentinels, allowed=mine) == []
        assert any(value in page.get_data(as_text=True) for value in mine)  # (it is the reporter's view)
        assert page.headers["Cache-Control"] == "private, no-store"
        assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["X-Robots-Tag"] == "noindex"
        api = client.get(f"/api/v1/reports/{report['id']}", headers={"X-Tracking-Token": report["token"]})
        assert api.status_code == 200 and api.headers["Cache-Control"] == "private, no-store"
        assert leaks_in(api, seeded.sentinels, allowed=mine) == []
        for wrong in (f"/track/{report['code']}/{other['token']}", f"/track/{other['code']}/{report['token']}",
                      f"/track/{report['code']}/not-a-token"):
            answer = client.get(wrong)
            echoed = {value for value in seeded.sentinels if value in wrong}  # (the language links repeat the path)
            assert answer.status_code == 404 and leaks_in(answer, seeded.sentinels, allowed=echoed) == [], wrong
        refused = client.get(f"/api/v1/reports/{report['id']}", headers={"X-Tracking-Token": other["token"]})
        assert refused.status_code == 403 and leaks_in(refused, seeded.sentinels) == []


def test_the_crawler_catches_a_leak(app, seeded):
    """Can the crawl fail? A reporter's e-mail copied into a public field (as a bug in intake would) is found
    on the public pages, the API, Open311 and the map data."""
    email = PEOPLE[2]["reporter_email"]
    victim = next(r for r in seeded.reports if email in seeded.own[r["id"]])
    with app.app_context():
        before = db.session.scalar(select(Report.address).where(Report.id == victim["id"]))
        db.session.execute(text("UPDATE reports SET address = :a WHERE id = :id"),
                           {"a": f"Liên hệ {email}", "id": victim["id"]})
        db.session.commit()
    try:
        result = crawl(app, seeded)
    finally:
        with app.app_context():
            db.session.execute(text("UPDATE reports SET address = :a WHERE id = :id"),
                               {"a": before, "id": victim["id"]})
            db.session.commit()
    leaked_at = {line.split(" -> ")[0] for line in result.leaks if email in line}
    for where in (f"GET /reports/{victim['code']}", f"GET /api/v1/public/reports/{victim['code']}",
                  f"GET /open311/v2/requests/{victim['code']}.xml", f"GET /api/v1/reports/{victim['id']}"):
        assert where in leaked_at, sorted(leaked_at)

"""The OpenAPI document (GET /api/v1/openapi.json): valid OpenAPI 3, complete (every route under /api/),
truthful (schemathesis fuzzes the public, resident and officer operations against it on the real app, real
PostgreSQL and real Redis: no 5xx, every answer documented, in the documented type and shape), and readable
at /api/docs (the vendored Swagger UI, no inline script)."""

from __future__ import annotations

import copy
import re

import pytest
import schemathesis
from sqlalchemy import select

from hue_reports.extensions import db
from hue_reports.models import Photo, Report
from hue_reports.services import routing
from tests.support import post_report, staff_headers

DOCUMENT = "/api/v1/openapi.json"
REPORTER = {"reporter_name": "Lê Thị Hoa", "reporter_phone": "0905123456", "reporter_email": "hoa@example.vn"}


@pytest.fixture
def document(client) -> dict:
    response = client.get(DOCUMENT)
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


# --- the document -------------------------------------------------------------------------------------------

def _refs(node, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)
    return found


def test_the_document_is_valid_openapi_3(document):
    """Valid against the OpenAPI 3.0 meta-schema (schemathesis carries it), every $ref resolves, every
    path template's parameters are declared, and every operation answers something documented."""
    assert document["openapi"].startswith("3.0")
    schemathesis.openapi.from_dict(copy.deepcopy(document)).validate()  # raises on an invalid document
    for ref in _refs(document, set()):
        assert ref.startswith("#/"), ref
        node = document
        for part in ref[2:].split("/"):
            assert part in node, f"dangling {ref}"
            node = node[part]
    for path, item in document["paths"].items():
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        for method, operation in item.items():
            if method == "parameters":
                continue
            names = declared | {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert set(re.findall(r"{(\w+)}", path)) == names, (method, path)
            assert operation["responses"], (method, path)
            assert "default" not in operation["responses"], (method, path)  # each status listed, no catch-all


def test_every_api_route_is_in_the_document(app, document):
    """Every Flask URL rule under /api/ (and Open311's, and the operations' probes) with each of its
    methods."""
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/", "/open311/", "/healthz", "/readyz", "/metrics")):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in document["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert not missing


def test_errors_are_documented_in_the_one_error_shape_with_their_codes(document):
    """The 4xx answers of the JSON API point at the `Error` schema and name the error codes they carry;
    every operation documents its outage (503); the bearer token is declared where it is needed."""
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": document["components"]["securitySchemes"]["bearer"][
            "description"]}
    submit = document["paths"]["/api/v1/reports"]["post"]
    assert set(submit["requestBody"]["content"]) == {"multipart/form-data"}
    assert {"400", "413", "415", "422", "429", "503"} <= set(submit["responses"])
    assert "`outside_service_area`" in submit["responses"]["422"]["description"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters" or path.startswith("/open311/"):
                continue
            for status, answer in operation["responses"].items():
                if status.startswith("4"):
                    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
            if operation.get("security"):
                assert {"401", "403"} & set(operation["responses"]), (method, path)
    queue = document["paths"]["/api/v1/agency/reports"]["get"]
    assert queue["security"] == [{"bearer": []}] and "401" in queue["responses"]
    assert document["paths"]["/api/v1/services"]["get"]["responses"]["503"] == {
        "$ref": "#/components/responses/UNAVAILABLE"}
    assert "503" not in document["paths"]["/healthz"]["get"]["responses"]  # (it checks nothing that can be down)


# --- the interactive documentation --------------------------------------------------------------------------

VENDOR = "hue_reports/web/static/vendor/swagger-ui"


def test_api_docs_is_swagger_ui_from_this_server_without_inline_script(client, document):
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    html = page.get_data(as_text=True)
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"\son\w+=", html)  # no inline event handler either
    assert 'data-spec-url="/api/v1/openapi.json"' in html
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        answer.close()


def test_swagger_ui_is_vendored_with_its_licence():
    from pathlib import Path

    from tests.support import ROOT

    vendor = ROOT / Path(VENDOR)
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt"):
        assert (vendor / name).is_file(), name
    assert "Apache License" in (vendor / "LICENSE").read_text(encoding="utf-8")
    assert "swagger-ui" in (ROOT / "hue_reports/web/static/vendor/README.md").read_text(encoding="utf-8")


# --- schemathesis on the live app ---------------------------------------------------------------------------

# The operations fuzzed: the public, resident and officer ones. Not the admins' (tests/api/test_admin_*), not
# DELETE /api/v1/auth/token, which would revoke the token the run uses, not /readyz, which opens connections of
# its own (outside the test's transaction; tests/api/test_ops.py), nor Open311's catch-all 404.
EXCLUDED = re.compile(r"^/api/v1/admin/|^/open311/v2/\{resource\}$|^/readyz$")
EXAMPLES_PER_OPERATION = 25
CONFIG = {
    "seed": 8_2026,
    # (no made-up extra parameters: an unknown query parameter is ignored, as HTTP APIs commonly do)
    "generation": {"max-examples": EXAMPLES_PER_OPERATION, "deterministic": True, "database": "none",
                   "mode": "all", "allow-extra-parameters": False},
    "phases": {"coverage": {"enabled": False}},  # (its boundary cases run to hundreds per operation: minutes)
    # No 5xx; the status, content type, headers and body as documented; invalid input refused with a 4xx. (Not
    # positive_data_acceptance: valid by the document's shape is not always valid by the rules, e.g. a
    # transition the workflow does not allow is a 409.)
    "checks": {"enabled": False, **{name: {"enabled": True} for name in (
        "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
        "response_headers_conformance", "negative_data_rejection")}},
}


@pytest.fixture
def seeded(client, db_session, redis_conn, run_jobs):
    """A report filed through the API with a photo (its derivatives made by a worker), routed to HEPCO,
    started and resolved by its officer; HEPCO's officer token."""
    answer = post_report(client, category="uncollected_waste", **REPORTER)
    assert answer.status_code == 201
    report_id = answer.get_json()["id"]
    run_jobs()
    routing.route(report_id, detect_duplicates=False)
    report = db.session.get(Report, report_id)
    officer = staff_headers("hepco.officer")
    started = client.post(f"/api/v1/reports/{report_id}/transitions", json={"action": "start"},
                          headers={**officer, "If-Match": f'"{report.version}"'})
    assert started.status_code == 200
    photo = db.session.scalars(select(Photo).where(Photo.report_id == report_id)).first()
    assert photo.derivatives_ready_at is not None
    return {"report": db.session.get(Report, report_id), "photo": photo, "officer": officer,
            "tracking_token": answer.get_json()["tracking_token"]}


def _with_examples(document: dict, seeded: dict) -> dict:
    """The document with examples pointing at the seeded data (so that the examples phase reaches the
    answers of things that exist; the fuzzing phase still makes up its own values)."""
    report = seeded["report"]
    examples = {"report_id": report.public_code, "photo_id": seeded["photo"].id, "size": "display",
                "request_id": report.public_code, "token": report.public_code, "service_code": "uncollected_waste",
                "fmt": "json", "username": "hepco.officer", "z": 14, "x": 13088, "y": 7526,
                "X-Tracking-Token": seeded["tracking_token"]}
    document = copy.deepcopy(document)
    for item in document["paths"].values():
        for parameter in [*item.get("parameters", []),
                          *(p for op in item.values() if isinstance(op, dict) for p in op.get("parameters", []))]:
            if parameter["name"] in examples:
                parameter["example"] = examples[parameter["name"]]
    return document


def _read_whole(app):
    """The app with its answers read whole and closed (schemathesis' WSGI client leaves a file sent by
    send_file open)."""
    def wsgi(environ, start_response):
        result = app(environ, start_response)
        try:
            return [b"".join(result)]
        finally:
            getattr(result, "close", lambda: None)()
    return wsgi


def test_the_api_answers_as_its_document_says(app, document, seeded):
    """Every answer to made-up requests (valid and invalid ones, a bounded number per operation, the same
    every run) is no 5xx, has a documented status, content type and headers, and fits the documented schema;
    invalid input is refused with a 4xx. Run through the WSGI app on the test database (rolled back) and
    Redis, with HEPCO's officer token. (schemathesis' own pytest integration needs a pytest before 9: its
    hypothesis tests are run here one operation after another instead, every failure reported.)"""
    from schemathesis.core.failures import FailureGroup
    from schemathesis.core.result import Ok
    from schemathesis.pytest.lazy import get_all_tests

    schema = schemathesis.openapi.from_dict(_with_examples(document, seeded),
                                            config=schemathesis.Config.from_dict(CONFIG))
    schema.app = _read_whole(app)
    schema = schema.exclude(path_regex=EXCLUDED.pattern).exclude(method="DELETE", path="/api/v1/auth/token")

    def call(case):
        case.call_and_validate(headers=seeded["officer"])

    schemathesis.checks.load_all_checks()
    failures, operations = {}, 0
    for result in get_all_tests(schema=schema, test_func=call, settings=None, given_kwargs=None):
        if not isinstance(result, Ok):
            failures[str(result.err())] = result.err()
            continue
        operation, test = result.ok()
        operations += 1
        try:
            test()
        except (Exception, FailureGroup) as exc:  # noqa: BLE001 (each operation's failures, reported at the end)
            failures[operation.label] = exc
    assert operations >= 30  # (the filter left the operations meant)
    assert not failures, "\n\n".join(f"{label}:\n{exc}" for label, exc in failures.items())


# --- the answers schemathesis rarely reaches: the successes of whole workflows -------------------------------

class Conformance:
    """Checks answers against the document: the status is documented for the operation, and the answer fits
    what is documented for it (content type, headers, body)."""

    def __init__(self, document: dict):
        self.document = document
        self.schema = schemathesis.openapi.from_dict(copy.deepcopy(document))
        self.seen: list[str] = []

    def __call__(self, method: str, path: str, response, status: int | None = None):
        assert status is None or response.status_code == status, response.get_data(as_text=True)[:500]
        responses = self.document["paths"][path][method.lower()]["responses"]
        assert str(response.status_code) in responses, (method, path, response.status_code)
        self.schema[path][method.upper()].validate_response(response)  # raises FailureGroup if it does not fit
        self.seen.append(f"{method.upper()} {path} {response.status_code}")
        return response


def _tile(lat: float, lon: float, z: int) -> tuple[int, int]:
    import math

    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_the_answers_of_whole_workflows_fit_the_document(client, document, db_session, redis_conn, run_jobs):
    """A report filed, followed, worked by its agency (queue, view, comment, start, resolve with a photo),
    rated; the public map, page, tiles, photos and metrics; log-in and log-out; Open311; the agency admin's and
    the admin's lists: each answer is documented and fits the document, success answers included."""
    import io

    from hue_reports.services import open311
    from hue_reports.services.audit import Actor
    from tests.support import CITADEL, NOKIA, PHOTOS, multipart

    check = Conformance(document)
    filed = check("POST", "/api/v1/reports", post_report(client, category="uncollected_waste", **REPORTER), 201)
    report_id, tracking = filed.get_json()["id"], filed.get_json()["tracking_token"]
    run_jobs()  # routed to HEPCO, the derivatives made
    code = db.session.get(Report, report_id).public_code
    mine = {"X-Tracking-Token": tracking}
    check("GET", "/api/v1/reports/{report_id}", client.get(f"/api/v1/reports/{code}"), 200)
    check("GET", "/api/v1/reports/{report_id}", client.get(f"/api/v1/reports/{code}", headers=mine), 200)
    check("GET", "/api/v1/reports/{report_id}", client.get(f"/api/v1/reports/{code}", headers={
        "X-Tracking-Token": "wrong"}), 403)
    check("GET", "/api/v1/reports/{report_id}/events", client.get(f"/api/v1/reports/{code}/events"), 200)

    officer, dispatcher = staff_headers("hepco.officer"), staff_headers("ioc")
    check("GET", "/api/v1/agency/reports", client.get("/api/v1/agency/reports", headers=officer), 200)
    check("GET", "/api/v1/agency/reports", client.get("/api/v1/agency/reports?status=routed,closed&q=%C3%B4",
                                                      headers=dispatcher), 200)
    view = check("GET", "/api/v1/agency/reports/{report_id}",
                 client.get(f"/api/v1/agency/reports/{report_id}", headers=dispatcher), 200)
    assert view.get_json()["reporter"]["name"] == REPORTER["reporter_name"]
    view = check("GET", "/api/v1/agency/reports/{report_id}",
                 client.get(f"/api/v1/agency/reports/{report_id}", headers=officer), 200)
    assert view.get_json()["reporter"] is None
    transitions = "/api/v1/reports/{report_id}/transitions"
    url = f"/api/v1/reports/{report_id}/transitions"
    check("POST", transitions, client.post(url, json={"action": "start"}, headers=officer), 428)
    check("POST", transitions, client.post(url, json={"action": "close", "version": view.get_json()["version"]},
                                           headers=officer), 409)
    started = check("POST", transitions, client.post(url, json={"action": "start"}, headers={
        **officer, "If-Match": view.headers["ETag"]}), 200)
    check("POST", transitions, client.post(url, json={"action": "start"}, headers={
        **officer, "If-Match": view.headers["ETag"]}), 412)
    check("POST", "/api/v1/reports/{report_id}/comments", client.post(
        f"/api/v1/reports/{report_id}/comments", json={"text": "Đang xử lý", "public": True}, headers=officer), 201)
    form = {"action": "resolve", "version": str(started.get_json()["version"]), "note": "Đã thu gom",
            "photos": [(io.BytesIO((PHOTOS / "jpg/orientation/landscape_3.jpg").read_bytes()), "done.jpg")]}
    body, boundary = multipart(form)
    check("POST", transitions, client.post(url, data=body, headers=officer,
                                           content_type=f"multipart/form-data; boundary={boundary}"), 200)
    run_jobs()
    feedback = f"/api/v1/reports/{report_id}/feedback"
    check("POST", "/api/v1/reports/{report_id}/feedback", client.post(feedback, json={"rating": 4}), 401)
    check("POST", "/api/v1/reports/{report_id}/feedback", client.post(feedback, json={"rating": 9}, headers=mine), 422)
    check("POST", "/api/v1/reports/{report_id}/feedback", client.post(
        feedback, json={"rating": 4, "comment": "Cảm ơn"}, headers=mine), 201)
    check("POST", "/api/v1/reports/{report_id}/feedback", client.post(feedback, json={"rating": 4}, headers=mine), 409)
    check("GET", "/api/v1/agency/events", client.get("/api/v1/agency/events?limit=5", headers=officer), 200)
    check("POST", "/api/v1/reports/{report_id}/unlink", client.post(f"/api/v1/reports/{report_id}/unlink",
                                                                   headers=officer), 409)

    # The public surfaces.
    box = "107.5,16.4,107.7,16.5"
    points = check("GET", "/api/v1/public/reports", client.get(f"/api/v1/public/reports?bbox={box}&status=closed"),
                   200)
    assert points.get_json()["features"]
    check("GET", "/api/v1/public/reports", client.get(f"/api/v1/public/reports?bbox={box}&zoom=10&status=closed"),
          200)
    check("GET", "/api/v1/public/reports", client.get("/api/v1/public/reports", headers={
        "If-None-Match": points.headers["ETag"]}, query_string={"bbox": box, "status": "closed"}), 304)
    check("GET", "/api/v1/public/reports/{report_id}", client.get(f"/api/v1/public/reports/{code}"), 200)
    x, y = _tile(*CITADEL, 16)
    tile = check("GET", "/api/v1/public/tiles/{z}/{x}/{y}.mvt",
                 client.get(f"/api/v1/public/tiles/16/{x}/{y}.mvt?status=closed"), 200)
    assert tile.data
    check("GET", "/api/v1/public/tiles/{z}/{x}/{y}.mvt", client.get("/api/v1/public/tiles/16/0/0.mvt"), 204)
    photos = db.session.scalars(select(Photo).where(Photo.report_id == report_id).order_by(Photo.id)).all()
    for size, headers in (("display", {}), ("thumb", {}), ("original", officer)):
        answer = check("GET", "/api/v1/photos/{photo_id}/{size}",
                       client.get(f"/api/v1/photos/{photos[0].id}/{size}", headers=headers), 200)
        answer.close()
    check("GET", "/api/v1/photos/{photo_id}/{size}", client.get(f"/api/v1/photos/{photos[0].id}/original"), 401)
    for group_by in ("agency", "category", "ward", "month"):
        check("GET", "/api/v1/public/metrics", client.get(f"/api/v1/public/metrics?group_by={group_by}"), 200)
    check("GET", "/api/v1/public/metrics.csv", client.get("/api/v1/public/metrics.csv?group_by=ward"), 200)
    check("GET", "/api/v1/services", client.get("/api/v1/services"), 200)

    # Log-in and log-out.
    login = {"username": "hepco.admin", "password": "hue-demo-2026"}
    token = check("POST", "/api/v1/auth/token", client.post("/api/v1/auth/token", json=login), 201).get_json()
    check("POST", "/api/v1/auth/token", client.post("/api/v1/auth/token", data="{", content_type="application/json"),
          400)
    check("POST", "/api/v1/auth/token", client.post("/api/v1/auth/token", data="x", content_type="text/plain"), 415)
    agency_admin = {"Authorization": f"Bearer {token['token']}"}
    check("GET", "/api/v1/agency/officers", client.get("/api/v1/agency/officers", headers=agency_admin), 200)
    new = {"username": "hepco.new", "display_name": "Cán bộ mới", "password": "mot-mat-khau-dai"}
    check("POST", "/api/v1/agency/officers", client.post("/api/v1/agency/officers", json=new, headers=agency_admin),
          201)
    check("POST", "/api/v1/agency/officers/{username}/disable", client.post(
        "/api/v1/agency/officers/hepco.new/disable", headers=agency_admin), 200)
    check("DELETE", "/api/v1/auth/token", client.delete("/api/v1/auth/token", headers=agency_admin), 204)
    check("DELETE", "/api/v1/auth/token", client.delete("/api/v1/auth/token", headers=agency_admin), 401)

    # Open311.
    key, _ = open311.issue_key("openapi test", actor=Actor("test"))
    db.session.flush()
    form = {"api_key": key, "service_code": "road_damage", "lat": str(CITADEL[0]), "long": str(CITADEL[1]),
            "description": "Ổ gà", "media": [(io.BytesIO(NOKIA.read_bytes()), "nokia.jpg")]}
    body, boundary = multipart(form)
    check("POST", "/open311/v2/requests.{fmt}", client.post("/open311/v2/requests.json", data=body,
                                                            content_type=f"multipart/form-data; boundary={boundary}"),
          200)
    for fmt in ("json", "xml"):
        check("GET", "/open311/v2/requests.{fmt}", client.get(f"/open311/v2/requests.{fmt}"), 200)
        check("GET", "/open311/v2/requests/{request_id}.{fmt}", client.get(f"/open311/v2/requests/{code}.{fmt}"), 200)
        check("GET", "/open311/v2/services/{service_code}.{fmt}", client.get(f"/open311/v2/services/x.{fmt}"), 404)
        check("GET", "/open311/v2/discovery.{fmt}", client.get(f"/open311/v2/discovery.{fmt}"), 200)
        check("GET", "/open311/v2/services.{fmt}", client.get(f"/open311/v2/services.{fmt}"), 200)
        check("GET", "/open311/v2/tokens/{token}.{fmt}", client.get(f"/open311/v2/tokens/{code}.{fmt}"), 200)

    # The admins' lists and a change.
    admin = staff_headers("admin")
    for path in ("agencies", "agencies/HEPCO", "categories", "category-groups", "routing-rules", "areas",
                 "open311-keys", "accounts", "audit"):
        template = "/api/v1/admin/agencies/{code}" if path == "agencies/HEPCO" else f"/api/v1/admin/{path}"
        check("GET", template, client.get(f"/api/v1/admin/{path}", headers=admin), 200)
    check("GET", "/api/v1/admin/agencies", client.get("/api/v1/admin/agencies", headers=officer), 403)
    check("POST", "/api/v1/admin/open311-keys", client.post("/api/v1/admin/open311-keys", json={"name": "app"},
                                                            headers=admin), 201)
    check("GET", "/healthz", client.get("/healthz"), 200)
    check("GET", "/metrics", client.get("/metrics"), 200)
    check("GET", "/api/docs", client.get("/api/docs"), 200)
    assert len(check.seen) > 60


# Values schemathesis seldom makes: integers beyond PostgreSQL's, NUL characters, dates at the ends of time.
BIG = str(2**70)
ODD_REQUESTS = [
    ("GET", "/api/v1/photos/{photo_id}/{size}", f"/api/v1/photos/{BIG}/display", 404),  # was 422
    ("GET", "/api/v1/photos/{photo_id}/{size}", f"/api/v1/photos/{2**63}/thumb", 404),  # was 422
    ("GET", "/api/v1/photos/{photo_id}/{size}", f"/api/v1/photos/{BIG}/original", 404),
    ("GET", "/api/v1/reports/{report_id}", f"/api/v1/reports/{BIG}", 404),
    ("GET", "/api/v1/reports/{report_id}", "/api/v1/reports/%00", 404),
    ("GET", "/api/v1/public/reports/{report_id}", "/api/v1/public/reports/A%00", 404),
    ("GET", "/api/v1/agency/reports/{report_id}", f"/api/v1/agency/reports/{BIG}", 404),
    ("POST", "/api/v1/reports/{report_id}/comments", f"/api/v1/reports/{BIG}/comments", 404),
    ("GET", "/api/v1/public/tiles/{z}/{x}/{y}.mvt", f"/api/v1/public/tiles/3/{BIG}/1.mvt", 404),
    ("GET", "/api/v1/public/reports", f"/api/v1/public/reports?cursor={BIG}", 422),
    ("GET", "/api/v1/public/reports", "/api/v1/public/reports?category=%00", 422),
    ("GET", "/api/v1/public/reports", "/api/v1/public/reports?from=9999-12-31&to=0001-01-01", 422),
    ("GET", "/api/v1/agency/reports", "/api/v1/agency/reports?q=%00", 422),
    ("GET", "/api/v1/agency/reports", "/api/v1/agency/reports?from=9999-12-31T23:59:59-23:59", 200),
    ("GET", "/api/v1/agency/events", f"/api/v1/agency/events?since={BIG}", 422),
    ("GET", "/api/v1/public/metrics", "/api/v1/public/metrics?from=0001-01-01", 422),
    ("GET", "/open311/v2/tokens/{token}.{fmt}", "/open311/v2/tokens/%00.json", 404),  # was 422
    ("GET", "/open311/v2/services/{service_code}.{fmt}", "/open311/v2/services/%00.xml", 404),  # was 422
    ("GET", "/open311/v2/requests.{fmt}", "/open311/v2/requests.json?service_code=%00", 400),  # was 422
    ("GET", "/open311/v2/requests.{fmt}", "/open311/v2/requests.json?service_request_id=%00", 400),  # was 422
    ("GET", "/open311/v2/requests.{fmt}", "/open311/v2/requests.json?end_date=9999-12-31T23:59:59", 200),
    ("GET", "/api/v1/admin/agencies/{code}", "/api/v1/admin/agencies/%00", 404),  # was 422
    ("POST", "/api/v1/admin/accounts/{username}/enable", "/api/v1/admin/accounts/%00/enable", 404),  # was 422
    ("POST", "/api/v1/agency/officers/{username}/enable", "/api/v1/agency/officers/%00/enable", 404),
]


@pytest.mark.parametrize("method, template, url, status", ODD_REQUESTS, ids=[r[2] for r in ODD_REQUESTS])
def test_odd_values_get_the_documented_answers(client, document, db_session, method, template, url, status):
    """Ids beyond PostgreSQL's integers and NUL characters are unknown names (404) or invalid values (422, Open311
    400), as documented; never the database's own refusal (422 `invalid_value`) where the document says
    nothing of it."""
    who = "admin" if "/admin/" in template else "hepco.admin" if "/officers/" in template else "hepco.officer"
    response = client.open(url, method=method, json={"text": "x"} if method == "POST" else None,
                           headers=staff_headers(who))
    Conformance(document)(method, template, response, status)
    response.close()

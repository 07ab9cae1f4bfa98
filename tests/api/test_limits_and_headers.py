"""Limits and headers of a public service: body and page limits, CORS for configured origins only, the
security headers of pages and API answers (a CSP without inline script or style, nosniff, no framing)."""

from __future__ import annotations

import re

import pytest

from hue_reports.config import ConfigError, load_config
from hue_reports.schemas.queue import LIMIT_MAX
from hue_reports.security import tile_source
from hue_reports.services.audit import PAGE_MAX
from hue_reports.services.public import FEATURES_MAX
from hue_reports.services.reports import FEED_MAX
from tests.support import error, staff_headers

PAGES = ["/", "/stats", "/report", "/console/login"]
API = ["/api/v1/services", "/api/v1/public/reports", "/healthz", "/api/v1/openapi.json", "/api/v1/nothing-here",
       "/api/v1/public/metrics.csv", "/open311/v2/services.json"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_a_csp_without_inline_code_and_the_tile_server_for_images(client, db_session, path):
    response = client.get(path)
    assert response.status_code == 200
    policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'" and policy["connect-src"] == "'self'"
    assert policy["img-src"].split() == ["'self'", "data:", "blob:", "https://tile.openstreetmap.org"]
    assert policy["object-src"] == "'none'" and policy["base-uri"] == "'self'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in ("same-origin", "no-referrer")
    framing = "'none'" if path.startswith(("/console", "/report")) else "'self'"
    assert policy["frame-ancestors"] == framing
    assert response.headers["X-Frame-Options"] == ("DENY" if framing == "'none'" else "SAMEORIGIN")
    html = response.get_data(as_text=True)
    # What the policy would block, so that the pages never rely on it: inline script, style, handlers.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", html, re.IGNORECASE)
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("path", API)
def test_api_answers_are_nosniff_and_never_framed_or_run(client, db_session, path):
    response = client.get(path)
    assert response.status_code in (200, 404)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_tile_servers_origin_in_the_policy(make_app):
    assert tile_source("https://tile.openstreetmap.org/{z}/{x}/{y}.png") == "https://tile.openstreetmap.org"
    assert tile_source("https://{s}.tile.example.vn:8443/{z}/{x}/{y}.png") == "https://*.tile.example.vn:8443"
    assert tile_source("/tiles/{z}/{x}/{y}.png") is None  # served here: 'self' covers it
    app = make_app(MAP_TILE_URL="https://{s}.maps.hue.gov.vn/{z}/{x}/{y}.png")
    with app.app_context():
        policy = app.test_client().get("/stats").headers["Content-Security-Policy"]
    assert "img-src 'self' data: blob: https://*.maps.hue.gov.vn;" in policy


def test_photos_redirected_to_presigned_urls_are_allowed_images(make_app):
    """With S3 presigned URLs a photo is a redirect to the object store: the pages must let images load
    from its origin (browsers check the policy again after a redirect), and only then."""
    s3 = {"STORAGE_BACKEND": "s3", "S3_BUCKET": "photos", "S3_ENDPOINT_URL": "https://s3.example.vn:9000",
          "S3_ACCESS_KEY_ID": "test-key", "S3_SECRET_ACCESS_KEY": "test-secret", "S3_REGION": "us-east-1",
          "S3_ADDRESSING_STYLE": "path"}
    for presign, allowed in ((600, True), (0, False)):
        app = make_app(**s3, S3_PRESIGN_SECONDS=presign, MAP_TILE_URL="/tiles/{z}/{x}/{y}.png")
        with app.app_context():
            policy = app.test_client().get("/stats").headers["Content-Security-Policy"]
        expected = "img-src 'self' data: blob:" + (" https://s3.example.vn:9000;" if allowed else ";")
        assert expected in policy, policy


def test_without_configured_origins_the_api_allows_no_other_site(client, db_session):
    response = client.get("/api/v1/services", headers={"Origin": "https://app.example.vn"})
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options("/api/v1/reports", headers={"Origin": "https://app.example.vn",
                                                           "Access-Control-Request-Method": "POST"})
    error(preflight, 403, "cors_origin_refused")
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_a_configured_origin_may_call_the_api_without_credentials(make_app, db_session):
    app = make_app(CORS_ORIGINS="https://app.example.vn, https://open.data.vn/")
    client = app.test_client()
    origin = {"Origin": "https://app.example.vn"}
    preflight = client.options("/api/v1/reports", headers={
        **origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "idempotency-key"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.vn"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Idempotency-Key" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    answer = client.get("/api/v1/services", headers=origin)
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example.vn"
    assert "Origin" in answer.headers["Vary"] and "Retry-After" in answer.headers["Access-Control-Expose-Headers"]
    assert client.get("/open311/v2/services.json", headers={"Origin": "https://open.data.vn"}).headers[
        "Access-Control-Allow-Origin"] == "https://open.data.vn"
    other = client.get("/api/v1/services", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    page = client.get("/", headers=origin)  # only the API: never the pages, the console or its forms
    assert "Access-Control-Allow-Origin" not in page.headers
    for response in (preflight, answer, page):
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_any_origin_is_a_star_and_still_without_credentials(make_app, db_session):
    client = make_app(CORS_ORIGINS="*").test_client()
    answer = client.get("/api/v1/services", headers={"Origin": "https://anyone.example"})
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in answer.headers


@pytest.mark.parametrize("origins", ["app.example.vn", "https://app.example.vn/path", "ftp://x.vn"])
def test_a_cors_origin_that_is_not_an_origin_is_refused_at_start(origins):
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        load_config({"HUE_ENV": "testing", "CORS_ORIGINS": origins})


@pytest.mark.parametrize("path, maximum, who", [
    ("/api/v1/public/reports", FEATURES_MAX, None),
    ("/api/v1/agency/reports", LIMIT_MAX, "hepco.officer"),
    ("/api/v1/agency/events", FEED_MAX, "hepco.officer"),
    ("/api/v1/admin/audit", PAGE_MAX, "admin"),
])
def test_every_paged_list_refuses_a_page_over_its_maximum(client, db_session, path, maximum, who):
    headers = staff_headers(who) if who else {}
    assert client.get(f"{path}?limit={maximum}", headers=headers).status_code == 200
    for limit in (maximum + 1, 0, -1, 10**30):
        body = error(client.get(f"{path}?limit={limit}", headers=headers), 422, "validation_error")
        assert "limit" in body["fields"], (path, limit)


def test_a_json_body_over_64_kb_is_a_413_and_deep_nesting_a_400(client, db_session):
    big = b'{"username": "admin", "password": "' + b"x" * 70_000 + b'"}'
    error(client.post("/api/v1/auth/token", data=big, content_type="application/json"), 413, "payload_too_large")
    deep = b'{"a": ' * 5_000 + b"1" + b"}" * 5_000
    response = client.post("/api/v1/auth/token", data=deep, content_type="application/json")
    error(response, 400, "malformed_body")

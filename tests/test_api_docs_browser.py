"""/api/docs in real headless Chromium against a real server on 127.0.0.1: the vendored Swagger UI loads the
OpenAPI document and shows every operation, with no script error, no CSP violation (the page is sent with
`script-src 'self'`: the initializer is a static file) and nothing fetched from elsewhere (tests/conftest.py:
`visit`)."""

from __future__ import annotations

import pytest

from tests.pages.browser import LiveServer


@pytest.fixture(scope="module")
def live(app):
    server = LiveServer(app)
    yield server
    server.stop()


def test_swagger_ui_shows_every_operation_of_the_document(visit, live, client, artifacts):
    document = client.get("/api/v1/openapi.json").get_json()
    operations = sum(1 for item in document["paths"].values() for method in item if method != "parameters")
    tab = visit()
    page = tab.go("/api/docs")
    page.wait_for_selector(".opblock-summary")
    page.wait_for_function("(n) => document.querySelectorAll('.opblock').length === n", arg=operations)
    assert page.locator(".btn.authorize").count() == 1  # (the bearer scheme: a token for "Try it out")
    assert "hue-reports" in page.locator(".info .title").inner_text()
    # An operation opens with its parameters and answers (the one error shape among them).
    operation = page.locator(".opblock.opblock-get", has=page.locator(
        ".opblock-summary-path[data-path='/api/v1/reports/{report_id}']"))
    operation.locator(".opblock-summary").click()
    answers = operation.locator(".responses-table").first
    answers.wait_for()
    assert {"200", "403", "404", "503"} <= set(answers.locator(".response-col_status").all_inner_texts())
    tab.shot("api-docs")

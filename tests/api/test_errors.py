"""Every 4xx/5xx answer has the one JSON error shape, including Flask's own errors."""

import marshmallow as ma
import pytest

from hue_reports.devstack import free_port



def _assert_error(response, status, code):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


def test_unknown_path_is_a_json_404(client):
    error = _assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    assert error["message_vi"] == "Không tìm thấy."
    assert error["fields"] == {}


def test_wrong_method_is_a_json_405_with_allow(client):
    response = client.delete("/api/v1/services")
    _assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_oversized_body_is_a_json_413(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = client.post("/api/v1/reports", data=b"x" * (limit + 1), content_type="application/octet-stream")
    _assert_error(response, 413, "payload_too_large")


def test_an_oversized_declared_length_is_refused_before_the_body_is_read(client):
    """The declared Content-Length alone decides: a client is stopped before it sends 60 MB."""
    response = client.post("/api/v1/reports", data=b"tiny", content_type="application/octet-stream",
                           environ_overrides={"CONTENT_LENGTH": str(10**12)})
    _assert_error(response, 413, "payload_too_large")


@pytest.fixture
def probe_app(make_app):
    """An app with probe routes that fail in the ways real handlers can."""
    app = make_app()

    @app.route("/probe/crash")
    def crash():
        raise RuntimeError("secret internal detail")

    @app.route("/probe/invalid")
    def invalid():
        raise ma.ValidationError({"phone": ["Not a Vietnamese phone number."]})

    return app


def test_an_unexpected_exception_is_a_json_500_without_details(probe_app):
    response = probe_app.test_client().get("/probe/crash")
    _assert_error(response, 500, "internal_error")
    assert "secret internal detail" not in response.get_data(as_text=True)


def test_a_validation_error_is_a_422_naming_the_field(probe_app):
    error = _assert_error(probe_app.test_client().get("/probe/invalid"), 422, "validation_error")
    assert error["fields"] == {"phone": ["Not a Vietnamese phone number."]}


def test_a_database_outage_is_a_503_to_retry_not_a_500(make_app):
    app = make_app(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x")  # nothing listens
    response = app.test_client().get("/api/v1/services")
    error = _assert_error(response, 503, "database_unavailable")
    assert error["message_vi"]
    assert response.headers["Retry-After"]


def test_the_openapi_document_uses_the_error_shape(client):
    document = client.get("/api/v1/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    assert "Error" in schemas and "error" in schemas["Error"]["properties"]


def test_the_error_fields_come_in_the_documented_order(client):
    body = client.get("/api/v1/nothing-here").get_data(as_text=True)
    assert body.index('"code"') < body.index('"message"') < body.index('"fields"')

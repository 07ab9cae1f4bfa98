"""GET /api/v1/services: what residents can report, in Vietnamese and English."""

from sqlalchemy import select

from hue_reports.models import Category


def test_lists_every_active_category_in_vietnamese_and_english(client, db_session):
    response = client.get("/api/v1/services")
    assert response.status_code == 200
    body = response.get_json()
    expected = {c.code: c for c in db_session.scalars(select(Category).where(Category.active))}
    assert body["count"] == len(expected) == len(body["services"])
    for service in body["services"]:
        category = expected[service["code"]]
        assert service["name"] == {"vi": category.name, "en": category.name_en}
        assert service["group"]["name"]["vi"] and service["group"]["name"]["en"]
        assert service["sla_working_hours"] == float(category.sla_hours)
    assert response.headers["Cache-Control"].startswith("public")


def test_vietnamese_is_sent_as_utf8_text_not_escapes(client, db_session):
    raw = client.get("/api/v1/services").get_data(as_text=True)
    assert "Đèn đường không sáng" in raw


def test_services_are_grouped_in_display_order(client, db_session):
    services = client.get("/api/v1/services").get_json()["services"]
    groups = [s["group"]["code"] for s in services]
    runs = [g for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
    assert len(runs) == len(set(runs)), "each group's services come together"


def test_an_inactive_category_is_not_listed(client, db_session):
    category = db_session.scalars(select(Category).where(Category.code == "noise")).one()
    category.active = False
    db_session.commit()
    codes = {s["code"] for s in client.get("/api/v1/services").get_json()["services"]}
    assert "noise" not in codes and "road_damage" in codes


def test_the_openapi_document_describes_the_services_route(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert "get" in document["paths"]["/api/v1/services"]


def test_the_openapi_document_describes_the_multipart_submission(client):
    operation = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/reports"]["post"]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["photos"]["items"]["format"] == "binary"
    assert {"category", "description", "photos"} <= set(schema["required"])
    assert {"201", "413", "415", "422", "429"} <= set(operation["responses"])

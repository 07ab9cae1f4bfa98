"""Admins run the categories (/api/v1/admin/categories, `flask categories`): names in Vietnamese and English,
group, SLA (new reports only), active, and the extra inputs of the Open311 service definition."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from hue_reports.extensions import db
from hue_reports.models import AuditEntry, Category, CategoryGroup, Report
from hue_reports.services import calendar, routing
from tests.support import error, new_report, post_report, staff_headers, this_tests_audit

URL = "/api/v1/admin/categories"
ATTRIBUTES = [
    {"code": "depth", "datatype": "number", "required": True, "description": "Độ sâu ổ gà (cm)",
     "description_en": "Depth of the pothole (cm)", "order": 2},
    {"code": "lanes", "datatype": "singlevaluelist", "description": "Số làn bị ảnh hưởng", "order": 1,
     "values": [{"key": "1", "name": "Một làn", "name_en": "One lane"}, {"key": "all", "name": "Cả đường"}]},
]
NEW = {"code": "sinkhole", "group": "infrastructure", "name": "Sụt lún mặt đường", "name_en": "Sinkhole",
       "sla_hours": 4, "urgent": True, "keywords": ["sụt lún", "hố sụt"], "attributes": ATTRIBUTES}



def group_code() -> str:
    return db.session.scalar(select(CategoryGroup.code).order_by(CategoryGroup.sort_order).limit(1))


def test_a_new_category_is_offered_to_residents_and_open311_clients_with_its_attributes(client, admin):
    group = group_code()
    response = client.post(URL, json={**NEW, "group": group}, headers=admin)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["code"], body["group"], body["sla_hours"], body["urgent"]) == ("sinkhole", group, 4.0, True)
    services = {s["code"]: s for s in client.get("/api/v1/services").get_json()["services"]}
    assert services["sinkhole"]["name"] == {"vi": "Sụt lún mặt đường", "en": "Sinkhole"}
    assert services["sinkhole"]["sla_working_hours"] == 4
    definition = client.get("/open311/v2/services/sinkhole.json").get_json()
    assert [a["code"] for a in definition["attributes"]] == ["lanes", "depth"]  # by `order`
    lanes = definition["attributes"][0]
    assert lanes["datatype"] == "singlevaluelist" and lanes["values"] == [
        {"key": "1", "name": "Một làn"}, {"key": "all", "name": "Cả đường"}]
    assert definition["attributes"][1]["required"] is True
    listing = client.get("/open311/v2/services.json").get_json()
    assert next(s for s in listing if s["service_code"] == "sinkhole")["metadata"] is True
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.object_key == "sinkhole",
                                                                 this_tests_audit())).all()
    assert entry.action == "category.create" and entry.after["attributes"][0]["code"] == "depth"


def test_a_deactivated_category_is_no_longer_offered_and_comes_back(client, admin):
    response = client.patch(f"{URL}/noise", json={"active": False}, headers=admin)
    assert response.status_code == 200 and response.get_json()["active"] is False
    codes = {s["code"] for s in client.get("/api/v1/services").get_json()["services"]}
    assert "noise" not in codes
    refused = post_report(client, category="noise")
    assert refused.status_code == 422 and "category" in refused.get_json()["error"]["fields"]
    listed = {c["code"]: c for c in client.get(URL, headers=admin).get_json()["categories"]}
    assert listed["noise"]["active"] is False  # admins still see it
    client.patch(f"{URL}/noise", json={"active": True}, headers=admin)
    assert "noise" in {s["code"] for s in client.get("/api/v1/services").get_json()["services"]}


def test_a_new_sla_counts_for_new_reports_only(client, admin):
    before = new_report("road_damage")
    routing.route(before.id, detect_duplicates=False)
    db.session.refresh(before)
    old_due = before.due_at
    response = client.patch(f"{URL}/road_damage", json={"sla_hours": 4}, headers=admin)
    assert response.status_code == 200 and response.get_json()["sla_hours"] == 4.0
    after = new_report("road_damage", submitted_at=before.submitted_at)
    routing.route(after.id, detect_duplicates=False)
    db.session.refresh(after)
    db.session.refresh(before)
    assert before.due_at == old_due  # the deadline already given stays
    expected = calendar.city_calendar().add_working_time(after.submitted_at, 4)
    assert after.due_at == expected and after.due_at < old_due
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.object_key == "road_damage",
                                                               this_tests_audit())).one()
    assert (entry.before["sla_hours"], entry.after["sla_hours"]) == (52.5, 4.0)


@pytest.mark.parametrize("sla", [0, -1, 0.001, "abc", True, None, 100000])
def test_an_sla_of_zero_or_less_is_refused(client, admin, sla):
    body = error(client.patch(f"{URL}/road_damage", json={"sla_hours": sla}, headers=admin), 422, "validation_error")
    assert "sla_hours" in body["fields"]
    created = client.post(URL, json={**NEW, "group": group_code(), "sla_hours": sla}, headers=admin)
    assert created.status_code == 422 and "sla_hours" in created.get_json()["error"]["fields"]
    db.session.expire_all()
    assert db.session.scalar(select(Category.sla_hours).where(Category.code == "road_damage")) == 52.5
    assert db.session.scalar(select(Category.id).where(Category.code == "sinkhole")) is None


@pytest.mark.parametrize("attributes, where", [
    ([{"code": "x", "datatype": "singlevaluelist", "description": "Chọn"}], "values"),
    ([{"code": "x", "datatype": "string", "description": "Nhập", "values": [{"key": "a", "name": "A"}]}], "values"),
    ([{"code": "x", "datatype": "colour", "description": "Màu"}], "datatype"),
    ([{"code": "x y", "datatype": "string", "description": "Nhập"}], "code"),
    ([{"code": "x", "datatype": "string"}], "description"),
    ([{"code": "x", "datatype": "string", "description": "a"}, {"code": "x", "datatype": "text",
                                                                 "description": "b"}], None),
])
def test_bad_attributes_are_refused_naming_them(client, admin, attributes, where):
    body = error(client.patch(f"{URL}/road_damage", json={"attributes": attributes}, headers=admin), 422,
                 "validation_error")
    problems = json.dumps(body["fields"]["attributes"])
    assert where is None or where in problems, problems


def test_unknown_references_and_codes(client, admin):
    error(client.post(URL, json={**NEW, "group": "no_such_group"}, headers=admin), 422, "validation_error")
    error(client.post(URL, json={**NEW, "group": group_code(), "code": "road_damage"}, headers=admin), 409,
          "category_exists")
    error(client.post(URL, json={**NEW, "group": group_code(), "code": "Bad-Code"}, headers=admin), 422,
          "validation_error")
    error(client.patch(f"{URL}/no_such", json={"name": "x"}, headers=admin), 404, "category_not_found")
    error(client.patch(f"{URL}/road_damage", json={"code": "renamed"}, headers=admin), 422, "validation_error")


def test_groups_are_created_and_categories_moved_into_them(client, admin):
    created = client.post("/api/v1/admin/category-groups", json={"code": "heritage", "name": "Di sản",
                                                                 "name_en": "Heritage", "sort_order": 99},
                          headers=admin)
    assert created.status_code == 201, created.get_json()
    error(client.post("/api/v1/admin/category-groups", json={"code": "heritage", "name": "x", "name_en": "x"},
                      headers=admin), 409, "group_exists")
    moved = client.patch(f"{URL}/park_damage", json={"group": "heritage"}, headers=admin)
    assert moved.get_json()["group"] == "heritage"
    services = {s["code"]: s for s in client.get("/api/v1/services").get_json()["services"]}
    assert services["park_damage"]["group"]["code"] == "heritage"
    renamed = client.patch("/api/v1/admin/category-groups/heritage", json={"name_en": "Heritage sites"},
                           headers=admin)
    assert renamed.get_json()["name_en"] == "Heritage sites"
    assert [g["code"] for g in client.get("/api/v1/admin/category-groups", headers=admin).get_json()["groups"]][-1] \
        == "heritage"


def test_only_admins_change_categories(client, db_session):
    for username in ("ioc", "hepco.admin"):
        response = client.patch(f"{URL}/noise", json={"active": False}, headers=staff_headers(username))
        assert response.status_code == 403
    assert client.patch(f"{URL}/noise", json={"active": False}).status_code == 401
    assert db.session.scalar(select(Category.active).where(Category.code == "noise")) is True


def test_flask_categories_commands(app, db_session, tmp_path):
    attributes = tmp_path / "attributes.json"
    attributes.write_text(json.dumps(ATTRIBUTES), encoding="utf-8")
    runner = app.test_cli_runner()
    created = runner.invoke(args=["categories", "create", "sinkhole", "--group", group_code(), "--name",
                                  "Sụt lún", "--name-en", "Sinkhole", "--sla-hours", "7.5", "--keyword", "hố",
                                  "--attributes", str(attributes)])
    assert created.exit_code == 0, created.output
    assert "sinkhole" in created.output and "2 attribute(s)" in created.output
    zero = runner.invoke(args=["categories", "update", "sinkhole", "--sla-hours", "0"])
    assert zero.exit_code == 1 and "sla_hours" in zero.output and "More than 0" in zero.output
    off = runner.invoke(args=["categories", "update", "sinkhole", "--inactive", "--sla-hours", "15"])
    assert off.exit_code == 0, off.output
    category = db.session.scalars(select(Category).where(Category.code == "sinkhole")).one()
    db.session.refresh(category)
    assert (category.active, float(category.sla_hours), category.keywords) == (False, 15.0, ["hố"])
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.object_key == "sinkhole", this_tests_audit())
                                 .order_by(AuditEntry.id)).all()
    assert [(e.action, e.via) for e in entries] == [("category.create", "cli"), ("category.update", "cli")]
    listed = runner.invoke(args=["categories", "list"])
    assert "sinkhole" in listed.output and "INACTIVE" in listed.output


def test_reports_keep_their_category_when_it_is_deactivated(client, admin):
    report = new_report("noise")
    routing.route(report.id, detect_duplicates=False)
    client.patch(f"{URL}/noise", json={"active": False}, headers=admin)
    db.session.expire_all()
    stored = db.session.get(Report, report.id)
    assert stored.category.code == "noise" and stored.status == "routed"
    assert stored.due_at - stored.submitted_at > timedelta(0)

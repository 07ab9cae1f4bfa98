"""Open311 GeoReport v2 under /open311/v2/: the spec's own example documents (JSON and XML) against ours,
submissions through intake with an api_key, the service request queries, and the spec's error lists."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from hue_reports.models import (AdminArea, Agency, Category, IdempotencyKey, Photo, Report, ReportContact,
                                ReportEvent)
from hue_reports.services import audit, open311, routing
from tests.support import CITADEL, NOKIA, PHOTOS, multipart, new_report, photo_with_gps

HUE = ZoneInfo("Asia/Ho_Chi_Minh")
TEST_ACTOR = audit.Actor("test")
W3C = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+07:00$")

# The spec's example documents (http://wiki.open311.org/GeoReport_v2), as published.
SPEC_DISCOVERY_JSON = """{"changeset":"2011-04-05T17:48:34Z",
 "contact":"You can email or call for assistance api@dc.gov +1 (555) 555-5555",
 "key_service":"You can request a key here: http://api.dc.gov/open311/keys",
 "endpoints":[{"specification":"http://wiki.open311.org/GeoReport_v2","url":"http://open311.dc.gov/v2",
   "changeset":"2011-04-20T17:48:34Z","type":"production","formats":["text/xml","application/json"]}]}"""
SPEC_DISCOVERY_XML = """<?xml version="1.0" encoding="utf-8"?>
<discovery>
  <changeset>2011-04-05T17:48:34Z</changeset>
  <contact>You can email or call for assistance api@dc.gov +1 (555) 555-5555</contact>
  <key_service>You can request a key here: http://api.dc.gov/open311/keys</key_service>
  <endpoints>
    <endpoint>
      <specification>http://wiki.open311.org/GeoReport_v2</specification>
      <url>http://open311.dc.gov/v2</url>
      <changeset>2011-04-20T17:48:34Z</changeset>
      <type>production</type>
      <formats><format>text/xml</format><format>application/json</format></formats>
    </endpoint>
  </endpoints>
</discovery>"""
SPEC_SERVICES_JSON = """[{"service_code":"001","service_name":"Cans left out 24x7",
 "description":"Garbage or recycling cans that have been left out for more than 24 hours after collection. \
Violators will be cited.",
 "metadata":true,"type":"realtime","keywords":"lorem, ipsum, dolor","group":"sanitation"}]"""
SPEC_SERVICES_XML = """<?xml version="1.0" encoding="utf-8"?>
<services>
  <service>
    <service_code>001</service_code>
    <service_name>Cans left out 24x7</service_name>
    <description>Garbage or recycling cans that have been left out for more than 24 hours after collection.
      Violators will be cited.</description>
    <metadata>true</metadata>
    <type>realtime</type>
    <keywords>lorem, ipsum, dolor</keywords>
    <group>sanitation</group>
  </service>
</services>"""
SPEC_DEFINITION_JSON = """{"service_code":"DMV66","attributes":[{"variable":true,"code":"WHISHETN",
 "datatype":"singlevaluelist","required":true,"datatype_description":null,"order":1,
 "description":"What is the ticket/tag/DL number?",
 "values":[{"key":123,"name":"Ford"},{"key":124,"name":"Chrysler"}]}]}"""
SPEC_DEFINITION_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_definition>
  <service_code>DMV66</service_code>
  <attributes>
    <attribute>
      <variable>true</variable>
      <code>WHISHETN</code>
      <datatype>singlevaluelist</datatype>
      <required>true</required>
      <datatype_description></datatype_description>
      <order>1</order>
      <description>What is the ticket/tag/DL number?</description>
      <values>
        <value><key>123</key><name>Ford</name></value>
        <value><key>124</key><name>Chrysler</name></value>
      </values>
    </attribute>
  </attributes>
</service_definition>"""
SPEC_POST_JSON = """[{"service_request_id":293944,"service_notice":"The City will inspect and require the \
responsible party to correct within 24 hours and/or issue a Correction Notice or Notice of Violation of the \
Public Works Code","account_id":null}]"""
SPEC_POST_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_requests>
  <request>
    <service_request_id>293944</service_request_id>
    <service_notice>The City will inspect and require the responsible party to correct within 24 hours</service_notice>
    <account_id/>
  </request>
</service_requests>"""
SPEC_TOKEN_JSON = """[{"service_request_id":638344,"token":12345}]"""
SPEC_TOKEN_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_requests><request><service_request_id>638344</service_request_id><token>12345</token></request>
</service_requests>"""
SPEC_REQUESTS_JSON = """[{"service_request_id":638344,"status":"closed","status_notes":"Duplicate request.",
 "service_name":"Sidewalk and Curb Issues","service_code":"006","description":null,"agency_responsible":null,
 "service_notice":null,"requested_datetime":"2010-04-14T06:37:38-08:00",
 "updated_datetime":"2010-04-14T06:37:38-08:00","expected_datetime":"2010-04-15T06:37:38-08:00",
 "address":"8TH AVE and JUDAH ST","address_id":545483,"zipcode":94122,"lat":37.762221815,"long":-122.4651145,
 "media_url":"http://city.gov.s3.amazonaws.com/requests/media/638344.jpg"}]"""
SPEC_REQUESTS_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_requests>
  <request>
    <service_request_id>638344</service_request_id>
    <status>closed</status>
    <status_notes>Duplicate request.</status_notes>
    <service_name>Sidewalk and Curb Issues</service_name>
    <service_code>006</service_code>
    <description></description>
    <agency_responsible></agency_responsible>
    <service_notice></service_notice>
    <requested_datetime>2010-04-14T06:37:38-08:00</requested_datetime>
    <updated_datetime>2010-04-14T06:37:38-08:00</updated_datetime>
    <expected_datetime>2010-04-15T06:37:38-08:00</expected_datetime>
    <address>8TH AVE and JUDAH ST</address>
    <address_id>545483</address_id>
    <zipcode>94122</zipcode>
    <lat>37.762221815</lat>
    <long>-122.4651145</long>
    <media_url>http://city.gov.s3.amazonaws.com/requests/media/638344.jpg</media_url>
  </request>
</service_requests>"""
SPEC_ERRORS_JSON = """[{"code":403,"description":"Invalid api_key received -- can't proceed with create_request."}]"""
SPEC_ERRORS_XML = """<?xml version="1.0" encoding="utf-8"?>
<errors><error><code>403</code><description>Invalid api_key received -- can't proceed with create_request.</description>
</error></errors>"""

SCALAR = (str, int, float, type(None))
ATTRIBUTES = [
    {"variable": True, "code": "LANES", "datatype": "singlevaluelist", "required": True,
     "datatype_description": None, "order": 1, "description": "Số làn bị ảnh hưởng / Lanes affected",
     "values": [{"key": "1", "name": "Một làn / One lane"}, {"key": "all", "name": "Cả đường / Whole road"}]},
    {"variable": True, "code": "DEPTH", "datatype": "number", "required": False,
     "datatype_description": "cm", "order": 2, "description": "Độ sâu (cm) / Depth (cm)", "values": []},
]


def assert_json_like(ours, example, path="$"):
    """Same structure as the spec's example: the same keys, objects and lists where it has them,
    booleans where it has booleans, and scalars (or null) elsewhere."""
    if isinstance(example, dict):
        assert isinstance(ours, dict), path
        assert set(ours) == set(example), (path, set(ours) ^ set(example))
        for key, value in example.items():
            assert_json_like(ours[key], value, f"{path}.{key}")
    elif isinstance(example, list):
        assert isinstance(ours, list) and (ours or path != "$"), path  # (an empty answer would check nothing)
        for item in ours:
            assert_json_like(item, example[0], f"{path}[]")
    elif isinstance(example, bool):
        assert isinstance(ours, bool), path
    else:
        assert isinstance(ours, SCALAR) and not isinstance(ours, bool), (path, ours)


def assert_xml_like(ours: ET.Element, example: ET.Element, path=""):
    """The same element names in the same order (every repeated item shaped like the example's first)."""
    path = f"{path}/{example.tag}"
    assert ours.tag == example.tag, path
    example_children = list(example)
    if not example_children:
        assert len(ours) == 0, path
        return
    if len({c.tag for c in example_children}) == 1 and len(example_children) >= 1 and example.tag in (
            "services", "service_requests", "endpoints", "formats", "attributes", "values", "errors"):
        assert len(ours) > 0 or path.count("/") > 1, path  # (an empty answer would check nothing)
        for child in ours:
            assert_xml_like(child, example_children[0], path)
        return
    assert [c.tag for c in ours] == [c.tag for c in example_children], path
    for mine, theirs in zip(ours, example_children, strict=True):
        assert_xml_like(mine, theirs, path)


def get_json(client, path, expected=200, **params):
    response = client.get(f"/open311/v2/{path}.json", query_string=params)
    assert response.status_code == expected, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def get_xml(client, path, expected=200, **params) -> ET.Element:
    response = client.get(f"/open311/v2/{path}.xml", query_string=params)
    assert response.status_code == expected, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    return ET.fromstring(response.get_data())


def assert_errors(response, status, fmt="json") -> list[str]:
    """The spec's error list with `status` both as the HTTP status and as each error's code."""
    assert response.status_code == status, response.get_data(as_text=True)
    if fmt == "xml":
        root = ET.fromstring(response.get_data())
        assert_xml_like(root, ET.fromstring(SPEC_ERRORS_XML))
        assert root.findall("error") and all(e.findtext("code") == str(status) for e in root.findall("error"))
        return [e.findtext("description") for e in root.findall("error")]
    body = response.get_json()
    assert_json_like(body, json.loads(SPEC_ERRORS_JSON))
    assert body and all(e["code"] == status and e["description"] for e in body)
    return [e["description"] for e in body]


@pytest.fixture
def api_key(db_session, redis_conn) -> str:
    key, _ = open311.issue_key("Ứng dụng Hue-S thử nghiệm", actor=TEST_ACTOR)
    db_session.flush()
    return key


def post(client, api_key, *, fmt="json", photos=None, headers=None, **fields):
    """POST requests.{fmt} as multipart: a pothole at the Citadel with the Nokia photo as `media`."""
    form = {"api_key": api_key, "service_code": "road_damage", "lat": str(CITADEL[0]), "long": str(CITADEL[1]),
            "description": "Ổ gà lớn giữa đường", **fields}
    form = {k: v for k, v in form.items() if v is not None}
    if photos is None:
        photos = [(NOKIA.read_bytes(), "nokia.jpg")]
    if photos:
        form["media"] = [(io.BytesIO(data), name) for data, name in photos]
    body, boundary = multipart(form)
    return client.post(f"/open311/v2/requests.{fmt}", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}", headers=headers or {})


def created_code(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert_json_like(body, json.loads(SPEC_POST_JSON))
    assert len(body) == 1 and body[0]["account_id"] is None and body[0]["service_notice"]
    return body[0]["service_request_id"]


# --- discovery and services ---------------------------------------------------------------------------------

def test_discovery_is_the_spec_document_in_json_and_xml(client, db_session):
    body = get_json(client, "discovery")
    assert_json_like(body, json.loads(SPEC_DISCOVERY_JSON))
    endpoint = body["endpoints"][0]
    assert endpoint["url"] == "http://localhost/open311/v2"
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert set(endpoint["formats"]) == {"application/json", "text/xml"}
    assert_xml_like(get_xml(client, "discovery"), ET.fromstring(SPEC_DISCOVERY_XML))


def test_services_list_every_active_category_as_the_spec_shows(client, db_session):
    body = get_json(client, "services")
    assert_json_like(body, json.loads(SPEC_SERVICES_JSON))
    categories = {c.code: c for c in db_session.scalars(select(Category).where(Category.active))}
    assert {s["service_code"] for s in body} == set(categories)
    road = next(s for s in body if s["service_code"] == "road_damage")
    assert road["service_name"] == categories["road_damage"].name and road["type"] == "realtime"
    assert road["keywords"] == ", ".join(categories["road_damage"].keywords) and "ổ gà" in road["keywords"]
    assert road["group"] == categories["road_damage"].group.name
    assert road["metadata"] is False  # no attributes in Huế's data set

    root = get_xml(client, "services")
    assert_xml_like(root, ET.fromstring(SPEC_SERVICES_XML))
    assert [s.findtext("service_code") for s in root] == [s["service_code"] for s in body]
    assert {s.findtext("metadata") for s in root} == {"false"}
    assert "Đèn đường không sáng" in client.get("/open311/v2/services.xml").get_data(as_text=True)


def test_a_service_definition_gives_the_categorys_attributes(client, db_session):
    road = db_session.scalars(select(Category).where(Category.code == "road_damage")).one()
    road.attributes = ATTRIBUTES
    db_session.flush()
    assert next(s for s in get_json(client, "services") if s["service_code"] == "road_damage")["metadata"] is True

    body = get_json(client, "services/road_damage")
    assert_json_like(body, json.loads(SPEC_DEFINITION_JSON))
    assert body["service_code"] == "road_damage"
    assert [a["code"] for a in body["attributes"]] == ["LANES", "DEPTH"]
    assert body["attributes"][0]["values"] == [{"key": "1", "name": "Một làn / One lane"},
                                               {"key": "all", "name": "Cả đường / Whole road"}]
    assert body["attributes"][0]["required"] is True and body["attributes"][0]["order"] == 1

    root = get_xml(client, "services/road_damage")
    assert_xml_like(root, ET.fromstring(SPEC_DEFINITION_XML))
    assert [v.findtext("key") for v in root.find("attributes/attribute/values")] == ["1", "all"]
    assert root.findtext("attributes/attribute/variable") == "true"


def test_an_unknown_service_definition_is_404(client, db_session):
    assert_errors(client.get("/open311/v2/services/no_such_thing.json"), 404)
    assert_errors(client.get("/open311/v2/services/no_such_thing.xml"), 404, "xml")


def test_only_json_and_xml_exist(client, db_session):
    assert_errors(client.get("/open311/v2/services.csv"), 404)
    assert_errors(client.get("/open311/v2/services"), 404)
    assert_errors(client.get("/open311/v2/nothing.xml"), 404, "xml")
    assert_errors(client.get("/open311/v2/services/bad%01<code>.xml"), 404, "xml")  # still well-formed XML


def test_addresses_no_route_matches_answer_the_spec_error_list_too(client, db_session):
    """A path the catch-all cannot match (a newline in it: found by schemathesis) and a wrong method are
    still answered in Open311's error list, not in the app's JSON error shape."""
    assert_errors(client.get("/open311/v2/a%0Ab"), 404)
    assert_errors(client.get("/open311/v2/a%0Ab.xml"), 404, "xml")
    assert_errors(client.put("/open311/v2/services.json"), 405)


# --- submissions --------------------------------------------------------------------------------------------

def test_a_request_goes_through_intake_and_is_routed(client, db_session, api_key):
    response = post(client, api_key, first_name="Nguyễn", last_name="Văn An", phone="0912 345 678",
                    email="an@example.vn", device_id="open311-phone-1", address_string="23 Đặng Thái Thân",
                    account_id="42")
    code = created_code(response)
    assert response.headers["Location"].endswith(f"/open311/v2/requests/{code}.json")
    report = db_session.scalars(select(Report).where(Report.public_code == code)).one()
    assert report.channel == "open311" and report.status == "submitted"
    assert report.category.code == "road_damage" and report.description == "Ổ gà lớn giữa đường"
    assert report.address == "23 Đặng Thái Thân" and report.location_source == "client"
    assert [p.kind for p in report.photos] == ["evidence"]
    contact = db_session.get(ReportContact, report.id)
    assert (contact.name, contact.phone, contact.email, contact.device_id) == (
        "Nguyễn Văn An", "+84912345678", "an@example.vn", "open311-phone-1")

    routing.route(report.id, detect_duplicates=False)
    db_session.refresh(report)
    assert report.status == "routed" and report.agency is not None and report.due_at is not None

    raw = client.get(f"/open311/v2/requests/{code}.json").get_data(as_text=True)
    [item] = json.loads(raw)
    assert_json_like([item], json.loads(SPEC_REQUESTS_JSON))
    assert item["service_request_id"] == code and item["status"] == "open"
    assert item["agency_responsible"] == report.agency.name
    assert item["expected_datetime"] == report.due_at.astimezone(HUE).isoformat(timespec="seconds")
    assert W3C.match(item["requested_datetime"]) and W3C.match(item["updated_datetime"])
    assert (item["lat"], item["long"]) == CITADEL and item["address"] == "23 Đặng Thái Thân"
    assert item["media_url"] is None  # the derivative is not made yet
    for private in ("Văn An", "912345678", "an@example.vn", "open311-phone-1", "Nguyễn"):
        assert private not in raw


def test_the_answer_in_xml_is_the_spec_document(client, db_session, api_key):
    response = post(client, api_key, fmt="xml")
    assert response.status_code == 200 and response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data())
    assert_xml_like(root, ET.fromstring(SPEC_POST_XML))
    code = root.findtext("request/service_request_id")
    assert db_session.scalars(select(Report.channel).where(Report.public_code == code)).one() == "open311"


def test_attributes_are_checked_against_the_service_definition(client, db_session, api_key):
    road = db_session.scalars(select(Category).where(Category.code == "road_damage")).one()
    road.attributes = ATTRIBUTES
    db_session.flush()
    assert "attribute[LANES]" in assert_errors(post(client, api_key), 400)[0]
    assert "attribute[LANES]" in assert_errors(post(client, api_key, **{"attribute[LANES]": "9"}), 400)[0]
    assert "attribute[DEPTH]" in assert_errors(
        post(client, api_key, **{"attribute[LANES]": "all", "attribute[DEPTH]": "deep"}), 400)[0]
    code = created_code(post(client, api_key, **{"attribute[LANES]": "all", "attribute[DEPTH]": "15"}))
    description = db_session.scalars(select(Report.description).where(Report.public_code == code)).one()
    assert "Cả đường / Whole road" in description and "15" in description


def test_an_idempotency_key_retry_replays_the_same_request(client, db_session, api_key):
    headers = {"Idempotency-Key": "open311-retry-0123456789abcdef"}
    first = post(client, api_key, headers=headers, device_id="open311-phone-2")
    again = post(client, api_key, headers=headers, device_id="open311-phone-2")
    assert created_code(first) == created_code(again)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert db_session.scalar(select(func.count()).select_from(Report).where(Report.channel == "open311")) == 1
    # The same key from another client application is another request: keys belong to their application.
    other_key, _ = open311.issue_key("another app", actor=TEST_ACTOR)
    db_session.flush()
    third = post(client, other_key, headers=headers, device_id="open311-phone-2")
    assert created_code(third) != created_code(first) and "Idempotent-Replayed" not in third.headers
    assert db_session.scalar(select(func.count()).select_from(Report).where(Report.channel == "open311")) == 2


@pytest.mark.parametrize("query", ["service_request_id=%C2%B2", "start_date=9999-12-31T00:00:00Z",
                                   "end_date=0001-01-01T00:00:00Z", "service_request_id=" + ",".join(["1"] * 201),
                                   "service_request_id=x%00"])
def test_odd_queries_are_4xx_in_the_error_list(client, db_session, query):
    for fmt in ("json", "xml"):
        response = client.get(f"/open311/v2/requests.{fmt}?{query}")
        assert 400 <= response.status_code < 500 or (response.status_code == 200 and "%C2%B2" in query), \
            (query, fmt, response.status_code)
        if response.status_code != 200:
            assert_errors(response, response.status_code, fmt)


def test_a_missing_bad_or_revoked_api_key_is_403(client, db_session, api_key):
    assert_errors(post(client, None), 403)
    assert_errors(post(client, "not-a-key"), 403)
    assert_errors(post(client, "not-a-key", fmt="xml"), 403, "xml")
    key, row = open311.issue_key("revoked app", actor=TEST_ACTOR)
    open311.revoke_key(row.id, actor=TEST_ACTOR)
    db_session.flush()
    assert_errors(post(client, key), 403)
    assert db_session.scalar(select(func.count()).select_from(Report).where(Report.channel == "open311")) == 0


def test_a_wrong_jurisdiction_is_400(client, db_session, api_key):
    assert "jurisdiction_id" in assert_errors(post(client, api_key, jurisdiction_id="sf.gov"), 400)[0]
    assert_errors(client.get("/open311/v2/services.json?jurisdiction_id=sf.gov"), 400)
    assert_errors(client.get("/open311/v2/requests.xml?jurisdiction_id=sf.gov"), 400, "xml")
    assert get_json(client, "services", jurisdiction_id="hue.gov.vn")
    created_code(post(client, api_key, jurisdiction_id="hue.gov.vn"))


def test_an_unknown_or_missing_service_code_is_400(client, db_session, api_key):
    assert "service_code" in assert_errors(post(client, api_key, service_code="no_such_thing"), 400)[0]
    assert "service_code" in assert_errors(post(client, api_key, service_code=None), 400)[0]


def test_a_media_url_outside_the_trusted_prefixes_is_never_fetched(client, db_session, api_key):
    [description] = assert_errors(post(client, api_key, photos=[], media_url="http://169.254.169.254/x.jpg"), 400)
    assert "media_url" in description and "media" in description
    assert "photo" in assert_errors(post(client, api_key, photos=[]), 400)[0]


def test_lat_without_long_or_no_location_at_all_is_400(client, db_session, api_key):
    assert "lat and long" in assert_errors(post(client, api_key, long=None), 400)[0]
    assert "lat and long" in assert_errors(post(client, api_key, lat=None, address_string="phường Vỹ Dạ"), 400)[0]
    [description] = assert_errors(post(client, api_key, lat=None, long=None), 400)
    assert "lat and long" in description and "address_string" in description
    [description] = assert_errors(post(client, api_key, fmt="xml", lat=None, long=None, address_id="19789"), 400, "xml")
    assert description.startswith("address_id is not known")
    assert db_session.scalar(select(func.count()).select_from(Report).where(Report.channel == "open311")) == 0


def test_a_location_outside_the_city_is_intakes_error_in_the_spec_list(client, db_session, api_key):
    """Intake's ApiError keeps its status (422 outside_service_area) in the Open311 error list."""
    [description] = assert_errors(post(client, api_key, lat="21.0285", long="105.8542"), 422)
    assert description.startswith("outside_service_area:")
    [description] = assert_errors(post(client, api_key, phone="12345"), 422)
    assert description.startswith("phone:")


# --- an address instead of lat/long: the ward or commune it names -----------------------------------------

def current_ward(db_session, name: str) -> AdminArea:
    return db_session.scalars(select(AdminArea).where(AdminArea.name == name, AdminArea.valid_to.is_(None))).one()


def representative_point(db_session, ward: AdminArea) -> tuple[float, float]:
    """(lat, lon) of the ward's ST_PointOnSurface."""
    return tuple(db_session.execute(text(
        "SELECT ST_Y(ST_PointOnSurface(geom)), ST_X(ST_PointOnSurface(geom)) FROM admin_areas WHERE id = :id"),
        {"id": ward.id}).one())


def no_gps_photo() -> list[tuple[bytes, str]]:
    return [(PHOTOS.joinpath("jpg/orientation/landscape_1.jpg").read_bytes(), "landscape.jpg")]


def post_address(client, api_key, address, *, fmt="json", photos=None, **fields):
    """An address_string and no lat/long, with a photo without GPS (unless `photos`)."""
    return post(client, api_key, fmt=fmt, lat=None, long=None, address_string=address,
                photos=photos if photos is not None else no_gps_photo(), **fields)


def open311_count(db_session) -> int:
    return db_session.scalar(select(func.count()).select_from(Report).where(Report.channel == "open311"))


@pytest.mark.parametrize("address, ward_name", [
    ("12 Lê Lợi, Phường Thuận Hóa, Thành phố Huế", "Phường Thuận Hóa"),
    ("12 le loi, phuong thuan hoa, tp hue", "Phường Thuận Hóa"),  # without diacritics
    ("12 Lê Lợi, THUẬN HOÁ", "Phường Thuận Hóa"),  # no level word, capitals, the old tone mark placement
    ("12 Le Loi, Thuan Hoa Ward, Hue City", "Phường Thuận Hóa"),  # the English name
    ("kiệt 5 Nguyễn Sinh Cung, P.Vỹ Dạ", "Phường Vỹ Dạ"),
    ("Thôn 3, xã A Lưới 1", "Xã A Lưới 1"),  # not A Lưới 10, 2, ...: whole words
    ("đường Kim Long, phường Hương An", "Phường Hương An"),  # a named ward beats a street named like a ward
    ("QL1A, Chân Mây Lăng Cô", "Xã Chân Mây - Lăng Cô"),
])
def test_an_address_string_locates_the_request_in_the_ward_it_names(client, db_session, api_key, address,
                                                                     ward_name):
    ward = current_ward(db_session, ward_name)
    code = created_code(post_address(client, api_key, address))
    report = db_session.scalars(select(Report).where(Report.public_code == code)).one()
    assert report.ward_id == ward.id and report.address == address
    assert report.location_source == "address"
    point = db_session.execute(text("SELECT ST_Y(location), ST_X(location) FROM reports WHERE id = :id"),
                               {"id": report.id}).one()
    assert tuple(point) == pytest.approx(representative_point(db_session, ward), abs=1e-9)
    # The accuracy is honest: every point of the ward is within it (and not much more).
    farthest, area_m2 = db_session.execute(text("""
        SELECT max(ST_Distance(r.location::geography, d.geom::geography)), ST_Area(a.geom::geography)
        FROM reports r, admin_areas a, ST_DumpPoints(a.geom) AS d
        WHERE r.id = :report AND a.id = :ward GROUP BY a.geom"""), {"report": report.id, "ward": ward.id}).one()
    assert farthest <= report.location_accuracy_m <= farthest + 1
    assert report.location_accuracy_m > (area_m2 / 3.14159) ** 0.5  # more than the equal-area circle's radius


def test_a_photos_gps_places_the_request_when_the_address_agrees_or_names_no_ward(client, db_session, api_key):
    phu_xuan = current_ward(db_session, "Phường Phú Xuân")
    at_citadel = [(photo_with_gps(*CITADEL), "citadel.jpg")]
    helsinki = [(NOKIA.read_bytes(), "nokia.jpg")]  # (its GPS is in Helsinki)
    cases = [("Đại Nội, phường Phú Xuân", at_citadel, "exif", CITADEL),  # in the ward named: the precise point
             ("Đại Nội", at_citadel, "exif", CITADEL),  # no ward named: the photo's GPS, as without an address
             ("Đại Nội, phường Phú Xuân", helsinki, "address", representative_point(db_session, phu_xuan))]
    for address, photos, source, (lat, lon) in cases:
        code = created_code(post_address(client, api_key, address, photos=photos))
        report = db_session.scalars(select(Report).where(Report.public_code == code)).one()
        point = db_session.execute(text("SELECT ST_Y(location), ST_X(location) FROM reports WHERE id = :id"),
                                   {"id": report.id}).one()
        assert (report.location_source, report.ward_id) == (source, phu_xuan.id), address
        assert tuple(point) == pytest.approx((lat, lon), abs=1e-5), address
        assert (report.location_accuracy_m is None) == (source == "exif")


def test_an_address_only_request_in_json_and_xml_is_routed_to_the_wards_agency(client, db_session, api_key,
                                                                               run_jobs):
    """Through the very intake and routing job of every report: a ward's own category reaches the People's
    Committee of the ward the address names."""
    thuan_hoa, vy_da = current_ward(db_session, "Phường Thuận Hóa"), current_ward(db_session, "Phường Vỹ Dạ")
    first = created_code(post_address(client, api_key, "3 Lê Lợi, phường Thuận Hoá", service_code="sidewalk_damage",
                                      first_name="Trần", last_name="Thị Mai", phone="0905 111 222"))
    response = post_address(client, api_key, "Vy Da ward", fmt="xml", service_code="sidewalk_damage")
    assert response.status_code == 200 and response.mimetype == "text/xml", response.get_data(as_text=True)
    root = ET.fromstring(response.get_data())
    assert_xml_like(root, ET.fromstring(SPEC_POST_XML))
    second = root.findtext("request/service_request_id")
    run_jobs()

    reports = {r.public_code: r for r in db_session.scalars(select(Report).where(Report.public_code.in_(
        [first, second])))}
    for code, ward in ((first, thuan_hoa), (second, vy_da)):
        db_session.refresh(reports[code])
        report = reports[code]
        assert report.status == "routed" and report.channel == "open311" and report.ward_id == ward.id
        assert report.agency.code == f"UBND-{ward.code}" and report.duplicate_of_id is None
    # The answers give the representative point as the request's lat/long, and nothing about the reporter.
    raw = client.get(f"/open311/v2/requests/{first}.json").get_data(as_text=True)
    [item] = json.loads(raw)
    assert_json_like([item], json.loads(SPEC_REQUESTS_JSON))
    assert (item["lat"], item["long"]) == pytest.approx(representative_point(db_session, thuan_hoa), abs=1e-9)
    assert item["address"] == "3 Lê Lợi, phường Thuận Hoá"
    assert item["agency_responsible"] == reports[first].agency.name
    for private in ("Trần", "Thị Mai", "905111222"):
        assert private not in raw
    root = get_xml(client, f"requests/{second}")
    assert float(root.findtext("request/lat")) == pytest.approx(representative_point(db_session, vy_da)[0])


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("address, problem", [
    ("1 Lê Lợi", "address_not_found"),  # no ward named
    ("A Lưới", "address_not_found"),  # five communes start so: none is named
    ("Kim Long hoặc Vỹ Dạ", "address_ambiguous"),
    ("phường Thuận Hóa, gần phường Phú Xuân", "address_ambiguous"),
])
def test_an_address_naming_no_ward_or_two_is_400_and_writes_nothing(client, db_session, api_key, fmt, address,
                                                                    problem):
    [description] = assert_errors(post_address(client, api_key, address, fmt=fmt), 400, fmt)
    assert description.startswith(f"{problem}:") and "address_string:" in description
    assert "latitude and longitude" in description and "Phường An Cựu" in description
    if problem == "address_ambiguous":
        assert re.search(r"\((Phường|Xã) [^,]+, (Phường|Xã) [^)]+\)", description), description
    assert open311_count(db_session) == 0
    assert db_session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


# Residents still write the addresses of before the 2025 merger: an old district, town or city ("huyện Phú
# Vang", "thị xã Hương Trà") is far larger than the commune or ward of today named like it, and an old
# commune or ward ("xã Phú Diên", "phường Tứ Hạ") is no current one.
@pytest.mark.parametrize("address, ward_name", [
    ("xã Phú Diên, huyện Phú Vang", None),  # not Xã Phú Vang
    ("xã Phong Hiền, huyện Phong Điền", None),  # not Phường Phong Điền
    ("xã Lộc Bình, huyện Phú Lộc", None),  # not Xã Phú Lộc
    ("thi xa Huong Tra, phuong Tu Ha", None),  # not Phường Hương Trà (Tứ Hạ is no current ward)
    ("thôn 2, Phú Diên, H. Phú Vang, tỉnh Thừa Thiên Huế", None),  # an abbreviation, no ward named
    ("Phu Dien Commune, Phu Vang District", None),  # in English
    ("tổ 5, phường Tứ Hạ, Hương Trà", None),  # an unknown ward named: no bare name elsewhere instead
    ("thôn Diên Lộc, xã Phú Vang, huyện Phú Vang", "Xã Phú Vang"),  # the current commune named with its word
    ("xã Phú Diên, huyện Phú Vang, nay là xã Phú Vang", "Xã Phú Vang"),  # a current ward named wins
    ("thị trấn Khe Tre, huyện Nam Đông", "Xã Khe Tre"),  # not ambiguous with Xã Nam Đông
    ("kiệt 3 Lê Lợi, phường Phú Bài, thị xã Hương Thủy", "Phường Phú Bài"),
    ("Vy Da Ward, Hue City", "Phường Vỹ Dạ"),
    ("12 Lê Lợi, Phú Vang", "Xã Phú Vang"),  # a bare name, no other level word: still the commune
    ("gần chợ, không xa cầu Phú Xuân, Phú Xuân", "Phường Phú Xuân"),  # "xa" (far) written so is not "xã"
    ("P.Vỹ Dạ, TP. Huế", "Phường Vỹ Dạ"),
    ("Thôn 3, xã A Lưới 1, huyện A Lưới", "Xã A Lưới 1"),
])
def test_old_district_and_ward_names_are_not_current_wards(client, db_session, api_key, address, ward_name):
    response = post_address(client, api_key, address)
    if ward_name is None:
        [description] = assert_errors(response, 400)
        assert description.startswith("address_not_found:"), description
        assert open311_count(db_session) == 0
        return
    report = db_session.scalars(select(Report).where(Report.public_code == created_code(response))).one()
    assert (report.ward_id, report.location_source) == (current_ward(db_session, ward_name).id, "address")


def test_an_idempotent_retry_of_an_address_only_request_replays_it(client, db_session, api_key):
    headers = {"Idempotency-Key": "open311-address-0123456789abcdef"}
    first = post_address(client, api_key, "phường Vỹ Dạ", headers=headers, device_id="open311-phone-3")
    again = post_address(client, api_key, "phường Vỹ Dạ", headers=headers, device_id="open311-phone-3")
    assert created_code(first) == created_code(again) and again.headers["Idempotent-Replayed"] == "true"
    assert open311_count(db_session) == 1
    changed = post_address(client, api_key, "phường Thuận Hóa", headers=headers, device_id="open311-phone-3")
    assert "idempotency_key_reused" in assert_errors(changed, 422)[0]
    assert open311_count(db_session) == 1


def route_all(db_session, *codes: str) -> dict[str, Report]:
    reports = {}
    for code in codes:
        report = db_session.scalars(select(Report).where(Report.public_code == code)).one()
        routing.route(report.id)  # (duplicate detection on, as in the job)
        db_session.refresh(report)
        reports[code] = report
    return reports


def test_two_address_only_requests_in_one_ward_are_not_duplicates(client, db_session, api_key):
    """Both sit at the ward's representative point: that is no position, so no duplicate search."""
    codes = [created_code(post_address(client, api_key, address, description=f"Ổ gà {n}"))
             for n, address in enumerate(["10 Lê Lợi, phường Thuận Hóa", "80 Hùng Vương, Thuận Hóa"])]
    reports = route_all(db_session, *codes)
    assert [(r.status, r.duplicate_of_id, r.supporters) for r in reports.values()] == [("routed", None, 0)] * 2
    assert db_session.scalar(text(  # (the premise: at one point, well within the duplicate radius)
        "SELECT ST_Equals(a.location, b.location) FROM reports a, reports b WHERE a.id = :a AND b.id = :b"),
        {"a": reports[codes[0]].id, "b": reports[codes[1]].id}) is True


def test_a_precise_request_at_the_representative_point_is_never_linked_to_an_approximate_one(client, db_session,
                                                                                            api_key):
    ward = current_ward(db_session, "Phường Thuận Hóa")
    lat, lon = representative_point(db_session, ward)
    near = {"lat": str(lat + 0.0001), "long": str(lon)}  # ~11 m from the point

    approximate = created_code(post_address(client, api_key, "phường Thuận Hóa", description="Ổ gà A"))
    precise = created_code(post(client, api_key, description="Ổ gà B", **near))
    late_approximate = created_code(post_address(client, api_key, "Thuận Hóa", description="Ổ gà C"))
    control = created_code(post(client, api_key, description="Ổ gà D", lat=str(lat), long=str(lon)))
    reports = route_all(db_session, approximate, precise, late_approximate, control)
    assert reports[precise].status == "routed" and reports[precise].duplicate_of_id is None
    assert reports[late_approximate].status == "routed" and reports[late_approximate].duplicate_of_id is None
    assert reports[approximate].supporters == 0
    # The search itself is on: a second precise report there is the first one's duplicate.
    assert reports[control].status == "duplicate" and reports[control].duplicate_of_id == reports[precise].id


def test_the_public_view_says_the_location_is_approximate(client, db_session, api_key):
    code = created_code(post_address(client, api_key, "phường Vỹ Dạ"))
    report = db_session.scalars(select(Report).where(Report.public_code == code)).one()
    routing.route(report.id)
    body = client.get(f"/api/v1/public/reports/{code}").get_json()
    assert body["location_source"] == "address" and body["accuracy_m"] == report.location_accuracy_m > 500
    assert body["ward"]["name"] == "Phường Vỹ Dạ"
    lat, lon = body["location"]["lat"], body["location"]["lon"]
    box = f"{lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}"
    features = client.get("/api/v1/public/reports", query_string={"bbox": box}).get_json()["features"]
    [props] = [f["properties"] for f in features if f["properties"]["code"] == code]
    assert props["location_source"] == "address" and props["accuracy_m"] == report.location_accuracy_m
    page = client.get(f"/reports/{code}?lang=en").get_data(as_text=True)
    assert 'id="location-approximate"' in page
    assert f"within {round(report.location_accuracy_m)} m of this point" in page
    assert '"approximate": true' in page


def test_open311_answers_say_an_address_only_requests_lat_long_are_approximate(client, db_session, api_key):
    """GeoReport v2 has no accuracy field: lat/long stay the ward's representative point (clients such as
    FixMyStreet skip a request without them), `address` is the address_string as sent and `status_notes`,
    while no public note is written, says the position is approximate (ward)."""
    ward = current_ward(db_session, "Phường Vỹ Dạ")
    code = created_code(post_address(client, api_key, "kiệt 5 Nguyễn Sinh Cung, phường Vỹ Dạ"))
    precise = created_code(post(client, api_key))
    report = db_session.scalars(select(Report).where(Report.public_code == code)).one()
    routing.route(report.id, detect_duplicates=False)
    reach = f"within {report.location_accuracy_m:.0f} m"

    items = {i["service_request_id"]: i for i in get_json(client, "requests", service_request_id=f"{code},{precise}")}
    item = items[code]
    assert (item["lat"], item["long"]) == pytest.approx(representative_point(db_session, ward), abs=1e-9)
    assert item["address"] == "kiệt 5 Nguyễn Sinh Cung, phường Vỹ Dạ"
    assert "Approximate location (ward)" in item["status_notes"] and "Vị trí gần đúng (phường/xã)" in item[
        "status_notes"]
    assert "Phường Vỹ Dạ" in item["status_notes"] and reach in item["status_notes"]
    assert items[precise]["status_notes"] is None and items[precise]["lat"] == CITADEL[0]
    root = get_xml(client, f"requests/{code}")
    assert_xml_like(root, ET.fromstring(SPEC_REQUESTS_XML))
    assert "Approximate location (ward)" in root.findtext("request/status_notes")
    assert float(root.findtext("request/long")) == pytest.approx(representative_point(db_session, ward)[1])

    # A public note is the status's: it takes the field.
    db_session.add(ReportEvent(report_id=report.id, type="comment", actor_kind="officer", public=True,
                               note="Đã cử đội sửa chữa / Crew sent", data={}))
    db_session.flush()
    [item] = get_json(client, f"requests/{code}")
    assert item["status_notes"] == "Đã cử đội sửa chữa / Crew sent" and item["address"] == report.address


# --- reading service requests ------------------------------------------------------------------------------

@pytest.fixture
def history(db_session):
    """Reports of different ages, categories and statuses."""
    now = datetime.now(timezone.utc)
    made = {
        "new_open": new_report("road_damage", submitted_at=now - timedelta(days=1)),
        "new_closed": new_report("road_damage", submitted_at=now - timedelta(days=2), status="resolved"),
        "waste": new_report("uncollected_waste", submitted_at=now - timedelta(days=3), status="acknowledged"),
        "duplicate": new_report("road_damage", submitted_at=now - timedelta(days=4), status="duplicate"),
        "old": new_report("road_damage", submitted_at=now - timedelta(days=100)),
    }
    return made


def codes(body) -> list[str]:
    return [r["service_request_id"] for r in body]


def test_requests_default_to_the_last_90_days_newest_first(client, history):
    body = get_json(client, "requests")
    assert_json_like(body, json.loads(SPEC_REQUESTS_JSON))
    ours = [c for c in codes(body) if c.startswith("TEST-")]
    assert ours == [history[k].public_code for k in ("new_open", "new_closed", "waste", "duplicate")]
    statuses = {r["service_request_id"]: r["status"] for r in body}
    assert statuses[history["new_closed"].public_code] == statuses[history["duplicate"].public_code] == "closed"
    assert statuses[history["waste"].public_code] == "open"
    assert_xml_like(get_xml(client, "requests"), ET.fromstring(SPEC_REQUESTS_XML))


def test_requests_filter_by_status_service_code_and_dates(client, history):
    closed = codes(get_json(client, "requests", status="closed"))
    assert history["new_closed"].public_code in closed and history["duplicate"].public_code in closed
    assert history["new_open"].public_code not in closed
    assert history["new_closed"].public_code not in codes(get_json(client, "requests", status="open"))
    waste = codes(get_json(client, "requests", service_code="uncollected_waste"))
    assert history["waste"].public_code in waste and history["new_open"].public_code not in waste
    assert len(codes(get_json(client, "requests", service_code="road_damage,uncollected_waste"))) >= 4

    start = (datetime.now(HUE) - timedelta(days=120)).isoformat(timespec="seconds")
    end = (datetime.now(HUE) - timedelta(days=90)).isoformat(timespec="seconds")
    assert history["old"].public_code in codes(get_json(client, "requests", start_date=start, end_date=end))
    assert history["new_open"].public_code not in codes(get_json(client, "requests", start_date=start,
                                                                   end_date=end))


def test_service_request_ids_override_the_other_filters(client, history):
    wanted = f"{history['old'].public_code},{history['new_closed'].public_code},{history['waste'].id}"
    body = get_json(client, "requests", service_request_id=wanted, status="open")
    assert set(codes(body)) == {history[k].public_code for k in ("old", "new_closed", "waste")}


def test_bad_query_parameters_are_400(client, history):
    assert_errors(client.get("/open311/v2/requests.json?start_date=yesterday"), 400)
    assert_errors(client.get("/open311/v2/requests.json?status=lost"), 400)
    assert_errors(client.get("/open311/v2/requests.json?start_date=2026-01-01T00:00:00%2B07:00"
                             "&end_date=2026-06-01T00:00:00%2B07:00"), 400)


def test_one_request_with_its_public_note_and_its_photo(client, db_session, api_key):
    code = created_code(post(client, api_key))
    report = db_session.scalars(select(Report).where(Report.public_code == code)).one()
    routing.route(report.id, detect_duplicates=False)
    db_session.add(ReportEvent(report_id=report.id, type="comment", actor_kind="officer", public=True,
                               note="Đã cử đội sửa chữa / Crew sent", data={}))
    db_session.add(ReportEvent(report_id=report.id, type="comment", actor_kind="officer", public=False,
                               note="Ghi chú nội bộ", data={}))
    photo = db_session.scalars(select(Photo).where(Photo.report_id == report.id)).one()
    photo.display_key, photo.derivatives_ready_at = "display/x.jpg", datetime.now(timezone.utc)
    db_session.flush()

    [item] = get_json(client, f"requests/{code}")
    assert item["status_notes"] == "Đã cử đội sửa chữa / Crew sent"
    assert item["media_url"] == f"http://localhost/api/v1/photos/{photo.id}/display"
    agency = db_session.get(Agency, report.agency_id)
    assert item["agency_responsible"] == agency.name
    root = get_xml(client, f"requests/{code}")
    assert_xml_like(root, ET.fromstring(SPEC_REQUESTS_XML))
    assert root.findtext("request/status_notes") == "Đã cử đội sửa chữa / Crew sent"
    assert root.findtext("request/media_url") == item["media_url"]
    assert [r["service_request_id"] for r in get_json(client, f"requests/{report.id}")] == [code]
    assert_errors(client.get("/open311/v2/requests/HUE-1999-000001.json"), 404)


def test_a_token_gives_its_service_request_id(client, db_session, api_key):
    code = created_code(post(client, api_key))
    body = get_json(client, f"tokens/{code}")
    assert_json_like(body, json.loads(SPEC_TOKEN_JSON))
    assert body == [{"service_request_id": code, "token": code}]
    root = get_xml(client, f"tokens/{code}")
    assert_xml_like(root, ET.fromstring(SPEC_TOKEN_XML))
    assert root.findtext("request/service_request_id") == code
    assert_errors(client.get("/open311/v2/tokens/nope.json"), 404)


# --- the admin command ------------------------------------------------------------------------------------

def test_keys_are_created_and_revoked_by_the_admin_command(app, client, db_session):
    from hue_reports.models import Open311Key

    runner = app.test_cli_runner()
    result = runner.invoke(args=["open311", "keys", "create", "Zalo mini app"])
    assert result.exit_code == 0, result.output
    header, key = result.output.strip().splitlines()
    key_id = int(header.split()[1])
    row = db_session.get(Open311Key, key_id)
    assert row.name == "Zalo mini app" and row.key_hash == open311.key_hash(key) and key not in row.key_hash
    created_code(post(client, key))

    result = runner.invoke(args=["open311", "keys", "revoke", str(key_id)])
    assert result.exit_code == 0, result.output
    assert_errors(post(client, key), 403)
    assert runner.invoke(args=["open311", "keys", "revoke", "999999"]).exit_code != 0


def test_a_client_application_has_its_own_quota_not_the_residents_per_address(client, db_session, api_key,
                                                                             monkeypatch):
    """An integrator submits for many residents from one address: the per-address limit does not apply
    to it, its application's quota does (and the resident limit per device id still does)."""
    from tests.support import away_from_window_edge

    config = client.application.config
    monkeypatch.setitem(config, "RATE_LIMIT_PER_MINUTE", 1)
    away_from_window_edge()
    for n in range(3):  # three residents' reports through the app, from one server address
        created_code(post(client, api_key, description=f"Ổ gà số {n}"))
    monkeypatch.setitem(config, "CLIENT_RATE_LIMIT_PER_MINUTE", 3)
    limited = post(client, api_key, description="Ổ gà số 4")
    assert_errors(limited, 429) and limited.headers["Retry-After"]
    monkeypatch.setitem(config, "CLIENT_RATE_LIMIT_PER_MINUTE", 0)
    created_code(post(client, api_key, device_id="one-phone", description="a"))
    assert_errors(post(client, api_key, device_id="one-phone", description="b"), 429)  # one resident's device


@pytest.fixture
def photo_store():
    """A client application's photo store: a real HTTP server on 127.0.0.1 serving the Nokia photo, a
    redirect, and a file too large."""
    import http.server
    import threading

    from hue_reports.devstack import free_port

    class Store(http.server.BaseHTTPRequestHandler):
        hits: list[str] = []

        def do_GET(self):  # noqa: N802
            type(self).hits.append(self.path)
            if self.path == "/photos/redirect.jpg":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data")
                self.end_headers()
                return
            body = NOKIA.read_bytes() if self.path == "/photos/nokia.jpg" else b"\xff" * (4 * 1024 * 1024)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Store)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}/photos/", Store.hits
    server.shutdown()
    server.server_close()


def test_a_media_url_under_a_trusted_prefix_is_fetched_once_and_checked_like_an_upload(
        client, db_session, api_key, photo_store, monkeypatch):
    base, hits = photo_store
    monkeypatch.setitem(client.application.config, "MEDIA_URL_PREFIXES", [base])
    monkeypatch.setitem(client.application.config, "MAX_PHOTO_MB", 3)  # (the Nokia photo: 2.2 MB)
    code = created_code(post(client, api_key, photos=[], media_url=base + "nokia.jpg"))
    report = db_session.scalars(select(Report).where(Report.public_code == code)).one()
    assert [p.size_bytes for p in report.photos] == [NOKIA.stat().st_size] and hits == ["/photos/nokia.jpg"]
    for path, words in (("redirect.jpg", "302"), ("big.jpg", "larger than")):
        [description] = assert_errors(post(client, api_key, photos=[], media_url=base + path), 400)
        assert words in description, description
    assert_errors(post(client, api_key, photos=[], media_url=base.replace("/photos/", "/other/") + "x.jpg"), 400)
    assert hits == ["/photos/nokia.jpg", "/photos/redirect.jpg", "/photos/big.jpg"]  # nothing else fetched

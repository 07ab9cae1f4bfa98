"""Public map data: GeoJSON points in a bounding box, clusters at low zoom, and one report's public page.
No personal data anywhere; answers a CDN can hold."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from hue_reports.extensions import db
from hue_reports.models import Photo, ReportEvent
from hue_reports.services import routing
from tests.support import new_report, post_report

REPORTER = {"reporter_name": "Võ Thị Lan", "reporter_phone": "0977111333", "reporter_email": "lan@example.vn"}
# A box around the centre of Huế, and a point outside it (still in the city).
BOX = (107.55, 16.44, 107.62, 16.49)
INSIDE = [(16.4698, 107.5786), (16.4598, 107.5886), (16.4650, 107.6000), (16.4550, 107.5700)]
OUTSIDE = (16.40, 107.70)


def get(client, **params):
    response = client.get("/api/v1/public/reports", query_string=params)
    assert response.status_code == 200, response.get_json()
    return response


def bbox(box=BOX) -> str:
    return ",".join(str(v) for v in box)


@pytest.fixture
def mapped(db_session):
    """Routed reports inside the box (two categories) and one outside."""
    made = {}
    for n, (lat, lon) in enumerate(INSIDE):
        made[f"in{n}"] = new_report("uncollected_waste" if n % 2 else "road_damage", lat=lat, lon=lon)
        routing.route(made[f"in{n}"].id, detect_duplicates=False)
    made["out"] = new_report("road_damage", lat=OUTSIDE[0], lon=OUTSIDE[1])
    return made


def codes(body) -> set[str]:
    return {f["properties"]["code"] for f in body["features"]}


def test_the_reports_in_the_box_as_geojson_points(client, mapped):
    body = get(client, bbox=bbox()).get_json()
    assert body["type"] == "FeatureCollection"
    assert codes(body) == {mapped[f"in{n}"].public_code for n in range(len(INSIDE))}
    feature = next(f for f in body["features"] if f["properties"]["code"] == mapped["in0"].public_code)
    assert feature["geometry"] == {"type": "Point", "coordinates": [INSIDE[0][1], INSIDE[0][0]]}
    props = feature["properties"]
    assert props["category"]["code"] == "road_damage" and props["category"]["name"]["vi"]
    assert props["status"] == "routed" and props["status_label"]["vi"] == "đã chuyển xử lý"
    assert props["agency"]["code"] and props["ward"]["code"] and props["routed_at"] and props["created_at"]
    assert props["overdue"] is False and props["supporters"] == 0
    assert "description" not in props


@pytest.mark.parametrize("params,expected", [
    ({"category": "uncollected_waste"}, {"in1", "in3"}),
    ({"status": "routed"}, {"in0", "in1", "in2", "in3"}),
    ({"status": "resolved"}, set()),
    ({"agency": "HEPCO"}, {"in1", "in3"}),
])
def test_filters(client, mapped, params, expected):
    assert codes(get(client, bbox=bbox(), **params).get_json()) == {mapped[k].public_code for k in expected}


def test_pages_of_at_most_limit_features_with_a_cursor(client, mapped):
    seen, cursor = [], None
    while True:
        params = {"bbox": bbox(), "limit": 3, **({"cursor": cursor} if cursor else {})}
        body = get(client, **params).get_json()
        assert body["count"] <= 3
        seen += [f["id"] for f in body["features"]]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    assert len(seen) == len(INSIDE) and seen == sorted(set(seen))


def test_low_zoom_answers_clusters_counted_in_postgis(client, mapped, app):
    zoom = app.config["PUBLIC_CLUSTER_BELOW_ZOOM"] - 4
    body = get(client, bbox="107.0,16.0,108.0,17.0", zoom=zoom).get_json()
    assert body["clustered"] is True
    expected = Counter(r.status for r in mapped.values())
    got = Counter()
    for feature in body["features"]:
        props = feature["properties"]
        assert props["cluster"] is True and props["count"] == sum(props["by_status"].values())
        got.update(props["by_status"])
    assert got == expected and body["total"] == len(mapped)
    near = get(client, bbox="107.0,16.0,108.0,17.0", zoom=app.config["PUBLIC_CLUSTER_BELOW_ZOOM"]).get_json()
    assert "clustered" not in near and len(near["features"]) == len(mapped)


def test_a_cdn_can_hold_the_answer(client, mapped):
    first = get(client, bbox=bbox())
    assert first.headers["Cache-Control"].startswith("public") and first.headers["ETag"]
    again = client.get("/api/v1/public/reports", query_string={"bbox": bbox()},
                       headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    other = get(client, bbox=bbox(), category="road_damage")
    assert other.headers["ETag"] != first.headers["ETag"]


@pytest.mark.parametrize("params,field", [
    ({"bbox": "1,2,3"}, "bbox"), ({"bbox": "a,b,c,d"}, "bbox"), ({"bbox": "108,16,107,17"}, "bbox"),
    ({"bbox": "190,0,200,10"}, "bbox"), ({"bbox": "nan,1,2,3"}, "bbox"), ({"zoom": "-1"}, "zoom"),
    ({"zoom": "23"}, "zoom"), ({"zoom": "x"}, "zoom"), ({"limit": "5001"}, "limit"), ({"cursor": "x"}, "cursor"),
    ({"status": "lost"}, "status"), ({"category": "nope"}, "category"), ({"from": "yesterday"}, "from"),
])
def test_bad_parameters_are_422(client, db_session, params, field):
    response = client.get("/api/v1/public/reports", query_string=params)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]["fields"]


def test_the_public_page_has_the_timeline_and_the_fix_beside_the_residents_photos(client, db_session):
    answer = post_report(client, category="uncollected_waste", **REPORTER).get_json()
    routing.route(answer["id"], detect_duplicates=False)
    db.session.add(ReportEvent(report_id=answer["id"], type="comment", actor_kind="officer", public=False,
                               note="Ghi chú nội bộ", data={}))
    evidence = db.session.scalars(select(Photo).where(Photo.report_id == answer["id"])).one()
    db.session.add(Photo(report_id=answer["id"], kind="resolution", storage_key=evidence.storage_key + "x",
                         sha256="f" * 64, content_type="image/jpeg", size_bytes=1, width=1, height=1))
    db.session.flush()
    response = client.get(f"/api/v1/public/reports/{answer['code']}")
    assert response.status_code == 200 and response.headers["Cache-Control"].startswith("public")
    body = response.get_json()
    assert [p["kind"] for p in body["photos"]] == ["evidence"]
    assert [p["kind"] for p in body["resolution_photos"]] == ["resolution"]
    assert [e["type"] for e in body["events"]] == ["submitted", "routed"]
    text = response.get_data(as_text=True)
    for secret in (*REPORTER.values(), "+84977111333", "Ghi chú nội bộ", answer["tracking_token"]):
        assert secret not in text
    assert client.get("/api/v1/public/reports/HUE-1999-000000").status_code == 404


def test_no_personal_data_in_the_map_data(client, db_session):
    answer = post_report(client, category="road_damage", description="Gọi tôi 0977111333", **REPORTER).get_json()
    routing.route(answer["id"], detect_duplicates=False)
    text = get(client, bbox=bbox()).get_data(as_text=True)
    assert answer["code"] in text
    for secret in (*REPORTER.values(), "+84977111333", "0977111333"):
        assert secret not in text


def tile_of(lat: float, lon: float, z: int) -> tuple[int, int]:
    """The web-map tile (x, y) holding a point, computed here independently of PostGIS."""
    import math

    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_a_street_level_tile_holds_the_points_in_it(client, mapped, app):
    z = app.config["PUBLIC_CLUSTER_BELOW_ZOOM"] + 2
    x, y = tile_of(*INSIDE[0], z)
    response = client.get(f"/api/v1/public/tiles/{z}/{x}/{y}.mvt")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.mapbox-vector-tile"
    data = response.data
    assert b"reports" in data and mapped["in0"].public_code.encode() in data
    assert mapped["out"].public_code.encode() not in data  # another tile's report
    assert response.headers["ETag"] and response.headers["Cache-Control"].startswith("public")
    again = client.get(f"/api/v1/public/tiles/{z}/{x}/{y}.mvt", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_a_city_tile_at_low_zoom_holds_clusters_and_an_empty_tile_is_204(client, mapped, app):
    z = app.config["PUBLIC_CLUSTER_BELOW_ZOOM"] - 4
    x, y = tile_of(*INSIDE[0], z)
    response = client.get(f"/api/v1/public/tiles/{z}/{x}/{y}.mvt")
    assert response.status_code == 200
    assert b"clusters" in response.data and b"count" in response.data
    assert mapped["in0"].public_code.encode() not in response.data  # clusters carry no codes
    empty = client.get(f"/api/v1/public/tiles/{z}/0/0.mvt")  # the Arctic Ocean
    assert empty.status_code == 204 and empty.data == b""
    for bad in ("23/0/0", f"{z}/{2 ** z}/0", f"{z}/0/{2 ** z}"):
        assert client.get(f"/api/v1/public/tiles/{bad}.mvt").status_code == 404


def test_clusters_merge_what_is_close_and_count_only_the_box(client, db_session, app):
    zoom = 10  # a cell is 360 / 2**10 / 4 = 0.088 degrees (~9 km)
    near_a = new_report("road_damage", lat=16.4600, lon=107.5800)
    near_b = new_report("flooding", lat=16.4609, lon=107.5800)  # ~100 m away
    far = new_report("road_damage", lat=16.7000, lon=107.2000)  # ~45 km away, still in the box
    outside = new_report("road_damage", lat=16.3000, lon=107.8000)
    for r in (near_a, near_b, far, outside):
        routing.route(r.id, detect_duplicates=False)
    body = get(client, bbox="107.1,16.4,107.7,16.8", zoom=zoom).get_json()
    counts = sorted(f["properties"]["count"] for f in body["features"])
    assert counts == [1, 2] and body["total"] == 3
    together = max(body["features"], key=lambda f: f["properties"]["count"])
    lon, lat = together["geometry"]["coordinates"]
    assert abs(lat - 16.46045) < 1e-4 and abs(lon - 107.58) < 1e-4  # the mean of its points


def test_duplicates_are_not_a_second_point_unless_asked_for(client, mapped):
    duplicate = new_report("road_damage", lat=INSIDE[0][0] + 0.0001, lon=INSIDE[0][1])
    assert routing.route(duplicate.id).result == "duplicate"
    assert duplicate.public_code not in codes(get(client, bbox=bbox()).get_json())
    assert codes(get(client, bbox=bbox(), status="duplicate").get_json()) == {duplicate.public_code}


def test_map_clients_zooms_and_boxes_are_taken_as_they_come(client, mapped, app):
    assert get(client, bbox="-200,-100,200,100", zoom="2.7").get_json()["zoom"] == 2  # clamped, floored
    no_box = client.get("/api/v1/public/reports", query_string={"zoom": 3})
    assert no_box.status_code == 422 and "bbox" in no_box.get_json()["error"]["fields"]
    assert client.get("/api/v1/public/reports", query_string={"zoom": 3, "bbox": bbox(),
                                                              "limit": "abc"}).status_code == 422


def test_a_cluster_tile_at_the_edge_of_the_world_still_holds_hue(client, mapped, app):
    """At zoom 1 and 2 Huế is in the eastmost tiles; their buffer must not wrap to the other side."""
    for z in (1, 2):
        x, y = tile_of(*INSIDE[0], z)
        assert x == 2 ** z - 1
        response = client.get(f"/api/v1/public/tiles/{z}/{x}/{y}.mvt")
        assert response.status_code == 200 and b"clusters" in response.data, z

"""The public map's rollup (services/mapgrid.py): the clusters and the tiles' clusters read from `map_cells`
must be exactly what counting the reports live gives, for the filters it holds; it falls back to live
counts for the others and when it is stale; a refresh rewrites only what changed."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, text

from hue_reports.extensions import db
from hue_reports.models import MapState
from hue_reports.services import mapgrid, routing
from tests.api.test_public import tile_of
from tests.support import new_report

CITY_BOX = "107.2,16.0,108.2,16.8"


@pytest.fixture
def scattered(db_session, app):
    """Reports at random points of the city: routed, in progress, resolved, overdue, one duplicate."""
    # (no rollup yet: another test's real scheduler and worker may have committed one)
    db_session.execute(text("DELETE FROM map_cells; DELETE FROM map_state"))
    rng = random.Random(7)
    made = []
    for n in range(40):
        lat, lon = 16.40 + rng.random() * 0.12, 107.52 + rng.random() * 0.12
        report = new_report(rng.choice(["road_damage", "uncollected_waste", "flooding"]), lat=lat, lon=lon)
        routing.route(report.id, detect_duplicates=False)
        if n % 5 == 1:
            report.status = "resolved"
        elif n % 5 == 2:
            report.status = "in_progress"
        elif n % 5 == 3:
            report.due_at = datetime.now(timezone.utc) - timedelta(hours=3)  # open and overdue
        made.append(report)
    made[0].status = "duplicate"
    db_session.flush()
    return made


def statements_of(client, url: str) -> tuple[bytes, int]:
    """The answer to `url` and how many statements it ran (not the tests' savepoints)."""
    seen = []

    def count(conn, cursor, statement, *_):
        if not statement.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        data = client.get(url).data
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return data, len(seen)


def clusters(client, **params) -> dict:
    response = client.get("/api/v1/public/reports", query_string={"bbox": CITY_BOX, **params})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def comparable(body: dict) -> list[tuple]:
    return [(f["properties"]["cell"], f["properties"]["count"], f["properties"]["by_status"],
             round(f["geometry"]["coordinates"][0], 5), round(f["geometry"]["coordinates"][1], 5))
            for f in body["features"]]


FILTERS = [{}, {"status": "routed"}, {"status": "duplicate"}, {"category": "road_damage"}, {"overdue": "true"},
           {"overdue": "false", "category": "flooding"}]


@pytest.mark.parametrize("zoom", [0, 6, 11, 13])
def test_the_rollup_answers_what_counting_live_answers(client, scattered, app, zoom):
    live = [clusters(client, zoom=zoom, **f) for f in FILTERS]
    assert all(body["counted_at"] is None for body in live)
    assert live[0]["total"] == len(scattered) - 1  # every report but the duplicate
    assert live[2]["total"] == 1 and live[4]["total"] == sum(1 for n in range(40) if n % 5 == 3)
    stats = mapgrid.refresh()
    assert stats is not None and stats.cells > 0
    level = zoom + mapgrid.GEOJSON_LEVELS_UP
    for params, expected in zip(FILTERS, live, strict=True):
        body = clusters(client, zoom=zoom, **params)
        # (a category at the finest levels is counted live: there the rollup holds every category together)
        from_rollup = not (params.get("category") and level > mapgrid.category_finest_level())
        assert (body["counted_at"] is not None) == from_rollup, params
        assert comparable(body) == comparable(expected), params
        assert body["total"] == expected["total"]


def test_the_tiles_clusters_are_the_same_from_the_rollup(client, scattered, app):
    z = app.config["PUBLIC_CLUSTER_BELOW_ZOOM"] - 3
    x, y = tile_of(16.46, 107.58, z)
    urls = [f"/api/v1/public/tiles/{z}/{x}/{y}.mvt", f"/api/v1/public/tiles/{z}/{x}/{y}.mvt?category=flooding",
            f"/api/v1/public/tiles/{z - 4}/{x >> 4}/{y >> 4}.mvt"]
    live = [client.get(url).data for url in urls]
    assert all(b"clusters" in data for data in live)
    mapgrid.refresh()
    # From the rollup, with its state, in one statement: the same tiles as counted live. (A category at this
    # level is counted live: there the rollup holds every category together.)
    answered = [statements_of(client, url) for url in urls]
    assert [data for data, _ in answered] == live
    assert [n for _, n in answered][::2] == [1, 1]
    # A stale rollup's answer is dropped, and the tiles counted live again.
    state = db.session.get(MapState, 1)
    state.as_of = datetime.now(timezone.utc) - timedelta(seconds=app.config["MAP_ROLLUP_MAX_AGE_SECONDS"] + 5)
    db.session.flush()
    assert statements_of(client, urls[0]) == (live[0], 2)  # (the state with the tile, then drawn live)
    mapgrid.refresh()
    # ... and a tile with no reports is still answered 204 from the rollup
    assert client.get(f"/api/v1/public/tiles/{z}/0/0.mvt").status_code == 204


def test_filters_the_rollup_does_not_hold_are_counted_live(client, scattered, app):
    mapgrid.refresh()
    agency = db.session.execute(text("SELECT a.code FROM agencies a JOIN reports r ON r.agency_id = a.id "
                                     "WHERE r.status = 'routed' LIMIT 1")).scalar_one()
    body = clusters(client, zoom=10, agency=agency)
    assert body["counted_at"] is None
    expected = sum(1 for r in scattered if r.agency is not None and r.agency.code == agency
                   and r.status != "duplicate")
    assert body["total"] == expected > 0
    today = datetime.now(timezone.utc).date().isoformat()
    assert clusters(client, zoom=10, **{"from": today})["counted_at"] is None


def test_a_stale_rollup_is_not_served_and_a_new_report_waits_for_the_next_refresh(client, scattered, app):
    mapgrid.refresh()
    before = clusters(client, zoom=8)
    extra = new_report("flooding", lat=16.47, lon=107.59)
    routing.route(extra.id, detect_duplicates=False)
    assert clusters(client, zoom=8)["total"] == before["total"]  # the rollup's instant
    mapgrid.refresh()
    assert clusters(client, zoom=8)["total"] == before["total"] + 1
    state = db.session.get(MapState, 1)
    state.as_of = datetime.now(timezone.utc) - timedelta(seconds=app.config["MAP_ROLLUP_MAX_AGE_SECONDS"] + 5)
    db.session.flush()
    stale = clusters(client, zoom=8)
    assert stale["counted_at"] is None and stale["total"] == before["total"] + 1


def test_a_refresh_rewrites_only_the_cells_that_changed(client, scattered, app):
    def row_versions() -> dict:
        rows = db.session.execute(text("SELECT level, category_id, mx, my, status, overdue, ctid::text FROM map_cells"))
        return {tuple(r[:6]): r[6] for r in rows}

    mapgrid.refresh()
    first = row_versions()
    mapgrid.refresh()
    assert row_versions() == first  # nothing changed: no row rewritten
    moved = next(r for r in scattered if r.status == "in_progress")
    moved.status = "resolved"
    db.session.flush()
    mapgrid.refresh()
    second = row_versions()
    changed = {k for k in set(first) | set(second) if first.get(k) != second.get(k)}
    levels = mapgrid.finest_level() - mapgrid.COARSEST_LEVEL + 1
    # one report changed status: at most its old and new status rows, per level, for its category and all
    assert 0 < len(changed) <= 2 * 2 * levels
    assert {k[4] for k in changed} <= {"in_progress", "resolved"}


def test_the_scheduler_job_refreshes_the_rollup_through_a_worker(client, scattered, app, redis_conn, run_jobs):
    from rq import Queue

    from hue_reports import scheduler

    periodic = next(p for p in scheduler.schedule(app) if p.name == "map-cells")
    assert periodic.interval_s == app.config["METRICS_REFRESH_SECONDS"]
    job = Queue(periodic.queue, connection=redis_conn).enqueue(periodic.func)
    run_jobs()
    job.refresh()
    assert job.get_status() == "finished" and job.return_value()["cells"] > 0
    assert db.session.get(MapState, 1) is not None
    assert clusters(client, zoom=9)["counted_at"] is not None


CENTRE_BOX = "107.50,16.38,107.66,16.54"  # every report of `scattered`, with a margin


def test_a_view_too_dense_for_points_is_answered_with_finer_clusters(client, scattered, app, monkeypatch):
    shown = len(scattered) - 1  # (not the duplicate)
    zoom = app.config["PUBLIC_CLUSTER_BELOW_ZOOM"] + 1
    monkeypatch.setitem(app.config, "PUBLIC_MAP_POINTS_MAX", shown)
    points = clusters(client, bbox=CENTRE_BOX, zoom=zoom)
    assert not points.get("clustered") and len(points["features"]) == shown
    monkeypatch.setitem(app.config, "PUBLIC_MAP_POINTS_MAX", shown - 1)  # one report too many
    live = clusters(client, bbox=CENTRE_BOX, zoom=zoom)
    assert live["clustered"] is True and live["dense"] is True and live["total"] == shown
    level = min(zoom + mapgrid.GEOJSON_LEVELS_UP, mapgrid.finest_level())
    assert {f["properties"]["cell_level"] for f in live["features"]} == {level}
    assert live["counted_at"] is None
    mapgrid.refresh()
    rolled = clusters(client, bbox=CENTRE_BOX, zoom=zoom)
    assert rolled["counted_at"] is not None and comparable(rolled) == comparable(live)
    # the clusters of the zoom below are not `dense`; from PUBLIC_POINTS_ZOOM on, always points
    assert clusters(client, bbox=CENTRE_BOX, zoom=zoom - 2)["dense"] is False
    always = clusters(client, bbox=CENTRE_BOX, zoom=app.config["PUBLIC_POINTS_ZOOM"])
    assert not always.get("clustered") and len(always["features"]) == shown
    # a filter narrows what is counted: few enough, points again
    monkeypatch.setitem(app.config, "PUBLIC_MAP_POINTS_MAX", 3)
    assert len(clusters(client, bbox=CENTRE_BOX, zoom=zoom, status="duplicate")["features"]) == 1


def test_a_tile_too_dense_for_points_holds_finer_clusters(client, db_session, app, monkeypatch):
    db_session.execute(text("DELETE FROM map_cells; DELETE FROM map_state"))
    z = app.config["PUBLIC_CLUSTER_BELOW_ZOOM"] + 1
    x, y = tile_of(16.4637, 107.5909, z)
    made = []
    for n in range(6):  # within ~60 m of each other, all in the tile
        report = new_report("road_damage", lat=16.4637 + n * 0.0001, lon=107.5909 + n * 0.0001)
        routing.route(report.id, detect_duplicates=False)
        made.append(report)
    url = f"/api/v1/public/tiles/{z}/{x}/{y}.mvt"
    monkeypatch.setitem(app.config, "PUBLIC_TILE_POINTS_MAX", len(made))
    points = client.get(url).data
    assert b"reports" in points and made[0].public_code.encode() in points
    monkeypatch.setitem(app.config, "PUBLIC_TILE_POINTS_MAX", len(made) - 1)
    live = client.get(url).data
    assert b"clusters" in live and made[0].public_code.encode() not in live
    mapgrid.refresh()
    assert client.get(url).data == live  # the rollup's cells are the live count's
    z = app.config["PUBLIC_POINTS_ZOOM"]
    x, y = tile_of(16.4637, 107.5909, z)
    assert b"reports" in client.get(f"/api/v1/public/tiles/{z}/{x}/{y}.mvt").data  # always points there


def test_a_statement_rendered_once_answers_as_sqlalchemy_does(client, scattered, app):
    """mapgrid.execute: a shape's first run goes through SQLAlchemy, its later runs send the SQL text it rendered
    with their own parameters. Each answer must equal SQLAlchemy's for the same request, whichever request of the
    shape rendered it; a shape whose lists SQLAlchemy expands (a ward's areas) always goes through it."""
    mapgrid.refresh()
    ward = db.session.execute(text("SELECT w.code FROM admin_areas w JOIN reports r ON r.ward_id = w.id "
                                   "LIMIT 1")).scalar_one()
    (lat, lon), (lat2, lon2) = db.session.execute(text(
        "SELECT ST_Y(location), ST_X(location) FROM reports WHERE status = 'routed' ORDER BY id LIMIT 2")).all()
    cluster_z = app.config["PUBLIC_CLUSTER_BELOW_ZOOM"] - 2
    points_z = app.config["PUBLIC_POINTS_ZOOM"]

    def tile(z, dx=0, query="", at=(lat, lon)):
        x, y = tile_of(*at, z)
        return f"/api/v1/public/tiles/{z}/{x + dx}/{y}.mvt{query}"

    def page(query):
        return f"/api/v1/public/reports?bbox=107.5,16.38,107.7,16.55&{query}"

    pairs = [  # (a request, another of the same shape with other values)
        (tile(cluster_z), tile(cluster_z, 1)),
        (tile(cluster_z - 3), tile(cluster_z - 3, 1)),
        (tile(cluster_z + 2), tile(cluster_z + 2, 1)),
        (tile(points_z), tile(points_z, at=(lat2, lon2))),
        (tile(points_z, 0, "?status=routed"), tile(points_z, 0, "?status=routed", (lat2, lon2))),
        (page("zoom=9"), page("zoom=12")),
        (page("zoom=9&category=flooding"), page("zoom=12&category=flooding")),
        (page("limit=5"), page("limit=7&cursor=3")),
        (page("limit=4&status=resolved"), page("limit=9&status=resolved")),
        (page("limit=5&overdue=true"), page("limit=6&overdue=true")),
    ]
    expanded = (page(f"limit=5&ward={ward}"), page(f"limit=5&ward={ward}&cursor=1000000000"))

    def answer(url):
        """The answer, and for each statement whether SQLAlchemy compiled it (False: sent as rendered)."""
        compiled = []

        def seen(conn, cursor, statement, parameters, context, executemany):
            if not statement.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
                compiled.append(context.compiled is not None)

        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            response = client.get(url)
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
        assert response.status_code in (200, 204), url
        return response.data, compiled

    for first, second in [*pairs, expanded]:
        mapgrid._rendered.clear()
        second_by_sqlalchemy, compiled = answer(second)
        assert all(compiled)
        first_as_rendered, compiled = answer(first)
        mapgrid._rendered.clear()
        first_by_sqlalchemy, _ = answer(first)
        second_as_rendered, compiled_again = answer(second)
        assert first_as_rendered == first_by_sqlalchemy, first
        assert second_as_rendered == second_by_sqlalchemy, second
        assert first_by_sqlalchemy != second_by_sqlalchemy, (first, second)  # (the values count)
        rendered = [not c for c in compiled + compiled_again]
        assert any(rendered) if first != expanded[0] else not any(rendered), first
    # A page without a box is a shape of its own: never the boxed page's SQL (which would want the box).
    unboxed = "/api/v1/public/reports?limit=5"
    mapgrid._rendered.clear()
    by_sqlalchemy, _ = answer(unboxed)
    mapgrid._rendered.clear()
    answer(page("limit=5"))
    assert answer(unboxed)[0] == answer(unboxed)[0] == by_sqlalchemy

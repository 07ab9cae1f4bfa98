"""Public reads from a real PostgreSQL streaming replica (DATABASE_REPLICA_URL), made in this module from the
test server with `pg_basebackup -R` and run on its own port: which reads go to it, read-your-writes on the
primary, and what happens when it lags (replay paused), is down, or never answers."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy.engine import make_url

from hue_reports.devstack import PG_PORT, VAR, LocalPostgres, LocalReplica, free_port
from tests.support import CITADEL, post_report, server_url

BOX = "107.55,16.44,107.62,16.49"
# Every public read that may come from the replica, with the status it answers.
PUBLIC_READS = [
    (f"/api/v1/public/reports?bbox={BOX}", 200),
    (f"/api/v1/public/reports?bbox={BOX}&zoom=10", 200),  # clusters
    ("/api/v1/public/reports/{code}", 200),
    ("/api/v1/public/tiles/0/0/0.mvt", 200),
    ("/api/v1/public/metrics", 200),
    ("/api/v1/public/metrics?group_by=category&from=2025-01-01", 200),  # computed now: written on the primary
    ("/api/v1/public/metrics.csv?group_by=ward", 200),
    ("/", 200),
    ("/stats", 200),
    ("/reports/{code}", 200),
    ("/open311/v2/discovery.json", 200),
    ("/open311/v2/services.json", 200),
    ("/open311/v2/services/road_damage.json", 200),
    ("/open311/v2/requests.json", 200),
]
WAIT_S = 30  # the longest any wait for the replica here may take


@pytest.fixture(scope="module")
def replica(app):
    """A streaming replica of the test server (the session database included), started; removed after."""
    base = LocalPostgres(VAR, PG_PORT).dir.parent  # (where the postgres user can write: beside the cluster)
    made = LocalReplica(server_url(), base / f"replica-test-{uuid.uuid4().hex[:8]}")
    try:
        # (a query on the replica that holds up replay is cancelled after 5 s, not PostgreSQL's 30 s: the app
        # answers it again from the primary, and the tests' waits for replay stay short)
        made.create({"max_standby_streaming_delay": "5s"})
        made.start()
        yield made
    finally:
        made.remove()


@pytest.fixture
def replica_url(replica, app):
    return replica.url(make_url(app.config["DATABASE_URL"]).database)


@pytest.fixture(autouse=True)
def replaying(request):
    """Every test leaves the replica running and replaying."""
    yield
    if "replica" in request.fixturenames:
        made = request.getfixturevalue("replica")
        if not made.running():
            made.start()
        on_replica(made, "SELECT pg_wal_replay_resume()")


def on_replica(made: LocalReplica, sql: str):
    with psycopg.connect(made.url(), autocommit=True, connect_timeout=5) as conn:
        return conn.execute(sql).fetchone()


def on_primary(sql: str):
    with psycopg.connect(server_url(), autocommit=True, connect_timeout=5) as conn:
        return conn.execute(sql).fetchone()


def wait_until(what: str, check, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"not within {timeout} s: {what}")


def caught_up(made: LocalReplica) -> None:
    position = on_primary("SELECT pg_current_wal_flush_lsn()::text")[0]
    check = f"SELECT pg_last_wal_replay_lsn() >= '{position}'::pg_lsn"
    deadline = time.monotonic() + WAIT_S
    while not on_replica(made, check)[0]:
        if time.monotonic() > deadline:
            pytest.fail(f"the replica has not replayed {position} within {WAIT_S} s: {replica_state(made)}")
        time.sleep(0.1)


def replica_state(made: LocalReplica) -> str:
    """What a replica that does not catch up is doing (for the failure's message)."""
    with psycopg.connect(made.url(), autocommit=True, connect_timeout=5) as conn:
        positions = conn.execute("SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), "
                                 "pg_get_wal_replay_pause_state()").fetchone()
        receiver = conn.execute("SELECT status, latest_end_lsn FROM pg_stat_wal_receiver").fetchall()
        sessions = conn.execute("SELECT backend_type, datname, state, wait_event_type, wait_event, "
                                "left(query, 80) FROM pg_stat_activity WHERE pid <> pg_backend_pid()").fetchall()
    log = made.logfile.read_text(errors="replace")[-1500:] if made.logfile.exists() else ""
    return f"received/replayed/pause {positions}; receiver {receiver}; sessions {sessions}; log: {log}"


def pause(made: LocalReplica) -> None:
    on_replica(made, "SELECT pg_wal_replay_pause()")
    wait_until("replay paused", lambda: on_replica(made, "SELECT pg_get_wal_replay_pause_state()")[0] == "paused")


def resume(made: LocalReplica) -> None:
    on_replica(made, "SELECT pg_wal_replay_resume()")
    caught_up(made)


def submit(client) -> dict:
    response = post_report(client, lat=str(CITADEL[0]), lon=str(CITADEL[1]))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def public_codes(client) -> tuple[set[str], str | None]:
    response = client.get(f"/api/v1/public/reports?bbox={BOX}")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return {f["properties"]["code"] for f in response.get_json()["features"]}, response.headers.get("X-Database")


def gauge(client, name: str) -> str:
    body = client.get("/metrics").get_data(as_text=True)
    return "\n".join(line for line in body.splitlines() if line.startswith(name))


def test_public_reads_come_from_the_replica_and_the_residents_own_from_the_primary(
        make_app, replica, replica_url, committed):
    app = make_app(DATABASE_REPLICA_URL=replica_url)
    client = app.test_client()
    report = submit(client)
    caught_up(replica)
    for path, status in PUBLIC_READS:
        response = client.get(path.format(code=report["code"]))
        assert response.status_code == status, (path, response.get_data(as_text=True)[:300])
        assert response.headers.get("X-Database") == "replica", path
    # the connections that answered them are the replica's
    database = make_url(replica_url).database
    assert on_replica(replica, f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}' "
                               "AND pid <> pg_backend_pid()")[0] >= 1
    # the resident's own report, the tracking page, a submission: the primary (no replica-readable view)
    own = client.get(f"/api/v1/reports/{report['id']}", headers={"X-Tracking-Token": report["tracking_token"]})
    assert own.status_code == 200 and "X-Database" not in own.headers
    track = client.get(f"/track/{report['code']}/{report['tracking_token']}")
    assert track.status_code == 200 and "X-Database" not in track.headers
    assert re.search(r'^hue_db_reads_total\{database="replica"\} \d+', gauge(client, "hue_db_reads_total"), re.M)
    assert 'hue_db_replica_usable{reason="ok"} 1.0' in gauge(client, "hue_db_replica_usable")
    assert client.get("/readyz").get_json()["replica"] == {"used": True, "reason": "ok", "lag_s": 0.0}


def test_without_a_replica_nothing_says_replica(client):
    response = client.get(f"/api/v1/public/reports?bbox={BOX}")
    assert response.status_code == 200 and "X-Database" not in response.headers
    assert gauge(client, "hue_db_replica_usable") == ""


def test_a_report_just_submitted_is_read_back_from_the_primary_while_the_replica_is_behind(
        make_app, replica, replica_url, committed):
    """Replay paused, the lag limit high: the map still comes from the replica (without the new report), but
    the resident sees their report at once, and its public page too (a 404 on the replica is asked again of
    the primary)."""
    app = make_app(DATABASE_REPLICA_URL=replica_url, REPLICA_MAX_LAG_SECONDS=3600)
    client = app.test_client()
    pause(replica)
    report = submit(client)
    codes, database = public_codes(client)
    assert database == "replica" and report["code"] not in codes  # (the replica's data: proof of where it read)
    own = client.get(f"/api/v1/reports/{report['id']}", headers={"X-Tracking-Token": report["tracking_token"]})
    assert own.status_code == 200 and own.get_json()["code"] == report["code"]
    for path in ("/api/v1/public/reports/{code}", "/reports/{code}"):
        response = client.get(path.format(code=report["code"]))
        assert response.status_code == 200, path
        assert response.headers["X-Database"] == "primary", path
    assert client.get("/api/v1/public/reports/HUE-1999-000001").status_code == 404  # (unknown on both)
    resume(replica)
    codes, database = public_codes(client)
    assert database == "replica" and report["code"] in codes


def test_a_lagging_replica_sends_public_reads_to_the_primary_until_it_catches_up(
        make_app, replica, replica_url, committed):
    app = make_app(DATABASE_REPLICA_URL=replica_url, REPLICA_MAX_LAG_SECONDS=1, REPLICA_CHECK_SECONDS=0.1)
    client = app.test_client()
    caught_up(replica)
    assert public_codes(client)[1] == "replica"
    pause(replica)
    report = submit(client)
    codes, _ = wait_until("public reads go to the primary", lambda: (lambda r: r[1] == "primary" and r)(
        public_codes(client)))
    assert report["code"] in codes
    assert 'hue_db_replica_usable{reason="lagging"} 0.0' in gauge(client, "hue_db_replica_usable")
    assert float(gauge(client, "hue_db_replica_lag_seconds").split()[-1]) > 1
    resume(replica)
    codes, _ = wait_until("public reads go to the replica again", lambda: (lambda r: r[1] == "replica" and r)(
        public_codes(client)))
    assert report["code"] in codes


def test_a_metrics_answer_kept_in_memory_says_the_database_it_was_read_from(
        make_app, replica, replica_url, committed):
    """PUBLIC_METRICS_CACHE_SECONDS: a hit reads neither database, and its X-Database is the one its copy came
    from, even once the public reads have moved to the primary (a lagging replica)."""
    from sqlalchemy import event

    from hue_reports.extensions import db
    from hue_reports.services import metrics

    app = make_app(DATABASE_REPLICA_URL=replica_url, REPLICA_MAX_LAG_SECONDS=1, REPLICA_CHECK_SECONDS=0.1,
                   PUBLIC_METRICS_CACHE_SECONDS=30)
    client = app.test_client()
    with app.app_context():
        metrics.refresh_results()  # (the default answers stored)
        db.session.remove()
    caught_up(replica)
    read: list[str] = []

    def note(conn, cursor, statement, *_):
        if "metric_results" in statement:
            read.append(statement)

    with app.app_context():
        for engine in (db.engines[None], db.engines["replica"]):
            event.listen(engine, "before_cursor_execute", note)
    first = client.get("/api/v1/public/metrics?group_by=agency")
    assert first.headers["X-Database"] == "replica" and len(read) == 1
    pause(replica)
    submit(client)
    wait_until("public reads go to the primary", lambda: public_codes(client)[1] == "primary")
    hit = client.get("/api/v1/public/metrics?group_by=agency")
    assert (hit.data, hit.headers["X-Database"], len(read)) == (first.data, "replica", 1)
    sheet = client.get("/api/v1/public/metrics.csv?group_by=ward")  # (not kept yet: read now, on the primary)
    assert sheet.status_code == 200 and sheet.headers["X-Database"] == "primary" and len(read) == 2
    resume(replica)


def test_an_idle_primary_is_not_a_lagging_replica(make_app, replica, replica_url, committed):
    """Nothing committed for longer than the lag limit: the replica's last replayed commit is old, yet it
    has replayed all there is, so it is used."""
    app = make_app(DATABASE_REPLICA_URL=replica_url, REPLICA_MAX_LAG_SECONDS=1, REPLICA_CHECK_SECONDS=0.1)
    client = app.test_client()
    submit(client)
    caught_up(replica)
    wait_until("the last replayed commit is older than the limit", lambda: on_replica(
        replica, "SELECT now() - pg_last_xact_replay_timestamp() > interval '1.5 seconds'")[0])
    assert public_codes(client)[1] == "replica"
    assert float(gauge(client, "hue_db_replica_lag_seconds").split()[-1]) == 0.0


def test_a_stopped_replica_leaves_the_public_reads_to_the_primary_until_it_is_back(
        make_app, replica, replica_url, committed):
    # (the verdict is kept 60 s: the first request after the stop finds the replica gone midway)
    app = make_app(DATABASE_REPLICA_URL=replica_url, REPLICA_CHECK_SECONDS=60, REPLICA_RETRY_SECONDS=1)
    client = app.test_client()
    report = submit(client)
    caught_up(replica)
    assert public_codes(client)[1] == "replica"  # (the pool now holds a connection to it)
    replica.stop()
    for path, status in PUBLIC_READS:
        response = client.get(path.format(code=report["code"]))
        assert response.status_code == status, (path, response.get_data(as_text=True)[:300])
        assert response.headers["X-Database"] == "primary", path
    assert 'hue_db_replica_usable{reason="down"} 0.0' in gauge(client, "hue_db_replica_usable")
    ready = client.get("/readyz")  # (the API stays ready: the primary answers)
    assert ready.status_code == 200 and ready.get_json()["replica"]["reason"] == "down"
    replica.start()
    wait_until("public reads go to the replica again", lambda: public_codes(client)[1] == "replica")


@contextmanager
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never says a word (a replica that hangs);
    yields (port, the number of connections it accepted)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_replica_that_never_answers_costs_one_connect_timeout_not_one_per_request(make_app, app):
    with silent_server() as (port, accepted):
        database = make_url(app.config["DATABASE_URL"]).database
        hung = make_app(DATABASE_REPLICA_URL=f"postgresql://postgres@127.0.0.1:{port}/{database}",
                        REPLICA_RETRY_SECONDS=600)
        client = hung.test_client()
        began = time.monotonic()
        for _ in range(5):
            assert public_codes(client)[1] == "primary"
        assert len(accepted) == 1  # one try, then the replica is left alone for REPLICA_RETRY_SECONDS
        assert time.monotonic() - began < 60  # (bounded: libpq's connect_timeout of 2 s, once)
        assert 'hue_db_replica_usable{reason="down"} 0.0' in gauge(client, "hue_db_replica_usable")


def test_the_public_reads_stay_up_on_the_replica_when_the_primary_is_unreachable(make_app, replica, replica_url,
                                                                                  committed):
    report = submit(make_app(DATABASE_REPLICA_URL=replica_url).test_client())
    caught_up(replica)
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"  # (nothing listens: a primary that is down)
    cut_off = make_app(DATABASE_URL=dead, DATABASE_REPLICA_URL=replica_url)
    client = cut_off.test_client()
    codes, database = public_codes(client)
    assert database == "replica" and report["code"] in codes
    assert 'hue_db_replica_usable{reason="primary_down"} 1.0' in gauge(client, "hue_db_replica_usable")
    own = client.get(f"/api/v1/reports/{report['id']}", headers={"X-Tracking-Token": report["tracking_token"]})
    assert own.status_code == 503  # (what only the primary can answer says it is unavailable, no 500)

"""Exactly once, all or nothing: Idempotency-Key replays, racing retries, injected failures, rate limits."""

import hashlib
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from hue_reports.extensions import db
from hue_reports.models import IdempotencyKey, Photo, Report
from tests.support import NOKIA, PHOTOS, away_from_window_edge, photo_with_gps, post_report


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_a_retry_with_the_same_key_and_body_replays_the_first_answer(client, db_session, redis_conn):
    headers = {"Idempotency-Key": "6f1c2a90-retry-0123456789abcdef"}
    first = post_report(client, headers=headers, device_id="phone-7")
    second = post_report(client, headers=headers, device_id="phone-7")
    assert first.status_code == second.status_code == 201
    assert second.get_json() == first.get_json()  # the tracking token too, though only its hash is stored
    assert second.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert _count(db_session, Report) == 1
    stored = db_session.scalars(select(IdempotencyKey)).one()
    assert stored.report_id == first.get_json()["id"]
    assert first.get_json()["tracking_token"] not in str(stored.response)


def test_the_same_key_with_another_body_is_refused(client, db_session, redis_conn):
    headers = {"Idempotency-Key": "key-reused-0123456789abcdef"}
    assert post_report(client, headers=headers).status_code == 201
    response = post_report(client, headers=headers, description="Một phản ánh khác")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "idempotency_key_reused"
    other_photo = PHOTOS.joinpath("jpg/mobile/jolla.jpg").read_bytes()
    response = post_report(client, headers=headers, photos=[(other_photo, "other.jpg")])
    assert response.get_json()["error"]["code"] == "idempotency_key_reused"
    assert _count(db_session, Report) == 1


def test_keys_belong_to_their_device(client, db_session, redis_conn):
    headers = {"Idempotency-Key": "same-key-two-phones"}
    a = post_report(client, headers=headers, device_id="phone-a").get_json()
    b = post_report(client, headers=headers, device_id="phone-b").get_json()
    assert a["id"] != b["id"]


@pytest.mark.parametrize("key", ["x" * 201, "tab\tkey-0123456789", "ключ-0123456789abcdef", "1", "too-short-key"])
def test_a_malformed_key_is_a_400(client, db_session, redis_conn, key):
    response = post_report(client, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_idempotency_key"


def test_racing_retries_with_one_key_make_exactly_one_report(app, committed, media_files):
    """Eight identical requests at once, each on its own connection: one report, one photo, one file."""
    before = media_files()
    barrier = threading.Barrier(8)
    results = []

    def send():
        client = app.test_client()
        barrier.wait()
        response = post_report(client, headers={"Idempotency-Key": "race-1-0123456789abcdef"}, device_id="phone-race")
        results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [status for status, _ in results] == [201] * 8, results
    assert len({body["id"] for _, body in results}) == 1
    assert len({body["tracking_token"] for _, body in results}) == 1
    with app.app_context():
        assert _count(db.session, Report) == 1
        assert _count(db.session, Photo) == 1
    with app.app_context():
        key = db.session.scalars(select(Photo.storage_key)).one()
    stored = Path(app.config["MEDIA_ROOT"]) / key
    assert stored.is_file() and hashlib.sha256(stored.read_bytes()).hexdigest() == key.rsplit("/", 1)[-1]
    assert len(media_files() - before) <= 1  # stored once (or already there from another test)


def test_racing_different_reports_with_the_same_photo_share_one_file(app, committed, media_files):
    """Content-addressed originals: four reports of one photo at once store it once and all keep it."""
    barrier = threading.Barrier(4)
    codes = []

    def send(n):
        client = app.test_client()
        barrier.wait()
        codes.append(post_report(client, headers={"Idempotency-Key": f"shared-{n}-0123456789abcdef"}).status_code)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert codes == [201] * 4
    with app.app_context():
        keys = set(db.session.scalars(select(Photo.storage_key)))
        assert len(keys) == 1 and _count(db.session, Report) == 4
    root = app.config["MEDIA_ROOT"]
    assert all((Path(root) / key).is_file() for key in keys)


@pytest.fixture
def failing_event_insert(db_session):
    """Inject a failure AFTER the photos are stored: the database refuses the `submitted` event."""
    db_session.execute(text("""
        CREATE FUNCTION test_fail_event() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected failure'; END $$;
        CREATE TRIGGER test_fail_event BEFORE INSERT ON report_events
        FOR EACH ROW EXECUTE FUNCTION test_fail_event();
    """))
    yield


def test_a_failure_after_the_files_are_written_leaves_no_report_and_no_file(
        client, db_session, redis_conn, failing_event_insert, storage_backend, stored_keys):
    before = stored_keys()
    jolla = PHOTOS.joinpath("jpg/mobile/jolla.jpg").read_bytes()
    response = post_report(client, photos=[(jolla, "a.jpg")], headers={"Idempotency-Key": "doomed-0123456789abcdef"})
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert _count(db_session, Report) == 0
    assert _count(db_session, Photo) == 0
    assert _count(db_session, IdempotencyKey) == 0  # the client may retry with the same key
    assert stored_keys() == before  # (local files, spooled uploads included, or the bucket's objects)
    assert redis_conn.keys("rq:job:*") == []


@pytest.fixture
def slow_or_failing_events(app, committed):
    """A committed trigger: the `submitted` event of a report described 'slow' waits 1.5 s, of one
    described 'fail' waits 0.6 s then fails. Dropped afterwards."""
    with app.app_context():
        db.session.execute(text("""
            CREATE FUNCTION test_slow_or_fail() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE what text;
            BEGIN
                SELECT description INTO what FROM reports WHERE id = NEW.report_id;
                IF what = 'slow' THEN PERFORM pg_sleep(1.5); END IF;
                IF what = 'fail' THEN PERFORM pg_sleep(0.6); RAISE EXCEPTION 'injected failure'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER test_slow_or_fail BEFORE INSERT ON report_events
            FOR EACH ROW EXECUTE FUNCTION test_slow_or_fail();
        """))
        db.session.commit()
    yield
    with app.app_context():
        db.session.execute(text("DROP TRIGGER test_slow_or_fail ON report_events; "
                                "DROP FUNCTION test_slow_or_fail()"))
        db.session.commit()


def test_a_failing_request_never_removes_a_file_another_is_committing(app, slow_or_failing_events):
    """A stores a new photo, then fails; B sends the same photo meanwhile (finds it stored) and is slow to
    commit. Without the content lock A's cleanup would remove the file B is committing; with it, B
    waits for A's rollback, and A's cleanup waits for B's commit: B's report keeps its original."""
    photo = photo_with_gps(16.4711, 107.5811)  # content no other test stored
    results = {}

    def send(name, description, delay):
        time.sleep(delay)
        response = post_report(app.test_client(), photos=[(photo, "p.jpg")], description=description)
        results[name] = response.status_code

    threads = [threading.Thread(target=send, args=("A", "fail", 0)),
               threading.Thread(target=send, args=("B", "slow", 0.25))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {"B": 201, "A": 500}
    with app.app_context():
        key = db.session.scalars(select(Photo.storage_key)).one()
    assert (Path(app.config["MEDIA_ROOT"]) / key).is_file()


def test_a_retry_replays_even_after_the_category_was_withdrawn(client, db_session, redis_conn):
    headers = {"Idempotency-Key": "withdrawn-category-0001"}
    first = post_report(client, headers=headers, category="noise")
    db_session.execute(text("UPDATE categories SET active = false WHERE code = 'noise'"))
    retry = post_report(client, headers=headers, category="noise")
    assert retry.status_code == 201 and retry.get_json() == first.get_json()


def test_after_a_secret_rotation_a_replay_never_hands_out_a_dead_token(make_app, db_session, redis_conn):
    headers = {"Idempotency-Key": "rotation-0123456789abcdef"}
    first = post_report(make_app(SECRET_KEY="a" * 40).test_client(), headers=headers).get_json()
    retry = post_report(make_app(SECRET_KEY="b" * 40).test_client(), headers=headers)
    assert retry.status_code == 201 and retry.get_json()["id"] == first["id"]
    assert "tracking_token" not in retry.get_json()


def test_submissions_are_rate_limited_per_ip(make_app, db_session, redis_conn):
    app = make_app(RATE_LIMIT_PER_MINUTE=2, RATE_LIMIT_PER_DAY=100)
    away_from_window_edge()
    client = app.test_client()
    ip = {"REMOTE_ADDR": "203.0.113.7"}
    codes = [post_report(client, environ_base=ip, headers={"Idempotency-Key": f"rl-{n}-0123456789abcdef"}).status_code
             for n in range(2)]
    assert codes == [201, 201]
    refused = post_report(client, environ_base=ip, headers={"Idempotency-Key": "rl-2-0123456789abcdef"})
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "too_many_requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    # A retry of an accepted report is not a new submission: it replays.
    assert post_report(client, environ_base=ip, headers={"Idempotency-Key": "rl-0-0123456789abcdef"}).status_code == 201
    # Another client is not affected.
    assert post_report(client, environ_base={"REMOTE_ADDR": "203.0.113.8"}).status_code == 201


def test_submissions_are_rate_limited_per_device_across_ips(make_app, db_session, redis_conn):
    app = make_app(RATE_LIMIT_PER_MINUTE=1, RATE_LIMIT_PER_DAY=100)
    away_from_window_edge()
    client = app.test_client()
    first = post_report(client, environ_base={"REMOTE_ADDR": "198.51.100.1"}, device_id="roaming-phone")
    second = post_report(client, environ_base={"REMOTE_ADDR": "198.51.100.2"}, device_id="roaming-phone")
    assert (first.status_code, second.status_code) == (201, 429)


def test_the_daily_limit_applies_too(make_app, db_session, redis_conn):
    app = make_app(RATE_LIMIT_PER_MINUTE=100, RATE_LIMIT_PER_DAY=1)
    client = app.test_client()
    ip = {"REMOTE_ADDR": "192.0.2.44"}
    assert post_report(client, environ_base=ip).status_code == 201
    refused = post_report(client, environ_base=ip)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 60


def test_with_redis_down_a_report_is_still_accepted(make_app, db_session):
    """The queue and the limiter are sick, the database is fine: the resident gets their 201."""
    from hue_reports.devstack import free_port

    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", RATE_LIMIT_PER_MINUTE=5)
    response = post_report(app.test_client(), photos=[(NOKIA.read_bytes(), "n.jpg")])
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["photos"][0]["state"] == "processing"  # the sweep will queue it


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(make_app, db_session, redis_conn):
    """With PROXY_FIX_X_FOR=1 the limit applies to the resident's address, not to the proxy's."""
    app = make_app(RATE_LIMIT_PER_MINUTE=1, RATE_LIMIT_PER_DAY=100, PROXY_FIX_X_FOR=1)
    away_from_window_edge()
    client = app.test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    first = post_report(client, environ_base=proxy, headers={"X-Forwarded-For": "203.0.113.50"})
    other_resident = post_report(client, environ_base=proxy, headers={"X-Forwarded-For": "203.0.113.51"})
    same_resident = post_report(client, environ_base=proxy, headers={"X-Forwarded-For": "203.0.113.50"})
    assert (first.status_code, other_resident.status_code, same_resident.status_code) == (201, 201, 429)


def test_without_a_trusted_proxy_a_forwarded_header_is_ignored(make_app, db_session, redis_conn):
    """A client cannot dodge the limit by inventing X-Forwarded-For."""
    app = make_app(RATE_LIMIT_PER_MINUTE=1, RATE_LIMIT_PER_DAY=100)
    away_from_window_edge()
    client = app.test_client()
    ip = {"REMOTE_ADDR": "198.51.100.77"}
    assert post_report(client, environ_base=ip, headers={"X-Forwarded-For": "1.1.1.1"}).status_code == 201
    assert post_report(client, environ_base=ip, headers={"X-Forwarded-For": "2.2.2.2"}).status_code == 429


def test_a_database_error_never_writes_the_reporters_data_to_the_logs(client, db_session, redis_conn, caplog):
    db_session.execute(text("""
        CREATE FUNCTION test_fail_contact() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected failure'; END $$;
        CREATE TRIGGER test_fail_contact BEFORE INSERT ON report_contacts
        FOR EACH ROW EXECUTE FUNCTION test_fail_contact();
    """))
    with caplog.at_level("DEBUG"):
        response = post_report(client, reporter_name="Trần Thị Bình", reporter_phone="0987654321",
                               reporter_email="binh@example.vn")
    assert response.status_code == 500
    assert "injected failure" in caplog.text  # the error itself is logged...
    for personal in ("Trần Thị Bình", "987654321", "binh@example.vn"):
        assert personal not in caplog.text  # ...without the values of the statement

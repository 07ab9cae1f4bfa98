"""Photos in an S3-compatible object store (STORAGE_BACKEND=s3), against a real S3 HTTP server on 127.0.0.1
(moto in server mode): the interface, intake, derivatives by real RQ workers, serving, deletion, outages."""

import io
import os
import urllib.error
import urllib.request

import pytest
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

from hue_reports.extensions import db
from hue_reports.models import Account, Photo, Report
from hue_reports.services import photos, routing
from hue_reports.services.storage import S3Storage, StorageError, derivative_key, original_key
from tests.support import flask_cli, photo_with_gps, post_report, staff_headers


def _reports(session) -> int:
    return session.scalar(select(func.count()).select_from(Report))


def _submit(client, lat: float, lon: float) -> dict:
    """A report with a photo no other test sends (its GPS makes its bytes unique)."""
    response = post_report(client, photos=[(photo_with_gps(lat, lon), "p.jpg")])
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _officer_of(photo_id: int) -> dict:
    """Headers of an officer of the agency the photo's report is routed to (routed now)."""
    report = db.session.get(Photo, photo_id).report
    routing.route(report.id, detect_duplicates=False)
    db.session.refresh(report)
    username = db.session.scalars(select(Account.username).where(
        Account.agency_id == report.agency_id, Account.role == "officer").order_by(Account.id).limit(1)).one()
    return staff_headers(username)


def _other_officer(photo_id: int) -> dict:
    report = db.session.get(Photo, photo_id).report
    username = db.session.scalars(select(Account.username).where(
        Account.agency_id != report.agency_id, Account.role == "officer").order_by(Account.id).limit(1)).one()
    return staff_headers(username)


def test_the_interface_on_both_backends(storage_backend):
    """put creates once, open and stream read, exists, delete twice, a missing object is FileNotFoundError."""
    key = original_key(os.urandom(32).hex())
    assert storage_backend.put(key, io.BytesIO(b"first")) is True
    assert storage_backend.put(key, io.BytesIO(b"second")) is False  # content-addressed: never overwritten
    assert storage_backend.exists(key)
    with storage_backend.open(key) as fh:
        assert fh.read() == b"first" and fh.seekable()
    stream = storage_backend.stream(key)
    assert stream.size == 5 and b"".join(stream.chunks) == b"first"
    stream.close()
    storage_backend.delete(key)
    storage_backend.delete(key)  # already gone: no error (the retention job may run twice)
    assert not storage_backend.exists(key)
    with pytest.raises(FileNotFoundError):
        storage_backend.open(key)
    with pytest.raises(FileNotFoundError):
        storage_backend.stream(key)
    with pytest.raises(ValueError):
        storage_backend.put("originals/../../x", io.BytesIO(b"x"))


def test_put_resumes_from_the_streams_position_and_the_window_lists_new_originals(s3_storage):
    key = original_key(os.urandom(32).hex())
    source = io.BytesIO(b"headerPHOTO")
    source.seek(6)
    assert s3_storage.put(key, source)
    with s3_storage.open(key) as fh:
        assert fh.read() == b"PHOTO"
    assert key in s3_storage.recent_keys("originals/", 3600, 0)
    assert key not in s3_storage.recent_keys("originals/", 3600, 600)  # too young for the orphan sweep
    s3_storage.delete(key)


def test_a_store_without_conditional_writes_still_stores_once(s3_storage, s3_server):
    """Stores that answer `If-None-Match: *` on PUT with 501: a plain PUT, after the HEAD found no object."""
    key = original_key(os.urandom(32).hex())
    s3_server.no_conditional_writes = True
    try:
        assert s3_storage.put(key, io.BytesIO(b"first")) is True
        assert s3_storage.put(key, io.BytesIO(b"second")) is False
    finally:
        s3_server.no_conditional_writes = False
    with s3_storage.open(key) as fh:
        assert fh.read() == b"first"
    s3_storage.delete(key)


MEMORY_PROBE = """
import json, os, sys, tracemalloc
from hue_reports.services.storage import make_storage, original_key
storage = make_storage(json.loads(sys.argv[1]))
key = original_key(os.urandom(32).hex())
storage.exists(key)  # (the client and its connection made before measuring)
tracemalloc.start()
with open(sys.argv[2], "rb") as source:
    assert storage.put(key, source)
put_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.reset_peak()
with storage.open(key) as fh:
    open_peak = tracemalloc.get_traced_memory()[1]
    assert fh.read() == open(sys.argv[2], "rb").read()
storage.delete(key)
print(json.dumps([put_peak, open_peak]))
"""


def test_reading_and_writing_a_large_object_never_holds_it_in_memory(s3_settings, tmp_path, app):
    """12 MB through put and open, in a process of its own (the test server's memory is this one's): the
    client's allocations stay a small fraction of it."""
    import json
    import subprocess
    import sys

    from tests.support import ROOT

    big = tmp_path / "big"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    settings = {"MEDIA_ROOT": str(tmp_path), **s3_settings}
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, json.dumps(settings), str(big)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    put_peak, open_peak = json.loads(result.stdout)
    assert put_peak < 4 * 1024 * 1024, put_peak
    assert open_peak < 4 * 1024 * 1024, open_peak


def test_a_report_stores_its_original_as_a_private_object(client, db_session, redis_conn, s3_storage, s3_server):
    data = photo_with_gps(16.4712, 107.5812)
    body = post_report(client, photos=[(data, "p.jpg")]).get_json()
    photo = db_session.get(Photo, body["photos"][0]["id"])
    answer = s3_server.client().get_object(Bucket=s3_storage.bucket, Key=photo.storage_key)
    assert answer["Body"].read() == data
    with pytest.raises(urllib.error.HTTPError) as anonymous:  # no public bucket path
        urllib.request.urlopen(f"{s3_server.url}/{s3_storage.bucket}/{photo.storage_key}", timeout=5)
    assert anonymous.value.code == 403
    anonymous.value.close()


def test_derivatives_made_by_a_worker_are_streamed_from_the_bucket(client, db_session, run_jobs, s3_storage,
                                                                    s3_server):
    photo_id = _submit(client, 16.4713, 107.5813)["photos"][0]["id"]
    run_jobs()
    photo = db_session.get(Photo, photo_id)
    assert photo.state == "ready"
    for size in ("display", "thumb"):
        key = photo.display_key if size == "display" else photo.thumb_key
        stored = s3_server.client().get_object(Bucket=s3_storage.bucket, Key=key)
        with client.get(f"/api/v1/photos/{photo_id}/{size}") as response:
            assert response.status_code == 200 and response.mimetype == "image/jpeg"
            assert response.data == stored["Body"].read()
            assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert "Location" not in response.headers
            etag = response.headers["ETag"]
        again = client.get(f"/api/v1/photos/{photo_id}/{size}", headers={"If-None-Match": etag})
        assert again.status_code == 304 and not again.data


def test_a_real_worker_process_makes_the_derivatives_in_the_bucket(app, committed, redis_conn, process_env,
                                                                   s3_storage, s3_settings):
    """`flask worker --burst` configured by the environment (STORAGE_BACKEND=s3 and the S3_* settings)."""
    client = app.test_client()
    body = _submit(client, 16.4714, 107.5814)
    photo_id = body["photos"][0]["id"]
    env = {**process_env, **{name: str(value) for name, value in s3_settings.items()}}
    result = flask_cli(["worker", "--burst", "-q", "photos"], env)
    assert result.returncode == 0, result.stderr
    with app.app_context():
        photo = db.session.get(Photo, photo_id)
        keys = (photo.display_key, photo.thumb_key)
        name = photos.derivative_name(photo.sha256)
        assert keys == (derivative_key(name, "display"), derivative_key(name, "thumb"))
    assert all(s3_storage.exists(key) for key in keys)
    assert client.get(f"/api/v1/reports/{body['id']}").get_json()["photos"][0]["state"] == "ready"
    with client.get(f"/api/v1/photos/{photo_id}/thumb") as thumb:
        assert thumb.status_code == 200 and thumb.data[:3] == b"\xff\xd8\xff"


def test_with_presigned_urls_derivatives_redirect_and_originals_do_not(client, db_session, run_jobs, app,
                                                                         s3_settings, s3_server):
    from hue_reports.services.storage import make_storage

    app.extensions["hue_storage"], saved = make_storage({**app.config, **s3_settings, "S3_PRESIGN_SECONDS": 120}), \
        app.extensions.get("hue_storage")
    try:
        photo_id = _submit(client, 16.4715, 107.5815)["photos"][0]["id"]
        run_jobs()
        response = client.get(f"/api/v1/photos/{photo_id}/display")
        assert response.status_code == 302
        location = response.headers["Location"]
        assert location.startswith(s3_server.url) and "X-Amz-Signature=" in location and "X-Amz-Expires=120" in location
        assert response.headers["Cache-Control"] == "public, max-age=60"
        assert db_session.get(Photo, photo_id).sha256 not in location  # (it would identify the original)
        with urllib.request.urlopen(location, timeout=5) as signed:
            assert signed.read()[:3] == b"\xff\xd8\xff"
        original = client.get(f"/api/v1/photos/{photo_id}/original", headers=_officer_of(photo_id))
        assert original.status_code == 200 and "Location" not in original.headers
        assert original.headers["Cache-Control"] == "private, no-store"
        original.close()
    finally:
        app.extensions["hue_storage"].close()
        app.extensions["hue_storage"] = saved


def test_a_deleted_object_is_gone_and_its_photo_is_a_404_not_a_500(client, db_session, run_jobs, s3_storage):
    """What the retention job does through the interface: storage.delete(key), for originals and
    derivatives alike."""
    photo_id = _submit(client, 16.4717, 107.5817)["photos"][0]["id"]
    run_jobs()
    photo = db_session.get(Photo, photo_id)
    headers = _officer_of(photo_id)
    for key in (photo.storage_key, photo.display_key, photo.thumb_key):
        assert s3_storage.exists(key)
        s3_storage.delete(key)
        assert not s3_storage.exists(key)
        s3_storage.delete(key)  # twice: no error
    for path, h, code in ((f"/api/v1/photos/{photo_id}/original", headers, "original_missing"),
                          (f"/api/v1/photos/{photo_id}/display", {}, "photo_not_found")):
        response = client.get(path, headers=h)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == code


def test_a_storage_outage_during_submission_is_a_503_and_writes_nothing(client, db_session, redis_conn, s3_storage,
                                                                          s3_server, stored_keys):
    before, reports = stored_keys(), _reports(db_session)
    data = photo_with_gps(16.4718, 107.5818)
    with s3_server.outage():
        response = post_report(client, photos=[(data, "p.jpg")], headers={"Idempotency-Key": "s3-down-0123456789ab"})
        assert response.status_code == 503, response.get_json()
        error = response.get_json()["error"]
        assert error["code"] == "storage_unavailable" and error["message"] and error["message_vi"]
        assert int(response.headers["Retry-After"]) > 0
    assert _reports(db_session) == reports and stored_keys() == before  # no report, no object
    assert redis_conn.keys("rq:job:*") == []
    again = post_report(client, photos=[(data, "p.jpg")], headers={"Idempotency-Key": "s3-down-0123456789ab"})
    assert again.status_code == 201, again.get_json()  # the same key works once the store is back
    photo = db_session.get(Photo, again.get_json()["photos"][0]["id"])
    assert stored_keys() == before | {photo.storage_key}


def test_a_store_failing_after_the_first_photo_leaves_no_object_behind(client, db_session, redis_conn, s3_storage,
                                                                        s3_server, stored_keys):
    """Two photos; the store takes the first and drops the second: 503, and the first is removed again."""
    first, second = photo_with_gps(16.4719, 107.5819), photo_with_gps(16.4720, 107.5820)
    before, reports = stored_keys(), _reports(db_session)
    with s3_server.failing_puts_after(1):
        response = post_report(client, photos=[(first, "a.jpg"), (second, "b.jpg")])
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "storage_unavailable"
    assert _reports(db_session) == reports
    assert stored_keys() == before


def test_an_outage_during_derivatives_retries_the_job_later(client, db_session, run_jobs, redis_conn, s3_storage,
                                                            s3_server):
    photo_id = _submit(client, 16.4722, 107.5822)["photos"][0]["id"]
    with s3_server.outage():
        run_jobs()
    photo = db_session.get(Photo, photo_id)
    assert photo.state == "processing" and photo.derivative_error is None  # not the photo's fault
    registry = ScheduledJobRegistry("photos", connection=redis_conn)
    job_id = f"derivatives-{photo_id}"
    assert registry.get_job_ids() == [job_id]  # RQ's retry, after its interval
    assert Job.fetch(job_id, connection=redis_conn).retries_left == 2
    Queue("photos", connection=redis_conn).enqueue_job(Job.fetch(job_id, connection=redis_conn))  # (its time came)
    registry.remove(job_id)
    run_jobs()
    db_session.refresh(photo)
    assert photo.state == "ready"
    with client.get(f"/api/v1/photos/{photo_id}/display") as response:
        assert response.status_code == 200


def test_an_outage_while_serving_a_photo_is_a_503(client, db_session, run_jobs, s3_storage, s3_server):
    photo_id = _submit(client, 16.4723, 107.5823)["photos"][0]["id"]
    run_jobs()
    headers = _officer_of(photo_id)
    paths = [(f"/api/v1/photos/{photo_id}/display", {}), (f"/api/v1/photos/{photo_id}/original", headers)]
    with s3_server.outage():
        for path, h in paths:
            response = client.get(path, headers=h)
            assert response.status_code == 503 and response.get_json()["error"]["code"] == "storage_unavailable"
            assert response.headers["Retry-After"]
        with pytest.raises(StorageError):
            s3_storage.delete(db_session.get(Photo, photo_id).storage_key)  # the retention job is told
    for path, h in paths:
        with client.get(path, headers=h) as response:
            assert response.status_code == 200


def test_the_orphan_sweep_lists_and_removes_unreferenced_objects(client, db_session, redis_conn, s3_storage,
                                                                 monkeypatch):
    """What a request killed between its put and its commit leaves: found by listing the bucket."""
    from hue_reports.jobs import maintenance

    kept = _submit(client, 16.4724, 107.5824)
    kept_key = db_session.get(Photo, kept["photos"][0]["id"]).storage_key
    orphan = original_key(os.urandom(32).hex())
    s3_storage.put(orphan, io.BytesIO(b"left behind"))
    monkeypatch.setattr(maintenance, "ORPHAN_MIN_AGE_S", 0)  # (objects cannot be made older on the server)
    assert maintenance.sweep_orphan_originals() >= 1
    assert not s3_storage.exists(orphan) and s3_storage.exists(kept_key)


def test_photos_render_from_a_downloaded_original(client, db_session, s3_storage):
    """The derivative job itself, on a photo whose original is only in the bucket."""
    photo_id = _submit(client, 16.4725, 107.5825)["photos"][0]["id"]
    assert photos.make_derivatives(photo_id) in ("made", "reused")
    assert photos.make_derivatives(photo_id) == "done"


def test_the_configuration_names_what_is_missing():
    from hue_reports.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="S3_BUCKET"):
        load_config({"HUE_ENV": "testing", "STORAGE_BACKEND": "s3"})
    with pytest.raises(ConfigError, match="STORAGE_BACKEND"):
        load_config({"HUE_ENV": "testing", "STORAGE_BACKEND": "ftp"})
    with pytest.raises(ConfigError, match="S3_PRESIGN_SECONDS"):
        load_config({"HUE_ENV": "testing", "STORAGE_BACKEND": "s3", "S3_BUCKET": "b", "S3_PRESIGN_SECONDS": "-1"})
    config = load_config({"HUE_ENV": "testing", "STORAGE_BACKEND": "s3", "S3_BUCKET": "photos"})
    assert isinstance(__import__("hue_reports.services.storage", fromlist=["make_storage"]).make_storage(config),
                      S3Storage)


def test_the_storage_check_command_on_both_backends(app, storage_backend, s3_server):
    """`flask storage check`: a probe written, read back and deleted, the bucket private; exit 1 if not."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["storage", "check"])
    assert result.exit_code == 0, result.output
    assert "photo storage ok" in result.output
    if storage_backend.local_path("probes/x") is None:
        assert "private" in result.output
        with s3_server.outage():
            down = runner.invoke(args=["storage", "check"])
        assert down.exit_code == 1 and "problem:" in down.output


def test_the_check_finds_a_bucket_anyone_can_read(s3_server, s3_settings):
    import json

    from hue_reports.services.storage import check_storage, make_storage

    bucket = f"hue-public-{os.urandom(4).hex()}"
    s3_server.client().create_bucket(Bucket=bucket)
    s3_server.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    storage = make_storage({**s3_settings, "MEDIA_ROOT": "unused", "S3_BUCKET": bucket})
    try:
        problems = check_storage(storage)
    finally:
        storage.close()
    assert len(problems) == 1 and "readable without credentials" in problems[0]


def test_the_check_finds_a_bucket_that_keeps_deleted_originals(s3_server, s3_settings):
    """Versioning without a rule expiring old versions: the retention job's deletions would keep every original."""
    from hue_reports.services.storage import check_storage, make_storage

    bucket = f"hue-versioned-{os.urandom(4).hex()}"
    s3_server.client().create_bucket(Bucket=bucket)
    s3_server.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    storage = make_storage({**s3_settings, "MEDIA_ROOT": "unused", "S3_BUCKET": bucket})
    try:
        problems = check_storage(storage)
        assert len(problems) == 1 and "keeps old versions" in problems[0]
        s3_server.client().put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
            {"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": "originals/"},
             "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}]})
        assert check_storage(storage) == []
    finally:
        storage.close()

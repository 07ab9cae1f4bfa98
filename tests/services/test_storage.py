"""The local photo storage: atomic, content-addressed, confined to MEDIA_ROOT, one write per upload."""

import io
import os
import time

import pytest

from hue_reports.models import Photo
from hue_reports.services.storage import LocalStorage, derivative_key, original_key, remove_stale_spools
from tests.support import photo_with_gps, post_report


def test_put_stores_once_and_reports_whether_it_created(tmp_path):
    storage = LocalStorage(tmp_path)
    key = original_key("ab" * 32)
    assert storage.put(key, io.BytesIO(b"first")) is True
    assert storage.put(key, io.BytesIO(b"second")) is False  # content-addressed: never overwritten
    with storage.open(key) as fh:
        assert fh.read() == b"first"
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [tmp_path / key]  # no temporary file left behind
    storage.delete(key)
    storage.delete(key)  # already gone: no error
    assert not storage.exists(key)


@pytest.mark.parametrize("key", ["../etc/passwd", "originals/../../x", "/abs/path", "Originals/x", "a//b", ""])
def test_keys_cannot_leave_the_root(tmp_path, key):
    with pytest.raises(ValueError):
        LocalStorage(tmp_path).put(key, io.BytesIO(b"x"))


def test_a_spooled_upload_is_linked_into_place_not_copied(tmp_path):
    storage = LocalStorage(tmp_path)
    with storage.spool() as upload:
        upload.write(b"photo bytes")
        upload.seek(0)
        spooled_inode = os.fstat(upload.fileno()).st_ino
        assert storage.put(derivative_key("cd" * 32, "display"), upload)
    stored = storage.local_path(derivative_key("cd" * 32, "display"))
    assert stored.stat().st_ino == spooled_inode and stored.read_bytes() == b"photo bytes"
    assert list(storage.incoming.iterdir()) == []  # the spool's own name went with the request


def test_intake_leaves_no_spooled_upload_behind(client, db_session, redis_conn, app):
    assert post_report(client).status_code == 201
    assert post_report(client, description="").status_code == 422  # refused requests too
    assert list(LocalStorage(app.config["MEDIA_ROOT"]).incoming.iterdir()) == []


def test_stale_spools_of_a_dead_worker_are_removed(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.incoming.mkdir()
    old, fresh = storage.incoming / "upload-old", storage.incoming / "upload-fresh"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_spools(storage, 3600) == 1
    assert not old.exists() and fresh.exists()


def test_a_broken_photo_store_is_a_503_not_a_500(make_app, db_session, redis_conn, tmp_path):
    not_a_directory = tmp_path / "media"
    not_a_directory.write_text("a file where the photo store should be")
    app = make_app(MEDIA_ROOT=str(not_a_directory), RATE_LIMIT_PER_MINUTE=0, RATE_LIMIT_PER_DAY=0)
    response = post_report(app.test_client())
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "storage_unavailable" and response.headers["Retry-After"]


def test_the_orphan_sweep_removes_only_unreferenced_originals_of_the_window(app, client, db_session, redis_conn):
    from hue_reports.jobs import maintenance
    from hue_reports.services.storage import get_storage

    kept = post_report(client, photos=[(photo_with_gps(16.4721, 107.5821), "kept.jpg")]).get_json()
    kept_key = db_session.get(Photo, kept["photos"][0]["id"]).storage_key
    storage = get_storage()
    orphan = original_key("ee" * 32)  # as left by a request killed between storing and committing
    storage.put(orphan, io.BytesIO(b"left behind"))
    young = original_key("ef" * 32)  # a request may still be committing this one
    storage.put(young, io.BytesIO(b"in flight"))
    hour_ago = time.time() - 3600
    for key in (orphan, kept_key):
        os.utime(storage.local_path(key), (hour_ago, hour_ago))
    assert maintenance.sweep_orphan_originals() == 1
    assert not storage.exists(orphan)
    assert storage.exists(kept_key) and storage.exists(young)
    storage.delete(young)

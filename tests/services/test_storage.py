"""The local photo storage: atomic, content-addressed, confined to MEDIA_ROOT, one write per upload."""

import io
import os
import time

import pytest

from hue_reports.services.storage import LocalStorage, derivative_key, original_key, remove_stale_spools
from tests.support import post_report


def test_put_stores_once_and_reports_whether_it_created(tmp_path):
    storage = LocalStorage(tmp_path)
    key = original_key("ab" * 32)
    assert storage.put(key, io.BytesIO(b"first")) is True
    assert storage.put(key, io.BytesIO(b"second")) is False  # content-addressed: never overwritten
    with storage.open(key) as fh:
        assert fh.read() == b"first"
    assert not list(tmp_path.rglob(".incoming-*"))  # no temporary file left behind
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

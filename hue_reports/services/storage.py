"""Where photo files live: a small interface, and its local-filesystem backend under MEDIA_ROOT.

Keys are relative paths made of lower-case letters, digits, '/', '.', '_' and
'-'; originals are content-addressed (`originals/ab/cd/<sha256>`), so an
identical upload is stored once. Writes are atomic (a temporary file, then a
rename): a reader never sees half a file. An S3-compatible backend implements
the same methods.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import current_app

KEY_PATTERN = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_.-]+)*$")
CHUNK = 1024 * 1024


class StorageError(RuntimeError):
    """The storage backend failed (disk full, unreachable object store...)."""


class Storage(Protocol):
    def spool(self) -> BinaryIO:
        """A writable, readable, seekable file for an incoming upload (the request parser fills it).
        A backend that can adopt such a file without copying it (`put`) spools to its own disk."""

    def put(self, key: str, source: BinaryIO) -> bool:
        """Store `source` (read from its current position) under `key` unless the key exists.
        True if this call created the object."""

    def open(self, key: str) -> BinaryIO:
        """Read an object; FileNotFoundError if it does not exist."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove an object; no error if it is already gone."""

    def local_path(self, key: str) -> Path | None:
        """A filesystem path to serve the object from, or None (object stores)."""


def original_key(sha256: str) -> str:
    return f"originals/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def derivative_key(sha256: str, size: str) -> str:
    """Derivatives belong to the original's content, so they too are made once."""
    return f"derivatives/{sha256[:2]}/{sha256[2:4]}/{sha256}/{size}.jpg"


def check_key(key: str) -> str:
    if not KEY_PATTERN.match(key) or ".." in key:
        raise ValueError(f"invalid storage key: {key!r}")
    return key


class LocalStorage:
    """Files under a root directory. Every path is checked to stay inside the root.

    Uploads are spooled into `<root>/.incoming/` (deleted when the request ends), so that storing
    one is a hard link, not a second copy: each photo is written to disk once.
    """

    INCOMING = ".incoming"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.incoming = self.root / self.INCOMING

    def spool(self) -> BinaryIO:
        try:
            self.incoming.mkdir(parents=True, exist_ok=True)
            return tempfile.NamedTemporaryFile(dir=self.incoming, prefix="upload-")  # noqa: SIM115 (closed by the request)
        except OSError as exc:
            raise StorageError(f"cannot spool an upload: {exc.strerror or exc}") from exc

    def _adoptable(self, source: BinaryIO) -> str | None:
        """The path of a spooled upload of ours that can be linked into place."""
        name = getattr(source, "name", None)
        if isinstance(name, str) and Path(name).parent == self.incoming:
            return name
        return None

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"storage key escapes the root: {key!r}")
        return path

    def put(self, key: str, source: BinaryIO) -> bool:
        path = self._path(key)
        if path.exists():
            return False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            spooled = self._adoptable(source)
            if spooled is not None:
                source.flush()
                os.fsync(source.fileno())  # durable before it becomes visible
                try:
                    os.link(spooled, path)  # atomic; the spool's own name goes when the request ends
                except FileExistsError:
                    return False
                _fsync_directory(path.parent)
                return True
            # Written beside the spooled uploads, then moved into place (atomic: the same file system): a
            # process killed meanwhile leaves its part in .incoming/, where remove_stale_uploads finds it.
            self.incoming.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.incoming, prefix="put-")
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(tmp, 0o640)
                os.replace(tmp, path)
                _fsync_directory(path.parent)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"cannot store {key}: {exc.strerror or exc}") from exc
        return True

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)


def _fsync_directory(directory: Path) -> None:
    """Make a new name in `directory` durable: the database may refer to it right after."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def get_storage() -> Storage:
    """The configured backend for this app (one instance per app)."""
    storage = current_app.extensions.get("hue_storage")
    if storage is None:
        storage = current_app.extensions["hue_storage"] = LocalStorage(current_app.config["MEDIA_ROOT"])
    return storage


def recent_originals(storage: Storage, younger_than_s: float, older_than_s: float) -> list[str]:
    """Keys of originals stored between `younger_than_s` and `older_than_s` seconds ago. Only the
    directories modified in that window are read, so the walk stays cheap on a large store."""
    import time

    root = getattr(storage, "root", None)
    originals = root / "originals" if root else None
    if originals is None or not originals.is_dir():
        return []
    now = time.time()
    keys = []
    for first in os.scandir(originals):
        for second in os.scandir(first.path):
            if second.stat().st_mtime < now - younger_than_s:
                continue  # nothing added to this directory in the window
            for entry in os.scandir(second.path):
                mtime = entry.stat().st_mtime
                if entry.is_file() and now - younger_than_s <= mtime <= now - older_than_s:
                    keys.append(f"originals/{first.name}/{second.name}/{entry.name}")
    return keys


def remove_stale_spools(storage: Storage, older_than_s: float) -> int:
    """Spooled uploads left by a worker that died mid-request (the request's end removes the rest), and the
    parts of files a killed process was writing (`put`)."""
    incoming = getattr(storage, "incoming", None)
    if incoming is None or not incoming.is_dir():
        return 0
    import time

    removed = 0
    for path in incoming.iterdir():
        if path.stat().st_mtime < time.time() - older_than_s:
            path.unlink(missing_ok=True)
            removed += 1
    return removed

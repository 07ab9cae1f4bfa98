"""Where photo files live: a small interface, and its two backends, selected by STORAGE_BACKEND:
the local filesystem under MEDIA_ROOT, or an S3-compatible bucket (AWS S3, MinIO, Ceph...).

Keys are relative paths made of lower-case letters, digits, '/', '.', '_' and
'-'; originals are content-addressed (`originals/ab/cd/<sha256>`), so an
identical upload is stored once. Writes are atomic (the local backend writes a
temporary file, then renames it; an object store makes an object visible
whole): a reader never sees half a file. Both backends stream: no call holds a
whole photo in memory.

A backend that cannot be reached raises StorageError (the API answers 503 with
Retry-After; a job fails and is retried); a missing object is FileNotFoundError.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from flask import current_app

log = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_.-]+)*$")
CHUNK = 1024 * 1024


class StorageError(RuntimeError):
    """The storage backend failed (disk full, unreachable object store...)."""


@dataclass
class ObjectStream:
    """An object being read for an answer: its size, its bytes in chunks, and `close` (call it when done)."""

    size: int
    chunks: Iterator[bytes]
    close: Callable[[], None]


class Storage(Protocol):
    def spool(self) -> BinaryIO:
        """A writable, readable, seekable file for an incoming upload (the request parser fills it).
        A backend that can adopt such a file without copying it (`put`) spools to its own disk."""

    def put(self, key: str, source: BinaryIO) -> bool:
        """Store `source` (read from its current position) under `key` unless the key exists.
        True if this call created the object."""

    def open(self, key: str) -> BinaryIO:
        """A seekable, readable file of the object (an object store's is first copied to a temporary
        file, in chunks); FileNotFoundError if it does not exist."""

    def stream(self, key: str) -> ObjectStream:
        """The object's bytes for an answer, read as they are sent; FileNotFoundError if it does not exist."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove an object; no error if it is already gone (StorageError if the store is unreachable)."""

    def local_path(self, key: str) -> Path | None:
        """A filesystem path to serve the object from, or None (object stores)."""

    def presigned_url(self, key: str) -> str | None:
        """A time-limited URL that lets anyone holding it read the object, or None when this backend does
        not give them (the local one; an object store with S3_PRESIGN_SECONDS=0)."""

    def recent_keys(self, prefix: str, younger_than_s: float, older_than_s: float) -> list[str]:
        """Keys under `prefix` stored between `younger_than_s` and `older_than_s` seconds ago."""


def original_key(sha256: str) -> str:
    return f"originals/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def derivative_key(name: str, size: str) -> str:
    """Derivatives belong to the original's content, so they too are made once. `name` is a hex digest
    naming that content (services.photos.derivative_name: not the original's SHA-256, which a presigned
    URL would show)."""
    return f"derivatives/{name[:2]}/{name[2:4]}/{name}/{size}.jpg"


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

    def stream(self, key: str) -> ObjectStream:
        fh = self.open(key)
        return ObjectStream(os.fstat(fh.fileno()).st_size, iter(lambda: fh.read(CHUNK), b""), fh.close)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {key}: {exc.strerror or exc}") from exc

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def presigned_url(self, key: str) -> str | None:
        return None

    def recent_keys(self, prefix: str, younger_than_s: float, older_than_s: float) -> list[str]:
        """For the content-addressed layout (`<prefix>ab/cd/<name>`): only the directories modified in the
        window are read (a new file changes its directory's mtime), so the walk stays cheap on a large store."""
        top = self.root / check_key(prefix.rstrip("/"))
        if not top.is_dir():
            return []
        now = time.time()
        keys = []
        for first in os.scandir(top):
            if not first.is_dir(follow_symlinks=False):
                continue
            for second in os.scandir(first.path):
                try:
                    if not second.is_dir(follow_symlinks=False) or second.stat().st_mtime < now - younger_than_s:
                        continue  # nothing added to this directory in the window
                    entries = list(os.scandir(second.path))
                except FileNotFoundError:  # (removed meanwhile)
                    continue
                for entry in entries:
                    try:
                        mtime = entry.stat().st_mtime
                    except FileNotFoundError:  # (deleted between the listing and now)
                        continue
                    if entry.is_file() and not entry.name.startswith(".") and \
                            now - younger_than_s <= mtime <= now - older_than_s:
                        keys.append(f"{prefix.rstrip('/')}/{first.name}/{second.name}/{entry.name}")
        return keys


def _fsync_directory(directory: Path) -> None:
    """Make a new name in `directory` durable: the database may refer to it right after."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# S3 error codes that mean "no such object" and "the conditional write lost to an existing object".
_MISSING = {"NoSuchKey", "NotFound", "404"}
_EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_UNCONDITIONAL = {"NotImplemented", "501"}  # (a store that does not know If-None-Match on PUT)


class S3Storage:
    """Objects in one bucket of an S3-compatible store, through boto3. The bucket stays private: originals
    are served only through the API to those who may see them; derivatives through the API too, or by a
    redirect to a presigned URL that expires (S3_PRESIGN_SECONDS), never by a public bucket path.

    Uploads are spooled to an anonymous temporary file (TMPDIR: keep it on disk, not in memory), and streamed
    to the store from there; `put` creates an object only if the key is free (a HEAD, then a conditional PUT
    with `If-None-Match: *`). `open` copies the object to a temporary file in chunks, since the image
    decoders need a seekable file. One boto3 client per process (it is thread-safe; a forked process makes
    its own).
    """

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, region: str | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 addressing_style: str = "auto", presign_seconds: int = 0, timeout_s: float = 10):
        if not bucket:
            raise ValueError("S3_BUCKET is required for STORAGE_BACKEND=s3")
        self.bucket = bucket
        self.presign_seconds = presign_seconds
        self._client_args = {
            "endpoint_url": endpoint_url or None, "region": region or None, "access_key_id": access_key_id or None,
            "secret_access_key": secret_access_key or None, "addressing_style": addressing_style,
            "timeout_s": timeout_s}
        self._client, self._pid = None, None

    @property
    def client(self):
        if self._client is None or self._pid != os.getpid():
            self._client, self._pid = _s3_client(**self._client_args), os.getpid()
        return self._client

    def close(self) -> None:
        """Close the client's connections (an app being shut down, tests)."""
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None

    @contextlib.contextmanager
    def _translated(self, what: str):
        """boto3's errors in our terms: a missing object is FileNotFoundError, anything else that stops the
        store from answering (unreachable, timed out, 5xx, refused credentials) StorageError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise FileNotFoundError(what) from exc
            raise StorageError(f"{what}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"{what}: {exc}") from exc

    def spool(self) -> BinaryIO:
        try:
            return tempfile.TemporaryFile(prefix="hue-upload-")  # noqa: SIM115 (closed by the request)
        except OSError as exc:
            raise StorageError(f"cannot spool an upload: {exc.strerror or exc}") from exc

    def put(self, key: str, source: BinaryIO) -> bool:
        from botocore.exceptions import ClientError

        check_key(key)
        if self.exists(key):
            return False  # (without sending the bytes again)
        start = source.tell()
        condition = {"IfNoneMatch": "*"}
        while True:
            try:
                with self._translated(f"cannot store {key}"):
                    # A file body is streamed from its current position (and rewound there on a retry).
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=source, **condition,
                                           ContentType="image/jpeg" if key.endswith(".jpg") else
                                           "application/octet-stream")
                return True
            except StorageError as exc:
                cause = exc.__cause__
                code = str(cause.response.get("Error", {}).get("Code")) if isinstance(cause, ClientError) else ""
                if code in _EXISTS:
                    return False  # another writer made it between the HEAD and the PUT
                if code in _UNCONDITIONAL and condition:
                    # A store without conditional writes: the same key always holds the same bytes
                    # (content addressing), so a plain PUT after the HEAD is as good.
                    condition = {}
                    source.seek(start)
                    continue
                raise

    def _get(self, key: str):
        with self._translated(f"cannot read {key}"):
            return self.client.get_object(Bucket=self.bucket, Key=check_key(key))

    def open(self, key: str) -> BinaryIO:
        answer = self._get(key)
        try:
            spool = tempfile.TemporaryFile(prefix="hue-object-")  # noqa: SIM115 (the caller closes it)
        except OSError as exc:
            answer["Body"].close()
            raise StorageError(f"cannot spool {key}: {exc.strerror or exc}") from exc
        try:
            with self._translated(f"cannot read {key}"), contextlib.closing(answer["Body"]) as body:
                for chunk in body.iter_chunks(CHUNK):
                    spool.write(chunk)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    def stream(self, key: str) -> ObjectStream:
        answer = self._get(key)
        body = answer["Body"]

        def chunks() -> Iterator[bytes]:
            # Headers are sent by now: a failure here can only cut the answer short (and is logged).
            try:
                yield from body.iter_chunks(64 * 1024)
            except Exception as exc:
                log.warning("photo storage: reading %s failed while answering: %s", key, exc)
                raise

        return ObjectStream(int(answer["ContentLength"]), chunks(), body.close)

    def exists(self, key: str) -> bool:
        try:
            with self._translated(f"cannot look up {key}"):
                self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        with self._translated(f"cannot delete {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=check_key(key))  # (no error if already gone)

    def local_path(self, key: str) -> Path | None:
        return None

    def presigned_url(self, key: str) -> str | None:
        if not self.presign_seconds:
            return None
        with self._translated(f"cannot sign a URL for {key}"):  # (signed locally: no request is made)
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": check_key(key)}, ExpiresIn=self.presign_seconds)

    def versioned(self) -> bool:
        """Does the bucket keep old versions of what is deleted (versioning enabled, or suspended with versions
        kept)? Unless a lifecycle rule expires them, a deleted original would live on as a noncurrent version."""
        with self._translated(f"cannot read bucket {self.bucket}'s versioning"):
            status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        if status not in ("Enabled", "Suspended"):
            return False
        from botocore.exceptions import ClientError

        try:
            rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket).get("Rules", [])
        except ClientError:  # (no lifecycle configuration)
            rules = []
        return not any(r.get("Status") == "Enabled" and "NoncurrentVersionExpiration" in r for r in rules)

    def readable_by_anyone(self, key: str) -> bool:
        """Can a request without credentials read this object? (It must not: a public bucket would publish
        the originals.)"""
        from botocore.exceptions import ClientError

        anonymous = _s3_client(**{**self._client_args, "unsigned": True})
        try:
            with self._translated(f"cannot read {key} anonymously"):
                try:
                    anonymous.get_object(Bucket=self.bucket, Key=check_key(key))["Body"].close()
                except ClientError as exc:
                    if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (401, 403):
                        return False
                    raise
            return True
        finally:
            anonymous.close()

    def recent_keys(self, prefix: str, younger_than_s: float, older_than_s: float) -> list[str]:
        """An object store has no directories to skip: this lists every key under `prefix` (one request per
        1,000 keys) and keeps those whose LastModified is in the window."""
        now = datetime.now(timezone.utc).timestamp()
        keys = []
        with self._translated(f"cannot list {prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    if now - younger_than_s <= item["LastModified"].timestamp() <= now - older_than_s:
                        keys.append(item["Key"])
        return keys


def _s3_client(*, endpoint_url, region, access_key_id, secret_access_key, addressing_style, timeout_s,
               unsigned: bool = False):
    """A boto3 S3 client. Credentials: the given ones, else boto3's own chain (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance or task role). Short timeouts and three attempts, so that
    an outage becomes a 503 within seconds instead of a hung request. Checksums only where the API requires
    them: several S3-compatible stores refuse the newer default checksum headers."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
                                    region_name=region)
    return session.client("s3", endpoint_url=endpoint_url, config=Config(
        signature_version=UNSIGNED if unsigned else "s3v4", s3={"addressing_style": addressing_style},
        connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=20, request_checksum_calculation="when_required",
        response_checksum_validation="when_required"))


def make_storage(config: Mapping[str, Any]) -> Storage:
    """The backend the configuration names (STORAGE_BACKEND)."""
    if config.get("STORAGE_BACKEND", "local") == "s3":
        return S3Storage(config["S3_BUCKET"], endpoint_url=config.get("S3_ENDPOINT_URL"),
                         region=config.get("S3_REGION"), access_key_id=config.get("S3_ACCESS_KEY_ID"),
                         secret_access_key=config.get("S3_SECRET_ACCESS_KEY"),
                         addressing_style=config.get("S3_ADDRESSING_STYLE") or "auto",
                         presign_seconds=config.get("S3_PRESIGN_SECONDS") or 0,
                         timeout_s=config.get("S3_TIMEOUT_SECONDS") or 10)
    return LocalStorage(config["MEDIA_ROOT"])


def get_storage() -> Storage:
    """The configured backend for this app (one instance per app)."""
    storage = current_app.extensions.get("hue_storage")
    if storage is None:
        storage = current_app.extensions["hue_storage"] = make_storage(current_app.config)
    return storage


PROBE = b"hue-reports storage check\n"


def check_storage(storage: Storage) -> list[str]:
    """What is wrong with the photo storage, found by using it: a probe object written, read back and deleted,
    and, in an object store, refused to a reader without credentials. Empty if all is well."""
    import io

    key = f"probes/{os.urandom(8).hex()}"
    problems = []
    try:
        storage.put(key, io.BytesIO(PROBE))
        with storage.open(key) as fh:
            if fh.read() != PROBE:
                problems.append(f"{key} reads back other bytes than were written")
        if isinstance(storage, S3Storage) and storage.readable_by_anyone(key):
            problems.append(f"bucket {storage.bucket} is readable without credentials: make it private "
                            "(originals hold the reporters' photos with their GPS)")
        if isinstance(storage, S3Storage) and storage.versioned():
            problems.append(f"bucket {storage.bucket} keeps old versions: a deleted original (the retention "
                            "job's) would stay as one; turn versioning off, or expire noncurrent versions under "
                            "originals/ by a lifecycle rule within days")
    except (StorageError, OSError) as exc:
        problems.append(str(exc))
    finally:
        try:
            storage.delete(key)
        except StorageError as exc:
            problems.append(str(exc))
    return problems


def recent_originals(storage: Storage, younger_than_s: float, older_than_s: float) -> list[str]:
    """Keys of originals stored between `younger_than_s` and `older_than_s` seconds ago."""
    return storage.recent_keys("originals/", younger_than_s, older_than_s)


def remove_stale_spools(storage: Storage, older_than_s: float) -> int:
    """Spooled uploads left by a worker that died mid-request (the request's end removes the rest), and the
    parts of files a killed process was writing (`put`)."""
    incoming = getattr(storage, "incoming", None)
    if incoming is None or not incoming.is_dir():
        return 0  # (an object store's spools are anonymous temporary files: they go with their process)
    removed = 0
    for path in incoming.iterdir():
        try:
            stale = path.stat().st_mtime < time.time() - older_than_s
        except FileNotFoundError:  # (its upload finished or was discarded meanwhile)
            continue
        if stale:
            path.unlink(missing_ok=True)
            removed += 1
    return removed

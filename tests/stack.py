"""The real stack in pieces a test can break: a throw-away Redis server, a TCP proxy to PostgreSQL that can be
cut, gunicorn API processes and RQ worker processes that can be killed. For the fault and load tests."""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis as redis_lib

from hue_reports.devstack import free_port
from tests.support import ROOT

BIN = Path(sys.executable).parent


class RedisServer:
    """A redis-server of the test's own on a free port, without persistence: stopping it loses the queue, as a
    restarted Redis without its data does; `start()` again brings it back on the same port."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed"
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                                      "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        client = redis_lib.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis_lib.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class TcpProxy:
    """A TCP proxy on 127.0.0.1 to a PostgreSQL server, for the application's DATABASE_URL. `cut()` closes
    every connection through it and refuses new ones (the server is down, as the application sees it);
    `restore()` accepts again. `cut_on(marker)`: the next connection that sends `marker` (a statement's text) is
    dropped there, mid-transaction, while new connections still get through (the server restarted)."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self.up = True
        self.marker: bytes | None = None
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: cut
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, server))
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()

    def _pipe(self, client: socket.socket, server: socket.socket) -> None:
        sockets = [client, server]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client and self.marker is not None and self.marker in data:
                        self.marker = None
                        return  # dropped before the statement reaches the server
                    (server if sock is client else client).sendall(data)
        except OSError:
            return
        finally:
            for sock in sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def cut(self) -> None:
        self.up = False
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)  # (wakes the accepting thread; close() alone does not)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def restore(self) -> None:
        if not self.up:
            self.up = True
            self._listen()

    def cut_on(self, marker: bytes) -> None:
        self.marker = marker

    def url(self, database_url: str) -> str:
        """`database_url` with its host and port replaced by the proxy's."""
        from sqlalchemy.engine import make_url

        return make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)


def terminate(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Gunicorn:
    """The API as production runs it: gunicorn with the shared settings module, on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 2, threads: int = 4):
        self.port = free_port()
        self.base = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", "python:hue_reports.gunicorn_conf", "--workers", str(workers),
             "--threads", str(threads), "--bind", self.base, "--access-logfile", "/dev/null", "wsgi:app"],
            cwd=ROOT, env={**env, "PROMETHEUS_MULTIPROC_DIR": str(log_path.parent)}, stdout=self._log,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if request(self.base, "GET", "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)

    def stop(self) -> None:
        terminate(self.proc)
        self._log.close()


class Workers:
    """`flask worker` processes (the real CLI) that can be killed and replaced."""

    def __init__(self, env: dict[str, str], log_dir: Path, queues: str | None = None):
        self.env = env
        self.log_dir = log_dir
        self.queues = queues
        self.procs: list[subprocess.Popen] = []
        self.groups: list[int] = []  # each worker's process group: its RQ scheduler process outlives a SIGKILL
        self.killed = 0
        self._logs: list = []

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            log = open(self.log_dir / f"worker-{len(self._logs)}.log", "w")
            self._logs.append(log)
            args = [str(BIN / "flask"), "--app", "wsgi", "worker"] + (["--queues", self.queues] if self.queues else [])
            proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            self.procs.append(proc)
            self.groups.append(proc.pid)

    def kill_one(self, index: int = 0) -> None:
        """SIGKILL a worker (whatever job it is in the middle of dies with it), and start a new one."""
        proc = self.procs.pop(index)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.killed += 1
        self.start()

    def stop(self) -> None:
        for proc in self.procs:
            terminate(proc)
        self.procs = []
        for group in self.groups:  # what the killed workers left: their scheduler processes
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for log in self._logs:
            log.close()

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.log_dir.glob("worker-*.log")))


def request(base: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 30) -> tuple[int, dict, dict | None]:
    """One HTTP request on a new connection: (status, headers, JSON body or None). A hang raises (timeout)."""
    host, port = base.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        answer_headers = {k.lower(): v for k, v in response.getheaders()}
        parsed = json.loads(raw) if answer_headers.get("content-type", "").startswith("application/json") else None
        return response.status, answer_headers, parsed
    finally:
        conn.close()


def small_jpeg(n: int, size: int = 64) -> bytes:
    """A small JPEG whose content is unique to `n` < 2**24 (content-addressed storage stores each once): its
    bits drawn as white squares on black, which no compression blurs into another number's."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    cell = size // 8
    for bit in range(24):
        if n >> bit & 1:
            x, y = bit % 6 * cell, bit // 6 * cell
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def process_env_for(base_env: dict[str, str], **overrides) -> dict[str, str]:
    return {**base_env, **{k: str(v) for k, v in overrides.items()}, "PYTHONUNBUFFERED": "1",
            "PATH": os.environ.get("PATH", "")}

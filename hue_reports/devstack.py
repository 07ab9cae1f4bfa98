"""The local stack behind `make run` and `make test`.

Unless DATABASE_URL / REDIS_URL are set, this runs a project-local PostgreSQL
cluster (Debian's binaries, data in ./var/postgres) and a Redis (./var/redis) on
their own ports, so the project never touches the machine's own services and
its data survives between runs. PostgreSQL refuses to run as root, so as root the
cluster runs as the unprivileged `postgres` user.

    python -m hue_reports.devstack run     # migrate, seed demo data, run api + worker + scheduler
    python -m hue_reports.devstack test    # run pytest against a throw-away database
    python -m hue_reports.devstack up      # start the services only and print their URLs
    python -m hue_reports.devstack stop    # stop the project-local services

This module imports nothing from the application: it prepares the ground the
application stands on, and drives it through its real command line.
"""

from __future__ import annotations

import argparse
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("HUE_VAR_DIR", ROOT / "var")).resolve()
BIN = Path(sys.executable).parent
PG_BIN = Path(os.environ.get("HUE_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_PORT = int(os.environ.get("HUE_DEV_PG_PORT", "54329"))
REDIS_PORT = int(os.environ.get("HUE_DEV_REDIS_PORT", "63799"))
DEV_DATABASE = "hue_reports"
# gunicorn's settings live in one module, shared with the container image.
GUNICORN_CONFIG = "python:hue_reports.gunicorn_conf"
# Tests use their own Redis database number, never the one `make run` works in.
TEST_REDIS_DB = 15


def shared_data() -> Path:
    """The data shared by the project's sessions, for tests and benchmarks (real photos, read in place):
    HUE_SHARED_DATA, else `shared/data` beside this checkout, else beside the repository this checkout
    was cloned from."""
    candidates = []
    if os.environ.get("HUE_SHARED_DATA"):
        candidates.append(Path(os.environ["HUE_SHARED_DATA"]))
    candidates.append(ROOT.parent / "shared" / "data")
    origin = _run(["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"]).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "data")
    for candidate in candidates:
        if (candidate / "photos").is_dir():
            return candidate
    raise RuntimeError(f"the shared data is in none of {[str(c) for c in candidates]}: "
                       "set HUE_SHARED_DATA to the folder that holds photos/")


class StackError(RuntimeError):
    """A problem the user must fix; printed without a traceback."""


def log(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=False, text=True, capture_output=True, **kw)


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def choose_port(preferred: int, what: str, env_var: str, any_port: bool) -> int:
    """`preferred` if free; else any free port when allowed (tests), else a clear error."""
    if not port_in_use(preferred):
        return preferred
    if any_port:
        port = free_port()
        log(f"port {preferred} is taken by another program; this run's {what} uses {port}")
        return port
    raise StackError(f"port {preferred} is taken by another program (another checkout's `make run`?): "
                     f"stop it, or set {env_var} to another port for {what}")


# Where a root-run cluster lives when the postgres user cannot reach the clone
# (a clone under /root, mode 0700): one directory per checkout, linked from ./var.
OUTSIDE_ROOT = Path("/var/lib/hue-reports")


class LocalPostgres:
    """A PostgreSQL cluster owned by this project, under ./var/postgres.

    As root, PostgreSQL runs as the `postgres` user, which must be able to reach
    the data directory. If the checkout is closed to it (e.g. under /root), the
    cluster lives in /var/lib/hue-reports/<checkout hash>/ and ./var/postgres is
    a symbolic link to it.
    """

    def __init__(self, var: Path, port: int):
        link = var / "postgres"
        self.dir = link.resolve() if link.is_symlink() else link
        self.link = link
        self.default_port = self.port = port
        self.as_root = os.geteuid() == 0

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def logfile(self) -> Path:
        return self.dir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _cmd(self, argv: list[str]) -> list[str]:
        # PostgreSQL will not run as root: run its tools as the postgres user.
        return ["runuser", "-u", "postgres", "--", *argv] if self.as_root else argv

    def _check_binaries(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise StackError(
                f"PostgreSQL 15 binaries not found in {PG_BIN}. "
                "Install them with `apt-get install postgresql-15 postgresql-15-postgis-3` "
                "(make run / make test do it as root), or set DATABASE_URL."
            )

    def _reachable(self) -> bool:
        return _run(self._cmd(["test", "-w", str(self.dir)])).returncode == 0

    def _prepare_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.as_root:
            return
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise StackError("the `postgres` user is missing; install postgresql-15") from exc
        os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        if self._reachable():
            return
        # The checkout is closed to the postgres user: keep the cluster outside it.
        import hashlib

        outside = OUTSIDE_ROOT / hashlib.sha256(str(self.link.parent).encode()).hexdigest()[:16] / "postgres"
        outside.mkdir(parents=True, exist_ok=True)
        for directory in (OUTSIDE_ROOT, outside.parent):
            directory.chmod(0o755)
        os.chown(outside, owner.pw_uid, owner.pw_gid)
        if not self.link.is_symlink():
            self.link.rmdir()  # empty: it was created above, and nothing could be written to it
            self.link.symlink_to(outside, target_is_directory=True)
        self.dir = outside
        log(f"the postgres user cannot reach {self.link.parent}: the cluster lives in {outside} "
            f"(linked from {self.link})")
        if not self._reachable():
            raise StackError(f"the postgres user cannot write to {outside}")

    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        self._check_binaries()
        self._prepare_dir()
        if self.initialised():
            return
        log(f"creating a PostgreSQL cluster in {self.data}")
        result = _run(self._cmd([
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
        ]))
        if result.returncode != 0:
            raise StackError(f"initdb failed:\n{result.stdout}{result.stderr}")
        # Local only: TCP on 127.0.0.1, no Unix socket (paths under ./var can
        # exceed the socket path limit, and nothing here needs one).
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                "\n# hue-reports devstack\n"
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"
                "max_connections = 200\n"
                # (PostgreSQL's defaults, said here: a streaming replica can be made of this cluster with
                # pg_basebackup; initdb's pg_hba.conf lets 127.0.0.1 connect for replication)
                "wal_level = replica\n"
                "max_wal_senders = 10\n"
            )

    def running(self) -> bool:
        """Is this cluster running? If so, `port` becomes the port it listens on."""
        if not self.initialised():
            return False
        if _run(self._cmd([str(PG_BIN / "pg_ctl"), "status", "-D", str(self.data)])).returncode != 0:
            return False
        try:  # postmaster.pid: pid, data directory, start time, port, ...
            self.port = int((self.data / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            pass
        return True

    def start(self, any_port: bool = False) -> None:
        self.port = choose_port(self.default_port, "PostgreSQL", "HUE_DEV_PG_PORT", any_port)
        log(f"starting PostgreSQL on 127.0.0.1:{self.port}")
        result = _run(self._cmd([
            str(PG_BIN / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.logfile),
            "-w", "-t", "60", "-o", f"-p {self.port}",
        ]))
        if result.returncode != 0:
            tail = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise StackError(
                f"PostgreSQL did not start (is port {self.port} taken? set HUE_DEV_PG_PORT):\n"
                f"{result.stdout}{result.stderr}\n{tail}"
            )

    def stop(self) -> None:
        if self.running():
            log("stopping PostgreSQL")
            _run(self._cmd([str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"]))


class LocalReplica(LocalPostgres):
    """A streaming replica of a PostgreSQL server (`pg_basebackup -R`: a copy of the whole cluster that
    follows it), under `directory`, on 127.0.0.1:`port`: the tests' replica for DATABASE_REPLICA_URL, and
    the recipe of README's "Scaling out" by hand. The primary must allow replication connections (the
    devstack's cluster does). Started and stopped like the cluster it copies."""

    def __init__(self, primary_url: str, directory: Path, port: int | None = None):
        self.primary_url = primary_url
        self.dir = self.link = directory
        self.default_port = self.port = port or free_port()
        self.as_root = os.geteuid() == 0

    def create(self, settings: dict[str, str] | None = None) -> None:
        """Copy the primary (a fast checkpoint, the WAL streamed alongside) with the standby's settings, and
        `settings` of its own (postgresql.conf)."""
        self._check_binaries()
        self.dir.mkdir(parents=True, exist_ok=False)
        if self.as_root:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        result = _run(self._cmd([str(PG_BIN / "pg_basebackup"), "-d", self.primary_url, "-D", str(self.data),
                                 "-R", "-X", "stream", "-c", "fast"]), timeout=300)
        if result.returncode != 0:
            raise StackError(f"pg_basebackup failed:\n{result.stdout}{result.stderr}")
        if settings:
            with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write("\n# the replica's own\n" + "".join(f"{k} = '{v}'\n" for k, v in settings.items()))

    def remove(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalRedis:
    """A Redis server owned by this project, under ./var/redis (append-only file on)."""

    def __init__(self, var: Path, port: int):
        self.dir = var / "redis"
        self.port_file = self.dir / "port"
        self.default_port = self.port = port

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=2)

    def running(self) -> bool:
        """Is OUR Redis running (the one whose data directory is ours)? Sets `port` to its port."""
        import redis

        if self.port_file.exists():
            self.port = int(self.port_file.read_text())
        try:
            return self._client().config_get("dir").get("dir") == str(self.dir)
        except redis.RedisError:
            return False

    def start(self, any_port: bool = False) -> None:
        import shutil

        exe = shutil.which("redis-server")
        if exe is None:
            raise StackError("redis-server not found: `apt-get install redis-server`, or set REDIS_URL")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = choose_port(self.default_port, "Redis", "HUE_DEV_REDIS_PORT", any_port)
        self.port_file.write_text(str(self.port))
        log(f"starting Redis on 127.0.0.1:{self.port}")
        result = _run([
            exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--daemonize", "yes", "--pidfile", str(self.dir / "redis.pid"),
            "--logfile", str(self.dir / "redis.log"), "--appendonly", "yes", "--save", "",
        ])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.running():
                return
            time.sleep(0.1)
        raise StackError(
            f"Redis did not start on port {self.port} (taken? set HUE_DEV_REDIS_PORT): "
            f"{result.stdout}{result.stderr}"
        )

    def stop(self) -> None:
        import redis

        if self.running():
            log("stopping Redis")
            try:
                self._client().shutdown()
            except redis.ConnectionError:
                pass  # the server closes the connection as it exits


class Stack:
    """Starts what is missing, remembers what it started, and stops only that."""

    def __init__(self) -> None:
        self.postgres = LocalPostgres(VAR, PG_PORT)
        self.redis = LocalRedis(VAR, REDIS_PORT)
        self.started: list = []

    def up(self, *, need_database: bool = True, any_port: bool = False) -> dict[str, str]:
        """Make PostgreSQL and Redis reachable; return the environment that points at them.

        `any_port`: if a default port is taken by another program, use a free one
        (fine for tests; `make run` prefers a clear error and stable URLs).
        """
        env: dict[str, str] = {}
        if os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        else:
            self.postgres.init()
            if not self.postgres.running():
                self.postgres.start(any_port)
                self.started.append(self.postgres)
            env["DATABASE_URL"] = self.postgres.url(DEV_DATABASE)
        if need_database:
            ensure_database(env["DATABASE_URL"])
        if os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = os.environ["REDIS_URL"]
        else:
            if not self.redis.running():
                self.redis.start(any_port)
                self.started.append(self.redis)
            env["REDIS_URL"] = self.redis.url(0)
        return env

    def down(self) -> None:
        for service in reversed(self.started):
            service.stop()
        self.started.clear()


def server_database_url(url: str, database: str = "postgres") -> str:
    """The same server, another database (psycopg's own URL syntax, no driver suffix)."""
    from sqlalchemy.engine import make_url

    u = make_url(url).set(drivername="postgresql", database=database)
    return u.render_as_string(hide_password=False)


def redis_database(url: str, db: int) -> str:
    """The same Redis server, another database number."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def ensure_database(url: str) -> None:
    """Create the database named in `url` if it does not exist yet."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    try:
        with psycopg.connect(server_database_url(url, name), connect_timeout=10):
            return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise StackError(f"cannot connect to the database server: {exc}") from exc
    log(f"creating database {name}")
    with psycopg.connect(server_database_url(url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')


def flask(args: list[str], env: dict[str, str]) -> None:
    """Run the application's own CLI (`flask --app wsgi ...`), failing loudly."""
    result = subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        raise StackError(f"`flask {' '.join(args)}` failed with exit code {result.returncode}")


def _base_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HUE_ENV", "development")
    env.setdefault("MEDIA_ROOT", str(VAR / "media"))
    env.update(extra)
    return env


class Supervisor:
    """Runs a few processes in the foreground, prefixing their logs; Ctrl-C stops all of them.

    Ctrl-C or SIGTERM at any moment (even while the processes are starting)
    sets `stopping`; `terminate()` then stops every process group it started.
    """

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def spawn(self, name: str, argv: list[str]) -> None:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, start_new_session=True,
        )
        self.procs[name] = proc
        threading.Thread(target=self._pump, args=(name, proc), daemon=True).start()

    @staticmethod
    def _pump(name: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            sys.stdout.write(f"{name:>9} | {line}")
            sys.stdout.flush()

    def dead(self) -> str | None:
        """The name of a process that has exited, if any."""
        return next((name for name, proc in self.procs.items() if proc.poll() is not None), None)

    def wait(self) -> int:
        """Block until Ctrl-C/SIGTERM or until one process dies. The caller calls terminate()."""
        while not self.stopping:
            name = self.dead()
            if name:
                code = self.procs[name].returncode
                log(f"{name} exited with code {code}; stopping the others")
                return code or 1
            time.sleep(0.2)
        return 0

    def terminate(self, timeout: float = 20) -> None:
        """SIGTERM each process (a warm shutdown: the RQ worker finishes its job), then, past the
        timeout or once its leader is gone, SIGKILL what is left of its process group."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop in time; killing it")
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group is its children
            except ProcessLookupError:
                pass
            proc.wait()


def wait_http(url: str, timeout: float, sup: Supervisor) -> bool:
    """Poll `url` until it answers 200; give up if a process dies or a stop is requested."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sup.stopping or sup.dead():
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def cmd_run(args: argparse.Namespace) -> int:
    stack = Stack()
    try:
        env = _base_env(stack.up())
        flask(["db", "upgrade"], env)
        flask(["seed", "--demo"], env)
        sup = Supervisor(env)
        try:
            bind = f"{args.host}:{args.port}"
            sup.spawn("api", [str(BIN / "gunicorn"), "--config", GUNICORN_CONFIG, "--bind", bind,
                              "--workers", str(args.web_workers), "wsgi:app"])
            # as in docker-compose.yml: the rollups (seconds long at scale) never hold up a routing
            sup.spawn("worker", [str(BIN / "flask"), "--app", "wsgi", "worker", "-q",
                                 "routing,photos,notifications,periodic"])
            sup.spawn("worker-rollups", [str(BIN / "flask"), "--app", "wsgi", "worker", "-q", "rollups"])
            sup.spawn("scheduler", [str(BIN / "flask"), "--app", "wsgi", "scheduler"])
            url = f"http://{bind}"
            if wait_http(f"{url}/healthz", 60, sup):
                log(f"hue-reports is running at {url}  (readiness: {url}/readyz, "
                    f"services: {url}/api/v1/services). Ctrl-C stops everything.")
            elif not sup.stopping and not sup.dead():
                log(f"warning: the API did not answer {url}/healthz within 60 s; still waiting")
            return sup.wait()
        finally:
            sup.terminate()
            log("stopped")
    finally:
        stack.down()


def cmd_test(args: argparse.Namespace) -> int:
    stack = Stack()
    try:
        services = stack.up(need_database=False, any_port=True)
        env = _base_env({})
        env["HUE_ENV"] = "testing"
        # conftest.py makes a throw-away database on this server and drops it afterwards.
        env["TEST_DATABASE_URL"] = server_database_url(services["DATABASE_URL"])
        # Never the Redis database the developer works in: database 15 of the same server.
        env.setdefault("TEST_REDIS_URL", redis_database(services["REDIS_URL"], TEST_REDIS_DB))
        result = subprocess.run([str(BIN / "pytest"), *args.pytest_args], cwd=ROOT, env=env, check=False)
        if result.returncode == 5:
            log("pytest collected no tests: that is a failure")
            return 1
        return result.returncode
    finally:
        stack.down()


def cmd_up(args: argparse.Namespace) -> int:
    env = Stack().up()
    for key, value in env.items():
        print(f"export {key}={value}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    stack = Stack()
    stack.redis.stop()
    stack.postgres.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hue_reports.devstack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="the whole system in the foreground")
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    run.add_argument("--web-workers", type=int, default=2)
    run.set_defaults(func=cmd_run)
    test = sub.add_parser("test", help="pytest against real PostgreSQL+PostGIS and Redis; "
                                       "other arguments go to pytest")
    test.set_defaults(func=cmd_test)
    sub.add_parser("up", help="start PostgreSQL and Redis, print their URLs").set_defaults(func=cmd_up)
    sub.add_parser("stop", help="stop the project-local services").set_defaults(func=cmd_stop)
    args, extra = parser.parse_known_args(argv)
    if args.command == "test":
        args.pytest_args = extra or ["tests"]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except StackError as exc:
        print(f"[devstack] error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

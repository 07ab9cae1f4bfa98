"""`make run`: the whole system from one command, and Ctrl-C stops all of it.

Runs `python -m hue_reports.devstack run` (what `make run` calls once the
Debian packages and the virtual environment are there) against a throw-away
database and the test Redis, with real gunicorn, worker and scheduler processes.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
import yaml
from rq import Worker

from hue_reports.cli import DEFAULT_DATA_DIR
from hue_reports.devstack import OUTSIDE_ROOT, LocalPostgres, free_port, redis_database
from tests.support import ROOT, create_database, drop_database, server_url


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment contains `marker` (ours: a unique database URL)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.fixture
def run_database():
    name = create_database("hue_run")
    yield server_url(name)
    drop_database(name)


def _env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a developer who set DATABASE_URL and REDIS_URL (no local services started)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}
    env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, HUE_ENV="development", **extra)
    return env


@contextlib.contextmanager
def _make_run(env: dict[str, str], port: int, log_path: Path):
    """`make run` in its own process group; killed with everything it started if left running."""
    with open(log_path, "w") as log, subprocess.Popen(
            [sys.executable, "-m", "hue_reports.devstack", "run", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            for pid in _processes_with(env["DATABASE_URL"]):
                os.kill(pid, signal.SIGKILL)


def _wait_for_log(proc, log_path: Path, text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while text not in log_path.read_text():
        assert proc.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log_path.read_text()}"
        time.sleep(0.1)


def test_make_run_serves_the_seeded_city_and_ctrl_c_stops_everything(run_database, redis_url, redis_conn,
                                                                      tmp_path):
    port = free_port()
    env = _env(run_database, redis_url, HEARTBEAT_SECONDS="1", MEDIA_ROOT=str(tmp_path / "media"))
    log_path = tmp_path / "run.log"
    base = f"http://127.0.0.1:{port}"
    with _make_run(env, port, log_path) as proc:
        _wait_for_log(proc, log_path, f"running at {base}")
        deadline = time.monotonic() + 60
        status, ready = _get(f"{base}/readyz")
        assert status == 200, ready
        status, body = _get(f"{base}/api/v1/services")
        assert status == 200
        expected = yaml.safe_load((DEFAULT_DATA_DIR / "categories.yaml").read_text(encoding="utf-8"))
        assert body["count"] == sum(len(g["categories"]) for g in expected["groups"])
        assert {"vi", "en"} <= set(body["services"][0]["name"])

        # The scheduler's heartbeat goes through Redis to the worker and back to /readyz.
        while time.monotonic() < deadline and not _get(f"{base}/readyz")[1].get("heartbeat"):
            time.sleep(0.3)
        assert _get(f"{base}/readyz")[1]["heartbeat"], log_path.read_text()
        # the general worker and the rollups' own one, by the queues they read
        assert sorted(",".join(w.queue_names()) for w in Worker.all(connection=redis_conn)) == [
            "rollups", "routing,photos,notifications,periodic"]
        assert len(_processes_with(run_database)) >= 5  # supervisor, api, two workers, scheduler

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(timeout=40) == 0, log_path.read_text()
    assert _processes_with(run_database) == [], log_path.read_text()
    assert Worker.all(connection=redis_conn) == []
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{base}/healthz", timeout=2)


def test_make_run_seeds_idempotently(run_database, redis_url, tmp_path):
    """Migrating and seeding twice (two `make run`s) leaves the data as the first left it."""
    env = _env(run_database, redis_url)
    flask = [str(Path(sys.executable).parent / "flask"), "--app", "wsgi"]
    outputs, demo = [], []
    for _ in range(2):
        for args in (["db", "upgrade"], ["seed", "--demo"]):
            result = subprocess.run([*flask, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                                    timeout=120, check=False)
            assert result.returncode == 0, result.stderr
        outputs.append(_seed_counts(result.stdout))
        demo.append(re.findall(r"demo reports: (\d+) created", result.stdout))
    # demo reports with their history, the first time only, and the metrics computed from them
    assert int(demo[0][0]) > 100 and demo[1] == []
    with psycopg.connect(run_database) as conn:
        routed, events, answer = conn.execute(
            "SELECT (SELECT count(*) FROM reports WHERE agency_id IS NOT NULL), (SELECT count(*) FROM report_events),"
            " (SELECT body FROM metric_results WHERE key = 'agency||')").fetchone()
    assert routed > 100 and events > 3 * routed and answer["total"]["resolved"] > 0
    assert outputs[0], "flask seed printed no counts"
    assert all(created > 0 for created, _ in outputs[0].values()), outputs[0]
    assert set(outputs[1]) == set(outputs[0])
    assert all(counts == (0, 0) for counts in outputs[1].values()), outputs[1]


def _seed_counts(output: str) -> dict[str, tuple[int, int]]:
    """{'categories': (created, updated), ...} from `flask seed`'s output."""
    counts = {}
    for line in output.splitlines():
        match = re.match(r"\s*(\w+): (\d+) created, (\d+) updated", line)
        if match:
            counts[match[1]] = (int(match[2]), int(match[3]))
    return counts


def test_make_test_treats_no_tests_collected_as_a_failure(database_url, redis_url):
    """pytest exits 5 when it collects nothing; `make test` must not pass on that."""
    env = _env(database_url, redis_url)
    result = subprocess.run(
        [sys.executable, "-m", "hue_reports.devstack", "test", "-q", "-k", "no_test_is_called_this",
         "tests/test_config.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "collected no tests: that is a failure" in result.stdout


def test_ctrl_c_while_the_system_starts_leaves_nothing_running(run_database, redis_url, tmp_path):
    """Ctrl-C before the API answers (gunicorn still booting) must stop every process already started."""
    port = free_port()
    env = _env(run_database, redis_url, MEDIA_ROOT=str(tmp_path / "media"))
    log_path = tmp_path / "run.log"
    with _make_run(env, port, log_path) as proc:
        _wait_for_log(proc, log_path, "api |")  # the first processes are up, the URL not yet printed
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=40)
        assert _processes_with(run_database) == [], log_path.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the cluster as another user")
def test_a_checkout_closed_to_the_postgres_user_gets_its_cluster_outside(tmp_path):
    """As root in a clone under /root (mode 0700), PostgreSQL cannot reach ./var: it must work anyway."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    var = closed / "var"
    cluster = LocalPostgres(var, free_port())
    try:
        cluster.init()
        cluster.start()
        assert (var / "postgres").is_symlink() and cluster.dir.is_relative_to(OUTSIDE_ROOT)
        with psycopg.connect(cluster.url(), connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        again = LocalPostgres(var, cluster.default_port)  # the next `make run` finds it running
        assert again.running() and again.dir == cluster.dir and again.port == cluster.port
    finally:
        cluster.stop()
        shutil.rmtree(cluster.dir.parent, ignore_errors=True)


def test_tests_use_their_own_redis_database_on_the_given_server():
    assert redis_database("redis://:pw@cache:6380/0", 15) == "redis://:pw@cache:6380/15"
    assert redis_database("redis://127.0.0.1:63799", 15) == "redis://127.0.0.1:63799/15"

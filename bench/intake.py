"""Intake benchmark: report submissions against gunicorn, beside a floor that only stores the upload
(and a second floor that also writes the report's rows).

    python bench/intake.py [--requests 200] [--concurrency 8]      (or: make bench)

Starts the real stack: the project-local PostgreSQL and Redis (or DATABASE_URL / REDIS_URL), a
throw-away database migrated and seeded, the API under gunicorn with the project's settings, and the
floor app (bench/floor_app.py) under the same settings. Concurrent clients POST the Nokia phone photo
from ../shared/data/photos (4608x1976, 2.2 MB) with the same multipart body to both; each request's
photo gets 16 unique trailing bytes, so that content addressing never lets intake skip a write the
floor does. Then one RQ worker makes the queued derivatives.

Prints submissions per second and p50/p95 latency for intake and floor, their ratio, the peak memory
of the API workers, and derivative photos per second per worker with their peak memory. A benchmark,
not a test: it asserts nothing and prints figures.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import bench_stack, percentile, record  # noqa: E402

from hue_reports.devstack import BIN, GUNICORN_CONFIG, free_port, shared_data  # noqa: E402

PHOTO = shared_data() / "photos" / "jpg" / "mobile" / "HMD_Nokia_8.3_5G.jpg"
CITADEL = ("16.4698", "107.5786")


def multipart_parts(boundary: str) -> tuple[bytes, bytes]:
    """The bytes before and after the photo in every request body."""
    fields = {"category": "road_damage", "description": "Ổ gà lớn trước cổng Ngọ Môn (benchmark)",
              "lat": CITADEL[0], "lon": CITADEL[1]}
    head = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
        for name, value in fields.items())
    head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"nokia.jpg\"\r\n"
             f"Content-Type: image/jpeg\r\n\r\n").encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


def load(port: int, requests: int, concurrency: int, photo: bytes, path: str = "/api/v1/reports"
         ) -> tuple[float, list[float], int]:
    """Send `requests` submissions from `concurrency` keep-alive clients; (wall seconds, latencies, errors)."""
    boundary = "hue-bench-" + secrets.token_hex(8)
    head, tail = multipart_parts(boundary)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            body = head + photo + secrets.token_bytes(16) + tail  # unique content per request
            started = time.perf_counter()
            conn.request("POST", path, body=body, headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Idempotency-Key": uuid.uuid4().hex})
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                errors += response.status != 201
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, errors


def worker_memory_mb(master_pid: int, field: str) -> dict[int, float]:
    """A /proc status field (VmRSS now, VmHWM the peak) of each of a gunicorn master's workers, in MB."""
    values = {}
    for child in Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split():
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                values[int(child)] = int(line.split()[1]) / 1024
    return values


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(match) -> float:
    """user+system CPU seconds of the live processes whose command line (and pid, parent's pid) satisfy
    `match`."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if match(cmdline, int(proc.name), int(fields[1])):
                total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            continue
    return total / CLOCK_TICKS


def server_pids(env: dict[str, str]) -> tuple[int | None, str | None]:
    """The benchmark's own PostgreSQL postmaster (by the port it was started with) and the Redis server's
    `host:port`, so that other PostgreSQL clusters and Redis servers on the machine are not counted; None
    when they cannot be told apart (external servers: then every postgres and redis-server is counted)."""
    from urllib.parse import urlsplit

    pg_port, redis_port = urlsplit(env["DATABASE_URL"]).port, urlsplit(env["REDIS_URL"]).port
    postmaster = None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"/postgres") and b"-p" in argv and str(pg_port).encode() in argv:
            postmaster = int(proc.name)
    return postmaster, f":{redis_port}" if redis_port else None


def cpu_by_component(api_pid: int, floor_pids: tuple[int, ...], servers: tuple[int | None, str | None]
                     ) -> dict[str, float]:
    me = os.getpid()
    postmaster, redis_port = servers
    return {
        "API workers": cpu_seconds(lambda cmd, pid, ppid: "wsgi:app" in cmd and "gunicorn" in cmd and pid != api_pid),
        "floor workers": cpu_seconds(lambda cmd, pid, ppid: "floor_app:app" in cmd and pid not in floor_pids),
        "PostgreSQL": cpu_seconds(lambda cmd, pid, ppid: postmaster in (pid, ppid) if postmaster
                                  else cmd.startswith("postgres")),
        "Redis": cpu_seconds(lambda cmd, pid, ppid: "redis-server" in cmd
                             and (redis_port is None or redis_port in cmd)),
        "load generator": cpu_seconds(lambda cmd, pid, ppid: pid == me),
    }


def gunicorn(app: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", GUNICORN_CONFIG, "--bind", f"127.0.0.1:{port}",
         "--access-logfile", "/dev/null", app],
        cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET" if path else "POST", path or "/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on {port} did not start")


def derivative_figures(env: dict[str, str], redis_url: str) -> tuple[int, float, float, float]:
    """Run one real RQ worker over the queued derivative jobs: (jobs, photos/s, p50 ms, peak MB)."""
    from redis import Redis
    from rq import Queue
    from rq.registry import FinishedJobRegistry

    conn = Redis.from_url(redis_url)
    queued = Queue("photos", connection=conn).count
    worker = subprocess.Popen([str(BIN / "flask"), "--app", "wsgi", "worker", "--burst", "--queues", "photos"],
                              cwd=ROOT, env={**env, "LOG_LEVEL": "WARNING"})
    _, status, usage = os.wait4(worker.pid, 0)  # this worker and the work horses it forked, nothing else
    worker.returncode = os.waitstatus_to_exitcode(status)
    peak_mb = usage.ru_maxrss / 1024
    registry = FinishedJobRegistry("photos", connection=conn)
    jobs = [job for job in (Queue("photos", connection=conn).fetch_job(i) for i in registry.get_job_ids()) if job]
    spans = [(job.started_at, job.ended_at) for job in jobs if job.started_at and job.ended_at]
    durations = sorted((end - start).total_seconds() for start, end in spans)
    wall = (max(end for _, end in spans) - min(start for start, _ in spans)).total_seconds()
    return queued, len(spans) / wall, statistics.median(durations) * 1000, peak_mb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are printed")
    args = parser.parse_args()
    photo = PHOTO.read_bytes()

    procs: list[subprocess.Popen] = []
    with bench_stack() as base_env:
        env = {**base_env, "FLOOR_ROOT": tempfile.mkdtemp(prefix="hue-bench-floor-"),
               "PYTHONPATH": str(ROOT / "bench")}
        try:
            return measure(args, env, photo, procs)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(30)
            subprocess.run(["rm", "-rf", env["FLOOR_ROOT"]], check=False)


def measure(args, env: dict[str, str], photo: bytes, procs: list[subprocess.Popen]) -> int:
    api_port, floor_port, rows_port = free_port(), free_port(), free_port()
    logs = Path(tempfile.mkdtemp(prefix="hue-bench-logs-"))
    procs.append(gunicorn("wsgi:app", api_port, env, logs / "api.log"))
    procs.append(gunicorn("floor_app:app", floor_port, env, logs / "floor.log"))
    procs.append(gunicorn("floor_app:app", rows_port, env, logs / "floor-rows.log"))  # (its own memory figures)
    wait_ready(api_port, "/healthz", procs[0])
    wait_ready(floor_port, "", procs[1])
    wait_ready(rows_port, "", procs[2])

    warmup = max(args.concurrency * 2, 10)
    # (the floor that also writes the rows: its own server, whose workers count as floor workers in its rounds)
    paths = {"floor": "/api/v1/reports", "floor+rows": "/api/v1/reports/rows", "intake": "/api/v1/reports"}
    targets = (("floor", floor_port, procs[1]), ("floor+rows", rows_port, procs[2]), ("intake", api_port, procs[0]))
    idle = {name: worker_memory_mb(proc.pid, "VmRSS") for name, _, proc in targets}  # booted, no request yet
    for name, port, _ in targets:
        load(port, warmup, args.concurrency, photo, paths[name])  # warm up: connections, caches
    rounds: dict[str, list[dict]] = {name: [] for name, _, _ in targets}
    servers = server_pids(env)
    for _ in range(args.rounds):  # alternate, so that all see the same machine
        for name, port, _ in targets:
            cpu_before = cpu_by_component(procs[0].pid, (procs[1].pid, procs[2].pid), servers)
            wall, latencies, errors = load(port, args.requests, args.concurrency, photo, paths[name])
            cpu_after = cpu_by_component(procs[0].pid, (procs[1].pid, procs[2].pid), servers)
            rounds[name].append({
                "rate": len(latencies) / wall, "p50": percentile(latencies, 50) * 1000,
                "p95": percentile(latencies, 95) * 1000, "errors": errors,
                "cpu_ms": {k: (cpu_after[k] - cpu_before[k]) * 1000 / len(latencies) for k in cpu_after}})
    results = {}
    for name, _, proc in targets:
        peak = worker_memory_mb(proc.pid, "VmHWM")
        runs = rounds[name]
        results[name] = {key: statistics.median(r[key] for r in runs) for key in ("rate", "p50", "p95")}
        results[name]["errors"] = sum(r["errors"] for r in runs)
        results[name]["cpu_ms"] = {k: statistics.median(r["cpu_ms"][k] for r in runs) for k in runs[0]["cpu_ms"]}
        results[name]["peak"] = max(peak.values())
        results[name]["growth"] = max(peak[pid] - idle[name].get(pid, peak[pid]) for pid in peak)
        results[name]["rates"] = [r["rate"] for r in runs]
    jobs, per_second, job_p50, job_peak = derivative_figures(env, env["REDIS_URL"])

    floor, intake = results["floor"], results["intake"]
    print(f"\nIntake benchmark: {args.rounds} rounds of {args.requests} submissions of a "
          f"{len(photo) / 1e6:.1f} MB, "
          f"4608x1976 phone photo, {args.concurrency} concurrent clients, gunicorn {GUNICORN_CONFIG}, "
          f"{os.cpu_count()} CPUs; medians of the rounds")
    print(f"{'figure':<40}{'intake':>10}{'floor':>10}{'ratio':>8}")
    for label, key, higher_is_better in (("submissions per second", "rate", True),
                                         ("latency p50 (ms)", "p50", False), ("latency p95 (ms)", "p95", False)):
        ratio = floor[key] / intake[key] if higher_is_better else intake[key] / floor[key]
        print(f"{label:<40}{intake[key]:>10.1f}{floor[key]:>10.1f}{ratio:>7.2f}x")
        record("intake", label.replace(" (ms)", ""), intake[key], floor[key], "/s" if higher_is_better else "ms",
               higher_is_better, peak_mb=intake["peak"])
    print(f"{'peak RSS of an API worker (MB)':<40}{intake['peak']:>10.1f}{floor['peak']:>10.1f}")
    print(f"{'its growth under load (MB)':<40}{intake['growth']:>10.1f}{floor['growth']:>10.1f}")
    print(f"{'errors (non-201 answers)':<40}{intake['errors']:>10}{floor['errors']:>10}")
    print("CPU milliseconds per submission, by process (all share the machine's CPUs):")
    for component in intake["cpu_ms"]:
        if intake["cpu_ms"][component] or floor["cpu_ms"][component]:
            print(f"  {component:<38}{intake['cpu_ms'][component]:>10.1f}{floor['cpu_ms'][component]:>10.1f}")
    threads = 8
    print(f"(one decoded photo: {4608 * 1976 * 3 / 1e6:.0f} MB; each API worker serves up to {threads} "
          f"requests at once)")
    print(f"{'derivative jobs run by 1 RQ worker':<40}{jobs:>10}")
    print(f"{'derivative photos per second':<40}{per_second:>10.2f}")
    print(f"{'derivative job p50 (ms)':<40}{job_p50:>10.0f}")
    print(f"{'peak RSS of a derivative job (MB)':<40}{job_peak:>10.1f}")
    record("intake", "derivative photos per second, 1 RQ worker", per_second, None, "/s", True, peak_mb=job_peak)
    print(f"submissions per second in each round: intake {', '.join(f'{r:.1f}' for r in intake['rates'])}; "
          f"floor {', '.join(f'{r:.1f}' for r in floor['rates'])}")
    print(f"intake costs {floor['rate'] / intake['rate']:.2f}x the floor in throughput (goal: at most 1.5x)")
    rows = results["floor+rows"]
    cpu = " + ".join(f"{k} {v:.1f}" for k, v in rows["cpu_ms"].items() if v)
    print(f"the floor that also writes the report's rows (one statement, psycopg): {rows['rate']:.1f}/s "
          f"(rounds {', '.join(f'{r:.1f}' for r in rows['rates'])}), p50 {rows['p50']:.1f} ms, p95 "
          f"{rows['p95']:.1f} ms, errors {rows['errors']}; CPU ms per submission: {cpu}")
    print(f"intake costs {rows['rate'] / intake['rate']:.2f}x that floor in throughput")
    record("intake", "submissions per second, beside the floor that also writes the rows", intake["rate"],
           rows["rate"], "/s", True, peak_mb=intake["peak"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

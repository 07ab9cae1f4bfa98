"""Photo storage benchmark: the derivative job on the local backend beside the S3 backend.

    python bench/storage.py [--photos 10]

Starts the project-local PostgreSQL and Redis (a throw-away database, as the other benchmarks) and an
S3-compatible server in a process of its own (moto's S3 in server mode on 127.0.0.1, standing in for the
store; its own memory is not counted). For each backend: submits the Nokia phone photo (4608x1976,
2.2 MB) through intake (`--photos` times, each with unique trailing bytes, so that every job makes its
derivatives), then runs one real RQ worker (`flask worker --burst -q photos`, WORKER_CLASS=simple) over
the jobs and prints its peak resident memory (the worker process's VmHWM, from wait4), beside the peak
of a worker that ran no job (the cost of the worker itself), and the job's p50 time.

With S3 the original is downloaded to a temporary file (in 1 MB chunks) before it is decoded, and the
derivatives are uploaded from memory (a few hundred kB). A benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import bench_stack, record  # noqa: E402

from hue_reports.devstack import BIN, free_port, shared_data  # noqa: E402

PHOTO = shared_data() / "photos" / "jpg" / "mobile" / "HMD_Nokia_8.3_5G.jpg"
BUCKET = "hue-bench-photos"


def s3_server() -> tuple[subprocess.Popen, str]:
    """moto's S3 server in its own process; (the process, its URL) once it answers."""
    import boto3

    port = free_port()
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench",
                          aws_secret_access_key="bench")
    for _ in range(100):
        try:
            client.create_bucket(Bucket=BUCKET)
            client.close()
            return proc, url
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the S3 server did not start")


def submit(env: dict[str, str], count: int) -> None:
    """`count` reports with the photo, through intake (in this process, on the backend `env` names)."""
    from hue_reports import create_app
    from hue_reports.config import load_config

    app = create_app(load_config(environ=env))
    client = app.test_client()
    photo = PHOTO.read_bytes()
    for i in range(count):
        data = photo + os.urandom(16)  # (after the JPEG's end: a new file to the content addressing)
        response = client.post("/api/v1/reports", content_type="multipart/form-data", data={
            "category": "road_damage", "description": f"benchmark {i}", "lat": "16.4698", "lon": "107.5786",
            "photos": [(io.BytesIO(data), "nokia.jpg")]})
        assert response.status_code == 201, response.get_json()
    storage = app.extensions.get("hue_storage")
    if hasattr(storage, "close"):
        storage.close()


# Starts a command from a small process and prints its peak RSS (kB). Linux counts in a process's peak the
# memory of the process it was exec'd from: a worker started straight from this one (which ran intake)
# would carry this one's peak.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def worker_peak(env: dict[str, str]) -> tuple[float, list[float]]:
    """Run one worker over the photos queue: (its peak RSS in MB, the jobs' durations in ms)."""
    from redis import Redis
    from rq import Queue
    from rq.registry import FinishedJobRegistry

    conn = Redis.from_url(env["REDIS_URL"])
    result = subprocess.run([sys.executable, "-c", LAUNCHER, str(BIN / "flask"), "--app", "wsgi", "worker", "--burst",
                             "--queues", "photos"], cwd=ROOT, env={**env, "WORKER_CLASS": "simple"},
                            stdout=subprocess.PIPE, text=True, check=True)
    peak_kb = int(result.stdout.split()[-1])
    registry = FinishedJobRegistry("photos", connection=conn)
    jobs = [job for job in (Queue("photos", connection=conn).fetch_job(i) for i in registry.get_job_ids()) if job]
    durations = [(job.ended_at - job.started_at).total_seconds() * 1000 for job in jobs
                 if job.started_at and job.ended_at]
    for job in jobs:
        job.delete()
    return peak_kb / 1024, durations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=10)
    args = parser.parse_args()
    server, url = s3_server()
    try:
        with bench_stack() as env:
            backends = {
                "local": env,
                "s3": {**env, "STORAGE_BACKEND": "s3", "S3_BUCKET": BUCKET, "S3_ENDPOINT_URL": url,
                       "S3_REGION": "us-east-1", "S3_ACCESS_KEY_ID": "bench", "S3_SECRET_ACCESS_KEY": "bench",
                       "S3_ADDRESSING_STYLE": "path"},
            }
            results = {}
            for name, backend_env in backends.items():
                idle, none = worker_peak(backend_env)  # no job: the worker alone
                submit(backend_env, 1)
                one, one_ms = worker_peak(backend_env)
                submit(backend_env, args.photos)
                many, many_ms = worker_peak(backend_env)
                if (len(none), len(one_ms), len(many_ms)) != (0, 1, args.photos):
                    raise RuntimeError(f"{name}: jobs run {len(none)}, {len(one_ms)}, {len(many_ms)}")
                results[name] = (idle, one, many, statistics.median(one_ms + many_ms))
    finally:
        server.terminate()
        server.wait(10)
    print(f"\nDerivative jobs on the {PHOTO.name} photo ({PHOTO.stat().st_size / 1e6:.1f} MB, 4608x1976), "
          "one RQ worker process (in-process jobs), peak RSS of the worker in MB")
    print(f"{'figure':<44}{'local':>10}{'s3':>10}")
    labels = ("worker alone, no job", "worker, one job", f"worker, {args.photos} jobs", "job p50 (ms)")
    for i, label in enumerate(labels):
        print(f"{label:<44}{results['local'][i]:>10.1f}{results['s3'][i]:>10.1f}")
    print(f"{'one job over the worker alone':<44}{results['local'][1] - results['local'][0]:>10.1f}"
          f"{results['s3'][1] - results['s3'][0]:>10.1f}")
    record("storage", "derivative job p50, S3 backend", results["s3"][3], results["local"][3], "ms",
           peak_mb=results["s3"][2])
    return 0


if __name__ == "__main__":
    sys.exit(main())

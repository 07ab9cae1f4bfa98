"""gunicorn settings for the API, shared by `make run` and the container image.

    gunicorn --config python:hue_reports.gunicorn_conf --bind 0.0.0.0:8000 wsgi:app

Residents upload photos from phones on slow networks: a 60 MB request can take
minutes to arrive. Threaded workers keep one slow upload from holding a whole
process, and the timeout leaves it time. In production, a buffering reverse
proxy (nginx with request buffering) in front is still the better defence.
"""

import multiprocessing

worker_class = "gthread"
workers = min(4, 2 * multiprocessing.cpu_count())
threads = 8
timeout = 300  # seconds a worker may be silent (a slow upload) before it is restarted
graceful_timeout = 30
keepalive = 5
accesslog = "-"
control_socket_disable = True  # gunicorn 27's control socket: an unused admin surface

# /metrics under several worker processes: each writes its samples to files in this directory, and a scrape
# adds them up (prometheus_client's multiprocess mode). A fresh directory per master; a dead worker's live
# gauges are dropped.
import os  # noqa: E402
import tempfile  # noqa: E402

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hue-prometheus-")


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# The residents' tracking links hold their secret token in the path (/track/<code>/<token>): the access
# log writes them redacted (hue_reports/access_log.py).
logger_class = "hue_reports.access_log.RedactingLogger"

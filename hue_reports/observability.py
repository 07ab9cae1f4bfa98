"""Operations' view of the service: request ids, structured logs, and `/metrics` for Prometheus.

* Every request gets an id: the client's `X-Request-Id` when it is a sane token, else a new one. It is
  answered in `X-Request-Id`, written in every log line of the request, and carried in the `meta` of every
  job the request enqueues, so the worker's log lines of that job carry it too (with the job's id).
* Logs are one JSON object a line (LOG_FORMAT=json, the default) or plain text (LOG_FORMAT=text).
* `/metrics` (Prometheus text format): request counts and latency histograms by endpoint, method and status;
  then, read at each scrape, queue depths, failed jobs and scheduled retries per queue, routing requeues,
  the outbox backlog, and open and overdue reports. Under gunicorn each worker process writes its samples
  to PROMETHEUS_MULTIPROC_DIR (hue_reports/gunicorn_conf.py sets it up) and a scrape adds them up.
  No personal data is ever a label.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from flask import Flask, Response, g, request

from .extensions import db, get_redis

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

# Request latency buckets, seconds: from a cached answer to a slow upload.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)


# --- logs ------------------------------------------------------------------------------------------------------

def _tag_records() -> None:
    """Every log record gets the current request id and job id when it is made (whichever handler writes it)."""
    make = logging.getLogRecordFactory()
    if getattr(make, "_hue", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        # (names of our own: RQ logs with extra={"job_id": ...}, and `extra` may not overwrite an attribute)
        record.hue_request_id = request_id_var.get()
        record.hue_job_id = job_id_var.get()
        return record

    factory._hue = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, request and job ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        for name in ("request_id", "job_id"):
            value = getattr(record, f"hue_{name}", None) or getattr(record, name, None)
            if value:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    """The root logger's one handler (stderr), in the format asked for, tagging records with the ids."""
    _tag_records()
    root = logging.getLogger()
    root.setLevel(level)
    handler = next((h for h in root.handlers if getattr(h, "_hue", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler._hue = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [request %(hue_request_id)s job %(hue_job_id)s]: %(message)s"))


def current_request_id() -> str | None:
    return request_id_var.get()


def job_meta() -> dict[str, str]:
    """What a job enqueued now carries: the request's id, if a request is being served."""
    rid = request_id_var.get()
    return {"request_id": rid} if rid else {}


def enter_job(job: Any) -> tuple[contextvars.Token, contextvars.Token]:
    """Tag the log lines of a job being run with its id and its request's."""
    meta = getattr(job, "meta", None) or {}
    return (request_id_var.set(meta.get("request_id")), job_id_var.set(getattr(job, "id", None)))


def leave_job(tokens: tuple[contextvars.Token, contextvars.Token]) -> None:
    request_id_var.reset(tokens[0])
    job_id_var.reset(tokens[1])


# --- request metrics -------------------------------------------------------------------------------------------

def _metrics():
    """The request counter and histogram (created once per process, in multiprocess mode when set up)."""
    from prometheus_client import Counter, Histogram

    global _REQUESTS, _LATENCY
    if _REQUESTS is None:
        _REQUESTS = Counter("hue_http_requests_total", "HTTP requests answered.", ["method", "endpoint", "status"])
        _LATENCY = Histogram("hue_http_request_duration_seconds", "Time to answer an HTTP request.",
                             ["method", "endpoint", "status"], buckets=BUCKETS)
    return _REQUESTS, _LATENCY


_REQUESTS = None
_LATENCY = None


def _before_request() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    g.request_id = rid
    g.request_id_token = request_id_var.set(rid)
    g.request_started = time.perf_counter()


def _after_request(response: Response) -> Response:
    rid = getattr(g, "request_id", None)
    if rid:
        response.headers[REQUEST_ID_HEADER] = rid
    started = getattr(g, "request_started", None)
    if started is not None:
        # the route's name, never the path (a path holds codes and ids: unbounded labels)
        endpoint = request.url_rule.endpoint if request.url_rule is not None else "unmatched"
        requests_total, latency = _metrics()
        labels = (request.method, endpoint, str(response.status_code))
        requests_total.labels(*labels).inc()
        latency.labels(*labels).observe(time.perf_counter() - started)
    return response


def _teardown_request(_exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        request_id_var.reset(token)


# --- /metrics --------------------------------------------------------------------------------------------------

def _gauge(name: str, doc: str, labels: list[str], samples: list[tuple[list[str], float]]):
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def state_metrics(app: Flask) -> list:
    """The service's state, read now: queues (Redis) and reports and outbox (PostgreSQL); a source that
    cannot be read is left out, and `hue_up` says so."""
    families, up = [], []
    try:
        families += _queue_metrics(app)
        up.append((["redis"], 1.0))
    except Exception as exc:  # (a scrape while Redis is down still answers, and says so)
        log.warning("metrics: Redis unreadable: %s", exc)
        up.append((["redis"], 0.0))
    try:
        families += _database_metrics()
        up.append((["database"], 1.0))
    except Exception as exc:
        db.session.rollback()
        log.warning("metrics: database unreadable: %s", exc)
        up.append((["database"], 0.0))
    from .replica import state_metrics as replica_metrics

    families += replica_metrics()
    families.append(_gauge("hue_up", "Whether this scrape could read the source (1) or not (0).", ["source"], up))
    return families


def _queue_metrics(app: Flask) -> list:
    from rq import Queue
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

    redis = get_redis()
    depth, started, failed, scheduled = [], [], [], []
    for name in [*app.config["RQ_QUEUES"], *(q for q in ("rollups",) if q not in app.config["RQ_QUEUES"])]:
        queue = Queue(name, connection=redis)
        depth.append(([name], queue.count))
        started.append(([name], StartedJobRegistry(queue=queue).count))
        failed.append(([name], FailedJobRegistry(queue=queue).count))
        scheduled.append(([name], ScheduledJobRegistry(queue=queue).count))
    return [
        _gauge("hue_queue_jobs", "Jobs waiting in each RQ queue.", ["queue"], depth),
        _gauge("hue_queue_jobs_started", "Jobs being run from each queue.", ["queue"], started),
        _gauge("hue_queue_jobs_failed", "Jobs that failed for good (RQ's failed registry).", ["queue"], failed),
        _gauge("hue_queue_jobs_scheduled", "Jobs waiting to be retried or run later.", ["queue"], scheduled),
    ]


def _database_metrics() -> list:
    from sqlalchemy import text

    from .models import OPEN_STATUSES

    row = db.session.execute(text("""
        SELECT (SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL) AS backlog,
               (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM outbox
                 WHERE delivered_at IS NULL AND gave_up_at IS NULL) AS backlog_age,
               (SELECT coalesce(sum(routing_requeues), 0) FROM reports
                 WHERE status IN ('submitted', 'routing_failed')) AS requeues
    """)).one()
    by_status = db.session.execute(text("""
        SELECT status, count(*) AS n, count(*) FILTER (WHERE due_at < now()) AS overdue
        FROM reports WHERE status = ANY(:open) GROUP BY status"""), {"open": list(OPEN_STATUSES)}).all()
    return [
        _gauge("hue_routing_requeues", "Times the sweep re-enqueued reports still waiting for routing.", [],
               [([], float(row.requeues))]),
        _gauge("hue_outbox_backlog", "Messages to agencies not delivered yet (and not given up).", [],
               [([], float(row.backlog))]),
        _gauge("hue_outbox_backlog_age_seconds", "Age of the oldest message not delivered yet.", [],
               [([], float(row.backlog_age))]),
        _gauge("hue_reports_open", "Open reports by status.", ["status"],
               [([status], float(n)) for status, n, _ in by_status]),
        _gauge("hue_reports_overdue", "Open reports past their deadline, by status.", ["status"],
               [([status], float(overdue)) for status, _, overdue in by_status]),
    ]


def exposition(app: Flask) -> tuple[bytes, str]:
    """The /metrics answer: the requests' samples (every process's, under gunicorn) and the state."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client import REGISTRY as default_registry

    _metrics()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = default_registry
    body = generate_latest(registry)

    class _State:
        def collect(self):
            return state_metrics(app)

    state = CollectorRegistry()
    state.register(_State())
    return body + generate_latest(state), CONTENT_TYPE_LATEST


def init_app(app: Flask) -> None:
    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    app.before_request(_before_request)
    app.after_request(_after_request)
    app.teardown_request(_teardown_request)

"""Operations: liveness and readiness for load balancers and orchestrators, metrics for Prometheus."""

from __future__ import annotations

from flask import current_app, make_response
from flask_smorest import Blueprint

from .. import observability
from ..errors import ApiError
from ..services import health
from . import not_yet

blp = Blueprint("ops", __name__, url_prefix="", description="Operations")


@blp.route("/healthz")
def healthz():
    """The process is alive (checks nothing else)."""
    return {"status": "ok"}


@blp.route("/readyz")
def readyz():
    """The database (with PostGIS, schema at head) and Redis answer; 503 with the reason otherwise.

    `heartbeat` tells when a worker last ran the scheduler's heartbeat job: it is
    information about the queue, not a condition of this process's readiness.
    """
    ready, details = health.readiness()
    if not ready:
        failing = {k: v for k, v in details["checks"].items() if v != "ok"}
        raise ApiError(503, "not_ready", "Not ready: " + "; ".join(f"{k} {v}" for k, v in failing.items()),
                       message_vi="Dịch vụ chưa sẵn sàng.", fields=details["checks"],
                       headers={"Retry-After": "5"})
    return {"status": "ready", **details}


@blp.route("/metrics")
def prometheus_metrics():
    """Prometheus metrics (text format): request counts and latency histograms by endpoint, method and
    status; queue depths, failed and scheduled jobs per queue, routing requeues, the outbox backlog, open and
    overdue reports. No personal data. Restrict it to the monitoring network at the proxy."""
    body, content_type = observability.exposition(current_app)
    response = make_response(body)
    response.headers["Content-Type"] = content_type
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/api/docs")
def api_docs():
    """Interactive API documentation."""
    raise not_yet("interactive API documentation")

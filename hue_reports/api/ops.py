"""Operations: liveness and readiness for load balancers and orchestrators, metrics for Prometheus."""

from __future__ import annotations

from flask import current_app, make_response, render_template, url_for

from .. import observability
from ..errors import ApiError
from ..schemas.common import STRING
from ..schemas.ops import HealthSchema, ReadySchema
from ..services import health
from .openapi import Blueprint, never_unavailable

blp = Blueprint("ops", __name__, url_prefix="", description="Operations")


@blp.route("/healthz")
@blp.alt_response(200, schema=HealthSchema, success=True, description="Alive.")
@never_unavailable
def healthz():
    """The process is alive (checks nothing else)."""
    return {"status": "ok"}


@blp.route("/readyz")
@blp.alt_response(200, schema=ReadySchema, success=True, description="Ready.")
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
@blp.alt_response(200, schema=STRING, content_type="text/plain", success=True,
                  description="The Prometheus text exposition format (version 0.0.4).")
@never_unavailable
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
@blp.alt_response(200, schema=STRING, content_type="text/html", success=True,
                  description="Swagger UI (vendored, web/static/vendor/swagger-ui) on this document.")
@never_unavailable
def api_docs():
    """Interactive API documentation: Swagger UI on GET /api/v1/openapi.json."""
    from ..web.pages import no_frames

    response = make_response(render_template("api_docs.html", spec_url=url_for("api-docs.openapi_json")))
    response.headers["Referrer-Policy"] = "same-origin"
    return no_frames(response)  # (the pages' Content-Security-Policy: this origin only, no inline script)

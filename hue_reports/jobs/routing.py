"""Routing jobs: route each submitted report once, and sweep up any the queue lost."""

from __future__ import annotations

import logging

import redis
from flask import current_app
from rq import Retry, get_current_job
from rq.job import Job

from ..extensions import db, get_queue, get_redis
from ..services import routing
from . import PENDING_STATUSES, job
from .notifications import enqueue_delivery

log = logging.getLogger(__name__)

QUEUE = "routing"
# Waits between tries of a failing routing job (the last try leaves the report `routing_failed`).
RETRY_INTERVALS = [5, 30, 120, 600]


def job_id(report_id: int) -> str:
    """Deterministic, so the sweep can tell a queued job from a lost one. (RQ 2 allows only letters,
    digits, `-` and `_` in ids, hence `route-<id>`, not `route:<id>`.)"""
    return f"route-{report_id}"


@job
def route_report(report_id: int) -> str:
    """Route one report (idempotent). On its last try a failure leaves it `routing_failed`."""
    try:
        outcome = routing.route(report_id)
    except Exception as exc:
        current = get_current_job()
        if current is None or not current.retries_left:  # no try left: the dispatcher takes it
            log.exception("report %s: routing failed for good", report_id)
            try:
                routing.mark_failed(report_id, type(exc).__name__)
            except Exception:  # the sweep will queue it again; the failure stays in RQ's registry
                log.exception("report %s: could not mark routing_failed", report_id)
        raise
    for message_id in outcome.outbox_ids:
        enqueue_delivery(message_id)
    return outcome.result


def enqueue_route(report_id: int) -> bool:
    """Queue the routing of a committed report. A Redis outage is logged, not raised: the report is
    safe in the database and the sweep queues it once Redis is back."""
    attempts = current_app.config["ROUTING_ATTEMPTS"]
    try:
        get_queue(QUEUE).enqueue(
            route_report, report_id, job_id=job_id(report_id), job_timeout=60,
            retry=Retry(max=attempts - 1, interval=RETRY_INTERVALS[:attempts - 1]) if attempts > 1 else None,
            result_ttl=3600, failure_ttl=7 * 86400)
    except redis.RedisError as exc:
        log.warning("report %s: routing not queued (%s); the sweep will queue it", report_id, exc)
        return False
    return True


@job
def sweep_unrouted() -> int:
    """Queue again the reports still `submitted` ROUTING_SWEEP_SECONDS after submission whose job is
    not waiting in the queue (lost with Redis, or its worker killed). Returns how many."""
    queued = 0
    connection = get_redis()
    for report_id in routing.unrouted(current_app.config["ROUTING_SWEEP_SECONDS"]):
        try:
            existing = Job.fetch(job_id(report_id), connection=connection)
        except Exception:  # NoSuchJobError, or a job hash the flush left half-written
            existing = None
        if existing is not None and existing.get_status(refresh=False) in PENDING_STATUSES - {"started"}:
            continue  # waiting for a worker (or for its retry): not lost
        queued += enqueue_route(report_id)
    db.session.remove()
    return queued

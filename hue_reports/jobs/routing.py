"""Routing jobs: route each submitted report once, and sweep up any the queue lost."""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from flask import current_app
from rq import Retry, get_current_job

from ..extensions import db, get_queue, get_redis
from ..services import routing
from . import QueueIndex, job, pending
from .notifications import enqueue_delivery, enqueue_due_soon

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
    if outcome.notified:
        enqueue_due_soon()
    log.info("report %s: %s", report_id, outcome.result)
    return outcome.result


def enqueue_route(report_id: int, pipeline: redis.client.Pipeline | None = None) -> bool:
    """Queue the routing of a committed report. A Redis outage is logged, not raised: the report is
    safe in the database and the sweep queues it once Redis is back. With a `pipeline`, the job is
    written when the caller executes it (and the caller handles its errors)."""
    attempts = current_app.config["ROUTING_ATTEMPTS"]
    try:
        get_queue(QUEUE).enqueue(
            route_report, report_id, job_id=job_id(report_id),
            job_timeout=current_app.config["ROUTING_JOB_TIMEOUT_SECONDS"],
            retry=Retry(max=attempts - 1, interval=RETRY_INTERVALS[:attempts - 1]) if attempts > 1 else None,
            result_ttl=3600, failure_ttl=7 * 86400, pipeline=pipeline)
    except redis.RedisError as exc:
        log.warning("report %s: routing not queued (%s); the sweep will queue it", report_id, exc)
        return False
    return True


@job
def sweep_unrouted() -> int:
    """Queue again the reports still `submitted` ROUTING_SWEEP_SECONDS after submission whose job is lost
    (gone with Redis, or taken by a killed worker: see jobs.pending). A report queued again ROUTING_ATTEMPTS times
    is left `routing_failed` for the dispatcher instead. Returns how many were queued."""
    config = current_app.config
    queued = 0
    stale = timedelta(seconds=2 * config["ROUTING_JOB_TIMEOUT_SECONDS"])
    index = QueueIndex(get_redis())
    for report_id, requeues in routing.unrouted(config["ROUTING_SWEEP_SECONDS"]):
        if pending(job_id(report_id), stale, index):
            continue  # waiting for a worker (or for its retry), or running now: not lost
        if requeues >= config["ROUTING_ATTEMPTS"]:
            log.error("report %s: routing lost %s times; left routing_failed for the dispatcher", report_id,
                      requeues)
            routing.mark_failed(report_id, "abandoned")
            continue
        if enqueue_route(report_id):
            routing.count_requeue(report_id)
            queued += 1
    db.session.remove()
    return queued

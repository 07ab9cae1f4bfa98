"""Routing jobs: route each submitted report once, and sweep up any the queue lost."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import redis
from flask import current_app
from rq import Retry, get_current_job
from rq.defaults import DEFAULT_RESULT_TTL
from rq.job import Job, JobStatus
from rq.utils import utcformat

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
    return f"{JOB_PREFIX}{report_id}"


JOB_PREFIX = "route-"


def report_id_of(routing_job_id: str) -> int | None:
    """The report a routing job id names (None if the id is not a routing job's)."""
    number = routing_job_id.removeprefix(JOB_PREFIX)
    return int(number) if number != routing_job_id and number.isdigit() else None


@job
def route_report(report_id: int) -> str:
    """Route one report (idempotent). On its last try a failure leaves it `routing_failed`. Then, under a
    backlog, route the reports of the routing jobs waiting behind it (`route_waiting`)."""
    current = get_current_job()
    outcome = _route(report_id, last_try=current is None or not current.retries_left)
    if current is not None and current_app.config["ROUTING_BATCH"]:
        notified = route_waiting(current)
        if notified and not outcome.notified:
            enqueue_due_soon()
    return outcome.result


def _route(report_id: int, *, last_try: bool, due_soon: bool = True) -> routing.Outcome:
    try:
        outcome = routing.route(report_id)
    except Exception as exc:
        if last_try:  # no try left: the dispatcher takes it
            log.exception("report %s: routing failed for good", report_id)
            try:
                routing.mark_failed(report_id, type(exc).__name__)
            except Exception:  # the sweep will queue it again; the failure stays in RQ's registry
                log.exception("report %s: could not mark routing_failed", report_id)
        raise
    for message_id in outcome.outbox_ids:
        enqueue_delivery(message_id)
    if outcome.notified and due_soon:
        enqueue_due_soon()
    log.info("report %s: %s", report_id, outcome.result)
    return outcome


def route_waiting(current: Job) -> bool:
    """Route the reports of routing jobs still waiting in the queue, up to ROUTING_BATCH of them, within a
    quarter of the job's timeout. Returns whether any routing queued push messages.

    RQ costs a worker ~3 ms of bookkeeping per job (about 17 Redis round trips: dequeue, started and
    finished registries, heartbeats, the result), more than routing a report costs. Under a backlog a
    routing job therefore claims the jobs at the head of its queue (LREM: of two workers claiming one job,
    one gets it), routes each report in its own transaction as the job would, and records those jobs as
    finished in one pipeline. Nothing is lost or done twice: a claimed job whose routing raises goes back
    to the queue, to be retried by RQ with its own retries; claimed jobs not started when the batch's time is
    up go back to the head of the queue; and a worker killed mid-batch leaves its claimed jobs `started`,
    which the routing sweep takes for lost after twice the timeout, as any job of a killed worker
    (jobs.pending), and queues again. Routing is idempotent either way."""
    from rq.timeouts import BaseTimeoutException

    config = current_app.config
    queue = get_queue(QUEUE)
    stop_at = time.monotonic() + config["ROUTING_JOB_TIMEOUT_SECONDS"] / 4
    routed, notified, failed = 0, False, []
    try:
        while (left := config["ROUTING_BATCH"] - routed - len(failed)) > 0 and time.monotonic() < stop_at:
            claimed = claim_waiting(queue, min(left, CLAIM_CHUNK))
            if not claimed:
                break
            finished: list[tuple[str, datetime, str]] = []
            try:
                while claimed and time.monotonic() < stop_at:
                    claimed_id = claimed.pop(0)
                    started = datetime.now(UTC)
                    try:
                        outcome = _route(report_id_of(claimed_id), last_try=False, due_soon=False)
                    except BaseTimeoutException:
                        claimed.insert(0, claimed_id)
                        raise
                    except Exception:
                        log.warning("%s: routing failed in a batch; its own job will try again", claimed_id,
                                    exc_info=True)
                        failed.append(claimed_id)
                        continue
                    notified = notified or outcome.notified
                    finished.append((claimed_id, started, outcome.result))
            finally:
                _push(queue, claimed, at_front=True)  # not started: back where they were
                _record_finished(finished, current)
            routed += len(finished)
    finally:
        _push(queue, failed, at_front=False)  # after the batch, so that it does not claim them again
    return notified


# How many waiting jobs a routing job claims at a time (one LRANGE and one pipeline of LREM).
CLAIM_CHUNK = 20


def claim_waiting(queue, limit: int) -> list[str]:
    """Take up to `limit` routing jobs from the head of the queue: their ids, each removed from the queue
    by this worker alone. [] if none, or if Redis fails (the jobs stay queued)."""
    try:
        heads = [i.decode() if isinstance(i, bytes) else i for i in queue.connection.lrange(queue.key, 0, limit - 1)]
        heads = [i for i in heads if report_id_of(i) is not None]
        if not heads:
            return []
        with queue.connection.pipeline(transaction=False) as pipe:
            for job_id in heads:
                pipe.lrem(queue.key, 1, job_id)
            claimed = [job_id for job_id, count in zip(heads, pipe.execute()) if count]
            # `started`, as RQ marks a job it runs: the sweep leaves them alone (jobs.pending) until twice the
            # timeout has passed, when a worker killed mid-batch has left them for lost.
            _set_status(pipe, claimed, JobStatus.STARTED)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("routing: could not claim waiting jobs (%s)", exc)
        return []
    return claimed


def _set_status(pipe, job_ids: list[str], status: JobStatus) -> None:
    values = {"status": status.value}
    if status == JobStatus.STARTED:
        values["started_at"] = utcformat(datetime.now(UTC))
    for job_id in job_ids:
        pipe.hset(Job.key_for(job_id), mapping=values)


def _push(queue, job_ids: list[str], *, at_front: bool) -> None:
    if not job_ids:
        return
    try:
        with queue.connection.pipeline(transaction=False) as pipe:
            _set_status(pipe, job_ids, JobStatus.QUEUED)
            for job_id in reversed(job_ids) if at_front else job_ids:
                queue.push_job_id(job_id, pipeline=pipe, at_front=at_front)
            pipe.execute()
    except redis.RedisError as exc:  # `queued` in no queue: the sweep queues them again
        log.warning("routing: could not put back %s claimed jobs (%s); the sweep will", len(job_ids), exc)


def _record_finished(finished: list[tuple[str, datetime, str]], current: Job) -> None:
    """Record claimed jobs as RQ records a finished job (status, times, result, finished registry, expiry),
    in one pipeline. If Redis fails they stay `queued` in no queue: the sweep finds their reports routed."""
    if not finished:
        return
    try:
        jobs = Job.fetch_many([job_id for job_id, _, _ in finished], connection=current.connection)
        ended = datetime.now(UTC)
        with current.connection.pipeline() as pipe:
            for claimed, (_, started, result) in zip(jobs, finished):
                if claimed is None:  # (expired or deleted meanwhile)
                    continue
                claimed.started_at, claimed.ended_at, claimed._result = started, ended, result
                claimed.worker_name = current.worker_name
                ttl = claimed.get_result_ttl(DEFAULT_RESULT_TTL)
                claimed._handle_success(ttl, pipeline=pipe, worker_name=current.worker_name or "")
                claimed.cleanup(ttl, pipeline=pipe, remove_from_queue=False)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("routing: could not record %s claimed jobs as finished (%s)", len(finished), exc)


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

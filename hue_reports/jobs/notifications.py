"""Notification jobs: deliver outbox messages (agency webhooks), and flag overdue reports."""

from __future__ import annotations

import logging
import time

import redis

from ..extensions import get_queue
from ..services import outbox
from . import job

log = logging.getLogger(__name__)

QUEUE = "notifications"
# A sweep stops starting deliveries after this long, so periodic runs never pile up.
SWEEP_BUDGET_S = 50


@job
def deliver_message(message_id: int) -> str:
    """One delivery attempt of one message (if due). Failures are recorded and retried by the sweep."""
    return outbox.deliver(message_id).outcome


def enqueue_delivery(message_id: int) -> bool:
    """Deliver a committed message soon. If Redis is down the delivery sweep sends it later."""
    try:
        get_queue(QUEUE).enqueue(deliver_message, message_id, job_id=f"deliver-{message_id}", job_timeout=60,
                                 result_ttl=600, failure_ttl=86400)
    except redis.RedisError as exc:
        log.warning("outbox %s: delivery not queued (%s); the sweep will send it", message_id, exc)
        return False
    return True


def enqueue_due_soon() -> None:
    """Deliver what was just written to the outbox without waiting for the minute's sweep (one job at a
    time; if Redis is down, the sweep does it)."""
    from rq.exceptions import DuplicateJobError

    try:
        get_queue(QUEUE).enqueue(deliver_due, job_id="outbox-soon", unique=True, job_timeout=120, result_ttl=0,
                                 failure_ttl=3600)
    except (DuplicateJobError, redis.RedisError):
        pass


@job
def deliver_due() -> dict[str, int]:
    """Attempt every message whose next attempt is due. Returns the count per outcome."""
    started = time.monotonic()
    counts: dict[str, int] = {}
    for message_id in outbox.due():
        if time.monotonic() - started > SWEEP_BUDGET_S:
            break
        try:
            outcome = outbox.deliver(message_id).outcome
        except Exception:  # one message must never stop the others (it stays due: the next sweep tries it)
            log.exception("outbox %s: delivery failed", message_id)
            outcome = "error"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


@job
def flag_overdue() -> int:
    """One `overdue` event per report past its deadline, told to its agency and the dispatcher."""
    flagged, messages = outbox.flag_overdue()
    for message_id in messages:
        enqueue_delivery(message_id)
    return flagged

"""The scheduler: enqueues periodic jobs on time, once per period however many schedulers run.

Each period is a numbered slot (time // interval). Before enqueueing, a scheduler
claims the slot in Redis with SET NX, and the job id names the slot too, so two
scheduler replicas never enqueue the same periodic job twice for one period.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from redis import Redis, RedisError
from rq import Queue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str  # dotted path, so the scheduler never imports job code
    interval_s: int
    queue: str
    args: Callable[[float], tuple[Any, ...]] = lambda now: ()
    timeout_s: int = 300


def schedule(app: Flask) -> list[Periodic]:
    """The periodic jobs of this application."""
    return [
        Periodic("heartbeat", "hue_reports.jobs.ops.heartbeat", app.config["HEARTBEAT_SECONDS"], "periodic",
                 args=lambda now: (now,), timeout_s=30),
        Periodic("routing-sweep", "hue_reports.jobs.routing.sweep_unrouted", 60, "periodic"),
        Periodic("outbox-delivery", "hue_reports.jobs.notifications.deliver_due", 60, "notifications", timeout_s=120),
        Periodic("overdue", "hue_reports.jobs.notifications.flag_overdue", 60, "periodic"),
        Periodic("close-unrated", "hue_reports.jobs.workflow.close_unrated", 600, "periodic"),
        Periodic("metrics", "hue_reports.jobs.metrics.refresh", app.config["METRICS_REFRESH_SECONDS"], "rollups",
                 timeout_s=max(300, app.config["METRICS_REFRESH_SECONDS"] * 5)),
        Periodic("map-cells", "hue_reports.jobs.metrics.refresh_map", app.config["METRICS_REFRESH_SECONDS"],
                 "rollups", timeout_s=max(300, app.config["METRICS_REFRESH_SECONDS"] * 5)),
        Periodic("photo-sweep", "hue_reports.jobs.photos.sweep_photos", 120, "periodic"),
        Periodic("idempotency-expiry", "hue_reports.jobs.maintenance.expire_idempotency_keys", 3600, "periodic"),
        Periodic("stale-uploads", "hue_reports.jobs.maintenance.remove_stale_uploads", 3600, "periodic"),
        Periodic("orphan-originals", "hue_reports.jobs.maintenance.sweep_orphan_originals", 3600, "periodic"),
        # Housekeeping, on the `periodic` queue: each run stops after privacy.JOB_BUDGET_S (a backlog goes
        # over several runs) so that it never holds that queue's worker long.
        Periodic("privacy-purge", "hue_reports.jobs.maintenance.purge_personal_data", 600, "periodic"),
    ]


def tick(redis: Redis, jobs: list[Periodic], now: float | None = None) -> list[str]:
    """Enqueue every job whose current slot has not been claimed yet; return the job ids enqueued."""
    now = time.time() if now is None else now
    enqueued = []
    for periodic in jobs:
        slot = int(now // periodic.interval_s)
        claim = f"hue:scheduler:{periodic.name}:{slot}"
        if not redis.set(claim, "1", nx=True, ex=periodic.interval_s * 2):
            continue
        job_id = f"periodic-{periodic.name}-{slot}"
        try:
            Queue(periodic.queue, connection=redis).enqueue(
                periodic.func, *periodic.args(now), job_id=job_id, job_timeout=periodic.timeout_s,
                result_ttl=periodic.interval_s * 2, failure_ttl=24 * 3600)
        except RedisError:
            redis.delete(claim)  # let the next tick (this or another scheduler) try this period again
            raise
        enqueued.append(job_id)
    return enqueued


ALIVE_TTL_S = 30


def alive_key(hostname: str | None = None) -> str:
    """Redis key a running scheduler refreshes, for its container healthcheck."""
    return f"hue:scheduler:alive:{hostname or socket.gethostname()}"


def run(redis: Redis, jobs: list[Periodic], stop: threading.Event, resolution_s: float = 1.0) -> None:
    """Tick until `stop` is set. Redis outages are logged and retried, never fatal."""
    log.info("scheduler started: %s", ", ".join(f"{p.name} every {p.interval_s}s" for p in jobs))
    while not stop.is_set():
        try:
            for job_id in tick(redis, jobs):
                log.info("enqueued %s", job_id)
            redis.set(alive_key(), time.time(), ex=ALIVE_TTL_S)
        except RedisError as exc:  # keep scheduling through Redis outages
            log.warning("scheduler tick failed: %s", exc)
        stop.wait(resolution_s)
    redis.delete(alive_key())
    log.info("scheduler stopped")

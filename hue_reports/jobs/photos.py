"""Photo jobs: the public derivatives of each photo, and a sweep for any the queue lost."""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from flask import current_app
from rq import Retry
from rq.exceptions import DuplicateJobError
from rq.job import Job
from sqlalchemy import func, select

from ..extensions import db, get_queue, get_redis
from ..models import Photo
from ..services import photos
from . import QueueIndex, job, pending

log = logging.getLogger(__name__)

QUEUE = "photos"


def sweep_after() -> timedelta:
    """A photo still without derivatives this long after intake (PHOTO_SWEEP_SECONDS) may have been lost by
    the queue (Redis down, a worker killed): the sweep looks at its job."""
    return timedelta(seconds=current_app.config["PHOTO_SWEEP_SECONDS"])


@job
def make_derivatives(photo_id: int) -> str:
    """Display image and thumbnail for one photo (idempotent)."""
    return photos.make_derivatives(photo_id)


def enqueue_derivatives(photo_id: int, *, unique: bool = False,
                        pipeline: redis.client.Pipeline | None = None) -> bool:
    """Queue the derivatives of a committed photo. A Redis outage is logged, not raised: the
    report is safe in the database and the sweep will queue the photo later. `unique` refuses a
    job already queued (the sweep's case; a photo just committed cannot be queued yet). With a
    `pipeline` (not with `unique`), the job is written when the caller executes it (and the caller
    handles its errors)."""
    try:
        get_queue(QUEUE).enqueue(make_derivatives, photo_id, job_id=f"derivatives-{photo_id}", unique=unique,
                                 job_timeout=current_app.config["PHOTO_JOB_TIMEOUT_SECONDS"],
                                 retry=Retry(max=3, interval=[10, 60, 300]),
                                 result_ttl=3600, failure_ttl=7 * 86400, pipeline=pipeline)
    except DuplicateJobError:
        return False  # already queued or running
    except redis.RedisError as exc:
        log.warning("photo %s: derivatives not queued (%s); the sweep will retry", photo_id, exc)
        return False
    return True


@job
def sweep_photos() -> int:
    """Queue again every photo whose derivatives should exist by now and whose job is no longer
    pending (lost with Redis, failed past its retries, or taken by a killed worker: see jobs.pending).
    Returns how many were queued."""
    stale = db.session.scalars(
        select(Photo.id).where(Photo.derivatives_ready_at.is_(None), Photo.derivative_error.is_(None),
                               Photo.created_at < func.now() - sweep_after()).order_by(Photo.id).limit(1000)).all()
    db.session.rollback()
    queued = 0
    lost_after = timedelta(seconds=2 * current_app.config["PHOTO_JOB_TIMEOUT_SECONDS"])
    index = QueueIndex(get_redis())
    for photo_id in stale:
        job_id = f"derivatives-{photo_id}"
        if pending(job_id, lost_after, index):
            continue
        # A finished, failed or dead job of the same id would refuse the new one.
        try:
            Job.fetch(job_id, connection=get_redis()).delete()
        except Exception:  # NoSuchJobError, or a job hash a flush left half-written
            get_redis().delete(f"rq:job:{job_id}")
        queued += enqueue_derivatives(photo_id, unique=True)
    return queued

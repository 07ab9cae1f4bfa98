"""Photo and housekeeping jobs: derivatives by a real worker process, the sweep, key expiry."""

from datetime import timedelta

from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import func, select, text, update

from hue_reports.extensions import db
from hue_reports.jobs import maintenance
from hue_reports.jobs import photos as photo_jobs
from hue_reports.models import IdempotencyKey, Photo
from tests.support import flask_cli, photo_with_gps, post_report


def test_a_real_worker_process_makes_the_derivatives_of_a_committed_report(app, committed, redis_conn,
                                                                           process_env):
    client = app.test_client()
    body = post_report(client, photos=[(photo_with_gps(16.4703, 107.5803), "a.jpg")]).get_json()
    photo_id = body["photos"][0]["id"]
    assert Queue("photos", connection=redis_conn).count == 1

    result = flask_cli(["worker", "--burst"], process_env)
    assert result.returncode == 0, result.stderr

    report = client.get(f"/api/v1/reports/{body['id']}").get_json()
    assert report["photos"][0]["state"] == "ready"
    with client.get(f"/api/v1/photos/{photo_id}/display") as display:
        assert display.status_code == 200 and display.mimetype == "image/jpeg"


def test_the_sweep_queues_photos_the_queue_lost(client, db_session, redis_conn):
    body = post_report(client, photos=[(photo_with_gps(16.4704, 107.5804), "b.jpg")]).get_json()
    photo_id = body["photos"][0]["id"]
    redis_conn.flushdb()  # the queue lost the job (Redis restarted without its data)
    assert photo_jobs.sweep_photos() == 0  # too recent: the first job may still be on its way
    db_session.execute(update(Photo).where(Photo.id == photo_id)
                       .values(created_at=func.now() - photo_jobs.sweep_after() - timedelta(seconds=1)))
    assert photo_jobs.sweep_photos() == 1
    assert Queue("photos", connection=redis_conn).job_ids == [f"derivatives-{photo_id}"]
    assert photo_jobs.sweep_photos() == 0  # already queued: not twice


def test_old_idempotency_keys_are_forgotten(app, client, db_session, redis_conn):
    post_report(client, headers={"Idempotency-Key": "old-0123456789abcdef"})
    post_report(client, headers={"Idempotency-Key": "new-0123456789abcdef"})
    hours = app.config["IDEMPOTENCY_KEY_HOURS"]
    db_session.execute(text("UPDATE idempotency_keys SET created_at = now() - make_interval(hours => :h) "
                            "WHERE key = 'old-0123456789abcdef'"), {"h": hours + 1})
    assert maintenance.expire_idempotency_keys() == 1
    assert db.session.scalars(select(IdempotencyKey.key)).all() == ["new-0123456789abcdef"]


def test_the_sweep_requeues_a_photo_whose_job_failed_past_its_retries(client, db_session, redis_conn):
    body = post_report(client, photos=[(photo_with_gps(16.4731, 107.5831), "c.jpg")]).get_json()
    photo_id = body["photos"][0]["id"]
    job = Job.fetch(f"derivatives-{photo_id}", connection=redis_conn)
    job.set_status(JobStatus.FAILED)  # as RQ leaves it once the retries are spent (kept for 7 days)
    Queue("photos", connection=redis_conn).remove(job)
    db_session.execute(update(Photo).where(Photo.id == photo_id)
                       .values(created_at=func.now() - photo_jobs.sweep_after() - timedelta(seconds=1)))
    assert photo_jobs.sweep_photos() == 1
    assert Queue("photos", connection=redis_conn).job_ids == [f"derivatives-{photo_id}"]

"""Personal data retention (services/privacy.py): what is erased, when a report counts as closed, shared
originals, dry runs, re-runs, failures, the scheduled job and `flask privacy purge`."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from hue_reports import scheduler
from hue_reports.models import AuditEntry, Feedback, OutboxMessage, Photo, Report, ReportContact, ReportEvent
from hue_reports.services import photos as photo_service
from hue_reports.services import privacy
from hue_reports.services.storage import get_storage
from tests.support import CITADEL, error, photo_with_gps, post_report, staff_headers, this_tests_audit


@pytest.fixture(autouse=True)
def no_files_left(app):
    """The photos these tests store are rolled back with their rows: their files go too (else the orphan sweep's
    test, later in the session, would find them)."""
    root = Path(app.config["MEDIA_ROOT"])
    before = {p for p in root.rglob("*") if p.is_file()}
    yield
    for path in {p for p in root.rglob("*") if p.is_file()} - before:
        path.unlink(missing_ok=True)


def contact(n: int) -> dict:
    return {"reporter_name": f"Nguyễn Thị Riêng {n}", "reporter_phone": f"09{n:08d}",
            "reporter_email": f"rieng{n}@example.vn", "device_id": f"device-{n:04d}-private"}


def submit(client, n: int, photo: bytes | None = None) -> dict:
    """A real submission with a contact and its own photo (or `photo`), its derivatives made."""
    photo = photo if photo is not None else photo_with_gps(CITADEL[0] + n * 1e-4, CITADEL[1])
    body = post_report(client, photos=[(photo, f"p{n}.jpg")], **contact(n)).get_json()
    for item in body["photos"]:
        assert photo_service.make_derivatives(item["id"]) in ("made", "reused")
    return body


def set_state(db_session, report_id: int, status: str, closed_months_ago: float | None = None,
              submitted_months_ago: float = 25, **values) -> None:
    """Move a report to `status`, closed (or rejected) that many months ago, as the workflow leaves it."""
    months = lambda m: text(f"now() - interval '{m} months'")  # noqa: E731
    values = {"status": status, "submitted_at": months(submitted_months_ago), **values}
    if status == "closed" and closed_months_ago is not None:
        values["closed_at"] = months(closed_months_ago)
    db_session.execute(update(Report).where(Report.id == report_id).values(**values))
    if status in ("closed", "rejected") and closed_months_ago is not None:
        db_session.execute(text(f"""INSERT INTO report_events (report_id, type, actor_kind, to_status, public,
                                                               created_at)
                                    VALUES (:id, :type, 'system', :status, true,
                                            now() - interval '{closed_months_ago} months')"""),
                           {"id": report_id, "type": "closed" if status == "closed" else "rejected", "status": status})
    db_session.commit()  # (a savepoint: the services' rollbacks must not undo it)


def state(db_session, report_id: int) -> dict:
    """Everything personal a report holds now, and whether its files are stored."""
    db_session.expire_all()
    report = db_session.get(Report, report_id)
    person = db_session.get(ReportContact, report_id)
    storage = get_storage()
    return {
        "contact": person and (person.name, person.phone, person.email, person.device_id, person.erased_at),
        "token": report.tracking_token_hash, "erased_at": report.privacy_erased_at,
        "photos": [(p.original_deleted_at, p.gps is None, storage.exists(p.storage_key),
                    storage.exists(p.display_key), storage.exists(p.thumb_key)) for p in report.photos],
        "events": [(e.type, e.public, e.data) for e in db_session.scalars(
            select(ReportEvent).where(ReportEvent.report_id == report_id, ReportEvent.type == privacy.EVENT))],
    }


def erased(db_session, report_id: int, n: int) -> bool:
    now = state(db_session, report_id)
    assert now["contact"][:4] == (None, None, None, None) and now["contact"][4] is not None
    assert now["token"] is None and now["erased_at"] is not None
    assert all(deleted is not None and no_gps and display and thumb
               for deleted, no_gps, _, display, thumb in now["photos"])
    [(kind, public, data)] = now["events"]  # audited once, internally, without the data
    assert kind == privacy.EVENT and public is False
    assert not any(value in json.dumps(data, ensure_ascii=False) for value in contact(n).values())
    return True


def untouched(db_session, report_id: int, n: int) -> bool:
    now = state(db_session, report_id)
    c = contact(n)
    name, phone, email, device, erased_at = now["contact"]
    assert (name, email, device, erased_at) == (c["reporter_name"], c["reporter_email"], c["device_id"], None)
    assert phone.endswith(c["reporter_phone"][1:])  # (stored as +84...)
    assert now["token"] is not None and now["erased_at"] is None and now["events"] == []
    assert all(deleted is None and original for deleted, _, original, _, _ in now["photos"])
    return True


def test_closed_13_months_ago_is_erased_11_months_ago_and_open_for_2_years_are_kept(client, db_session, redis_conn,
                                                                                  storage_backend):
    """Does the retention count from the closing, and erase everything personal, and only that? (On each
    storage backend: the original is deleted from MEDIA_ROOT, or from the S3 bucket.)"""
    old, recent, still_open = (submit(client, n) for n in (1, 2, 3))
    set_state(db_session, old["id"], "closed", 13)
    set_state(db_session, recent["id"], "closed", 11)
    set_state(db_session, still_open["id"], "in_progress", submitted_months_ago=24)
    old_key = db_session.get(Photo, old["photos"][0]["id"]).storage_key

    result = privacy.purge()

    assert result.as_dict() == {"dry_run": False, "reports": 1, "contacts": 1, "photos": 1, "originals_deleted": 1,
                                "failed": 0, "more": False}
    assert erased(db_session, old["id"], 1)
    assert not get_storage().exists(old_key)  # the original is gone; the derivatives stay (erased())
    assert untouched(db_session, recent["id"], 2) and untouched(db_session, still_open["id"], 3)
    # The reporter's private views of the erased report are gone; its public view is not.
    assert client.get(f"/api/v1/reports/{old['id']}", headers={"X-Tracking-Token": old["tracking_token"]}
                      ).status_code == 403
    assert client.get(f"/track/{old['code']}/{old['tracking_token']}").status_code == 404
    public = client.get(f"/api/v1/public/reports/{old['code']}")
    assert public.status_code == 200
    display = client.get(f"/api/v1/photos/{old['photos'][0]['id']}/display")
    assert display.status_code == 200
    display.close()
    # An officer asking for the original gets a clear answer, not a 500; the recent one's is still served.
    ioc = staff_headers("ioc")
    gone = client.get(f"/api/v1/photos/{old['photos'][0]['id']}/original", headers=ioc)
    assert error(gone, 410, "original_deleted")
    served = client.get(f"/api/v1/photos/{recent['photos'][0]['id']}/original", headers=ioc)
    assert served.status_code == 200
    served.close()
    officer_view = client.get(f"/api/v1/agency/reports/{old['id']}", headers=ioc).get_json()
    assert "original" not in officer_view["photos"][0]["urls"] and officer_view["photos"][0]["original_deleted_at"]
    assert officer_view["reporter"]["name"] is None and officer_view["reporter"]["erased_at"]


@pytest.mark.parametrize("case, due", [
    ("rejected 13 months ago", True),
    ("rejected 11 months ago", False),
    ("resolved 13 months ago (not closed: it may still be rated or reopened)", False),
    ("duplicate of a report closed 13 months ago", True),
    ("duplicate of a report closed 11 months ago", False),
    ("duplicate of a report open for 2 years", False),
    ("closed 13 months ago, then reopened", False),
])
def test_when_a_report_counts_as_closed(client, db_session, redis_conn, case, due):
    """Is "closed" what the workflow says: closed, rejected, or a duplicate whose original is?"""
    report = submit(client, 7)
    rid = report["id"]
    if case.startswith("rejected"):
        set_state(db_session, rid, "rejected", 13 if "13" in case else 11)
    elif case.startswith("resolved"):
        set_state(db_session, rid, "resolved", resolved_at=text("now() - interval '13 months'"))
    elif case.startswith("duplicate"):
        original = submit(client, 8)
        if "open" in case:
            set_state(db_session, original["id"], "in_progress", submitted_months_ago=24)
        else:
            set_state(db_session, original["id"], "closed", 13 if "13" in case else 11)
        set_state(db_session, rid, "duplicate", duplicate_of_id=original["id"])
    else:
        set_state(db_session, rid, "closed", 13)
        set_state(db_session, rid, "in_progress", closed_at=None)
    assert (rid in privacy.due_reports()) is due
    privacy.purge()
    assert erased(db_session, rid, 7) if due else untouched(db_session, rid, 7)


def test_a_shared_original_goes_only_when_no_photo_within_retention_holds_it(client, db_session, redis_conn,
                                                                            storage_backend):
    """Two reports with the same photo (one stored original): erasing the first keeps the file for the
    second, yet no longer serves it as the first's; erasing the second deletes it."""
    same = photo_with_gps(16.4711, 107.5799)
    first, second = submit(client, 4, same), submit(client, 5, same)
    key = db_session.get(Photo, first["photos"][0]["id"]).storage_key
    assert key == db_session.get(Photo, second["photos"][0]["id"]).storage_key
    set_state(db_session, first["id"], "closed", 13)
    set_state(db_session, second["id"], "closed", 11)

    assert privacy.purge().as_dict()["originals_deleted"] == 0
    assert erased(db_session, first["id"], 4) and untouched(db_session, second["id"], 5)
    assert get_storage().exists(key)
    ioc = staff_headers("ioc")
    assert error(client.get(f"/api/v1/photos/{first['photos'][0]['id']}/original", headers=ioc),
                 410, "original_deleted")
    served = client.get(f"/api/v1/photos/{second['photos'][0]['id']}/original", headers=ioc)
    assert served.status_code == 200 and served.data == same
    served.close()

    set_state(db_session, second["id"], "closed", 13)  # the second leaves retention too
    assert privacy.purge().as_dict()["originals_deleted"] == 1
    assert erased(db_session, second["id"], 5)
    assert not get_storage().exists(key)


def test_the_last_holder_past_retention_takes_a_shared_original_in_one_run(client, db_session, redis_conn):
    """Both holders past retention in one run: the file goes (once), both photos are let go."""
    same = photo_with_gps(16.4712, 107.5798)
    first, second = submit(client, 4, same), submit(client, 5, same)
    key = db_session.get(Photo, first["photos"][0]["id"]).storage_key
    for report in (first, second):
        set_state(db_session, report["id"], "closed", 14)
    dry = privacy.purge(dry_run=True).as_dict()
    assert dry["reports"] == 2 and dry["originals_deleted"] == 1
    assert privacy.purge().as_dict() == {**dry, "dry_run": False}
    assert erased(db_session, first["id"], 4) and erased(db_session, second["id"], 5)
    assert not get_storage().exists(key)


def test_a_dry_run_changes_nothing_and_counts_what_the_run_then_does(client, db_session, redis_conn, media_files):
    reports = [submit(client, n) for n in (1, 2, 3)]
    for report, months in zip(reports, (13, 20, 11), strict=True):
        set_state(db_session, report["id"], "closed", months)
    files = media_files()

    dry = privacy.purge(dry_run=True)

    assert (dry.reports, dry.contacts, dry.photos, len(dry.originals)) == (2, 2, 2, 2)
    assert media_files() == files
    assert all(untouched(db_session, report["id"], n) for report, n in zip(reports, (1, 2, 3), strict=True))
    real = privacy.purge()
    assert real.as_dict() == {**dry.as_dict(), "dry_run": False}
    assert len(files - media_files()) == 2


def test_running_again_changes_nothing(client, db_session, redis_conn, media_files):
    """Idempotent: a second run finds nothing due, writes no second event, touches no file."""
    report = submit(client, 1)
    set_state(db_session, report["id"], "closed", 13)
    assert privacy.purge().reports == 1
    before, files = state(db_session, report["id"]), media_files()
    assert privacy.purge().as_dict() == {"dry_run": False, "reports": 0, "contacts": 0, "photos": 0,
                                         "originals_deleted": 0, "failed": 0, "more": False}
    assert state(db_session, report["id"]) == before and media_files() == files
    assert privacy.erase_report(report["id"]) is None  # asked directly: not due any more


def test_everything_personal_around_the_report_goes_too(client, db_session, redis_conn):
    """The push address in the outbox, the Idempotency-Key (its scope names the device), the feedback's
    comment: erased; the rating, which the metrics count, stays."""
    report = submit(client, 6)
    rid = report["id"]
    db_session.add(OutboxMessage(kind="webhook", target="https://push.example.vn/device-0006-private",
                                 report_id=rid, payload={"status": "closed"}, dedupe_key=f"test:{rid}",
                                 delivered_at=datetime.now(timezone.utc) - timedelta(days=400)))
    db_session.add(Feedback(report_id=rid, rating=4, comment="Cảm ơn, số tôi 0900000006"))
    db_session.execute(text("INSERT INTO idempotency_keys (scope, key, request_hash, report_id) "
                            "VALUES ('app:1.2.3.4:device:device-0006-private', 'k-6', 'h', :id)"), {"id": rid})
    set_state(db_session, rid, "closed", 13)

    privacy.purge()

    assert db_session.scalar(select(OutboxMessage.target).where(OutboxMessage.report_id == rid)) == "erased:"
    assert db_session.execute(text("SELECT count(*) FROM idempotency_keys WHERE report_id = :id"),
                              {"id": rid}).scalar() == 0
    feedback = db_session.scalars(select(Feedback).where(Feedback.report_id == rid)).one()
    assert (feedback.rating, feedback.comment) == (4, None)


def test_a_failure_mid_batch_leaves_no_half_erased_report(client, db_session, redis_conn, caplog):
    """The storage refuses to delete the middle report's original: that report is left whole (contact,
    token, photo, no event), the others are erased, and the next run finishes it."""
    reports = [submit(client, n) for n in (1, 2, 3)]
    for report in reports:
        set_state(db_session, report["id"], "closed", 13)
    storage = get_storage()
    stuck = storage.local_path(db_session.get(Photo, reports[1]["photos"][0]["id"]).storage_key)
    kept = stuck.read_bytes()
    stuck.unlink()
    stuck.mkdir()  # a directory where the file was: unlink() fails (EISDIR), as a broken store would
    (stuck / "x").write_bytes(b"x")

    result = privacy.purge()

    assert result.failed == [reports[1]["id"]] and result.reports == 2
    assert erased(db_session, reports[0]["id"], 1) and erased(db_session, reports[2]["id"], 3)
    assert "personal data not erased" in caplog.text
    shutil.rmtree(stuck)  # the store is repaired
    stuck.write_bytes(kept)
    assert untouched(db_session, reports[1]["id"], 2)
    assert privacy.purge().reports == 1
    assert erased(db_session, reports[1]["id"], 2) and not stuck.exists()


def test_the_scheduler_queues_the_purge_and_a_real_worker_runs_it(app, client, db_session, redis_conn, run_jobs):
    """The periodic job is declared on the `periodic` queue and erases through a real RQ worker."""
    from rq import Queue

    report = submit(client, 1)
    set_state(db_session, report["id"], "closed", 13)
    [periodic] = [p for p in scheduler.schedule(app) if p.name == "privacy-purge"]
    assert periodic.queue == "periodic"
    for name in app.config["RQ_QUEUES"]:
        Queue(name, connection=redis_conn).empty()  # (only the purge: no routing of the test's reports)
    [job_id] = scheduler.tick(redis_conn, [periodic])
    run_jobs()
    from rq.job import Job

    job = Job.fetch(job_id, connection=redis_conn)
    assert job.get_status() == "finished", job.exc_info
    assert job.return_value()["reports"] == 1
    assert erased(db_session, report["id"], 1)


def test_flask_privacy_purge_dry_run_then_for_real_with_an_audit_entry(app, client, db_session, redis_conn):
    report = submit(client, 1)
    set_state(db_session, report["id"], "closed", 13)
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["privacy", "purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run, nothing changed: would erase the personal data of 1 report(s)" in dry.output
    assert untouched(db_session, report["id"], 1)
    assert db_session.scalar(select(func.count()).select_from(AuditEntry).where(this_tests_audit())) == 0

    real = runner.invoke(args=["privacy", "purge"])
    assert real.exit_code == 0, real.output
    assert "erased the personal data of 1 report(s)" in real.output and "1 stored original(s) deleted" in real.output
    assert erased(db_session, report["id"], 1)
    [entry] = db_session.scalars(select(AuditEntry).where(this_tests_audit(), AuditEntry.action == "privacy.purge"))
    assert entry.after["reports"] == 1 and entry.actor.startswith("cli:")
    again = runner.invoke(args=["privacy", "purge"])
    assert again.exit_code == 0 and "of 0 report(s)" in again.output


def test_a_retention_under_one_month_is_refused():
    from hue_reports.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="PERSONAL_DATA_RETENTION_MONTHS"):
        load_config({"HUE_ENV": "testing", "PERSONAL_DATA_RETENTION_MONTHS": "0"})


def test_the_console_says_the_original_is_gone(app, client, db_session, redis_conn):
    """The officer console: no link to an erased original on the ticket, and the original's address is a
    410 page, not a 500."""
    from tests.test_console import log_in

    report = submit(client, 1)
    set_state(db_session, report["id"], "closed", 13)
    privacy.purge()
    console = log_in(app, "ioc")
    ticket = console.get(f"/console/reports/{report['code']}")
    assert ticket.status_code == 200
    page = ticket.get_data(as_text=True)
    assert f"/console/photos/{report['photos'][0]['id']}/original" not in page and "Ảnh gốc đã xoá" in page
    gone = console.get(f"/console/photos/{report['photos'][0]['id']}/original")
    assert gone.status_code == 410 and gone.mimetype == "text/html"


def test_a_report_reopened_after_its_erasure_is_erased_again_when_it_closes(client, db_session, redis_conn):
    """What a reopened report gains (here a photo of the new fix) is erased when it has been closed again
    for the retention; the contact, already erased, is not counted twice."""
    import io

    from hue_reports.services.storage import original_key

    report = submit(client, 1)
    set_state(db_session, report["id"], "closed", 30)
    assert privacy.purge().reports == 1
    # Long ago (erased 28 months ago), the dispatcher reopened it; a new fix, closed again 13 months ago.
    db_session.execute(update(Report).where(Report.id == report["id"]).values(
        privacy_erased_at=text("now() - interval '28 months'")))
    key = original_key("ab" * 32)
    get_storage().put(key, io.BytesIO(b"the new fix's photo"))
    first = db_session.get(Photo, report["photos"][0]["id"])
    db_session.add(Photo(report_id=report["id"], kind="resolution", storage_key=key, sha256="ab" * 32,
                         content_type="image/jpeg", size_bytes=19, width=1, height=1,
                         display_key=first.display_key, thumb_key=first.thumb_key,
                         derivatives_ready_at=first.derivatives_ready_at))
    set_state(db_session, report["id"], "closed", 13)

    again = privacy.purge()

    assert (again.reports, again.contacts, again.photos, len(again.originals)) == (1, 0, 1, 1)
    assert not get_storage().exists(key)
    assert len(state(db_session, report["id"])["events"]) == 2

"""Load with faults, on the production shape: 2,000 submissions from 20 concurrent clients that retry with the
same Idempotency-Key (after an answer, at the same time, and after giving up on a connection before its
answer), against gunicorn, while RQ workers are SIGKILLed and replaced. Afterwards every accepted report
exists once, is routed once, and its photo is stored once, with its derivatives.

Two shapes: one API process group with two workers (the hardening issue), and two API processes with three
workers against one database and one Redis (the scale-out issue).

HUE_LOAD_SUBMISSIONS changes the number of submissions (for a quick local run); the figures are printed (-s).
"""

from __future__ import annotations

import http.client
import os
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from sqlalchemy import text

from hue_reports.extensions import db
from tests.stack import Gunicorn, Workers, request, small_jpeg
from tests.support import multipart, report_form

SUBMISSIONS = int(os.environ.get("HUE_LOAD_SUBMISSIONS", "2000"))
CLIENTS = 20
# A killed job's report or photo is taken for lost after twice its timeout: short here, so the test ends soon.
JOB_TIMEOUT_S = 5
KILL_EVERY_S = 15  # (a worker takes seconds to start on a busy machine)
DRAIN_DEADLINE_S = 240


@dataclass(frozen=True)
class Shape:
    name: str
    apis: int  # gunicorn masters, each on its own port
    api_workers: int  # worker processes of each
    workers: int  # RQ workers


SHAPES = [Shape("one-api", apis=1, api_workers=2, workers=2), Shape("two-apis-three-workers", 2, 1, 3)]


@dataclass
class Tally:
    """What the clients were answered: key -> the report ids of its 201s; anything else."""
    ids: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    unexpected: list = field(default_factory=list)
    sent: int = 0
    replayed: int = 0
    dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, key: str, status: int, headers: dict, body) -> None:
        with self.lock:
            self.sent += 1
            if status == 201:
                self.ids[key].add(body["id"])
                self.replayed += headers.get("idempotent-replayed") == "true"
            else:
                self.unexpected.append((key, status, body))


def _body(run: str, n: int) -> tuple[bytes, dict]:
    lat = 16.44 + (n % 50) * 0.001  # inside Huế, spread over a few wards
    lon = 107.56 + (n // 50 % 40) * 0.001
    body, boundary = multipart(report_form([(small_jpeg(n), f"{n}.jpg")], description=f"load {run} #{n}",
                                           lat=f"{lat:.5f}", lon=f"{lon:.5f}", device_id=f"load-{run}-{n % CLIENTS}"))
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}",
                  "Idempotency-Key": f"load-{run}-{n:05d}-0123456789"}


def _send(base: str, key: str, body: bytes, headers: dict, tally: Tally) -> None:
    status, answer_headers, answer = request(base, "POST", "/api/v1/reports", body, headers, timeout=120)
    tally.answer(key, status, answer_headers, answer)


def _give_up_before_the_answer(base: str, body: bytes, headers: dict, tally: Tally) -> None:
    """The phone sends everything, then loses the connection before the answer (did it get through?)."""
    host, port = base.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", "/api/v1/reports", body=body, headers=headers)
    conn.close()
    with tally.lock:
        tally.dropped += 1


def _client(number: int, bases: list[str], run: str, tally: Tally) -> None:
    rng = random.Random(number)
    for n in range(number, SUBMISSIONS, CLIENTS):
        body, headers = _body(run, n)
        key = headers["Idempotency-Key"]
        base = bases[rng.randrange(len(bases))]
        roll = rng.random()
        if roll < 0.05:
            _give_up_before_the_answer(base, body, headers, tally)
            time.sleep(rng.random() * 0.05)
        if 0.05 <= roll < 0.15:  # two tries at once (a retry fired while the first is still on its way)
            twin = threading.Thread(target=_send, args=(bases[rng.randrange(len(bases))], key, body, headers, tally))
            twin.start()
            _send(base, key, body, headers, tally)
            twin.join(150)
        else:
            _send(base, key, body, headers, tally)
        if 0.15 <= roll < 0.30:  # a retry after the answer (the phone did not see it)
            _send(bases[rng.randrange(len(bases))], key, body, headers, tally)


def _counts(app, run: str) -> dict[str, int]:
    with app.app_context():
        row = db.session.execute(text("""
            SELECT count(*) FILTER (WHERE r.status <> 'routed'),
                   (SELECT count(*) FROM photos p JOIN reports r2 ON r2.id = p.report_id
                    WHERE r2.description LIKE :like AND p.derivatives_ready_at IS NULL)
            FROM reports r WHERE r.description LIKE :like"""), {"like": f"load {run} #%"}).one()
        db.session.remove()
    return {"unrouted": row[0], "photos_pending": row[1]}


def _drain(sweeping, app, run: str, workers: Workers) -> float:
    """The scheduler's sweeps, every second, until every report is routed and every photo has its derivatives
    (a killed job is taken for lost after twice its timeout). Returns the seconds it took."""
    from hue_reports.jobs.photos import sweep_photos
    from hue_reports.jobs.routing import sweep_unrouted

    started = time.monotonic()
    while True:
        counts = _counts(app, run)
        if counts == {"unrouted": 0, "photos_pending": 0}:
            return time.monotonic() - started
        assert time.monotonic() - started < DRAIN_DEADLINE_S, (counts, workers.logs())
        with sweeping.app_context():
            sweep_unrouted()
            sweep_photos()
        time.sleep(1)


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_under_load_with_retries_and_killed_workers_every_report_is_stored_routed_and_processed_once(
        shape, app, make_app, committed, redis_conn, process_env, tmp_path):
    run = uuid.uuid4().hex[:8]
    media = tmp_path / "media"
    env = {**process_env, "MEDIA_ROOT": str(media), "WORKER_CLASS": "simple", "DUPLICATE_RADIUS_M": "0",
           "ROUTING_JOB_TIMEOUT_SECONDS": str(JOB_TIMEOUT_S), "PHOTO_JOB_TIMEOUT_SECONDS": str(JOB_TIMEOUT_S),
           "ROUTING_SWEEP_SECONDS": "0", "PHOTO_SWEEP_SECONDS": "0", "LOG_LEVEL": "WARNING"}
    sweeping = make_app(MEDIA_ROOT=str(media), ROUTING_JOB_TIMEOUT_SECONDS=JOB_TIMEOUT_S,
                        PHOTO_JOB_TIMEOUT_SECONDS=JOB_TIMEOUT_S, ROUTING_SWEEP_SECONDS=0, PHOTO_SWEEP_SECONDS=0)
    apis: list[Gunicorn] = []
    workers = Workers(env, tmp_path)
    tally = Tally()
    try:
        for i in range(shape.apis):
            apis.append(Gunicorn(env, tmp_path / f"gunicorn-{i}.log", workers=shape.api_workers, threads=4))
        workers.start(shape.workers)
        bases = [api.base for api in apis]
        clients = [threading.Thread(target=_client, args=(c, bases, run, tally)) for c in range(CLIENTS)]
        started = time.monotonic()
        for client in clients:
            client.start()
        killer = random.Random(run)
        next_kill = started + 3
        while any(c.is_alive() for c in clients):
            if time.monotonic() >= next_kill:
                workers.kill_one(killer.randrange(len(workers.procs)))
                next_kill = time.monotonic() + KILL_EVERY_S
            time.sleep(0.2)
        load_s = time.monotonic() - started
        drain_s = _drain(sweeping, app, run, workers)
    finally:
        workers.stop()
        for api in apis:
            api.stop()

    assert tally.unexpected == [], tally.unexpected[:5]
    assert workers.killed >= 1
    assert len(tally.ids) == SUBMISSIONS  # every submission was accepted (its retries answered too)
    assert all(len(ids) == 1 for ids in tally.ids.values()), [k for k, v in tally.ids.items() if len(v) > 1][:5]
    accepted = {key: next(iter(ids)) for key, ids in tally.ids.items()}
    assert len(set(accepted.values())) == SUBMISSIONS
    like = {"like": f"load {run} #%"}
    with app.app_context():
        q = lambda sql: db.session.execute(text(sql), like).all()  # noqa: E731
        reports = dict(q("SELECT id, status FROM reports WHERE description LIKE :like"))
        assert set(reports) == set(accepted.values())  # each exists, once; nothing else was made
        assert set(reports.values()) == {"routed"}
        keys = dict(q("SELECT k.key, k.report_id FROM idempotency_keys k JOIN reports r ON r.id = k.report_id "
                      "WHERE r.description LIKE :like"))
        assert keys == accepted
        events = q("SELECT e.type, count(*), count(DISTINCT e.report_id) FROM report_events e "
                   "JOIN reports r ON r.id = e.report_id WHERE r.description LIKE :like GROUP BY e.type")
        assert sorted(events) == [("routed", SUBMISSIONS, SUBMISSIONS), ("submitted", SUBMISSIONS, SUBMISSIONS)]
        photos = q("SELECT p.storage_key, p.display_key, p.thumb_key, p.derivatives_ready_at FROM photos p "
                   "JOIN reports r ON r.id = p.report_id WHERE r.description LIKE :like")
        db.session.remove()
    assert len(photos) == SUBMISSIONS and len({p[0] for p in photos}) == SUBMISSIONS
    assert all(p[3] is not None for p in photos)
    from hue_reports.services.storage import get_storage, remove_stale_spools

    with sweeping.app_context():  # what a job killed while writing a file left: the stale-uploads job's
        remove_stale_spools(get_storage(), 0)
    files = {str(p.relative_to(media)) for p in media.rglob("*") if p.is_file()}
    assert {f for f in files if f.startswith("originals/")} == {p[0] for p in photos}  # stored once, no orphan
    assert {f for f in files if f.startswith("derivatives/")} == {p[1] for p in photos} | {p[2] for p in photos}
    assert not [f for f in files if not f.startswith(("originals/", "derivatives/"))]  # no upload left spooled
    print(f"\nload [{shape.name}]: {SUBMISSIONS} reports, {tally.sent} answered requests ({tally.replayed} "
          f"replayed), {tally.dropped} connections dropped before the answer, {workers.killed} workers killed; "
          f"load {load_s:.1f} s ({SUBMISSIONS / load_s:.0f} reports/s), drained {drain_s:.1f} s later")


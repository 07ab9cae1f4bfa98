"""The floor for the intake benchmark: the same multipart body received and its photo written to disk.

Same framework (Flask), same gunicorn settings, the body read in the same pieces as intake reads it
(hue_reports.uploads.LargeReadsParser), and the least work that stores an upload durably:
each file part is streamed by the parser straight into its destination file, once, and fsync'd (as
intake's storage does). What is left between the two is the cost of intake itself (validation, image
checks, hashing, database, queue).

A second floor, `/api/v1/reports/rows`, also writes the report's rows (the report, its photo and its
`submitted` event, in one statement that commits, through psycopg with no check): the least that stores a
report, to tell what intake adds over writing it from what any report costs the database.
"""

import os
import threading
import uuid
from pathlib import Path

from flask import Flask, Request, request

from hue_reports.uploads import LargeReadsParser

ROOT = Path(os.environ.get("FLOOR_ROOT", "/tmp/hue-floor"))
ROOT.mkdir(parents=True, exist_ok=True)


class DirectRequest(Request):
    form_data_parser_class = LargeReadsParser  # (read as intake reads: the same pieces)

    def _get_file_stream(self, *args, **kwargs):
        return open(ROOT / uuid.uuid4().hex, "wb+")  # the destination itself


# The rows of a report, as intake writes them (its FILE_SQL) without the contact, key and token: one statement.
ROWS_SQL = """
    WITH report AS (
        INSERT INTO reports (public_code, category_id, description, channel, status, supporters, location,
                             location_source, submitted_at)
        VALUES (%(code)s, (SELECT id FROM categories WHERE code = %(category)s), %(description)s, 'app',
                'submitted', 0, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), 'client', now())
        RETURNING id
    ), photo AS (
        INSERT INTO photos (report_id, kind, storage_key, sha256, content_type, size_bytes, width, height)
        SELECT id, 'evidence', p.key, p.key, 'image/jpeg', p.size, 1, 1
        FROM report, unnest(CAST(%(keys)s AS text[]), CAST(%(sizes)s AS bigint[])) AS p(key, size)
    ), event AS (
        INSERT INTO report_events (report_id, type, actor_kind, to_status, public)
        SELECT id, 'submitted', 'resident', 'submitted', true FROM report
    )
    SELECT id FROM report
"""
_connections = threading.local()


def _connection():
    """This thread's connection (autocommit: the one statement commits)."""
    import psycopg

    conn = getattr(_connections, "conn", None)
    if conn is None:
        url = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        conn = _connections.conn = psycopg.connect(url, autocommit=True)
    return conn


app = Flask(__name__)
app.request_class = DirectRequest


@app.post("/api/v1/reports")
def receive():
    request.form.to_dict()
    for upload in request.files.getlist("photos"):
        upload.stream.flush()
        os.fsync(upload.stream.fileno())
    return {"stored": True}, 201


@app.post("/api/v1/reports/rows")
def receive_with_rows():
    fields = request.form.to_dict()
    uploads = request.files.getlist("photos")
    receive()
    report_id = _connection().execute(ROWS_SQL, {
        "code": uuid.uuid4().hex, "category": fields["category"], "description": fields["description"],
        "lon": float(fields["lon"]), "lat": float(fields["lat"]),
        "keys": [os.path.basename(u.stream.name) for u in uploads],
        "sizes": [os.fstat(u.stream.fileno()).st_size for u in uploads]}).fetchone()[0]
    return {"stored": True, "id": report_id}, 201

"""The floor for the intake benchmark: the same multipart body received and its photo written to disk.

Same framework (Flask), same gunicorn settings, the body read in the same pieces as intake reads it
(hue_reports.uploads.LargeReadsParser), and the least work that stores an upload durably:
each file part is streamed by the parser straight into its destination file, once, and fsync'd (as
intake's storage does). What is left between the two is the cost of intake itself (validation, image
checks, hashing, database, queue).
"""

import os
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


app = Flask(__name__)
app.request_class = DirectRequest


@app.post("/api/v1/reports")
def receive():
    request.form.to_dict()
    for upload in request.files.getlist("photos"):
        upload.stream.flush()
        os.fsync(upload.stream.fileno())
    return {"stored": True}, 201

"""gunicorn's access log without the residents' tracking tokens (they sit in the path: /track/<code>/<token>)."""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

TRACKING_TOKEN = re.compile(r"(/track/[^/\s?]+/)[^/\s?\"]+")


class RedactingLogger(Logger):
    """gunicorn's logger, with the tracking tokens in the access log's fields replaced by `[token]`."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():  # (the request line, path, Referer and the environ's copies of them)
            if isinstance(value, str) and "/track/" in value:
                atoms[key] = TRACKING_TOKEN.sub(r"\1[token]", value)
        return atoms

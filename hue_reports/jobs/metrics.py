"""Metrics job: the accountability figures brought up to the new events (METRICS_REFRESH_SECONDS)."""

from __future__ import annotations

import logging
from typing import Any

from ..services import metrics
from . import job

log = logging.getLogger(__name__)


@job
def refresh() -> dict[str, Any]:
    """Replay the reports with new events into the facts, then recompute the answers in use."""
    result = metrics.refresh_all()
    log.info("metrics refreshed: %s", result)
    return result

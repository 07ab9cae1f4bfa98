"""Rollup jobs (every METRICS_REFRESH_SECONDS): the accountability figures brought up to the new events, and
the public map's counts per grid cell."""

from __future__ import annotations

import logging
from typing import Any

from ..services import mapgrid, metrics
from . import job

log = logging.getLogger(__name__)


@job
def refresh() -> dict[str, Any]:
    """Replay the reports with new events into the facts, then recompute the answers in use."""
    result = metrics.refresh_all()
    log.info("metrics refreshed: %s", result)
    return result


@job
def refresh_map() -> dict[str, Any]:
    """Recompute the public map's counts per grid cell (its clusters) from the reports."""
    stats = mapgrid.refresh()
    result = {"cells": None} if stats is None else {"cells": stats.cells, "seconds": round(stats.seconds, 3)}
    log.info("map cells refreshed: %s", result)
    return result

"""Workflow jobs: close the resolved reports nobody rated in time."""

from __future__ import annotations

from ..services import workflow
from . import job
from .notifications import enqueue_due_soon


@job
def close_unrated() -> int:
    """Close resolved reports without feedback after FEEDBACK_DAYS. Returns how many."""
    closed = workflow.close_unrated()
    if closed:
        enqueue_due_soon()
    return closed

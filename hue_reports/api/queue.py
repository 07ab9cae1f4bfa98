"""Officers' queue: the agency's tickets, filtered, searched, sorted by deadline, paginated."""

from __future__ import annotations

from flask_smorest import Blueprint

from . import not_yet

blp = Blueprint("queue", __name__, url_prefix="/api/v1", description="Officers: the queue")


@blp.route("/agency/reports")
def agency_queue():
    """The agency's tickets, sorted by deadline."""
    raise not_yet("officer queue")

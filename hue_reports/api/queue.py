"""Officers' queue: the agency's tickets, filtered, searched, sorted by deadline, paginated."""

from __future__ import annotations

from flask import request

from ..models.report import ALL_STATUSES
from ..schemas.queue import LIMIT_DEFAULT, LIMIT_MAX, SORTS, QueuePageSchema, load_query
from ..services import auth, queue
from .openapi import Blueprint, documented

blp = Blueprint("queue", __name__, url_prefix="/api/v1", description="Officers: the queue")

_ONE = "(?:" + "|".join(ALL_STATUSES) + ")"
_STATUSES = rf"^\s*$|^[\s,]*{_ONE}(?:\s*,[\s,]*{_ONE})*[\s,]*$"  # (statuses, comma-separated, or blank)
PARAMETERS = [
    {"in": "query", "name": "status", "schema": {"type": "array", "items": {"type": "string", "pattern": _STATUSES}},
     "style": "form", "explode": True,
     "description": f"repeatable, or comma-separated (blank: no filter): {', '.join(ALL_STATUSES)}"},
    {"in": "query", "name": "overdue", "schema": {"type": "string", "enum": ["true", "false", "1", "0"]},
     "description": "true: open and past its deadline; false: every other report"},
    {"in": "query", "name": "category", "schema": {"type": "string"}, "description": "a service code"},
    {"in": "query", "name": "ward", "schema": {"type": "string"}, "description": "a ward or commune code"},
    {"in": "query", "name": "agency", "schema": {"type": "string"},
     "description": "an agency code: the dispatcher and admins choose any; an officer only its own (else 403)"},
    {"in": "query", "name": "from", "schema": {"type": "string"},
     "description": "submitted at or after: an ISO date (the city's time zone) or date-time"},
    {"in": "query", "name": "to", "schema": {"type": "string"},
     "description": "submitted at or before: an ISO date (that whole day, the city's time zone) or date-time"},
    {"in": "query", "name": "q", "schema": {"type": "string", "maxLength": 200},
     "description": "text in the description, address or code; with or without Vietnamese diacritics"},
    {"in": "query", "name": "sort", "schema": {"type": "string", "enum": list(SORTS), "default": "due"},
     "description": "due: deadline first (no deadline last); submitted / -submitted: oldest / newest first"},
    {"in": "query", "name": "cursor", "schema": {"type": "string"},
     "description": "the next_cursor of the previous page (same filters and sort)"},
    {"in": "query", "name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX,
                                                 "default": LIMIT_DEFAULT}},
]


# A blank parameter (`q=`, `q=%20`) is no filter (schemas.queue drops it).
BLANK = {"type": "string", "pattern": r"^\s*$", "description": "blank: no filter"}
for _parameter in PARAMETERS:
    if _parameter["schema"].get("type") != "array":
        _parameter["schema"] = {"anyOf": [_parameter["schema"], BLANK]}

# The filters the public map data shares with the queue (schemas.queue.QueueQueryArgs reads them).
FILTER_PARAMETERS = [p for p in PARAMETERS if p["name"] in ("status", "overdue", "category", "ward", "agency",
                                                            "from", "to")]


@blp.route("/agency/reports")
@blp.response(200, QueuePageSchema)
@documented(blp, auth=True, parameters=PARAMETERS,
            e403="`forbidden`: not a staff account, or an officer asking for another agency (`agency`).",
            e422="`validation_error`: an invalid parameter, an unknown code, or a parameter given twice.")
def agency_queue():
    """The agency's reports, sorted by deadline: officers and agency admins see their agency's; the
    dispatcher and admins every agency's, and the reports not routed yet or that could not be routed.

    Never the reporter's contact. `counts` gives the reports per status for the same filters but status."""
    account = auth.current_account(roles=queue.STAFF_ROLES)
    args = load_query(request.args)
    page = queue.agency_queue(account, args)
    return page, 200, {"Cache-Control": "private, no-store"}

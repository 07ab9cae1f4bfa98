"""The officers' queue (GET /api/v1/agency/reports): its query arguments and its answer.

The answer never carries the reporter's contact (report_contacts): officers do not learn who reported.
"""

from __future__ import annotations

import re
import threading
from datetime import date, datetime

import marshmallow as ma
from flask import url_for
from geoalchemy2.shape import to_shape

from ..models import STATUS_LABELS
from ..models.report import ALL_STATUSES
from .common import BOOLEAN, LABELS, POINT, STRING, computed
from .report import STATUS, AgencyRefSchema, CategoryRefSchema, Text, WardRefSchema

SORTS = ("due", "submitted", "-submitted")
LIMIT_DEFAULT = 50
LIMIT_MAX = 200
Q_MAX = 200
# Descriptions in the list are cut to this many characters (the full text is in the report's view).
DESCRIPTION_MAX = 280

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
# "+07:00" in a query string that was not percent-encoded arrives as " 07:00".
_PLUS_AS_SPACE = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?) (\d{2}:?\d{2})$")


class StatusList(ma.fields.Field):
    """Statuses, repeated (`status=a&status=b`) or comma-separated (`status=a,b`), each a known one."""

    def _deserialize(self, value, attr, data, **kwargs):
        statuses: list[str] = []
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(item, str):
                raise ma.ValidationError("Not a status.")
            for part in item.split(","):
                part = part.strip()
                if not part:
                    continue
                if part not in ALL_STATUSES:
                    raise ma.ValidationError(f"Unknown status {part[:40]!r}: one of {', '.join(ALL_STATUSES)}.")
                if part not in statuses:
                    statuses.append(part)
        if not statuses:
            raise ma.ValidationError(f"At least one of {', '.join(ALL_STATUSES)}.")
        return tuple(statuses)


class DateOrDateTime(ma.fields.Field):
    """An ISO date (2026-03-01) or date-time (2026-03-01T08:00, with or without an offset).

    Returned as given (a date, a naive or an aware datetime): the service places dates and naive times
    in the city's time zone."""

    MESSAGE = "An ISO date (2026-03-01) or date-time (2026-03-01T08:00:00+07:00)."

    def _deserialize(self, value, attr, data, **kwargs) -> date | datetime:
        if not isinstance(value, str) or len(value) > 40:
            raise ma.ValidationError(self.MESSAGE)
        value = value.strip()
        try:
            if _DATE.match(value):
                return date.fromisoformat(value)
            if _DATETIME.match(value):
                return datetime.fromisoformat(_PLUS_AS_SPACE.sub(r"\1+\2", value))
        except ValueError:
            pass
        raise ma.ValidationError(self.MESSAGE)


class Limit(ma.fields.Field):
    """An integer from 1 to LIMIT_MAX, in plain ASCII digits."""

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        if not (isinstance(value, str) and value.isascii() and value.isdecimal() and len(value) <= 6
                and 1 <= int(value) <= LIMIT_MAX):
            raise ma.ValidationError(f"An integer from 1 to {LIMIT_MAX}.")
        return int(value)


class QueueQueryArgs(ma.Schema):
    """The query string of GET /api/v1/agency/reports."""

    class Meta:
        unknown = ma.EXCLUDE

    status = StatusList(metadata={"description": "repeatable or comma-separated"})
    overdue = ma.fields.Boolean(truthy={"true", "1"}, falsy={"false", "0"},
                                metadata={"description": "true: open and past due_at; false: the others"})
    category = Text(validate=ma.validate.Length(min=1, max=64), metadata={"description": "a service code"})
    ward = Text(validate=ma.validate.Length(min=1, max=32), metadata={"description": "a ward or commune code"})
    agency = Text(validate=ma.validate.Length(min=1, max=64),
                  metadata={"description": "an agency code (the dispatcher and admins; officers: their own)"})
    from_ = DateOrDateTime(data_key="from", metadata={"description": "submitted at or after"})
    to = DateOrDateTime(metadata={"description": "submitted at or before (a date: that whole day)"})
    q = Text(validate=ma.validate.Length(min=1, max=Q_MAX),
             metadata={"description": "text in the description, address or code, with or without diacritics"})
    sort = ma.fields.String(validate=ma.validate.OneOf(SORTS), load_default="due")
    cursor = ma.fields.String(validate=ma.validate.Length(min=1, max=300),
                              metadata={"description": "the next_cursor of the previous page"})
    limit = Limit(load_default=LIMIT_DEFAULT)

    @ma.pre_load
    def drop_empty(self, data, **kwargs):
        """An empty parameter (`q=`) is no filter."""
        return {k: v for k, v in data.items() if not (isinstance(v, str) and v.strip() == "")}


_schemas = threading.local()


def _query_schema() -> tuple[QueueQueryArgs, frozenset[str]]:
    """This thread's QueueQueryArgs and the parameter names it knows (made once: a schema's construction, a deep
    copy of its fields, cost more than loading a query)."""
    made = getattr(_schemas, "query", None)
    if made is None:
        schema = QueueQueryArgs()
        made = _schemas.query = (schema, frozenset(field.data_key or name for name, field in schema.fields.items()))
    return made


def load_query(args) -> dict:
    """The queue's arguments from a request's query string (a MultiDict); 422 `validation_error` with
    `fields` for anything wrong. `status` may be repeated; any other parameter comes once."""
    schema, known = _query_schema()
    data, errors = {}, {}
    for key in args.keys():
        if key not in known:
            continue
        values = args.getlist(key)
        if key == "status":
            values = [v for v in values if v.strip()]  # (an empty `status=` is no filter)
            if values:
                data[key] = values
        elif len(values) > 1:
            errors[key] = ["Give this parameter once."]
        else:
            data[key] = values[0]
    try:
        loaded = schema.load(data)
    except ma.ValidationError as exc:
        errors.update(exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages})
    if errors:
        raise ma.ValidationError(errors)
    return loaded


# The answer: items are services.queue.QueueEntry (a report, its overdue flag and its thumbnail's photo id).

def _point(geom):
    if geom is None:
        return None
    shape = to_shape(geom)
    return {"lat": shape.y, "lon": shape.x}


def _description(entry) -> str:
    text = entry.report.description
    return text if len(text) <= DESCRIPTION_MAX else text[:DESCRIPTION_MAX - 1].rstrip() + "…"


def _thumbnail(entry) -> str | None:
    if entry.thumb_photo_id is None:
        return None
    return url_for("photos.photo", photo_id=entry.thumb_photo_id, size="thumb")


class QueueItemSchema(ma.Schema):
    """One report in the queue: what an officer needs to pick it; never the reporter's contact."""

    id = computed(lambda e: e.report.id, {"type": "integer"})
    code = computed(lambda e: e.report.public_code, STRING)
    status = computed(lambda e: e.report.status, STATUS)
    status_label = computed(lambda e: STATUS_LABELS[e.report.status], LABELS)
    overdue = ma.fields.Boolean(metadata={"description": "open and past its deadline"})
    category = ma.fields.Nested(CategoryRefSchema, attribute="report.category")
    ward = ma.fields.Nested(WardRefSchema, attribute="report.ward", allow_none=True)
    agency = ma.fields.Nested(AgencyRefSchema, attribute="report.agency", allow_none=True)
    submitted_at = ma.fields.DateTime(attribute="report.submitted_at")
    routed_at = ma.fields.DateTime(attribute="report.routed_at", allow_none=True)
    acknowledged_at = ma.fields.DateTime(attribute="report.acknowledged_at", allow_none=True)
    due_at = ma.fields.DateTime(attribute="report.due_at", allow_none=True)
    description = computed(_description, STRING, description=f"cut at {DESCRIPTION_MAX} characters")
    description_truncated = computed(lambda e: len(e.report.description) > DESCRIPTION_MAX, BOOLEAN)
    address = ma.fields.String(attribute="report.address", allow_none=True)
    location = computed(lambda e: _point(e.report.location), POINT, nullable=True)
    supporters = ma.fields.Integer(attribute="report.supporters")
    duplicate_of = ma.fields.Raw(allow_none=True, metadata={
        "type": "object", "properties": {"id": {"type": "integer"}, "code": STRING, "status": STATUS},
        "description": "the original report's id, code and status"})
    thumbnail_url = computed(_thumbnail, STRING, nullable=True,
                             description="the first photo's thumbnail once it is ready, else null")
    version = ma.fields.Integer(attribute="report.version")


class QueuePageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(QueueItemSchema), attribute="entries")
    next_cursor = ma.fields.String(allow_none=True, metadata={
        "description": "send as `cursor` (same filters and sort) for the next page; null on the last page"})
    has_more = ma.fields.Boolean()
    counts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), metadata={
        "description": "reports per status in the same scope and filters, the status filter aside"})
    total = ma.fields.Integer(metadata={"description": "reports matching every filter (all pages)"})
    sort = ma.fields.String()
    limit = ma.fields.Integer()

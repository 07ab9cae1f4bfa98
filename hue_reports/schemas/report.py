"""Reports: what a resident sends (ReportCreateSchema) and what the public and the reporter see."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timezone

import marshmallow as ma
from flask import url_for
from geoalchemy2.shape import to_shape

from ..models import EVENT_LABELS, OPEN_STATUSES, STATUS_LABELS
from .common import BOOLEAN, LABELS, POINT, STRING, computed, label

# C0 control characters other than tab, newline and carriage return (NUL cannot even be stored).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MOBILE = re.compile(r"^0[35789]\d{8}$")
LANDLINE = re.compile(r"^02\d{9}$")


class Text(ma.fields.String):
    """Text from people: NFC-normalised, trimmed, without control characters."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if _CONTROL.search(text):
            raise ma.ValidationError("Control characters are not allowed.")
        return unicodedata.normalize("NFC", text).strip()


class VietnamesePhone(ma.fields.String):
    """A Vietnamese mobile (09x, 03x, 05x, 07x, 08x) or landline (02x) number, stored as +84..."""

    def _deserialize(self, value, attr, data, **kwargs):
        raw = super()._deserialize(value, attr, data, **kwargs)
        digits = re.sub(r"[\s.\-()]", "", raw)
        if digits.startswith("+84"):
            digits = "0" + digits[3:]
        elif digits.startswith("84") and len(digits) in (11, 12):
            digits = "0" + digits[2:]
        if not (MOBILE.match(digits) or LANDLINE.match(digits)):
            raise ma.ValidationError("Not a Vietnamese phone number (e.g. 0912 345 678 or +84 234 3822 123).")
        return "+84" + digits[1:]


class ReportCreateSchema(ma.Schema):
    """The form fields of POST /api/v1/reports (the photos come as files beside them)."""

    class Meta:
        unknown = ma.EXCLUDE

    category = Text(required=True, validate=ma.validate.Length(min=1, max=64),
                    metadata={"description": "service code from GET /api/v1/services"})
    description = Text(required=True, validate=ma.validate.Length(min=1, max=2000))
    lat = ma.fields.Float(allow_nan=False, validate=ma.validate.Range(-90, 90))
    lon = ma.fields.Float(allow_nan=False, validate=ma.validate.Range(-180, 180))
    accuracy_m = ma.fields.Float(allow_nan=False, validate=ma.validate.Range(0, 100_000))
    address = Text(validate=ma.validate.Length(max=500))
    reporter_name = Text(validate=ma.validate.Length(max=200))
    reporter_phone = VietnamesePhone()
    reporter_email = ma.fields.Email(validate=ma.validate.Length(max=320))
    device_id = Text(validate=ma.validate.Length(min=1, max=200))
    notify_url = ma.fields.Url(require_tld=False, schemes={"http", "https"}, validate=ma.validate.Length(max=500),
                               metadata={"description": "where status changes are pushed (a push gateway the "
                                                        "city allows: NOTIFY_URL_PREFIXES)"})

    @ma.validates("notify_url")
    def allowed_notify_url(self, value, **kwargs):
        from flask import current_app

        from ..services.outbox import url_allowed

        if not url_allowed(value, current_app.config["NOTIFY_URL_PREFIXES"]):
            raise ma.ValidationError("This server does not push to this address (see NOTIFY_URL_PREFIXES).")

    @ma.pre_load
    def drop_empty(self, data, **kwargs):
        """Forms send unfilled fields as empty strings: treat them as absent."""
        return {k: v for k, v in data.items() if not (isinstance(v, str) and v.strip() == "")}

    @ma.validates_schema
    def lat_and_lon_together(self, data, **kwargs):
        if ("lat" in data) != ("lon" in data):
            missing = "lon" if "lat" in data else "lat"
            raise ma.ValidationError("lat and lon come together.", missing)


def _point(geom):
    if geom is None:
        return None
    shape = to_shape(geom)
    return {"lat": shape.y, "lon": shape.x}


class PhotoSchema(ma.Schema):
    """A photo as the public sees it: derivatives only, no metadata."""

    id = ma.fields.Integer()
    kind = ma.fields.String(metadata={"enum": ["evidence", "resolution"],
                                      "description": "evidence (the resident's) or resolution (the fix)"})
    state = ma.fields.String(metadata={"enum": ["processing", "ready", "failed"]})
    urls = computed(lambda p: {size: url_for("photos.photo", photo_id=p.id, size=size)
                               for size in ("display", "thumb")},
                    {"type": "object", "properties": {"display": STRING, "thumb": STRING}},
                    description="the public derivatives (404 `photo_processing` until state is ready)")


class PrivatePhotoSchema(PhotoSchema):
    """The reporter's own view adds what the camera recorded."""

    gps = computed(lambda p: _point(p.gps), POINT, nullable=True, description="the photo's EXIF GPS")
    taken_at = ma.fields.DateTime(allow_none=True)


def _overdue(report) -> bool:
    return (report.due_at is not None and report.status in OPEN_STATUSES
            and report.due_at < datetime.now(timezone.utc))


STATUS = {"type": "string", "enum": list(STATUS_LABELS)}


class CategoryRefSchema(ma.Schema):
    code = ma.fields.String()
    name = label("name", "name_en")


class WardRefSchema(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()
    name_en = ma.fields.String()


class AgencyRefSchema(ma.Schema):
    code = ma.fields.String()
    name = label("name", "name_en")


class DuplicateOfSchema(ma.Schema):
    """The report a duplicate was joined to (its reporter follows that one)."""

    id = ma.fields.Integer()
    code = ma.fields.String(attribute="public_code")
    status = ma.fields.String(metadata=STATUS)
    status_label = computed(lambda r: STATUS_LABELS[r.status], LABELS)
    overdue = computed(_overdue, BOOLEAN)


class ReportSchema(ma.Schema):
    """A report as anyone may see it: no reporter fields, no original photos."""

    id = ma.fields.Integer()
    code = ma.fields.String(attribute="public_code")
    status = ma.fields.String(metadata=STATUS)
    status_label = computed(lambda r: STATUS_LABELS[r.status], LABELS)
    overdue = computed(_overdue, BOOLEAN, description="open and past due_at")
    category = ma.fields.Nested(CategoryRefSchema)
    description = ma.fields.String()
    location = computed(lambda r: _point(r.location), POINT, nullable=True)
    location_source = ma.fields.String(allow_none=True, metadata={
        "enum": ["client", "exif", "address", None],
        "description": "client (the phone's position), exif (a photo's GPS) or address (approximate: the "
                       "representative point of the ward the address names)"})
    accuracy_m = ma.fields.Float(attribute="location_accuracy_m", allow_none=True,
                                 metadata={"description": "metres; for address, the farthest point of the ward"})
    address = ma.fields.String(allow_none=True)
    ward = ma.fields.Nested(WardRefSchema, allow_none=True)
    agency = ma.fields.Nested(AgencyRefSchema, allow_none=True)
    channel = ma.fields.String(metadata={"description": "app, web or open311"})
    created_at = ma.fields.DateTime(attribute="submitted_at")
    routed_at = ma.fields.DateTime(allow_none=True)
    acknowledged_at = ma.fields.DateTime(allow_none=True)
    resolved_at = ma.fields.DateTime(allow_none=True)
    closed_at = ma.fields.DateTime(allow_none=True)
    due_at = ma.fields.DateTime(allow_none=True)
    supporters = ma.fields.Integer()
    # A duplicate's reporter follows the original report: its code and status are here.
    duplicate_of = ma.fields.Nested(DuplicateOfSchema, allow_none=True)
    photos = ma.fields.List(ma.fields.Nested(PhotoSchema))


class ReporterSchema(ma.Schema):
    name = ma.fields.String(allow_none=True)
    phone = ma.fields.String(allow_none=True)
    email = ma.fields.String(allow_none=True)
    device_id = ma.fields.String(allow_none=True)
    erased_at = ma.fields.DateTime(allow_none=True,
                                   metadata={"description": "when the retention job erased the contact"})


class PrivateReportSchema(ReportSchema):
    """What the reporter sees with their tracking token: their own photos with what the camera recorded
    (an officer's photos of the fix as anyone sees them). The public view has neither `reporter` nor the
    photos' `gps` and `taken_at`."""

    reporter = ma.fields.Nested(ReporterSchema, attribute="contact", allow_none=True)
    photos = ma.fields.Method("_photos", metadata={
        "type": "array", "items": {"$ref": "#/components/schemas/PrivatePhoto"}})

    def _photos(self, report):
        return [(PrivatePhotoSchema if p.kind == "evidence" else PhotoSchema)().dump(p) for p in report.photos]


class EventSchema(ma.Schema):
    """One entry of a report's public timeline."""

    id = ma.fields.Integer()
    type = ma.fields.String()
    label = computed(lambda e: EVENT_LABELS.get(e.type, {"vi": e.type, "en": e.type}), LABELS)
    at = ma.fields.DateTime(attribute="created_at")
    from_status = ma.fields.String(allow_none=True, metadata={**STATUS, "enum": [*STATUS["enum"], None]})
    to_status = ma.fields.String(allow_none=True, metadata={**STATUS, "enum": [*STATUS["enum"], None]})
    status_label = computed(lambda e: e.to_status and STATUS_LABELS.get(e.to_status), LABELS, nullable=True)
    note = ma.fields.String(allow_none=True)


class OfficerEventSchema(EventSchema):
    """An event as officers see it: internal ones too, with who acted."""

    public = ma.fields.Boolean()
    actor = computed(lambda e: e.actor_kind, STRING, description="resident, officer, dispatcher, admin or system")
    actor_account = computed(lambda e: e.actor_account_id, {"type": "integer"}, nullable=True)
    data = ma.fields.Dict()


class OfficerPhotoSchema(PrivatePhotoSchema):
    """Officers of the report's agency may fetch the original (with their token), until the retention job
    deletes it (`original_deleted_at`; then `urls` has no `original`)."""

    urls = computed(lambda p: {size: url_for("photos.photo", photo_id=p.id, size=size)
                               for size in ("display", "thumb", "original")
                               if size != "original" or p.original_deleted_at is None},
                    {"type": "object", "properties": {"display": STRING, "thumb": STRING, "original": STRING}})
    original_deleted_at = ma.fields.DateTime(allow_none=True, metadata={
        "description": "when the retention job deleted the original (its `original` URL is gone)"})
    event = ma.fields.Integer(attribute="event_id", allow_none=True)


class OfficerReportSchema(ReportSchema):
    """A report as the agency handling it sees it. The reporter's contact only for dispatchers and admins
    (as in Hue-S: officers answer through public comments and status changes)."""

    def __init__(self, *args, context_account=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.account = context_account

    version = ma.fields.Integer(metadata={"description": "send it back as If-Match (or `version`)"})
    photos = ma.fields.List(ma.fields.Nested(OfficerPhotoSchema))
    events = ma.fields.List(ma.fields.Nested(OfficerEventSchema))
    allowed_actions = ma.fields.Method("_allowed", metadata={"type": "array", "items": STRING})
    reporter = ma.fields.Method("_reporter", metadata={
        "anyOf": [{"$ref": "#/components/schemas/Reporter"}, {"type": "object", "nullable": True}],
        "description": "the dispatcher and admins only; else null"})

    def _allowed(self, report):
        from ..services.workflow import allowed_actions

        return allowed_actions(report, self.account) if self.account is not None else []

    def _reporter(self, report):
        if self.account is None or self.account.role not in ("dispatcher", "admin") or report.contact is None:
            return None
        return ReporterSchema().dump(report.contact)


class ReportBriefSchema(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String(attribute="public_code")
    status = ma.fields.String(metadata=STATUS)


class AgencyEventSchema(EventSchema):
    """An event in an agency's feed: with its report, and internal events too."""

    public = ma.fields.Boolean()
    agency = computed(lambda e: e.agency_id, {"type": "integer"}, nullable=True, description="the agency's id")
    data = ma.fields.Dict()
    report = ma.fields.Nested(ReportBriefSchema)


class AgencyFeedSchema(ma.Schema):
    events = ma.fields.List(ma.fields.Nested(AgencyEventSchema))
    next_since = ma.fields.String(metadata={"description": "send as `since` to get what comes next"})
    has_more = ma.fields.Boolean()


class EventListSchema(ma.Schema):
    report = ma.fields.String(metadata={"description": "the report's public code"})
    events = ma.fields.List(ma.fields.Nested(EventSchema))


class ReportCreatedSchema(ReportSchema):
    """The 201 answer to a submission: the public view and, this once, the reporter's tracking token."""

    tracking_token = ma.fields.String(metadata={"description": "shown only in this answer; send it as "
                                                              "X-Tracking-Token to see the private view"})


class PublicReportSchema(ReportSchema):
    """A report's public page (GET /api/v1/public/reports/<id>): the public view with the resident's photos
    and the photos of the fix apart, and the public timeline."""

    resolution_photos = ma.fields.List(ma.fields.Nested(PhotoSchema))
    events = ma.fields.List(ma.fields.Nested(EventSchema))


# Request bodies the views read by hand (services/workflow.py validates them): documented here.

class FeedbackSchema(ma.Schema):
    """POST /api/v1/reports/<id>/feedback."""

    rating = ma.fields.Integer(required=True, validate=ma.validate.Range(1, 5),
                               metadata={"description": "1 or 2 reopens the report; 3 to 5 closes it"})
    comment = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=2000))


class CommentSchema(ma.Schema):
    """POST /api/v1/reports/<id>/comments."""

    text = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2000))
    public = ma.fields.Boolean(load_default=False, metadata={
        "description": "true: on the public timeline; false: officers only"})


class TransitionSchema(ma.Schema):
    """POST /api/v1/reports/<id>/transitions (JSON, or multipart/form-data with `photos` for resolve)."""

    action = ma.fields.String(required=True, metadata={
        "enum": ["acknowledge", "start", "resolve", "reject", "transfer", "close", "reopen"]})
    version = ma.fields.Integer(metadata={"description": "the version seen (or the If-Match header)"})
    note = ma.fields.String(validate=ma.validate.Length(max=2000), metadata={"description": "resolve: required"})
    reason = ma.fields.String(validate=ma.validate.Length(max=2000),
                              metadata={"description": "reject, transfer, reopen: required"})
    agency = ma.fields.String(metadata={"description": "transfer: the agency's code, or `dispatcher`"})


def multipart_request_body() -> dict:
    """OpenAPI description of the multipart body of POST /api/v1/reports (parsed by hand, not by webargs)."""
    text = {"type": "string"}
    return {"required": True, "content": {"multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["category", "description", "photos"],
            "properties": {
                "category": {**text, "description": "service code from GET /api/v1/services"},
                "description": {**text, "maxLength": 2000},
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
                "lon": {"type": "number", "minimum": -180, "maximum": 180},
                "accuracy_m": {"type": "number", "minimum": 0},
                "address": {**text, "maxLength": 500,
                            "description": "without lat/lon (and a photo's GPS), it must name a ward or commune: "
                                           "the report is placed at the ward's representative point "
                                           "(location_source address)"},
                "reporter_name": {**text, "maxLength": 200},
                "reporter_phone": {**text, "description": "Vietnamese mobile or landline number"},
                "reporter_email": {**text, "format": "email"},
                "device_id": {**text, "maxLength": 200},
                "notify_url": {**text, "format": "uri", "description": "push gateway for status changes"},
                "photos": {"type": "array", "minItems": 1, "maxItems": 5,
                           "items": {"type": "string", "format": "binary"},
                           "description": "JPEG, PNG, WebP or HEIC files"},
            },
        },
    }}}

"""Open311 GeoReport v2: api_keys, conversions between our reports and the spec's documents, queries,
and the spec's JSON and XML renderings (http://wiki.open311.org/GeoReport_v2).

Submissions are not handled here: the API turns an Open311 POST into intake's fields (`intake_fields`)
and calls intake.submit, the one path by which a report enters.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma
from geoalchemy2.shape import to_shape
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from ..errors import ApiError
from ..extensions import db
from ..models import FINISHED_STATUSES, OPEN_STATUSES, Agency, Category, City, Open311Key, Report, ReportEvent
from . import audit

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-21T00:00:00+07:00"  # when this endpoint's behaviour last changed
FORMATS = {"json": "application/json", "xml": "text/xml"}
DEFAULT_DAYS = 90
MAX_RESULTS = 1000
LIST_TYPES = ("singlevaluelist", "multivaluelist")


class Open311Error(Exception):
    """An answer in the spec's error list: [{"code": <HTTP status>, "description": ...}]."""

    def __init__(self, status: int, *descriptions: str, headers: Mapping[str, str] | None = None):
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = list(descriptions) or ["Error."]
        self.headers = dict(headers or {})

    def errors(self) -> list[dict[str, Any]]:
        return [{"code": self.status, "description": d} for d in self.descriptions]


# Intake's field names -> the Open311 parameters they come from (for error descriptions).
OPEN311_FIELDS = {"category": "service_code", "lon": "long", "lat": "lat", "address": "address_string",
                  "reporter_name": "first_name/last_name", "reporter_phone": "phone", "reporter_email": "email",
                  "device_id": "device_id", "description": "description", "photos": "media", "media": "media"}


# Intake's errors about a missing or unlocatable location: the spec answers a request without a usable
# location (lat/long, address_string or address_id) with 400, where the app's API says 422.
LOCATION_ERRORS = ("location_required", "address_not_found", "address_ambiguous")


def from_api_error(exc: ApiError) -> Open311Error:
    """Intake's (or any service's) ApiError as the spec's error list, with the same HTTP status (400 for
    LOCATION_ERRORS)."""
    details = [f"{OPEN311_FIELDS.get(field, field)}: {_problems(problems)}"
               for field, problems in (exc.fields or {}).items() if field not in ("photos", "media", "category")]
    description = f"{exc.code}: {exc.message}" + (f" ({'; '.join(details)})" if details else "")
    return Open311Error(400 if exc.code in LOCATION_ERRORS else exc.status, description, headers=exc.headers)


def _problems(problems: Any) -> str:
    return " ".join(map(str, problems)) if isinstance(problems, list) else str(problems)


def from_validation_error(exc: ma.ValidationError) -> Open311Error:
    """Intake's field validation (422) as the spec's error list, one error per field, named as in Open311."""
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return Open311Error(422, *(f"{OPEN311_FIELDS.get(field, field)}: {_problems(problems)}"
                               for field, problems in messages.items()))


# --- api_keys -------------------------------------------------------------------------------------------

def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_snapshot(row: Open311Key) -> dict[str, Any]:
    """What the audit log keeps of an api_key: its id, name and dates, never the key or its hash."""
    return {"id": row.id, "name": row.name, "created_at": row.created_at, "revoked_at": row.revoked_at}


def issue_key(name: str, *, actor: audit.Actor) -> tuple[str, Open311Key]:
    """A new api_key for a client application: the key (shown once) and its row (only the hash stored),
    flushed with its audit entry (the caller commits)."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValueError("the name must be 1 to 200 characters")
    key = secrets.token_urlsafe(32)
    row = Open311Key(name=name, key_hash=key_hash(key))
    db.session.add(row)
    db.session.flush()
    db.session.refresh(row)  # (created_at, for the log)
    audit.record(actor, "open311_key.create", "open311_key", row.id, None, key_snapshot(row))
    return key, row


def revoke_key(key_id: int, *, actor: audit.Actor) -> Open311Key | None:
    """Revoke an api_key, with its audit entry (the caller commits); None if there is no such key."""
    row = db.session.get(Open311Key, key_id, with_for_update=True)
    if row is not None and row.revoked_at is None:
        before = key_snapshot(row)
        row.revoked_at = datetime.now(timezone.utc)
        audit.record(actor, "open311_key.revoke", "open311_key", row.id, before, key_snapshot(row))
    return row


def check_api_key(key: str | None) -> Open311Key:
    """The client application of a valid, unrevoked api_key; 403 otherwise (a missing key too)."""
    if not key:
        raise Open311Error(403, "api_key is required to submit a service request.")
    row = db.session.scalars(select(Open311Key).where(Open311Key.key_hash == key_hash(key),
                                                      Open311Key.revoked_at.is_(None))).first()
    if row is None:
        raise Open311Error(403, "Invalid api_key.")
    return row


# --- the city ---------------------------------------------------------------------------------------------

def city() -> City:
    row = db.session.scalars(select(City).order_by(City.id).limit(1)).first()
    if row is None:
        raise Open311Error(503, "No city is loaded yet.")
    return row


def check_jurisdiction(the_city: City, jurisdiction_id: str | None) -> None:
    """jurisdiction_id is optional (one jurisdiction per server), but if given it must be ours."""
    if jurisdiction_id is not None and jurisdiction_id != the_city.jurisdiction_id:
        raise Open311Error(400, f"jurisdiction_id not found: this server serves {the_city.jurisdiction_id!r}.")


def w3c(value: datetime | None, tz: ZoneInfo) -> str | None:
    """A W3C date-time with the city's offset, e.g. 2026-11-21T15:04:05+07:00."""
    return value.astimezone(tz).isoformat(timespec="seconds") if value is not None else None


def parse_w3c(name: str, value: str | None, tz: ZoneInfo) -> datetime | None:
    if value is None or value.strip() == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Open311Error(400, f"{name} must be a W3C date-time, e.g. 2026-11-21T15:04:05+07:00.") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


# --- discovery and services -------------------------------------------------------------------------------

def discovery(endpoint_url: str) -> dict[str, Any]:
    # The contact is the city's operations centre (the dispatcher agency), from the city's data.
    centre = db.session.scalars(select(Agency).where(Agency.kind == "dispatcher", Agency.active)).first()
    contact = ", ".join(v for v in (centre and f"{centre.name} ({centre.name_en})", centre and centre.contact_email,
                                    centre and centre.contact_phone) if v) or "the city's operations centre"
    return {
        "changeset": CHANGESET,
        "contact": contact,
        "key_service": "api_keys are issued per client application by the city's administrators.",
        "endpoints": [{"specification": SPECIFICATION, "url": endpoint_url, "changeset": CHANGESET,
                       "type": "production", "formats": ["application/json", "text/xml"]}],
    }


def service_notice(category: Category) -> str:
    hours = Decimal(category.sla_hours).normalize()
    return (f"Thời hạn xử lý: {hours:f} giờ làm việc. / "
            f"The responsible agency aims to handle this within {hours:f} working hours.")


def service(category: Category) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": category.description,
        "metadata": bool(category.attributes),
        "type": "realtime",
        "keywords": ", ".join(category.keywords or []),
        "group": category.group.name,
    }


def active_category(code: str | None) -> Category | None:
    if not code or "\x00" in code:  # (NUL: no code has one, PostgreSQL cannot compare it)
        return None
    return db.session.scalars(select(Category).where(Category.code == code, Category.active)
                              .options(selectinload(Category.group))).first()


def _attribute(raw: Mapping[str, Any], order: int) -> dict[str, Any]:
    return {
        "variable": bool(raw.get("variable", True)),
        "code": str(raw.get("code", "")),
        "datatype": raw.get("datatype", "string"),
        "required": bool(raw.get("required", False)),
        "datatype_description": raw.get("datatype_description"),
        "order": int(raw.get("order", order)),
        "description": raw.get("description", ""),
        "values": [{"key": v.get("key"), "name": v.get("name")} for v in raw.get("values") or []],
    }


def attributes(category: Category) -> list[dict[str, Any]]:
    return sorted((_attribute(a, i) for i, a in enumerate(category.attributes or [], start=1)),
                  key=lambda a: a["order"])


def service_definition(category: Category) -> dict[str, Any]:
    return {"service_code": category.code, "attributes": attributes(category)}


# --- submissions --------------------------------------------------------------------------------------------

def _attribute_values(form, code: str) -> list[str]:
    return [v for v in form.getlist(f"attribute[{code}]") + form.getlist(f"attribute[{code}][]") if v.strip()]


def intake_fields(form, category: Category, has_media: bool) -> dict[str, str]:
    """Intake's fields for an Open311 POST (a werkzeug MultiDict), after the checks the spec makes ours:
    a location (lat and long, or an address_string that intake places in the ward or commune it names),
    an uploaded photo, the service definition's attributes. 400 otherwise."""
    lat, lon = form.get("lat", "").strip(), form.get("long", "").strip()
    address = form.get("address_string", "").strip()
    if bool(lat) != bool(lon):
        raise Open311Error(400, "lat and long come together (WGS84).")
    if not (lat or address):
        if form.get("address_id", "").strip():
            raise Open311Error(400, "address_id is not known to this server (it keeps no address repository): "
                                    "send lat and long (WGS84), or an address_string that names the ward or "
                                    "commune.")
        raise Open311Error(400, "A location is required: lat and long (WGS84), or an address_string that names "
                                "the ward or commune.")
    if not has_media:
        if form.get("media_url", "").strip():
            raise Open311Error(400, "This media_url is not fetched: this server fetches photos only from the "
                                    "addresses it was set up to trust. Upload 1 to 5 photos as the multipart file "
                                    "part `media` (a photo is required).")
        raise Open311Error(400, "A photo is required: upload 1 to 5 photos as the multipart file part `media`.")
    description = form.get("description", "")
    notes = []
    for attr in attributes(category):
        if not attr["variable"]:
            continue
        values = _attribute_values(form, attr["code"])
        if not values:
            if attr["required"]:
                raise Open311Error(400, f"attribute[{attr['code']}] is required ({attr['description']}).")
            continue
        if attr["datatype"] in LIST_TYPES:
            names = {str(v["key"]): str(v["name"]) for v in attr["values"]}
            unknown = [v for v in values if v not in names]
            if unknown or (attr["datatype"] == "singlevaluelist" and len(values) > 1):
                raise Open311Error(400, f"attribute[{attr['code']}] must be one of the keys "
                                        f"{', '.join(names)}" + (" (one only)." if not unknown else "."))
            values = [names[v] for v in values]
        elif attr["datatype"] == "number":
            try:
                float(values[0])
            except ValueError:
                raise Open311Error(400, f"attribute[{attr['code']}] must be a number.") from None
        notes.append(f"{attr['description'] or attr['code']}: {', '.join(values)}")
    if notes:  # (reports keep no attribute columns: the answers are kept with the description)
        description = "\n".join([description.strip(), *notes]).strip()
    name = " ".join(p for p in (form.get("first_name", "").strip(), form.get("last_name", "").strip()) if p)
    fields = {
        "category": category.code, "description": description, "lat": lat or None, "lon": lon or None,
        "address": form.get("address_string"), "reporter_name": name or None, "reporter_phone": form.get("phone"),
        "reporter_email": form.get("email"), "device_id": form.get("device_id"),
    }
    return {k: v for k, v in fields.items() if v is not None}


def created(report_code: str, category: Category) -> list[dict[str, Any]]:
    """The answer to a POST: our public code at once (no token needed: routing never holds it back)."""
    return [{"service_request_id": report_code, "service_notice": service_notice(category), "account_id": None}]


# --- reading service requests --------------------------------------------------------------------------------

def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _loaded():
    return select(Report).options(selectinload(Report.photos), selectinload(Report.category),
                                  selectinload(Report.agency), selectinload(Report.ward))


MAX_IDS = 200


def query_requests(args: Mapping[str, str], tz: ZoneInfo) -> list[Report]:
    """GET requests: service_request_id (comma-separated; overrides the other parameters), service_code,
    start_date, end_date (at most 90 days apart; by default the last 90 days), status (open, closed).
    Newest first, at most 1000."""
    if any("\x00" in value for value in args.values()):  # (PostgreSQL cannot compare it)
        raise Open311Error(400, "Parameters may not contain NUL characters.")
    ids = _split(args.get("service_request_id"))
    if len(ids) > MAX_IDS:
        raise Open311Error(400, f"Ask for at most {MAX_IDS} service_request_id at once.")
    if ids:
        numeric = [int(i) for i in ids if i.isascii() and i.isdecimal() and len(i) <= 18]
        codes = [i.upper() for i in ids if not (i.isascii() and i.isdecimal())]
        stmt = _loaded().where(or_(Report.id.in_(numeric), Report.public_code.in_(codes)))
        return list(db.session.scalars(stmt.order_by(Report.submitted_at.desc()).limit(MAX_RESULTS)))
    start = parse_w3c("start_date", args.get("start_date"), tz)
    end = parse_w3c("end_date", args.get("end_date"), tz)
    try:
        if end is None:
            end = start + timedelta(days=DEFAULT_DAYS) if start is not None else datetime.now(timezone.utc)
        if start is None:
            start = end - timedelta(days=DEFAULT_DAYS)
    except OverflowError:
        raise Open311Error(400, "start_date or end_date is out of range.") from None
    if end < start:
        raise Open311Error(400, "end_date is before start_date.")
    if end - start > timedelta(days=DEFAULT_DAYS):
        raise Open311Error(400, f"start_date and end_date may not span more than {DEFAULT_DAYS} days.")
    stmt = _loaded().where(Report.submitted_at >= start, Report.submitted_at <= end)
    statuses = [status.lower() for status in _split(args.get("status"))]
    bad = [s for s in statuses if s not in ("open", "closed")]
    if bad:
        raise Open311Error(400, "status must be open or closed (or both, comma-separated).")
    if set(statuses) == {"open"}:
        stmt = stmt.where(Report.status.in_(OPEN_STATUSES))
    elif set(statuses) == {"closed"}:
        stmt = stmt.where(Report.status.in_(FINISHED_STATUSES))
    codes = _split(args.get("service_code"))
    if codes:
        stmt = stmt.where(Report.category_id.in_(select(Category.id).where(Category.code.in_(codes))))
    return list(db.session.scalars(stmt.order_by(Report.submitted_at.desc(), Report.id.desc()).limit(MAX_RESULTS)))


def by_token(token: str) -> Report | None:
    """Our tokens are our public codes: the service_request_id is given at once."""
    if not token or len(token) > 32 or "\x00" in token:
        return None
    return db.session.scalars(select(Report).where(Report.public_code == token.upper())).first()


def _status_notes(report_ids: Iterable[int]) -> dict[int, str]:
    """The latest public event note of each report."""
    ids = list(report_ids)
    if not ids:
        return {}
    rows = db.session.execute(
        select(ReportEvent.report_id, ReportEvent.note)
        .where(ReportEvent.report_id.in_(ids), ReportEvent.public, ReportEvent.note.is_not(None),
               ReportEvent.note != "")
        .order_by(ReportEvent.report_id, ReportEvent.id.desc())
        .distinct(ReportEvent.report_id))
    return {row.report_id: row.note for row in rows}


def approximate_note(report: Report) -> str | None:
    """What an address-located request's lat/long are: its ward's representative point, not where the
    problem is (services/geocode.py). None for a request with a position."""
    if report.location_source != "address":
        return None
    ward = report.ward.name if report.ward is not None else "?"
    reach = f"{report.location_accuracy_m:.0f} m" if report.location_accuracy_m is not None else "?"
    return (f"Vị trí gần đúng (phường/xã): lat/long là một điểm của {ward}, trong vòng {reach}. "
            f"Approximate location (ward): lat/long are a point of {ward}, within {reach}.")


def open311_status(status: str) -> str:
    return "closed" if status in FINISHED_STATUSES else "open"


def service_requests(reports: list[Report], tz: ZoneInfo, photo_url) -> list[dict[str, Any]]:
    """The spec's service requests; never anything about the reporter. `photo_url(photo)` makes the absolute
    URL of a photo's public display derivative."""
    notes = _status_notes(r.id for r in reports)
    out = []
    for report in reports:
        point = to_shape(report.location) if report.location is not None else None
        photo = next((p for p in sorted(report.photos, key=lambda p: p.id) if p.kind == "evidence"), None)
        ready = photo is not None and photo.derivatives_ready_at is not None and photo.display_key is not None
        out.append({
            "service_request_id": report.public_code,
            "status": open311_status(report.status),
            "status_notes": notes.get(report.id) or approximate_note(report),
            "service_name": report.category.name,
            "service_code": report.category.code,
            "description": report.description,
            "agency_responsible": report.agency.name if report.agency is not None else None,
            "service_notice": service_notice(report.category),
            "requested_datetime": w3c(report.submitted_at, tz),
            "updated_datetime": w3c(report.updated_at, tz),
            "expected_datetime": w3c(report.due_at, tz),
            "address": report.address,
            "address_id": None,
            "zipcode": None,
            "lat": point.y if point is not None else None,
            "long": point.x if point is not None else None,
            "media_url": photo_url(photo) if ready else None,
        })
    return out


# --- rendering ----------------------------------------------------------------------------------------------

# Lists nested in a document: <attributes><attribute>...</attribute></attributes>, and so on.
ITEM_NAMES = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format",
              "services": "service", "service_requests": "request", "errors": "error"}


# Characters XML 1.0 cannot carry at all (an error may quote what a client sent).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("\ufffd", str(value))


def _fill(element: ET.Element, value: Any, name: str) -> None:
    if isinstance(value, Mapping):
        for key, child in value.items():
            _fill(ET.SubElement(element, key), child, key)
    elif isinstance(value, list):
        for item in value:
            _fill(ET.SubElement(element, ITEM_NAMES.get(name, "item")), item, ITEM_NAMES.get(name, "item"))
    else:
        element.text = _text(value)


def to_xml(root: str, document: Any) -> bytes:
    """A document as the spec's XML: lists under `root` (services, service_requests, errors), objects as
    `root` with their fields (discovery, service_definition)."""
    element = ET.Element(root)
    _fill(element, document, root)
    return ET.tostring(element, encoding="utf-8", xml_declaration=True)


def to_json(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def render(fmt: str, root: str, document: Any) -> tuple[bytes, str]:
    """(body, Content-Type) of a document in `fmt` (json or xml)."""
    if fmt == "xml":
        return to_xml(root, document), f"{FORMATS['xml']}; charset=utf-8"
    return to_json(document), FORMATS["json"]

"""The admin API's inputs and answers: agencies, categories and groups, routing rules, boundary vintages,
re-routing, Open311 api_keys, the audit log. (Accounts use services/accounts.py's schemas.)

Inputs are checked here (422 `validation_error` with `fields`); references to other objects (a group, an
area, an agency) are resolved by the services. No answer ever holds a secret: an agency says whether it
has a webhook secret (`webhook_secret_set`), an api_key is its id and name.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import marshmallow as ma

from ..models.agency import AGENCY_KINDS
from .common import BOOLEAN, STRING, computed
from .report import Text

AGENCY_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SERVICE_CODE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
ATTRIBUTE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{2,31}$")
OPEN311_DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
LIST_DATATYPES = ("singlevaluelist", "multivaluelist")
# `dispatcher` names the dispatching agency in a transfer: no agency may be called that.
RESERVED_AGENCY_CODES = ("dispatcher",)


def _code(pattern: re.Pattern, rule: str) -> ma.validate.Validator:
    return ma.validate.Regexp(pattern, error=rule)


class AgencyCode(ma.fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        code = super()._deserialize(value, attr, data, **kwargs).strip()
        if not AGENCY_CODE.fullmatch(code):
            raise ma.ValidationError("1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit.")
        if code.lower() in RESERVED_AGENCY_CODES:
            raise ma.ValidationError(f"{code!r} is reserved (it names the dispatcher in transfers).")
        return code


class WebhookUrl(ma.fields.String):
    """An http(s) URL with a host and no user info (a secret in a URL would end up in logs)."""

    def _deserialize(self, value, attr, data, **kwargs):
        url = super()._deserialize(value, attr, data, **kwargs).strip()
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ma.ValidationError("Not a valid URL.") from None
        if len(url) > 2000 or parts.scheme not in ("http", "https") or not host:
            raise ma.ValidationError("An http or https URL with a host, at most 2,000 characters.")
        if parts.username is not None or parts.password is not None:
            raise ma.ValidationError("No user name or password in the URL: messages are signed with the secret.")
        if any(ch.isspace() for ch in url):
            raise ma.ValidationError("No spaces in the URL.")
        return url


# -- agencies -------------------------------------------------------------------------------------------

class AgencyUpdateSchema(ma.Schema):
    """PATCH /api/v1/admin/agencies/<code>: the fields to change (null clears an optional one)."""

    name = Text(validate=ma.validate.Length(min=1, max=300))
    name_en = Text(validate=ma.validate.Length(min=1, max=300))
    kind = ma.fields.String(validate=ma.validate.OneOf(AGENCY_KINDS))
    area = ma.fields.String(allow_none=True, validate=ma.validate.Length(min=1, max=32),
                            metadata={"description": "the code of a current area it serves (a ward's committee)"})
    contact_email = ma.fields.Email(allow_none=True, validate=ma.validate.Length(max=320))
    contact_phone = ma.fields.String(allow_none=True, validate=_code(PHONE, "A phone number: digits, spaces, "
                                                                           "+ ( ) . -"))
    webhook_url = WebhookUrl(allow_none=True, metadata={
        "description": "where report messages are POSTed, signed with the agency's secret (made when first set)"})


class AgencyCreateSchema(AgencyUpdateSchema):
    """POST /api/v1/admin/agencies."""

    code = AgencyCode(required=True)
    name = Text(required=True, validate=ma.validate.Length(min=1, max=300))
    name_en = Text(required=True, validate=ma.validate.Length(min=1, max=300))
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(AGENCY_KINDS))
    active = ma.fields.Boolean(load_default=True)


class AgencySchema(ma.Schema):
    """An agency as admins see it: whether it has a webhook secret, never the secret."""

    code = ma.fields.String()
    name = ma.fields.String()
    name_en = ma.fields.String()
    kind = ma.fields.String()
    area = computed(lambda a: a.area.code if a.area is not None else None, STRING, nullable=True,
                    description="the code of the area it serves")
    contact_email = ma.fields.String(allow_none=True)
    contact_phone = ma.fields.String(allow_none=True)
    webhook_url = ma.fields.String(allow_none=True)
    webhook_secret_set = computed(lambda a: bool(a.webhook_secret), BOOLEAN)
    active = ma.fields.Boolean()
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class AgencySecretSchema(AgencySchema):
    """An agency with its new webhook secret: the one answer that shows it (creation, rotation)."""

    webhook_secret = ma.fields.String(metadata={"description": "shown once: store it where the agency's system "
                                                               "verifies X-Hue-Signature"})


# -- categories -----------------------------------------------------------------------------------------

class AttributeValueSchema(ma.Schema):
    key = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100))
    name = Text(required=True, validate=ma.validate.Length(min=1, max=200))
    name_en = Text(validate=ma.validate.Length(min=1, max=200))


class AttributeSchema(ma.Schema):
    """An extra input of a category: an Open311 service definition attribute."""

    variable = ma.fields.Boolean(load_default=True)
    code = ma.fields.String(required=True, validate=_code(ATTRIBUTE_CODE, "1 to 64 letters, digits, `_` or `-`."))
    datatype = ma.fields.String(required=True, validate=ma.validate.OneOf(OPEN311_DATATYPES))
    required = ma.fields.Boolean(load_default=False)
    datatype_description = Text(allow_none=True, validate=ma.validate.Length(max=500))
    order = ma.fields.Integer(strict=True, validate=ma.validate.Range(0, 10_000))
    description = Text(required=True, validate=ma.validate.Length(min=1, max=500),
                       metadata={"description": "the question, in Vietnamese"})
    description_en = Text(validate=ma.validate.Length(min=1, max=500))
    values = ma.fields.List(ma.fields.Nested(AttributeValueSchema), load_default=list,
                            validate=ma.validate.Length(max=100))

    @ma.validates_schema
    def values_match_the_datatype(self, data, **kwargs):
        values = data.get("values") or []
        if data.get("datatype") in LIST_DATATYPES:
            keys = [v["key"] for v in values]
            if not keys:
                raise ma.ValidationError("A list datatype needs its values ({key, name}).", "values")
            if len(set(keys)) != len(keys):
                raise ma.ValidationError("The values' keys must be unique.", "values")
        elif values:
            raise ma.ValidationError("Only singlevaluelist and multivaluelist take values.", "values")


def _unique_attribute_codes(attributes: list[dict]) -> None:
    codes = [a["code"] for a in attributes]
    if len(set(codes)) != len(codes):
        raise ma.ValidationError("The attributes' codes must be unique.")


class SlaHours(ma.fields.Decimal):
    """Working hours, more than 0 (a deadline of zero would make every report overdue at once)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ma.ValidationError("A number of working hours.")
        return super()._deserialize(value, attr, data, **kwargs)


def _sla(**kwargs) -> SlaHours:
    return SlaHours(places=2, validate=ma.validate.Range(
        min=0, min_inclusive=False, max=99999, error="More than 0 and at most 99,999 working hours."), metadata={
        "description": "the deadline in working hours on the city's calendar (new reports only)",
        # (OpenAPI: numbers, not the Decimals of the validator, which would be rendered as strings)
        "minimum": 0, "exclusiveMinimum": True, "maximum": 99999}, **kwargs)


class CategoryUpdateSchema(ma.Schema):
    """PATCH /api/v1/admin/categories/<code>: the fields to change."""

    group = ma.fields.String(validate=ma.validate.Length(min=1, max=64), metadata={"description": "a group code"})
    name = Text(validate=ma.validate.Length(min=1, max=200))
    name_en = Text(validate=ma.validate.Length(min=1, max=200))
    description = Text(validate=ma.validate.Length(max=2000))
    description_en = Text(validate=ma.validate.Length(max=2000))
    sla_hours = _sla()
    urgent = ma.fields.Boolean()
    keywords = ma.fields.List(Text(validate=ma.validate.Length(min=1, max=100)), validate=ma.validate.Length(max=50))
    attributes = ma.fields.List(ma.fields.Nested(AttributeSchema), validate=[
        ma.validate.Length(max=50), _unique_attribute_codes])
    active = ma.fields.Boolean()
    sort_order = ma.fields.Integer(strict=True, validate=ma.validate.Range(0, 10_000))


class CategoryCreateSchema(CategoryUpdateSchema):
    """POST /api/v1/admin/categories."""

    code = ma.fields.String(required=True, validate=_code(SERVICE_CODE, "1 to 64 lowercase letters, digits or "
                                                                         "`_`, starting with a letter or digit."))
    group = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    name = Text(required=True, validate=ma.validate.Length(min=1, max=200))
    name_en = Text(required=True, validate=ma.validate.Length(min=1, max=200))
    sla_hours = _sla(required=True)


class CategorySchema(ma.Schema):
    code = ma.fields.String()
    group = computed(lambda c: c.group.code, STRING, description="the group's code")
    name = ma.fields.String()
    name_en = ma.fields.String()
    description = ma.fields.String()
    description_en = ma.fields.String()
    sla_hours = ma.fields.Float()
    urgent = ma.fields.Boolean()
    keywords = ma.fields.List(ma.fields.String())
    attributes = ma.fields.Raw()
    active = ma.fields.Boolean()
    sort_order = ma.fields.Integer()


class GroupUpdateSchema(ma.Schema):
    name = Text(validate=ma.validate.Length(min=1, max=200))
    name_en = Text(validate=ma.validate.Length(min=1, max=200))
    sort_order = ma.fields.Integer(strict=True, validate=ma.validate.Range(0, 10_000))


class GroupCreateSchema(GroupUpdateSchema):
    code = ma.fields.String(required=True, validate=_code(SERVICE_CODE, "1 to 64 lowercase letters, digits or "
                                                                         "`_`, starting with a letter or digit."))
    name = Text(required=True, validate=ma.validate.Length(min=1, max=200))
    name_en = Text(required=True, validate=ma.validate.Length(min=1, max=200))


class GroupSchema(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()
    name_en = ma.fields.String()
    sort_order = ma.fields.Integer()


# -- routing rules --------------------------------------------------------------------------------------

PRIORITY = ma.validate.Range(0, 32_767)


class RuleUpdateSchema(ma.Schema):
    """PATCH /api/v1/admin/routing-rules/<id>."""

    agency = ma.fields.String(validate=ma.validate.Length(min=1, max=64))
    priority = ma.fields.Integer(strict=True, validate=PRIORITY,
                                 metadata={"description": "lower first, among rules on the same area"})
    active = ma.fields.Boolean()


class RuleCreateSchema(RuleUpdateSchema):
    """POST /api/v1/admin/routing-rules."""

    category = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    area = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=32),
                            metadata={"description": "the code of a current area: a ward, or the city"})
    agency = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    priority = ma.fields.Integer(strict=True, load_default=100, validate=PRIORITY)
    active = ma.fields.Boolean(load_default=True)


class RuleSchema(ma.Schema):
    id = ma.fields.Integer()
    category = computed(lambda r: r.category.code, STRING)
    area = computed(lambda r: {"code": r.area.code, "name": r.area.name, "name_en": r.area.name_en,
                               "tier": r.area.tier, "valid_from": r.area.valid_from.isoformat(),
                               "valid_to": r.area.valid_to and r.area.valid_to.isoformat()},
                    {"type": "object", "properties": {
                        "code": STRING, "name": STRING, "name_en": STRING, "tier": {"type": "integer"},
                        "valid_from": {"type": "string", "format": "date"},
                        "valid_to": {"type": "string", "format": "date", "nullable": True}}})
    agency = computed(lambda r: r.agency.code, STRING)
    agency_active = computed(lambda r: r.agency.active, BOOLEAN)
    priority = ma.fields.Integer()
    active = ma.fields.Boolean()
    created_at = ma.fields.DateTime()


class RerouteSchema(ma.Schema):
    """POST /api/v1/admin/reroute: the open reports of a ward, of a category, or of both."""

    ward = ma.fields.String(validate=ma.validate.Length(min=1, max=32),
                            metadata={"description": "a ward code (every boundary vintage of it)"})
    category = ma.fields.String(validate=ma.validate.Length(min=1, max=64))
    reason = Text(validate=ma.validate.Length(min=1, max=1000),
                  metadata={"description": "added to the transfers' reason"})
    dry_run = ma.fields.Boolean(load_default=False, metadata={"description": "say what would move, move nothing"})

    @ma.validates_schema
    def something_to_reroute(self, data, **kwargs):
        if not data.get("ward") and not data.get("category"):
            raise ma.ValidationError("Give a ward, a category, or both.", "_schema")


# -- areas ----------------------------------------------------------------------------------------------

class LevelSchema(ma.Schema):
    tier = ma.fields.Integer(strict=True, required=True, validate=ma.validate.Range(2, 10),
                             metadata={"description": "2 for the wards under the city; higher is more specific"})
    en = Text(required=True, validate=ma.validate.Length(min=1, max=50),
              metadata={"description": "the English word added to an English name made from `short_name`"})


class VintageLoadSchema(ma.Schema):
    """POST /api/v1/admin/areas: a new set of wards."""

    valid_from = ma.fields.Date(required=True, metadata={"description": "the first day of the new boundaries"})
    geojson = ma.fields.Dict(required=True, metadata={
        "description": "a FeatureCollection in WGS84 of Polygons/MultiPolygons with properties code, name, level "
                       "(and name_en or short_name, population, area_km2, anything else kept as properties)"})
    levels = ma.fields.Dict(keys=ma.fields.String(validate=ma.validate.Length(min=1, max=32)),
                            values=ma.fields.Nested(LevelSchema), validate=ma.validate.Length(min=1, max=20),
                            metadata={"description": "level -> {tier, en}; default: the current wards' levels"})
    outline_fill_holes_below_km2 = ma.fields.Float(allow_nan=False, validate=ma.validate.Range(0, 1_000_000),
                                                   metadata={"description": "default: as the current outline"})
    force = ma.fields.Boolean(load_default=False, metadata={
        "description": "load a set covering less than 99% of the current city outline (the city becomes its union)"})
    dry_run = ma.fields.Boolean(load_default=False, metadata={
        "description": "run every check and answer what would change (retired and new codes, coverage), "
                       "writing nothing"})


class AreaSchema(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()
    name_en = ma.fields.String()
    level = ma.fields.String()
    tier = ma.fields.Integer()
    parent = computed(lambda a: a.parent.code if a.parent is not None else None, STRING, nullable=True)
    valid_from = ma.fields.Date()
    valid_to = ma.fields.Date(allow_none=True)


# -- Open311 api_keys and the audit log -----------------------------------------------------------------

class KeyCreateSchema(ma.Schema):
    name = Text(required=True, validate=ma.validate.Length(min=1, max=200),
                metadata={"description": "the client application"})


class KeySchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    created_at = ma.fields.DateTime()
    revoked_at = ma.fields.DateTime(allow_none=True)


class NewKeySchema(KeySchema):
    api_key = ma.fields.String(metadata={"description": "shown once: only its hash is kept"})


class AuditEntrySchema(ma.Schema):
    id = ma.fields.Integer()
    created_at = ma.fields.DateTime()
    actor = ma.fields.String(metadata={"description": "a username, or cli:<system user> for a command"})
    via = ma.fields.String(metadata={"description": "api or cli"})
    action = ma.fields.String()
    object_type = ma.fields.String()
    object_key = ma.fields.String()
    before = ma.fields.Raw(allow_none=True, metadata={"type": "object"})
    after = ma.fields.Raw(allow_none=True, metadata={"type": "object"})


class AuditPageSchema(ma.Schema):
    entries = ma.fields.List(ma.fields.Nested(AuditEntrySchema))
    next_cursor = ma.fields.String(allow_none=True)

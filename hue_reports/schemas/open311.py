"""Open311 GeoReport v2 documents (http://wiki.open311.org/GeoReport_v2), as the OpenAPI document describes
their JSON form. services/open311.py builds them (and their XML form); nothing is serialised through these."""

from __future__ import annotations

import marshmallow as ma

NULLABLE = {"allow_none": True}


class Open311ErrorSchema(ma.Schema):
    code = ma.fields.Integer(required=True, metadata={"description": "the HTTP status"})
    description = ma.fields.String(required=True)


class DiscoveryEndpointSchema(ma.Schema):
    specification = ma.fields.String()
    url = ma.fields.String()
    changeset = ma.fields.String()
    type = ma.fields.String()
    formats = ma.fields.List(ma.fields.String())


class DiscoverySchema(ma.Schema):
    changeset = ma.fields.String()
    contact = ma.fields.String(**NULLABLE)
    key_service = ma.fields.String()
    endpoints = ma.fields.List(ma.fields.Nested(DiscoveryEndpointSchema))


class Open311ServiceSchema(ma.Schema):
    service_code = ma.fields.String(required=True)
    service_name = ma.fields.String()
    description = ma.fields.String()
    metadata = ma.fields.Boolean(metadata={"description": "true: GET services/<service_code> lists its attributes"})
    type = ma.fields.String(metadata={"enum": ["realtime", "batch", "blackbox"]})
    keywords = ma.fields.String()
    group = ma.fields.String()


class Open311AttributeValueSchema(ma.Schema):
    key = ma.fields.String(**NULLABLE)
    name = ma.fields.String(**NULLABLE)


class Open311AttributeSchema(ma.Schema):
    variable = ma.fields.Boolean()
    code = ma.fields.String()
    datatype = ma.fields.String()
    required = ma.fields.Boolean()
    datatype_description = ma.fields.String(**NULLABLE)
    order = ma.fields.Integer()
    description = ma.fields.String()
    values = ma.fields.List(ma.fields.Nested(Open311AttributeValueSchema))


class Open311ServiceDefinitionSchema(ma.Schema):
    service_code = ma.fields.String(required=True)
    attributes = ma.fields.List(ma.fields.Nested(Open311AttributeSchema))


class Open311RequestSchema(ma.Schema):
    """A service request: our report, as Open311 shows it (open or closed; never the reporter)."""

    service_request_id = ma.fields.String(required=True, metadata={"description": "our public code"})
    status = ma.fields.String(metadata={"enum": ["open", "closed"]})
    status_notes = ma.fields.String(**NULLABLE)
    service_name = ma.fields.String()
    service_code = ma.fields.String()
    description = ma.fields.String()
    agency_responsible = ma.fields.String(**NULLABLE)
    service_notice = ma.fields.String(**NULLABLE)
    requested_datetime = ma.fields.String(metadata={"format": "date-time"})
    updated_datetime = ma.fields.String(**NULLABLE, metadata={"format": "date-time"})
    expected_datetime = ma.fields.String(**NULLABLE, metadata={"format": "date-time"})
    address = ma.fields.String(**NULLABLE)
    address_id = ma.fields.String(**NULLABLE)
    zipcode = ma.fields.String(**NULLABLE)
    lat = ma.fields.Float(**NULLABLE)
    long = ma.fields.Float(**NULLABLE)
    media_url = ma.fields.String(**NULLABLE)


class Open311CreatedSchema(ma.Schema):
    service_request_id = ma.fields.String(required=True, metadata={"description": "our public code"})
    service_notice = ma.fields.String(**NULLABLE)
    account_id = ma.fields.String(**NULLABLE)


class Open311TokenSchema(ma.Schema):
    service_request_id = ma.fields.String(required=True)
    token = ma.fields.String(required=True)


class Open311PostSchema(ma.Schema):
    """The form fields of POST requests.<fmt> (and the photo as the file `media`)."""

    api_key = ma.fields.String(required=True, metadata={"description": "the client application's key (or in the "
                                                                         "query string)"})
    service_code = ma.fields.String(required=True)
    lat = ma.fields.Float()
    long = ma.fields.Float()
    address_string = ma.fields.String(metadata={"description": "without lat/long: it must name a ward or commune"})
    email = ma.fields.String()
    device_id = ma.fields.String()
    first_name = ma.fields.String()
    last_name = ma.fields.String()
    phone = ma.fields.String()
    description = ma.fields.String()
    media_url = ma.fields.String(metadata={"description": "fetched only from MEDIA_URL_PREFIXES"})
    media = ma.fields.Raw(metadata={"type": "string", "format": "binary", "description": "the photo"})


def array_of(schema: type[ma.Schema]) -> dict:
    return {"type": "array", "items": schema}

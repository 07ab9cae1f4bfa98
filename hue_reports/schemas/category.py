"""Categories of problems, as residents' apps list them (GET /api/v1/services)."""

from __future__ import annotations

import marshmallow as ma

from .common import label


class CategoryGroupSchema(ma.Schema):
    code = ma.fields.String()
    name = label("name", "name_en")


class ServiceSchema(ma.Schema):
    """A category of problems (an Open311 service), as residents' apps list them."""

    code = ma.fields.String(metadata={"description": "service code to submit reports with"})
    name = label("name", "name_en")
    description = label("description", "description_en")
    group = ma.fields.Nested(CategoryGroupSchema)
    sla_working_hours = ma.fields.Float(attribute="sla_hours",
                                        metadata={"description": "deadline in working hours of the city"})
    urgent = ma.fields.Boolean()
    keywords = ma.fields.List(ma.fields.String())


class ServiceListSchema(ma.Schema):
    services = ma.fields.List(ma.fields.Nested(ServiceSchema))
    count = ma.fields.Integer()

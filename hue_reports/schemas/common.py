"""Schemas shared by many answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import marshmallow as ma

# OpenAPI (JSON schema) pieces for computed fields, whose type marshmallow cannot know.
STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
NULLABLE_STRING = {"type": "string", "nullable": True}
LABELS = {"type": "object", "properties": {"vi": STRING, "en": STRING},
          "description": "Vietnamese and English"}
NULLABLE_LABELS = {**LABELS, "properties": {"vi": NULLABLE_STRING, "en": NULLABLE_STRING}}
POINT = {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
         "description": "WGS84 latitude and longitude"}


def computed(function: Callable[[Any], Any], schema: dict[str, Any], *, nullable: bool = False,
             description: str | None = None) -> ma.fields.Function:
    """A field computed by `function` (dump only), documented in OpenAPI by the JSON `schema` given."""
    metadata = {**schema, **({"description": description} if description else {})}
    return ma.fields.Function(function, allow_none=nullable, metadata=metadata)


def label(vi_attr: str, en_attr: str, nullable: bool = False) -> ma.fields.Function:
    """A field rendering two attributes of an object as {"vi": ..., "en": ...} (`nullable`: either may be
    null)."""
    return computed(lambda obj: {"vi": getattr(obj, vi_attr), "en": getattr(obj, en_attr)},
                    NULLABLE_LABELS if nullable else LABELS)


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "stable machine-readable code"})
    message = ma.fields.String(required=True, metadata={"description": "English message"})
    message_vi = ma.fields.String(metadata={"description": "Vietnamese message"})
    fields = ma.fields.Dict(metadata={"description": "what is wrong with each input field"})


class ErrorSchema(ma.Schema):
    """The one error shape of every 4xx/5xx answer."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)

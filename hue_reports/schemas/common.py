"""Schemas shared by many answers."""

from __future__ import annotations

import marshmallow as ma


def label(vi_attr: str, en_attr: str) -> ma.fields.Function:
    """A field rendering two attributes of an object as {"vi": ..., "en": ...}."""
    return ma.fields.Function(lambda obj: {"vi": getattr(obj, vi_attr), "en": getattr(obj, en_attr)},
                              metadata={"description": "Vietnamese and English"})


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "stable machine-readable code"})
    message = ma.fields.String(required=True, metadata={"description": "English message"})
    message_vi = ma.fields.String(metadata={"description": "Vietnamese message"})
    fields = ma.fields.Dict(metadata={"description": "what is wrong with each input field"})


class ErrorSchema(ma.Schema):
    """The one error shape of every 4xx/5xx answer."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)

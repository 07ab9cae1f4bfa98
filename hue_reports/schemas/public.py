"""The public map data and metrics, as the OpenAPI document describes them.

PostgreSQL renders these answers itself (services/public.py, services/metrics.py): the schemas here document
them (and the schemathesis test holds the answers to them); nothing is serialised through them.
"""

from __future__ import annotations

import marshmallow as ma

from ..services.metrics import FIELDS, GROUP_BYS
from .common import LABELS, STRING
from .report import STATUS

NULLABLE_LABELS_OBJECT = {**LABELS, "nullable": True}
REF = {"type": "object", "properties": {"code": STRING, "name": LABELS}}
WARD = {"type": "object", "properties": {"code": STRING, "name": STRING, "name_en": STRING}}
POINT_GEOMETRY = {"type": "object", "required": ["type", "coordinates"], "properties": {
    "type": {"type": "string", "enum": ["Point"]},
    "coordinates": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2,
                    "description": "longitude, latitude (WGS84)"}}}


def _field(schema: dict, required: bool = True, **kwargs) -> ma.fields.Raw:
    return ma.fields.Raw(required=required, metadata=schema, **kwargs)


class MapReportPropertiesSchema(ma.Schema):
    """A report on the map: no description, nothing about the reporter."""

    code = ma.fields.String(required=True)
    category = _field(REF)
    status = ma.fields.String(required=True, metadata=STATUS)
    status_label = _field(LABELS)
    overdue = ma.fields.Boolean(required=True)
    overdue_label = _field(NULLABLE_LABELS_OBJECT, allow_none=True)
    created_at = ma.fields.DateTime(required=True)
    routed_at = ma.fields.DateTime(required=True, allow_none=True)
    resolved_at = ma.fields.DateTime(required=True, allow_none=True)
    due_at = ma.fields.DateTime(required=True, allow_none=True)
    agency = _field({**REF, "nullable": True}, allow_none=True)
    ward = _field({**WARD, "nullable": True}, allow_none=True)
    thumbnail_url = ma.fields.String(required=True, allow_none=True,
                                     metadata={"description": "the first photo's thumbnail, once ready"})
    supporters = ma.fields.Integer(required=True)
    location_source = ma.fields.String(required=True, allow_none=True, metadata={
        "enum": ["client", "exif", "address", None],
        "description": "address: approximate, the representative point of the ward the address names"})
    accuracy_m = ma.fields.Float(required=True, allow_none=True)
    url = ma.fields.String(required=True, metadata={"description": "the report's public data"})


class MapReportFeatureSchema(ma.Schema):
    type = ma.fields.String(required=True, metadata={"enum": ["Feature"]})
    id = ma.fields.Integer(required=True)
    geometry = _field(POINT_GEOMETRY)
    properties = ma.fields.Nested(MapReportPropertiesSchema, required=True)


class MapReportsSchema(ma.Schema):
    """Reports as a GeoJSON FeatureCollection, a page at a time."""

    type = ma.fields.String(required=True, metadata={"enum": ["FeatureCollection"]})
    features = ma.fields.List(ma.fields.Nested(MapReportFeatureSchema), required=True)
    count = ma.fields.Integer(required=True)
    has_more = ma.fields.Boolean(required=True)
    next_cursor = ma.fields.String(required=True, allow_none=True,
                                   metadata={"description": "send as `cursor` for the next page; null on the last"})


class MapClusterPropertiesSchema(ma.Schema):
    cluster = ma.fields.Boolean(required=True, metadata={"enum": [True]})
    count = ma.fields.Integer(required=True)
    by_status = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), required=True)
    cell = _field({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
                   "description": "the grid cell (x, y) at cell_level"})
    cell_level = ma.fields.Integer(required=True)


class MapClusterFeatureSchema(ma.Schema):
    type = ma.fields.String(required=True, metadata={"enum": ["Feature"]})
    geometry = _field(POINT_GEOMETRY)
    properties = ma.fields.Nested(MapClusterPropertiesSchema, required=True)


class MapClustersSchema(ma.Schema):
    """Counts by status per grid cell (below PUBLIC_CLUSTER_BELOW_ZOOM, or a view too dense for points), as a
    GeoJSON FeatureCollection."""

    type = ma.fields.String(required=True, metadata={"enum": ["FeatureCollection"]})
    features = ma.fields.List(ma.fields.Nested(MapClusterFeatureSchema), required=True)
    count = ma.fields.Integer(required=True)
    clustered = ma.fields.Boolean(required=True, metadata={"enum": [True]})
    dense = ma.fields.Boolean(required=True, metadata={
        "description": "true: clusters from PUBLIC_CLUSTER_BELOW_ZOOM on, because the view holds more than "
                       "PUBLIC_MAP_POINTS_MAX reports (zoom in towards PUBLIC_POINTS_ZOOM for points)"})
    zoom = ma.fields.Integer(required=True)
    total = ma.fields.Integer(required=True)
    counted_at = ma.fields.DateTime(required=True, allow_none=True,
                                    metadata={"description": "when the rollup counted them; null: counted now"})


MAP_DATA = {"anyOf": [MapReportsSchema, MapClustersSchema]}

# The published figures: counts are integers; durations (hours) and rates are null without enough data.
COUNT_FIGURES = ("received", "resolved", "open", "open_overdue", "seriously_overdue", "rejected", "duplicates",
                 "satisfaction_count")
NULLABLE_NUMBER = {"type": "number", "nullable": True}


def _figures() -> dict[str, ma.fields.Field]:
    return {name: (ma.fields.Integer(required=True) if name in COUNT_FIGURES else
                   ma.fields.Float(required=True, allow_none=True, metadata={"description": en}))
            for name, (_, en) in FIELDS.items()}


MetricsTotalSchema = ma.Schema.from_dict({
    "key": ma.fields.String(required=True, metadata={"enum": ["all"]}),
    "name": _field(LABELS),
    **_figures()}, name="MetricsTotalSchema")

MetricsGroupSchema = ma.Schema.from_dict({
    "key": ma.fields.String(required=True, allow_none=True,
                            metadata={"description": "the group's code (a month: YYYY-MM); null: no group"}),
    "name": _field(LABELS),
    "valid_from": ma.fields.Date(allow_none=True, metadata={"description": "group_by ward: the boundary vintage"}),
    "valid_to": ma.fields.Date(allow_none=True, metadata={"description": "group_by ward: null for a current ward"}),
    **_figures()}, name="MetricsGroupSchema")


class MetricsSchema(ma.Schema):
    """The accountability figures (README.md#methodology)."""

    as_of = ma.fields.DateTime(required=True)
    events_through = ma.fields.Integer(required=True)
    group_by = ma.fields.String(required=True, metadata={"enum": list(GROUP_BYS)})
    from_ = ma.fields.Date(data_key="from", required=True, allow_none=True)
    to = ma.fields.Date(required=True, allow_none=True)
    groups = ma.fields.List(ma.fields.Nested(MetricsGroupSchema), required=True)
    total = ma.fields.Nested(MetricsTotalSchema, required=True)
    fields = ma.fields.Dict(keys=ma.fields.String(), values=_field(LABELS), required=True,
                            metadata={"description": "each figure's label, Vietnamese and English"})
    methodology = ma.fields.String(required=True)


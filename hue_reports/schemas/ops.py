"""The operations' probes (/healthz, /readyz), as the OpenAPI document describes them."""

from __future__ import annotations

import marshmallow as ma


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"enum": ["ok"]})


class ReadySchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"enum": ["ready"]})
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True,
                            metadata={"description": "database, schema, redis: `ok` each"})
    heartbeat = ma.fields.Raw(required=True, allow_none=True, metadata={
        "type": "object", "properties": {"age_s": {"type": "number"}, "latency_s": {"type": "number"}},
        "description": "when a worker last ran the scheduler's heartbeat job (null: never, or not known)"})

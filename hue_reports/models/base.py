"""Declarative base: constraint naming convention and the shared type map."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry

# Deterministic constraint names, so migrations can name what they alter or drop.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SRID = 4326  # WGS84 longitude/latitude, everywhere


class Base(DeclarativeBase):
    # One registry carrying the metadata and the type map (Flask-SQLAlchemy
    # subclasses the base, which rejects a separate type_annotation_map).
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={
            datetime: DateTime(timezone=True),
            dict[str, Any]: JSONB,
            list[Any]: JSONB,
        },
    )


class Timestamps:
    """created_at / updated_at kept by the database."""

    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


def sql_in(column: str, values: tuple[str, ...]) -> str:
    """SQL text `column IN ('a', 'b')` for check constraints and partial indexes."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"

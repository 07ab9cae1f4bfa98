"""Where things are: the city and its administrative areas (wards and communes)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import CheckConstraint, Date, ForeignKey, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import SRID, Base


class AdminArea(Base):
    """A province-level city, ward or commune, as a MultiPolygon.

    `level` is the unit's own kind in the data (province, ward, commune...) and
    `tier` its rank in the hierarchy: 1 for the province-level city, 2 for a ward
    or commune since Vietnam's two-tier reform of 1 July 2025. Routing prefers
    the highest tier (most specific) area that covers a point. Boundaries change
    (wards merge): each row belongs to a vintage that starts at `valid_from`, and
    a report keeps the area it was filed in.
    """

    __tablename__ = "admin_areas"
    __table_args__ = (
        UniqueConstraint("code", "valid_from"),
        CheckConstraint("tier >= 1", name="tier_positive"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="valid_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(32))
    tier: Mapped[int]
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("admin_areas.id"), index=True)
    # Deferred: a ward's polygon is large and the spatial work happens in SQL, not in Python.
    geom: Mapped[WKBElement] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=True), deferred=True)
    population: Mapped[int | None]
    area_km2: Mapped[float | None]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    parent: Mapped[AdminArea | None] = relationship(remote_side=[id])

    def __repr__(self) -> str:
        return f"<AdminArea {self.code} {self.name}>"


class City(Base):
    """The jurisdiction this instance serves: its name, time zone and report code prefix.

    One row per deployment. Seeded from the city's data directory (city.yaml),
    so nothing about a particular city lives in code.
    """

    __tablename__ = "cities"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    report_code_prefix: Mapped[str] = mapped_column(String(16))
    jurisdiction_id: Mapped[str] = mapped_column(String(200))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("admin_areas.id"))
    # The working calendar deadlines are counted on (see services/calendar.py), from the data set:
    # {"holidays": "VN" (a country of the `holidays` package), "weekdays": [1..5] (ISO),
    #  "periods": [["07:30", "11:30"], ["13:30", "17:00"]]}. The yearly swaps are `calendar_days`.
    calendar: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))  # None is SQL NULL
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    area: Mapped[AdminArea | None] = relationship()


CALENDAR_DAY_KINDS = ("day_off", "working_day")


class CalendarDay(Base):
    """A government swap in a city's working calendar: an extra day off, or a make-up working day
    (usually a Saturday). Public holidays themselves come from the `holidays` package."""

    __tablename__ = "calendar_days"
    __table_args__ = (CheckConstraint("kind IN ('day_off', 'working_day')", name="kind"),)

    city_id: Mapped[int] = mapped_column(ForeignKey("cities.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

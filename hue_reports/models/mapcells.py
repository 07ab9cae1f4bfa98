"""The public map's rollup: report counts per cell of the web-map grid, for every clustering zoom.

A cache, never a source of truth: `flask map refresh` (and the scheduler, every METRICS_REFRESH_SECONDS)
recomputes it from `reports`. Cells are those of the web-mercator tile grid: at grid level k the world is
2^k x 2^k cells, so a cell at level k is a tile at zoom k, a quarter of a tile's side at zoom k - 2 (the
GeoJSON clusters) and a sixteenth at zoom k - 4 (the vector tiles' clusters). A cell's parent is
(mx >> 1, my >> 1) one level up.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

ALL_CATEGORIES = 0  # the rows that count every category (a map without a category filter reads only these)


class MapCell(Base):
    """How many reports of one status (overdue or not) and category (or all) lie in one grid cell, and the sums
    of their coordinates (the cluster is drawn at their mean)."""

    __tablename__ = "map_cells"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    category_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # ALL_CATEGORIES or a category's id
    mx: Mapped[int] = mapped_column(Integer, primary_key=True)  # column, from the west (antimeridian)
    my: Mapped[int] = mapped_column(Integer, primary_key=True)  # row, from the north
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    overdue: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    sum_lon: Mapped[float] = mapped_column(Float(precision=53))
    sum_lat: Mapped[float] = mapped_column(Float(precision=53))


class MapState(Base):
    """When the rollup was computed (the instant its `overdue` flags hold for) and its finest level."""

    __tablename__ = "map_state"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    as_of: Mapped[datetime]
    finest_level: Mapped[int] = mapped_column(SmallInteger)

"""INSERT ... ON CONFLICT DO UPDATE that writes only what differs: the data set loader's and the boundary
vintages' one upsert."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, literal_column, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..extensions import db

Counts = dict[str, int]


def upsert(table: Table, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> Counts:
    """INSERT ... ON CONFLICT (keys) DO UPDATE of the columns each row gives, writing only rows
    whose values differ. Rows may give different columns (a file that leaves one out)."""
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(tuple(sorted(row)), []).append(row)
    for same_columns in by_columns.values():
        for key, value in _upsert_rows(table, same_columns, keys).items():
            counts[key] += value
    return counts


def _upsert_rows(table: Table, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> Counts:
    stmt = pg_insert(table).values(rows)
    columns = [name for name in rows[0] if name not in keys]
    changes = {name: stmt.excluded[name] for name in columns}
    if "updated_at" in table.c:
        changes["updated_at"] = func.now()
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_=changes,
        where=tuple_(*(table.c[n] for n in columns)).is_distinct_from(
            tuple_(*(stmt.excluded[n] for n in columns))),
    ).returning(literal_column("xmax = 0").label("inserted"))
    written = db.session.execute(stmt).all()
    created = sum(1 for row in written if row.inserted)
    return {"created": created, "updated": len(written) - created, "unchanged": len(rows) - len(written)}

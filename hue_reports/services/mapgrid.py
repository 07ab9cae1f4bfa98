"""Counts of reports per cell of the web-map grid: the clusters of the public map and of its vector tiles.

At grid level k the world is 2^k x 2^k cells of the web-mercator tile grid (a cell at level k is a tile at
zoom k): the GeoJSON clusters of zoom z use level z + 2 (a quarter of a tile's side), the tiles' clusters
level z + 4 (a sixteenth). Cells nest (a cell's parent is (mx >> 1, my >> 1) one level up) and a cell never
crosses a tile seam.

The counts come from one of two sources with the same rows (mx, my, status, overdue, n, sum_lon, sum_lat):

* the rollup `map_cells`, recomputed from `reports` by `refresh` (the scheduler, every
  METRICS_REFRESH_SECONDS; `flask map refresh`): a city-wide view reads a few thousand rows instead of
  every report. It answers the filters it holds (status, category, overdue) while it is fresh;
* the reports themselves ("live"), for the other filters (agency, ward, period), before the first refresh,
  or when the rollup is older than MAP_ROLLUP_MAX_AGE_SECONDS (a stopped scheduler never freezes the map).

A cell is counted whole when it touches the requested box, from either source, so the answers of the two
agree and a cluster does not change as the map is panned.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import Float, Integer, bindparam, event, func, literal_column, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from ..extensions import db, try_xact_lock
from ..models import ALL_CATEGORIES, OPEN_STATUSES, SRID, MapCell, MapState, Report
from ..replica import ROUTE
from . import queue

WEB_MERCATOR = 3857
WORLD_M = 40075016.68557849  # the web-mercator world's side, metres
HALF_M = WORLD_M / 2
GEOJSON_LEVELS_UP = 2  # the GeoJSON clusters of zoom z: cells a quarter of a tile's side
TILE_LEVELS_UP = 4  # the vector tiles' clusters: a sixteenth of the tile's side
COARSEST_LEVEL = GEOJSON_LEVELS_UP  # zoom 0's GeoJSON clusters
MAP_LOCK = 0x6875656D + 1  # advisory lock key: one rollup refresh at a time
LIVE_FILTERS = ("agency", "ward", "from_", "to")  # filters the rollup cannot answer
# The rollup's finest levels hold a row per cell, status and overdue flag for every category together; a row
# per category too only from this many levels above (at 1M reports the finest level's per-category rows
# are as many as the reports: no gain over counting them live).
CATEGORY_LEVELS_BELOW = 3


def finest_level() -> int:
    """The finest level the clusters need: the tiles' at the last clustering zoom, or the tiles of the zoom
    before PUBLIC_POINTS_ZOOM (the cells of a dense view's clusters at street level), whichever is finer.
    (At 1M reports the finest level holds a row for every 2 to 4 reports: each level finer doubles it.)"""
    config = current_app.config
    return max(config["PUBLIC_CLUSTER_BELOW_ZOOM"] - 1 + TILE_LEVELS_UP, config["PUBLIC_POINTS_ZOOM"] - 1)


def category_finest_level() -> int:
    """The finest level with a row per category (finer, a category filter is counted live): a few levels
    above the tiles' clusters at the last clustering zoom."""
    return current_app.config["PUBLIC_CLUSTER_BELOW_ZOOM"] - 1 + TILE_LEVELS_UP - CATEGORY_LEVELS_BELOW


@dataclass(frozen=True)
class CellRange:
    level: int
    mx0: int
    mx1: int  # inclusive
    my0: int
    my1: int

    def envelope(self):
        """The cells' extent in WGS84, a hair wider (the index expressions decide membership exactly)."""
        size = WORLD_M / 2 ** self.level
        box = func.ST_MakeEnvelope(self.mx0 * size - HALF_M, HALF_M - (self.my1 + 1) * size,
                                   (self.mx1 + 1) * size - HALF_M, HALF_M - self.my0 * size, WEB_MERCATOR)
        return func.ST_Expand(func.ST_Transform(box, SRID), 1e-9)


def _index(value_m: float, level: int) -> int:
    cells = 2 ** level
    return min(cells - 1, max(0, math.floor(value_m / (WORLD_M / cells))))


def range_of_bbox(bbox: tuple[float, float, float, float], level: int) -> CellRange:
    """The cells touching a WGS84 box (minLon, minLat, maxLon, maxLat)."""
    min_lon, min_lat, max_lon, max_lat = bbox
    return CellRange(level, _index(_x_m(min_lon), level), _index(_x_m(max_lon), level),
                     _index(_y_m(max_lat), level), _index(_y_m(min_lat), level))


def _x_m(lon: float) -> float:
    """A longitude's distance in web-mercator metres from the grid's west edge."""
    return (lon + 180.0) / 360.0 * WORLD_M


def _y_m(lat: float) -> float:
    """A latitude's distance in web-mercator metres from the grid's north edge."""
    lat = max(-85.05112878, min(85.05112878, lat))  # (the web map's edge)
    return HALF_M - math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * WORLD_M / (2 * math.pi)


def range_of_centres(bbox: tuple[float, float, float, float], level: int) -> CellRange:
    """The cells whose centre is in a WGS84 box (along an axis where the box is narrower than a cell: the
    cells touching it)."""
    size = WORLD_M / 2 ** level
    min_lon, min_lat, max_lon, max_lat = bbox

    def span(low_m: float, high_m: float) -> tuple[int, int]:
        if high_m - low_m < size:
            return _index(low_m, level), _index(high_m, level)
        return _index(low_m + size / 2, level), _index(high_m - size / 2, level)

    return CellRange(level, *span(_x_m(min_lon), _x_m(max_lon)), *span(_y_m(max_lat), _y_m(min_lat)))


def range_of_tile(z: int, x: int, y: int, level: int | None = None) -> CellRange:
    """The cells of tile z/x/y at `level` (z or finer; the tiles' cluster level z + 4 by default)."""
    level = z + TILE_LEVELS_UP if level is None else level
    step = 2 ** (level - z)
    return CellRange(level, x * step, x * step + step - 1, y * step, y * step + step - 1)


# A point's cell at a level with `cells` cells a side, from its longitude and latitude by the web-mercator
# formulas (the same SQL for the rollup and for live counts; arithmetic, 5x cheaper than ST_Transform per row).
MX_SQL = "least({cells} - 1, greatest(0, floor(({lon} + 180.0) / 360.0 * {cells})::int))"
MY_SQL = ("least({cells} - 1, greatest(0, floor((1.0 - ln(tan(pi() / 4.0 + radians(greatest(-85.05112878, "
          "least(85.05112878, {lat}))) / 2.0)) / pi()) / 2.0 * {cells})::int))")


def _cell_columns(level: int):
    """A report's cell at `level`, from its location."""
    cells = 2 ** level
    mx = literal_column(MX_SQL.format(lon="ST_X(reports.location)", cells=cells), Integer)
    my = literal_column(MY_SQL.format(lat="ST_Y(reports.location)", cells=cells), Integer)
    return mx, my


def status_condition(column, args: dict):
    """The map's status filter: the statuses asked for, or every status but `duplicate`."""
    if args.get("status"):
        return column.in_(args["status"])
    return column != "duplicate"  # (a duplicate is counted in its original's supporters)


def rollup_usable(args: dict, level: int) -> datetime | None:
    """The rollup's instant if it can answer these filters at this level; None to count live."""
    if any(args.get(name) for name in LIVE_FILTERS):
        return None
    state = _state()
    return _usable(args, level, state)


def _usable(args: dict, level: int, state: tuple[int, datetime] | None) -> datetime | None:
    if state is None or level > state[0] or level < COARSEST_LEVEL:
        return None
    finest, as_of = state
    if args.get("category") and level > min(category_finest_level(), finest - CATEGORY_LEVELS_BELOW):
        return None
    max_age = timedelta(seconds=current_app.config["MAP_ROLLUP_MAX_AGE_SECONDS"])
    if as_of < datetime.now(timezone.utc) - max_age:
        return None
    return as_of


_STATE = text("SELECT finest_level, as_of FROM map_state WHERE id = 1")
_STATE_READ = "hue_map_state"  # session.info: (transaction, database, state) of the last read


_UNKNOWN = object()


def _state() -> tuple[int, datetime] | None:
    """The rollup's (finest level, instant): read once per transaction and database (a request asks for it up
    to twice; as the ORM's identity map did). A plain statement: the ORM's get() cost 0.3 ms more CPU."""
    state = _known_state()
    if state is _UNKNOWN:
        row = execute(("state",), lambda: _STATE, {}).first()
        state = _remember_state(None if row is None else (row[0], row[1]))
    return state  # type: ignore[return-value]


def _known_state():
    """The state this transaction read already from the database it reads, or _UNKNOWN."""
    session = db.session()  # (the request's Session, not its scoped proxy)
    read = session.info.get(_STATE_READ)
    transaction = session.get_transaction()
    if read is not None and transaction is not None and read[0] is transaction and read[1] == session.info.get(ROUTE):
        return read[2]
    return _UNKNOWN


def _remember_state(state: tuple[int, datetime] | None) -> tuple[int, datetime] | None:
    session = db.session()
    session.info[_STATE_READ] = (session.get_transaction(), session.info.get(ROUTE), state)
    return state


@event.listens_for(Session, "after_flush")
def _forget_state(session, _context) -> None:
    """What the session wrote may be the state (the ORM's get() saw its own changes too)."""
    session.info.pop(_STATE_READ, None)


# The statements are built once per shape (which filters, which statuses) with the cells, the category and the
# instant as bound parameters: building and keying a statement cost more CPU than running it (0.3-1 ms a
# request); SQLAlchemy then finds its compiled form at once, and the SQL is the same for every request.
STATEMENTS_KEPT = 256
_CELLS = MapCell.__table__  # (Core statements: no ORM step at execution)
_STATE_TABLE = MapState.__table__
_statements: dict[tuple, object] = {}


def statement(key: tuple, build):
    """The statement `build()` makes for this shape `key`, built once per process (at most STATEMENTS_KEPT)."""
    stmt = _statements.get(key)
    if stmt is None:
        if len(_statements) >= STATEMENTS_KEPT:  # (shapes are few; a flood of odd filters only rebuilds)
            _statements.clear()
        stmt = _statements[key] = build()
    return stmt


# The SQL text SQLAlchemy rendered for a shape, and the parameters that are the statement's own constants
# (labels, limits, the statuses of the shape): by shape key, at most STATEMENTS_KEPT.
_rendered: dict[tuple, tuple[str, dict]] = {}


def execute(key: tuple, build, params: dict):
    """Run the statement of shape `key` (statement(key, build)) with `params` on the session's connection,
    as a CursorResult. The first run goes through SQLAlchemy, which renders its SQL; the later runs send that
    text as it is with the constants it rendered and this run's `params` (exec_driver_sql: no cache key over
    the statement's tree, no compiled-cache lookup, no ORM step: 0.5-0.6 ms less CPU a statement, beside the
    1.5-5 ms PostgreSQL takes for a tile's). The connection, its events (the statements seen by tests and the
    benchmark) and its errors (the replica's fall-back) are the same. A shape whose parameters SQLAlchemy does
    not pass through as given (a list expanded, a value converted) or whose result it converts always goes
    through SQLAlchemy."""
    connection = db.session.connection()
    rendered = _rendered.get(key)
    if rendered is not None:
        sql, constants = rendered
        return connection.exec_driver_sql(sql, {**constants, **params})
    result = connection.execute(statement(key, build), params)
    context = result.context
    sent = context.parameters[0] if len(context.parameters) == 1 else None
    binds = context.compiled.binds
    passed_through = isinstance(sent, dict) and all(
        sent[name] is value if name in sent else name not in binds for name, value in params.items())
    if passed_through and not any(result._metadata._processors):
        if len(_rendered) >= STATEMENTS_KEPT:
            _rendered.clear()
        _rendered[key] = (context.statement, {name: v for name, v in sent.items() if name not in params})
    return result


def _rollup_shape(args: dict) -> tuple:
    """What the rollup's conditions look like for these filters (the statuses and overdue flag asked for)."""
    return tuple(args.get("status") or ()), args.get("overdue")


def _rollup_where(statuses: tuple, overdue: bool | None) -> list:
    """The rollup's rows of the cells in range (bound: level, cell_category, mx0, mx1, my0, my1)."""
    c = _CELLS.c
    where = [c.level == bindparam("level", type_=Integer),
             c.category_id == bindparam("cell_category", type_=Integer),
             c.mx.between(bindparam("mx0", type_=Integer), bindparam("mx1", type_=Integer)),
             c.my.between(bindparam("my0", type_=Integer), bindparam("my1", type_=Integer)),
             status_condition(c.status, {"status": list(statuses)})]
    if overdue is not None:
        where.append(c.overdue == overdue)
    return where


def _rollup_params(codes, cells: CellRange) -> dict:
    return {"level": cells.level, "cell_category": codes.category_id or ALL_CATEGORIES,
            "mx0": cells.mx0, "mx1": cells.mx1, "my0": cells.my0, "my1": cells.my1}


def rollup_count(args: dict, cells: CellRange, codes=None) -> int | None:
    """The reports under the map's filters in `cells` by the rollup (as of its last refresh), or None when
    it cannot answer (filters it does not hold, too fine a level, stale). `codes`: queue.resolve_codes(args)."""
    if any(args.get(name) for name in LIVE_FILTERS):
        return None
    shape = _rollup_shape(args)
    params = _rollup_params(codes or queue.resolve_codes(args), cells)

    def count():
        return select(func.coalesce(func.sum(_CELLS.c.n), 0)).where(*_rollup_where(*shape))

    state = _known_state()
    if state is not _UNKNOWN:
        if _usable(args, cells.level, state) is None:  # type: ignore[arg-type]
            return None
        return execute(("rollup count", shape), count, params).scalar()
    # The state and the count in one statement (the count is not used when the rollup cannot answer: no rows at a
    # level it does not hold).
    row = execute(("rollup count and state", shape), lambda: select(
        _STATE_TABLE.c.finest_level, _STATE_TABLE.c.as_of, count().scalar_subquery()).where(_STATE_TABLE.c.id == 1),
        params).first()
    state = _remember_state(None if row is None else (row[0], row[1]))
    return None if _usable(args, cells.level, state) is None else row[2]


def in_one_statement(args: dict, cells: CellRange, codes, key: tuple, answer, params: dict) -> tuple | None:
    """An answer made from the rollup's rows in one statement with the rollup's state, when this request has not
    read it yet: one round trip where cell_rows and then the answer's own statement took two. `answer(rows)`
    makes the answer's column from the rollup's rows of `cells` (`rows`, as cell_rows gives them); `key` names
    its shape. Returns (the answer,) when the rollup can answer these filters at this level; None when it cannot
    (stale, too fine, filters it lacks: an answer read with the state is dropped, and the caller asks as it
    would have)."""
    if any(args.get(name) for name in LIVE_FILTERS):
        return None
    known = _known_state()
    if known is not _UNKNOWN and _usable(args, cells.level, known) is None:  # type: ignore[arg-type]
        return None
    with_state = known is _UNKNOWN
    shape = _rollup_shape(args)

    def build():
        c = _CELLS.c
        rows = select(c.mx, c.my, c.status, c.overdue, c.n, c.sum_lon, c.sum_lat).where(*_rollup_where(*shape))
        column = answer(rows).label("answer")
        if not with_state:
            return select(column)
        state = _STATE_TABLE.c
        return select(column, state.finest_level, state.as_of).where(state.id == 1)

    row = execute(("in one", key, shape, with_state), build,
                  {**params, **_rollup_params(codes or queue.resolve_codes(args), cells)}).first()
    if with_state:
        state = _remember_state(None if row is None else (row[1], row[2]))
        if _usable(args, cells.level, state) is None:
            return None
    return (row[0],)


def cell_rows(args: dict, cells: CellRange, now: datetime, live_where, codes=None
              ) -> tuple[Select, dict, datetime | None, tuple | None]:
    """A query of (mx, my, status, overdue, n, sum_lon, sum_lat) for the cells in `cells` under the map's
    filters `args` (`live_where()`: the same filters as conditions on reports), its parameters, the rollup's
    instant (None when counted live), and the query's shape when it is the same for other requests (the
    rollup's: a caller may keep what it builds around it under that key; None: counted live)."""
    as_of = rollup_usable(args, cells.level)
    if as_of is not None:
        shape = ("rollup rows", _rollup_shape(args))
        c = _CELLS.c
        stmt = statement(shape, lambda: select(c.mx, c.my, c.status, c.overdue, c.n, c.sum_lon, c.sum_lat).where(
            *_rollup_where(*shape[1])))
        return stmt, _rollup_params(codes or queue.resolve_codes(args), cells), as_of, shape
    mx, my = _cell_columns(cells.level)
    overdue = queue.overdue_condition(now)
    stmt = (select(mx.label("mx"), my.label("my"), Report.status.label("status"), overdue.label("overdue"),
                   func.count().label("n"), func.sum(func.ST_X(Report.location, type_=Float)).label("sum_lon"),
                   func.sum(func.ST_Y(Report.location, type_=Float)).label("sum_lat"))
            .where(*live_where(), Report.location.op("&&")(cells.envelope()),
                   mx.between(cells.mx0, cells.mx1), my.between(cells.my0, cells.my1))
            .group_by(text("1, 2, 3, 4")))
    return stmt, {}, None, None


# --- the rollup ------------------------------------------------------------------------------------------------

# The reports counted once at the finest level (the only pass over `reports`), then: every level's
# all-categories rows, each built from the level below it; the per-category rows only up to CATEGORY_LEVELS_BELOW
# levels above the finest (finer, a category is a few reports per cell: counted live, it is as quick).
_BUILD_POINTS = """
CREATE TEMPORARY TABLE map_points ON COMMIT DROP AS
SELECT category_id, status, overdue, mx, my, count(*) AS n, sum(lon) AS sum_lon, sum(lat) AS sum_lat
FROM (
    SELECT r.category_id, r.status,
           (r.status IN :open AND r.due_at IS NOT NULL AND r.due_at < :now) AS overdue,
           ST_X(r.location) AS lon, ST_Y(r.location) AS lat,
           {mx} AS mx, {my} AS my
    FROM reports r
    WHERE r.location IS NOT NULL
) x
GROUP BY category_id, mx, my, status, overdue
"""
_BUILD_FROM_POINTS = """
INSERT INTO map_cells_new
SELECT :level, {category}, mx >> :shift, my >> :shift, status, overdue, sum(n), sum(sum_lon), sum(sum_lat)
FROM map_points GROUP BY {group} mx >> :shift, my >> :shift, status, overdue
"""
_BUILD_PARENT = """
INSERT INTO map_cells_new
SELECT :level, category_id, mx >> 1, my >> 1, status, overdue, sum(n), sum(sum_lon), sum(sum_lat)
FROM map_cells_new WHERE level = :level + 1 AND (category_id = :all) = :all_categories
GROUP BY category_id, mx >> 1, my >> 1, status, overdue
"""
# Only what changed is written (a quiet city rewrites a few rows a minute, not the whole rollup).
_MERGE = """
CREATE TEMPORARY TABLE map_cells_diff ON COMMIT DROP AS
SELECT x.*, m.n IS NULL AS added, x.n IS NULL AS removed,
       coalesce(x.level, m.level) AS k_level, coalesce(x.category_id, m.category_id) AS k_category,
       coalesce(x.mx, m.mx) AS k_mx, coalesce(x.my, m.my) AS k_my, coalesce(x.status, m.status) AS k_status,
       coalesce(x.overdue, m.overdue) AS k_overdue
FROM map_cells_new x FULL JOIN map_cells m USING (level, category_id, mx, my, status, overdue)
WHERE (x.n, x.sum_lon, x.sum_lat) IS DISTINCT FROM (m.n, m.sum_lon, m.sum_lat);
DELETE FROM map_cells m USING map_cells_diff d
WHERE d.removed AND (m.level, m.category_id, m.mx, m.my, m.status, m.overdue)
                  = (d.k_level, d.k_category, d.k_mx, d.k_my, d.k_status, d.k_overdue);
UPDATE map_cells m SET n = d.n, sum_lon = d.sum_lon, sum_lat = d.sum_lat FROM map_cells_diff d
WHERE NOT d.added AND NOT d.removed AND (m.level, m.category_id, m.mx, m.my, m.status, m.overdue)
                                      = (d.level, d.category_id, d.mx, d.my, d.status, d.overdue);
INSERT INTO map_cells SELECT level, category_id, mx, my, status, overdue, n, sum_lon, sum_lat
FROM map_cells_diff WHERE added;
"""


@dataclass(frozen=True)
class RefreshStats:
    cells: int
    as_of: datetime
    seconds: float


def refresh(now: datetime | None = None) -> RefreshStats | None:
    """Recompute the rollup from the reports, in one transaction (readers see the old one until it
    commits). None when another refresh holds the lock."""
    began = time.monotonic()
    session = db.session
    try:
        if not try_xact_lock(MAP_LOCK):
            return None
        # (the instant is the database's, like the reports' times; `now` is for tests)
        now = now or session.scalar(select(func.now()))
        finest = finest_level()
        session.execute(text("DROP TABLE IF EXISTS pg_temp.map_cells_new"))  # (a savepoint's, in tests)
        session.execute(text("CREATE TEMPORARY TABLE map_cells_new (LIKE map_cells) ON COMMIT DROP"))
        session.execute(text("SET LOCAL work_mem = '128MB'"))
        session.execute(text("DROP TABLE IF EXISTS pg_temp.map_points, pg_temp.map_cells_diff"))
        build = _BUILD_POINTS.format(mx=MX_SQL.format(lon="ST_X(r.location)", cells=2 ** finest),
                                     my=MY_SQL.format(lat="ST_Y(r.location)", cells=2 ** finest))
        session.execute(text(build).bindparams(bindparam("open", expanding=True)),
                        {"open": list(OPEN_STATUSES), "now": now})
        by_category = category_finest_level()
        for all_categories, top, category, group in ((True, finest, str(ALL_CATEGORIES), ""),
                                                     (False, by_category, "category_id", "category_id,")):
            session.execute(text(_BUILD_FROM_POINTS.format(category=category, group=group)),
                            {"level": top, "shift": finest - top})
            for level in range(top - 1, COARSEST_LEVEL - 1, -1):
                session.execute(text(_BUILD_PARENT), {"level": level, "all": ALL_CATEGORIES,
                                                      "all_categories": all_categories})
        session.execute(text(_MERGE))
        cells = session.scalar(text("SELECT count(*) FROM map_cells_new"))
        session.execute(text("""
            INSERT INTO map_state (id, as_of, finest_level) VALUES (1, :now, :finest)
            ON CONFLICT (id) DO UPDATE SET as_of = excluded.as_of, finest_level = excluded.finest_level"""),
            {"now": now, "finest": finest})
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return RefreshStats(cells, now, time.monotonic() - began)


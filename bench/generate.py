"""A realistic history of N citizen reports at city scale, loaded with COPY: the benchmarks' data.

    python bench/generate.py [--n 1000000] [--days 730] [--seed 2026] [--database-url URL]

Without --database-url it makes a throw-away database on the project-local servers (bench_stack: migrated
and seeded with the city), generates into it, prints what it made and how long it took, and drops it.
As a library: `generate(url, n)` into a database prepared that way (it may already hold reports).

What it makes (every figure from `bench/boston_fit.json`, fitted to Boston's real 311 history of 2015 by
`bench/fit_boston.py`, unless marked *assumed*):

* where: a ward drawn by its population (the ward file's `population`; a ward without one counts as the
  median density times its area), then a uniform point inside the ward's polygon (shapely); the central
  wards, small and populous, are the dense ones;
* what: categories by the shares of Boston's requests mapped to them (`category_share`);
* when: over the last --days, more recent days busier (*assumed*: the service's use grows linearly to
  3x), by a local hour-of-day profile (*assumed*: daytime, peaks mid-morning and afternoon);
* routing as `services/routing.py` does it: the real routing rules (category x ward; no rule: the
  dispatcher), the deadline = submission + the category's SLA in working hours on the city's calendar
  (computed by a vectorised copy of `WorkCalendar` built from the calendar itself, checked against it);
* life, per kind of work (category group): a share are duplicates of an open report of the same category
  within 30 m and 7 days (`duplicates`), rejected (`rejected`) or never done (`stalled`); the others are
  resolved on time with the group's probability (`on_time`), their time from submission to resolution
  drawn from the group's quantile table of open -> close hours (`quantiles`): a late one from the table's
  part above that probability (and after the report's deadline), an on-time one from the part below it,
  where that would be after the report's deadline (Huế's deadlines are tighter than Boston's targets)
  done in the last 40% of the time allowed instead (`Durations.draw`; `--delays hours` draws the table
  as it is, whatever the deadline); a report whose resolution would come after `now` is still open (so
  some are open and overdue, with their `overdue` events as the scheduler writes them);
* around it (*assumed*): acknowledged a few hours after routing (log-normal, median 3 h) and always before
  the resolution; work `started` for 60%; 5% transferred to another agency before acknowledgement, and
  85% of what the dispatcher receives (no rule) passed on to an agency; 40% of resolved reports rated
  within the feedback window (1-5: 6/6/13/35/40%), a 1 or 2 reopening the report to the same agency with
  a fresh deadline (and its own resolution time), a better rating closing it; unrated fixes closed by the
  system FEEDBACK_DAYS after.

Every report's `report_events` are what the application would have written (the workflow's transitions,
with from/to statuses, actors, the routing and reopening deadlines in `data` as `services/metrics.py`
reads them), and the `reports`, `feedback` and `report_code_counters` rows agree with them. Reports have
no photos and no reporter contact (the intake and derivatives benchmarks cover those).

How: numpy draws everything; the rows go to temporary tables by binary COPY (fixed-width fields, built
as numpy records); one INSERT ... SELECT per table turns codes into text and JSON, with the tables'
secondary indexes dropped during the load and rebuilt after, then ANALYZE.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FIT = Path(__file__).resolve().parent / "boston_fit.json"
US = 1_000_000
HOUR = 3600 * US
DAY = 24 * HOUR
PG_EPOCH_US = 946_684_800 * US  # 2000-01-01 UTC, the origin of PostgreSQL's binary timestamps
NULL_TIME = np.iinfo(np.int64).min  # binary -infinity: NULL after NULLIF
FEEDBACK_DAYS = 7

# Assumed shares and delays (see the module's docstring).
TRANSFER_SHARE = 0.05
DISPATCHER_PASSES_ON = 0.85
STARTED_SHARE = 0.6
RATED_SHARE = 0.4
RATINGS = (np.arange(1, 6), np.array([0.06, 0.06, 0.13, 0.35, 0.40]))
ACK_MEDIAN_H, ACK_SIGMA = 3.0, 1.3
DUPLICATE_RADIUS_M = 30
HOURS_PROFILE = np.array([1, 0.5, 0.3, 0.3, 0.5, 2, 5, 8, 10, 10, 9, 8, 6, 7, 8, 9, 9, 8, 7, 6, 5, 4, 3, 2],
                         dtype=float)
CHANNELS = (("app", 0.7), ("web", 0.2), ("open311", 0.1))

STATUSES = ("", "submitted", "routed", "acknowledged", "in_progress", "resolved", "closed", "rejected",
            "duplicate")
S = {name: i for i, name in enumerate(STATUSES)}
TYPES = ("submitted", "routed", "transferred", "acknowledged", "started", "resolved", "rejected", "feedback",
         "closed", "reopened", "duplicate", "supported", "overdue")
T = {name: i + 1 for i, name in enumerate(TYPES)}
ACTORS = ("resident", "officer", "system")
A = {name: i + 1 for i, name in enumerate(ACTORS)}
# Statuses that change the report's version (a transition), as the workflow and routing count them.
VERSIONED = ("routed", "transferred", "acknowledged", "started", "resolved", "rejected", "closed", "reopened",
             "duplicate")

NOTES = {
    "resolved": "Đã xử lý xong (benchmark) / Fixed (benchmark)",
    "rejected": "Không thuộc phạm vi xử lý (benchmark) / Not within scope (benchmark)",
    "transferred": "Chuyển đơn vị có thẩm quyền (benchmark) / Passed to the competent agency (benchmark)",
    "routed_no_rule": ("Không có quy tắc phân công cho lĩnh vực và địa bàn này: chuyển Trung tâm điều hành xử lý. / "
                       "No routing rule for this category and area: sent to the dispatcher."),
}


# --- the city, as the database has it ---------------------------------------------------------------------

@dataclass
class City:
    prefix: str
    calendar: Any  # services.calendar.WorkCalendar
    categories: list[dict[str, Any]]
    wards: list[dict[str, Any]]
    dispatcher: int
    agencies: list[int]  # the non-dispatcher agencies (transfers' targets)
    agency_codes: dict[int, str]
    rule_agency: np.ndarray  # [category index, ward index] -> agency id
    rule_id: np.ndarray  # ... -> rule id (0: no rule, the dispatcher)
    rule_area: np.ndarray  # ... -> the rule's area id


def load_city(conn) -> City:
    from hue_reports.services import routing
    from hue_reports.services.calendar import Swap, WorkCalendar

    city = conn.execute("SELECT id, timezone, report_code_prefix, calendar FROM cities ORDER BY id LIMIT 1").fetchone()
    if city is None:
        raise SystemExit("no city in this database: migrate and seed it first (flask db upgrade; flask seed)")
    swaps = [Swap(*row) for row in conn.execute(
        "SELECT day, kind, name, name_en FROM calendar_days WHERE city_id = %s", (city[0],))]
    cal = WorkCalendar.from_config(city[1], city[3], swaps)
    categories = [dict(zip(("id", "code", "group", "sla_hours"), row, strict=True)) for row in conn.execute(
        "SELECT c.id, c.code, g.code, c.sla_hours FROM categories c JOIN category_groups g ON g.id = c.group_id "
        "WHERE c.active ORDER BY c.id")]
    wards = [dict(zip(("id", "code", "population", "area_km2", "wkb"), row, strict=True)) for row in conn.execute(
        "SELECT id, code, population, coalesce(area_km2, ST_Area(geom::geography) / 1e6), ST_AsBinary(geom) "
        "FROM admin_areas WHERE tier = (SELECT max(tier) FROM admin_areas) AND valid_to IS NULL ORDER BY id")]
    agencies = conn.execute("SELECT id, code, kind FROM agencies WHERE active ORDER BY id").fetchall()
    dispatcher = next(a for a, _, kind in agencies if kind == "dispatcher")
    rules = conn.execute(
        "SELECT c.id, w.id, rule.agency_id, rule.rule_id, rule.rule_area_id FROM categories c "
        "CROSS JOIN admin_areas w LEFT JOIN LATERAL (" +
        routing.RULE_QUERY.format(area="w.id", category="c.id") + ") rule ON true "
        "WHERE w.id = ANY(%s) AND c.id = ANY(%s)", ([w["id"] for w in wards], [c["id"] for c in categories]))
    ci = {c["id"]: i for i, c in enumerate(categories)}
    wi = {w["id"]: i for i, w in enumerate(wards)}
    shape = (len(categories), len(wards))
    rule_agency, rule_id, rule_area = (np.full(shape, dispatcher, np.int64), np.zeros(shape, np.int64),
                                       np.zeros(shape, np.int64))
    for category_id, ward_id, agency_id, rid, area_id in rules:
        if agency_id is not None:
            key = ci[category_id], wi[ward_id]
            rule_agency[key], rule_id[key], rule_area[key] = agency_id, rid, area_id
    return City(city[2], cal, categories, wards, dispatcher, [a for a, _, kind in agencies if kind != "dispatcher"],
                {a: code for a, code, _ in agencies}, rule_agency, rule_id, rule_area)


class WorkClock:
    """`WorkCalendar.working_us` and `add_working_time` over arrays of instants (µs since 1970, UTC), from
    the working periods the calendar itself gives for each day of [first, last]."""

    def __init__(self, cal, first: date, last: date) -> None:
        starts, ends = [], []
        day = first
        while day <= last:
            for begin, end in cal._day(day)[0]:  # the calendar's own periods (clock changes, swaps, holidays)
                starts.append(_us(begin))
                ends.append(_us(end))
            day += timedelta(days=1)
        self.starts, self.ends = np.array(starts, np.int64), np.array(ends, np.int64)
        lengths = self.ends - self.starts
        self.before = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
        self.until = self.before + lengths

    def working(self, t: np.ndarray) -> np.ndarray:
        """Working µs from the first period to each instant."""
        i = np.maximum(np.searchsorted(self.starts, t, "right") - 1, 0)
        return self.before[i] + np.clip(t - self.starts[i], 0, self.ends[i] - self.starts[i])

    def add(self, t: np.ndarray, work_us: np.ndarray) -> np.ndarray:
        """The instants at which `work_us` working µs have elapsed since `t` (`t` itself for 0)."""
        target = self.working(t) + work_us
        j = np.searchsorted(self.until, target, "left")
        if (j >= len(self.starts)).any():
            raise ValueError("a deadline falls after the calendar's last day: extend WorkClock's range")
        return np.where(work_us == 0, t, self.starts[j] + (target - self.before[j]))


def _us(instant: datetime) -> int:
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _instant(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


# --- the draws ---------------------------------------------------------------------------------------------

class Durations:
    """A group's time to resolve: its quantile table, sampled by inverse transform, conditioned on landing
    on either side of a deadline window."""

    def __init__(self, probs: list[float], hours: list[float]) -> None:
        self.p = np.asarray(probs, float)
        # (strictly increasing, so the table inverts: ties, e.g. many 0 h, spread by a microsecond each)
        self.q = np.asarray(hours, float) * HOUR + np.arange(len(hours))

    def cdf(self, us: np.ndarray) -> np.ndarray:
        return np.interp(us, self.q, self.p)

    def quantile(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, self.p, self.q)

    def draw(self, rng, window_us: np.ndarray, on_time: np.ndarray, p_on: float) -> np.ndarray:
        """Late (probability 1 - p_on): the table's upper part, above its p_on quantile, and after the
        deadline. On time: the table's lower part, and where that is after this report's deadline (the
        city's deadlines are tighter than Boston's targets), done in the last 40% of the time allowed
        instead: work that is rushed to meet its deadline."""
        n = len(window_us)
        u = rng.random(n)
        early = np.minimum(self.quantile(u * p_on), (window_us * rng.uniform(0.6, 1.0, n)))
        late = np.maximum(self.quantile(p_on + u * (1 - p_on)), window_us + 60 * US)
        return np.where(on_time, early, late).astype(np.int64)

    def draw_hours(self, rng, n: int) -> np.ndarray:
        """The table as it is, whatever the deadline (`--delays hours`)."""
        return self.quantile(rng.random(n)).astype(np.int64)


def points_in_wards(rng, wards: list[dict[str, Any]], counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`counts[i]` uniform points inside ward i's polygon (rejection sampling in its bounding box)."""
    import shapely

    lon, lat = np.empty(counts.sum()), np.empty(counts.sum())
    at = 0
    for ward, k in zip(wards, counts, strict=True):
        geom = shapely.from_wkb(ward["wkb"])
        shapely.prepare(geom)
        x0, y0, x1, y1 = geom.bounds
        got = 0
        while got < k:
            m = int((k - got) * 1.3 / max(0.05, geom.area / ((x1 - x0) * (y1 - y0)))) + 16
            x, y = x0 + rng.random(m) * (x1 - x0), y0 + rng.random(m) * (y1 - y0)
            inside = shapely.contains_xy(geom, x, y)
            x, y = x[inside][:k - got], y[inside][:k - got]
            lon[at + got:at + got + len(x)], lat[at + got:at + got + len(x)] = x, y
            got += len(x)
        at += k
    return lon, lat


def ward_weights(wards: list[dict[str, Any]]) -> np.ndarray:
    """Population, or for a ward without one, the median density times its area."""
    densities = [w["population"] / w["area_km2"] for w in wards if w["population"] and w["area_km2"]]
    median = float(np.median(densities)) if densities else 1.0
    weights = np.array([w["population"] or median * float(w["area_km2"] or 1) for w in wards], float)
    return weights / weights.sum()


@dataclass
class History:
    """Everything drawn, one entry per report (in submission order, which is id order)."""

    n: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None


def draw(city: City, fit: dict[str, Any], n: int, now_us: int, days: int, seed: int,
         delays: str = "deadlines") -> History:
    rng = np.random.default_rng(seed)
    cats = city.categories
    share = np.array([fit["category_share"].get(c["code"], 0.003) for c in cats])
    cat = rng.choice(len(cats), size=n, p=share / share.sum())
    groups = sorted({c["group"] for c in cats})
    group_of_cat = np.array([groups.index(c["group"]) for c in cats])
    grp = group_of_cat[cat]
    params = [fit["groups"].get(g) or fit["groups"]["other"] for g in groups]

    # When: a day (busier lately), then a local hour.
    start_us = now_us - days * DAY
    u = rng.random(n)
    growth = 2.0  # intensity 1 + growth * x over the period: 3x at the end
    x = (np.sqrt(1 + growth * (2 + growth) * u) - 1) / growth  # inverse of the CDF (x + growth x^2 / 2) / (1 + g/2)
    tz = city.calendar.tz
    first_day = _instant(start_us).astimezone(tz).date()
    day_index = np.minimum((x * days).astype(np.int64), days - 1)
    midnights = np.array([_us(datetime.combine(first_day + timedelta(days=int(d)), datetime.min.time(), tz))
                          for d in range(days + 1)], np.int64)
    hour = rng.choice(24, size=n, p=HOURS_PROFILE / HOURS_PROFILE.sum())
    sub = midnights[day_index] + hour * HOUR + (rng.random(n) * HOUR).astype(np.int64)
    sub = np.minimum(sub, now_us - 10 * 60 * US)

    # Where: wards by population, points inside them.
    ward = rng.choice(len(city.wards), size=n, p=ward_weights(city.wards))
    order = np.argsort(ward, kind="stable")
    lon, lat = np.empty(n), np.empty(n)
    lon[order], lat[order] = points_in_wards(rng, city.wards, np.bincount(ward, minlength=len(city.wards)))

    clock = WorkClock(city.calendar, first_day - timedelta(days=2),
                      _instant(now_us).astimezone(tz).date() + timedelta(days=120))
    sla_us = np.array([int(Decimal(c["sla_hours"]) * HOUR) for c in cats], np.int64)[cat]
    due0 = clock.add(sub, sla_us)
    routed = sub + rng.integers(2 * US, 90 * US, n)
    agency0 = city.rule_agency[cat, ward]
    rule_id, rule_area = city.rule_id[cat, ward], city.rule_area[cat, ward]

    # Outcomes per kind of work.
    p = lambda key: np.array([g[key] for g in params])[grp]  # noqa: E731
    r = rng.random(n)
    is_dup = r < p("duplicates")
    rejected = ~is_dup & (r < p("duplicates") + p("rejected"))
    stalled = ~is_dup & ~rejected & (r < p("duplicates") + p("rejected") + p("stalled"))
    resolves = ~(is_dup | rejected | stalled)
    on_time = rng.random(n) < p("on_time")
    d1 = np.zeros(n, np.int64)
    for gi, g in enumerate(params):
        dist = Durations(fit["probs"], g["quantiles"])
        m = grp == gi
        d1[m] = dist.draw(rng, due0[m] - sub[m], on_time[m], g["on_time"]) if delays == "deadlines" else \
            dist.draw_hours(rng, int(m.sum()))
    res1 = np.maximum(sub + d1, routed + 60 * US)
    ack_delay = (np.exp(rng.normal(np.log(ACK_MEDIAN_H), ACK_SIGMA, n)) * HOUR).astype(np.int64)

    # Transfers: most of what reaches the dispatcher, a few others; before the acknowledgement.
    to_dispatcher = agency0 == city.dispatcher
    transferred = np.where(to_dispatcher, rng.random(n) < DISPATCHER_PASSES_ON, rng.random(n) < TRANSFER_SHARE)
    transferred &= ~is_dup
    pool = np.array(city.agencies)
    agency1 = pool[rng.integers(0, len(pool), n)]
    clash = agency1 == agency0
    agency1[clash] = pool[(np.searchsorted(pool, agency1[clash]) + 1) % len(pool)]

    # The agency's steps (NULL_TIME: never). Each is after the one before.
    never = np.full(n, NULL_TIME, np.int64)
    end1 = np.where(resolves, res1, np.where(rejected, routed + ack_delay * 2, never))
    ack = np.where(resolves, routed + np.minimum(ack_delay, (res1 - routed) // 2), never)
    ack = np.where(stalled & (rng.random(n) < 0.6), routed + ack_delay, ack)
    ack = np.where(rejected & (rng.random(n) < 0.5), routed + ack_delay, ack)
    transfer_t = np.where(transferred, routed + ((np.where(ack != NULL_TIME, ack, routed + ack_delay) - routed)
                                                 * rng.uniform(0.2, 0.8, n)).astype(np.int64), never)
    ack = np.where((ack != NULL_TIME) & transferred, np.maximum(ack, transfer_t + US), ack)
    started = np.where(resolves & (rng.random(n) < STARTED_SHARE),
                       ack + (np.maximum(0, res1 - ack) * rng.uniform(0.1, 0.5, n)).astype(np.int64), never)
    started = np.where(stalled & (ack != NULL_TIME) & (rng.random(n) < 0.5), ack + ack_delay, started)
    rejected_t = np.where(rejected, np.maximum(end1, np.where(ack != NULL_TIME, ack, routed) + US), never)
    res1 = np.where(resolves, np.maximum(res1, np.maximum(ack, started) + US), never)

    # The resident's side after a fix: a rating (a low one reopens), or closed after FEEDBACK_DAYS.
    rated = (res1 != NULL_TIME) & (rng.random(n) < RATED_SHARE)
    rating = rng.choice(RATINGS[0], size=n, p=RATINGS[1])
    fb = np.where(rated, res1 + rng.integers(HOUR // 2, FEEDBACK_DAYS * DAY - HOUR, n), never)
    reopen = rated & (rating <= 2)
    reopen &= fb <= now_us  # (what happens later is cut by _censor; its deadline is beyond the clock's range)
    due2 = np.where(reopen, clock.add(np.where(reopen, fb, sub), sla_us), never)
    d2 = np.zeros(n, np.int64)
    on_time2 = rng.random(n) < p("on_time")
    for gi, g in enumerate(params):
        dist = Durations(fit["probs"], g["quantiles"])
        m = (grp == gi) & reopen
        d2[m] = dist.draw(rng, due2[m] - fb[m], on_time2[m], g["on_time"]) if delays == "deadlines" else \
            dist.draw_hours(rng, int(m.sum()))
    res2 = np.where(reopen, fb + np.maximum(d2, 60 * US), never)
    closed_rated = np.where(rated & ~reopen, fb, never)
    last_fix = np.where(reopen, res2, res1)
    closed_unrated = np.where((res1 != NULL_TIME) & (~rated | reopen),
                              last_fix + FEEDBACK_DAYS * DAY + rng.integers(0, 10 * 60 * US, n), never)

    h = History(n)
    h.arrays.update(cat=cat, grp=grp, ward=ward, lon=lon, lat=lat, sub=sub, routed=routed, due0=due0,
                    sla_us=sla_us, agency0=agency0, agency1=agency1, rule_id=rule_id, rule_area=rule_area,
                    is_dup=is_dup, transferred=transferred, transfer_t=transfer_t, ack=ack, started=started,
                    res1=res1, rejected_t=rejected_t, rated=rated, rating=rating, fb=fb, reopen=reopen, due2=due2,
                    res2=res2, closed_rated=closed_rated, closed_unrated=closed_unrated,
                    channel=rng.choice(len(CHANNELS), size=n, p=[c[1] for c in CHANNELS]),
                    accuracy=rng.uniform(3, 30, n).round(1), on_time=on_time)
    _duplicates(rng, h, now_us)
    _censor(h, now_us)
    _sort_by_submission(h)
    h.arrays["clock"] = clock  # (kept for checks)
    return h


def _duplicates(rng, h: History, now_us: int) -> None:
    """Each duplicate joins an earlier report of its category that is open for at least an hour after it
    was submitted: submitted within 7 days of it and while it is open, within 30 m of it."""
    dups = np.flatnonzero(h.is_dup)
    end = np.where(h.res1 != NULL_TIME, h.res1, np.where(h.rejected_t != NULL_TIME, h.rejected_t, now_us))
    end = np.minimum(np.minimum(end, now_us), h.sub + 7 * DAY)
    eligible = np.flatnonzero(~h.is_dup & (end - h.routed > HOUR))
    host = eligible[rng.integers(0, len(eligible), len(dups))]
    span = end[host] - h.routed[host] - 5 * 60 * US
    dup_sub = h.routed[host] + 60 * US + (rng.random(len(dups)) * span).astype(np.int64)
    dup_ev = dup_sub + rng.integers(2 * US, 90 * US, len(dups))
    # ~ uniform in a disc of DUPLICATE_RADIUS_M around the original
    radius = DUPLICATE_RADIUS_M * np.sqrt(rng.random(len(dups)))
    angle = rng.random(len(dups)) * 2 * np.pi
    dlat = radius * np.sin(angle) / 111_320
    dlon = radius * np.cos(angle) / (111_320 * np.cos(np.radians(h.lat[host])))
    a = h.arrays
    for name in ("cat", "grp", "ward", "sla_us"):
        a[name][dups] = a[name][host]
    a["lon"][dups], a["lat"][dups] = h.lon[host] + dlon, h.lat[host] + dlat
    a["sub"][dups] = dup_sub
    # The original's agency when the duplicate was decided, and at the end (transfers move duplicates).
    moved = h.transferred[host] & (h.transfer_t[host] < dup_ev)
    held_then = np.where(moved, h.agency1[host], h.agency0[host])
    a["dup_host"] = np.full(h.n, -1, np.int64)
    a["dup_host"][dups] = host
    a["dup_ev"] = np.full(h.n, NULL_TIME, np.int64)
    a["dup_ev"][dups] = dup_ev
    a["dup_agency"] = np.zeros(h.n, np.int64)
    a["dup_agency"][dups] = held_then
    a["dup_distance"] = np.zeros(h.n)
    a["dup_distance"][dups] = radius.round(1)
    for name in ("routed", "transfer_t", "ack", "started", "res1", "rejected_t", "fb", "due2", "res2",
                 "closed_rated", "closed_unrated"):
        a[name][dups] = NULL_TIME
    for name in ("transferred", "rated", "reopen"):
        a[name][dups] = False


def _censor(h: History, now_us: int) -> None:
    """What has not happened by `now` did not happen (and nothing after it in the same chain)."""
    a = h.arrays
    chain = ("routed", "transfer_t", "ack", "started", "res1", "rejected_t", "fb", "closed_rated", "res2",
             "closed_unrated")
    for name in chain:
        a[name] = np.where(a[name] > now_us, NULL_TIME, a[name])
    # (a later step cannot have happened if an earlier one of the same chain did not)
    gone = (a["routed"] == NULL_TIME) & ~h.is_dup
    for name in chain[1:]:
        a[name][gone] = NULL_TIME
    a["transferred"] &= a["transfer_t"] != NULL_TIME
    # an acknowledgement after a transfer that has not happened yet has not happened either
    a["ack"][h.transferred & ~a["transferred"]] = NULL_TIME
    a["started"][a["ack"] == NULL_TIME] = NULL_TIME
    a["res1"][(a["ack"] == NULL_TIME)] = NULL_TIME
    a["rejected_t"][h.transferred & ~a["transferred"]] = NULL_TIME
    a["rated"] &= (a["fb"] != NULL_TIME) & (a["res1"] != NULL_TIME)
    a["fb"][~a["rated"]] = NULL_TIME
    a["reopen"] &= a["rated"]
    a["due2"][~a["reopen"]] = NULL_TIME
    a["res2"][~a["reopen"]] = NULL_TIME
    a["closed_rated"][~(a["rated"] & ~a["reopen"])] = NULL_TIME
    a["closed_unrated"][a["res1"] == NULL_TIME] = NULL_TIME
    a["closed_unrated"][a["reopen"] & (a["res2"] == NULL_TIME)] = NULL_TIME
    a["closed_unrated"][a["rated"] & ~a["reopen"]] = NULL_TIME


def _sort_by_submission(h: History) -> None:
    order = np.argsort(h.sub, kind="stable")
    rank = np.empty(h.n, np.int64)
    rank[order] = np.arange(h.n)
    for name, values in list(h.arrays.items()):
        h.arrays[name] = values[order]
    h.arrays["dup_host"] = np.where(h.dup_host >= 0, rank[np.maximum(h.dup_host, 0)], -1)


# --- the final state, and the events ----------------------------------------------------------------------

def final_state(h: History) -> dict[str, np.ndarray]:
    """Each report's row: status, agency, timestamps, deadline, version, supporters."""
    has = lambda t: t != NULL_TIME  # noqa: E731
    status = np.full(h.n, S["submitted"], np.int16)
    status[has(h.routed)] = S["routed"]
    status[has(h.ack)] = S["acknowledged"]
    status[has(h.started)] = S["in_progress"]
    status[has(h.rejected_t)] = S["rejected"]
    status[has(h.res1)] = S["resolved"]
    status[has(h.closed_rated)] = S["closed"]
    status[h.reopen] = S["in_progress"]
    status[h.reopen & has(h.res2)] = S["resolved"]
    status[has(h.closed_unrated)] = S["closed"]
    status[h.is_dup] = S["duplicate"]
    supporters = np.bincount(h.dup_host[h.is_dup], minlength=h.n)
    agency = np.where(h.transferred, h.agency1, h.agency0)
    agency = np.where(h.is_dup, agency[np.maximum(h.dup_host, 0)], agency)
    agency = np.where((status == S["submitted"]), 0, agency)
    resolved_at = np.where(h.reopen, h.res2, h.res1)
    closed_at = np.where(has(h.closed_rated), h.closed_rated, h.closed_unrated)
    due = np.where(h.reopen, h.due2, np.where(has(h.routed), h.due0, NULL_TIME))
    return {"status": status, "agency": agency, "resolved_at": resolved_at, "closed_at": closed_at, "due": due,
            "supporters": supporters}


EVENT_DTYPE = np.dtype([("rid", np.int64), ("type", np.int16), ("t", np.int64), ("agency", np.int64),
                        ("from", np.int16), ("to", np.int16), ("actor", np.int16), ("x_t1", np.int64),
                        ("x_t2", np.int64), ("x_i", np.int64), ("x_j", np.int64), ("x_f", np.float64),
                        ("order", np.int16)])


def events_of(h: History, ids: np.ndarray, lo: int, hi: int, now_us: int) -> np.ndarray:
    """The events of reports [lo, hi), in the order they were written (by report, time, step)."""
    parts = []
    sl = slice(lo, hi)
    idx = np.arange(lo, hi)

    def add(mask, type_, t, agency, from_, to, actor, order, x_t1=None, x_t2=None, x_i=None, x_j=None, x_f=None):
        k = int(mask.sum())
        if not k:
            return
        e = np.zeros(k, EVENT_DTYPE)
        e["rid"] = ids[idx[mask]]
        e["type"], e["t"], e["actor"], e["order"] = T[type_], t[mask], A[actor], order
        e["agency"] = agency[mask] if isinstance(agency, np.ndarray) else agency
        e["from"] = from_[mask] if isinstance(from_, np.ndarray) else from_
        e["to"] = to[mask] if isinstance(to, np.ndarray) else to
        for name, value in (("x_t1", x_t1), ("x_t2", x_t2), ("x_i", x_i), ("x_j", x_j), ("x_f", x_f)):
            e[name] = (value[mask] if isinstance(value, np.ndarray) else value) if value is not None else (
                NULL_TIME if name.startswith("x_t") else 0)
        parts.append(e)

    has = lambda t: t[sl] != NULL_TIME  # noqa: E731
    yes = np.ones(hi - lo, bool)
    sub, routed, ack, started, res1 = h.sub[sl], h.routed[sl], h.ack[sl], h.started[sl], h.res1[sl]
    a0, a1 = h.agency0[sl], h.agency1[sl]
    holder = np.where(h.transferred[sl], a1, a0)
    dup = h.is_dup[sl]
    sla_h = h.sla_us[sl] / HOUR
    add(yes, "submitted", sub, 0, 0, S["submitted"], "resident", 0)
    add(has(h.routed), "routed", routed, a0, S["submitted"], S["routed"], "system", 1, x_t1=h.due0[sl], x_t2=sub,
        x_i=h.rule_id[sl], x_j=h.rule_area[sl], x_f=sla_h)
    add(h.transferred[sl], "transferred", h.transfer_t[sl], a1, S["routed"], S["routed"], "officer", 2, x_i=a0)
    add(has(h.ack), "acknowledged", ack, holder, S["routed"], S["acknowledged"], "officer", 3)
    add(has(h.started), "started", started, holder, S["acknowledged"], S["in_progress"], "officer", 4)
    from_res = np.where(started != NULL_TIME, S["in_progress"], S["acknowledged"])
    add(has(h.res1), "resolved", res1, holder, from_res, S["resolved"], "officer", 5)
    from_rej = np.where(ack != NULL_TIME, S["acknowledged"], S["routed"])
    add(has(h.rejected_t), "rejected", h.rejected_t[sl], holder, from_rej, S["rejected"], "officer", 5)
    rated, reopen = h.rated[sl], h.reopen[sl]
    rating = h.rating[sl]
    add(rated, "feedback", h.fb[sl], holder, 0, 0, "resident", 6, x_i=rating)
    add(rated & ~reopen, "closed", h.fb[sl], holder, S["resolved"], S["closed"], "resident", 7, x_i=rating)
    add(reopen, "reopened", h.fb[sl], holder, S["resolved"], S["in_progress"], "resident", 7, x_t1=h.due2[sl],
        x_t2=h.fb[sl], x_i=rating, x_f=sla_h)
    add(has(h.res2), "resolved", h.res2[sl], holder, S["in_progress"], S["resolved"], "officer", 8)
    add(has(h.closed_unrated), "closed", h.closed_unrated[sl], holder, S["resolved"], S["closed"], "system", 9)
    add(dup, "duplicate", h.dup_ev[sl], h.dup_agency[sl], S["submitted"], S["duplicate"], "system", 1,
        x_i=h.dup_host[sl], x_f=h.dup_distance[sl])
    # The originals' `supported` events, for the duplicates of any report in [lo, hi).
    dups = np.flatnonzero(h.is_dup & (h.dup_host >= lo) & (h.dup_host < hi))
    if len(dups):
        e = np.zeros(len(dups), EVENT_DTYPE)
        e["rid"], e["type"], e["t"], e["actor"], e["order"] = ids[h.dup_host[dups]], T["supported"], h.dup_ev[dups], \
            A["system"], 10
        e["agency"], e["x_i"], e["x_t1"], e["x_t2"] = h.dup_agency[dups], dups, NULL_TIME, NULL_TIME
        parts.append(e)
    # The scheduler's `overdue` events: a deadline passed while the report was open (swept within 5 min).
    for due, begun, done in ((h.due0[sl], sub, np.where(res1 != NULL_TIME, res1, h.rejected_t[sl])),
                             (h.due2[sl], h.fb[sl], h.res2[sl])):
        flagged = due + 60 * US + (idx * 7919 % 240) * US
        late = (due != NULL_TIME) & (begun != NULL_TIME) & ~dup & (flagged <= now_us) & (
            (done == NULL_TIME) | (done > flagged))
        at_status = np.select([(started != NULL_TIME) & (started <= flagged) | (begun != sub),
                               (ack != NULL_TIME) & (ack <= flagged)], [S["in_progress"], S["acknowledged"]],
                              S["routed"])
        at_agency = np.where(h.transferred[sl] & (h.transfer_t[sl] <= flagged), a1, a0)
        add(late, "overdue", flagged, at_agency, 0, 0, "system", 11, x_t1=due, x_i=at_status)
    events = np.concatenate(parts)
    events = events[np.lexsort((events["order"], events["t"], events["rid"]))]
    return events


# --- binary COPY ------------------------------------------------------------------------------------------

def binary_copy(cursor, table: str, columns: list[tuple[str, str, np.ndarray]]) -> None:
    """COPY numpy columns (name, PostgreSQL type, values) into `table` in PostgreSQL's binary format."""
    sizes = {"int2": (">i2", 2), "int4": (">i4", 4), "int8": (">i8", 8), "float8": (">f8", 8),
             "timestamptz": (">i8", 8)}
    fields = [("n", ">i2")]
    for name, kind, _ in columns:
        fields += [(f"{name}_len", ">i4"), (name, sizes[kind][0])]
    n = len(columns[0][2])
    rows = np.zeros(n, np.dtype(fields))
    rows["n"] = len(columns)
    for name, kind, values in columns:
        rows[f"{name}_len"] = sizes[kind][1]
        if kind == "timestamptz":
            values = np.where(values == NULL_TIME, NULL_TIME, values - PG_EPOCH_US)
        rows[name] = values
    with cursor.copy(f"COPY {table} ({', '.join(c[0] for c in columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8)
        view = rows.view(np.uint8).reshape(n, -1) if n else rows
        for i in range(0, n, 200_000):
            copy.write(view[i:i + 200_000].tobytes())
        copy.write(b"\xff\xff")


REPORTS_SQL = """
INSERT INTO reports (id, public_code, category_id, description, location, location_source, location_accuracy_m,
                     ward_id, status, agency_id, channel, submitted_at, routed_at, acknowledged_at, resolved_at,
                     closed_at, due_at, version, duplicate_of_id, supporters, created_at, updated_at)
SELECT s.id, %(prefix)s || '-' || s.year || '-' || lpad(s.seq::text, greatest(6, length(s.seq::text)), '0'),
       s.category_id,
       coalesce(c.description, c.name) || ' (benchmark)', ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326), 'client',
       s.accuracy, s.ward_id, (%(statuses)s::text[])[s.status], NULLIF(s.agency_id, 0),
       (%(channels)s::text[])[s.channel + 1], s.submitted_at, NULLIF(s.routed_at, '-infinity'),
       NULLIF(s.acknowledged_at, '-infinity'), NULLIF(s.resolved_at, '-infinity'), NULLIF(s.closed_at, '-infinity'),
       NULLIF(s.due_at, '-infinity'), s.version, NULLIF(s.duplicate_of_id, 0), s.supporters, s.submitted_at,
       s.updated_at
FROM bench_reports s JOIN categories c ON c.id = s.category_id
"""

EVENTS_SQL = """
INSERT INTO report_events (id, report_id, created_at, type, actor_kind, from_status, to_status, agency_id, note,
                           public, data)
SELECT e.id, e.report_id, e.t, (%(types)s::text[])[e.type], (%(actors)s::text[])[e.actor],
       (%(statuses)s::text[])[e.from_st], (%(statuses)s::text[])[e.to_st],
       NULLIF(e.agency_id, 0),
       CASE e.type WHEN %(t_resolved)s THEN %(n_resolved)s WHEN %(t_rejected)s THEN %(n_rejected)s
                   WHEN %(t_transferred)s THEN %(n_transferred)s
                   WHEN %(t_routed)s THEN CASE WHEN e.x_i = 0 THEN %(n_routed_no_rule)s END END,
       true,
       CASE e.type
         WHEN %(t_submitted)s THEN '{"photos": 0}'::jsonb
         WHEN %(t_routed)s THEN
           CASE WHEN e.x_i = 0 THEN jsonb_build_object('rule_id', NULL, 'reason', 'no_rule')
                ELSE jsonb_build_object('rule_id', e.x_i, 'area_id', e.x_j) END
           || jsonb_build_object('sla_hours', e.x_f, 'due_at', e.x_t1, 'due_from', e.x_t2)
         WHEN %(t_transferred)s THEN jsonb_build_object(
           'from_agency', (SELECT code FROM agencies WHERE id = e.x_i), 'from_agency_id', e.x_i,
           'to_agency', (SELECT code FROM agencies WHERE id = e.agency_id))
         WHEN %(t_feedback)s THEN jsonb_build_object('rating', e.x_i)
         WHEN %(t_closed)s THEN CASE WHEN e.actor = %(a_resident)s
           THEN jsonb_build_object('reason', 'rated', 'rating', e.x_i) ELSE '{"reason": "no_feedback"}'::jsonb END
         WHEN %(t_reopened)s THEN jsonb_build_object('reason', 'unsatisfied', 'rating', e.x_i, 'due_at', e.x_t1,
           'sla_hours', e.x_f, 'due_from', e.x_t2)
         WHEN %(t_duplicate)s THEN jsonb_build_object(
           'duplicate_of', (SELECT public_code FROM reports WHERE id = e.x_i), 'distance_m', e.x_f)
         WHEN %(t_supported)s THEN jsonb_build_object(
           'report', (SELECT public_code FROM reports WHERE id = e.x_i), 'moved', 0)
         WHEN %(t_overdue)s THEN jsonb_build_object('due_at', e.x_t1,
           'due_epoch', CAST(CAST(extract(epoch FROM e.x_t1) AS bigint) AS text),
           'status', (%(statuses)s::text[])[e.x_i])
         ELSE '{}'::jsonb END
FROM bench_events e
"""


@dataclass
class Made:
    reports: int
    events: int
    feedback: int
    open: int
    open_overdue: int
    seconds: float
    phases: dict[str, float]

    def __str__(self) -> str:
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in self.phases.items())
        return (f"{self.reports:,} reports ({self.open:,} open, {self.open_overdue:,} of them overdue), "
                f"{self.events:,} events, {self.feedback:,} ratings in {self.seconds:.1f} s ({phases})")


def generate(url: str, n: int = 1_000_000, *, days: int = 730, seed: int = 2026, now: datetime | None = None,
             delays: str = "deadlines", fit_path: Path = FIT, chunk: int = 250_000, log=None) -> Made:
    """Generate `n` reports with their events into the database at `url` (migrated and seeded with a city).
    Commits. Returns what it made and how long each phase took."""
    import psycopg

    began = time.perf_counter()
    phases: dict[str, float] = {}
    mark = [began]

    def phase(name: str) -> None:
        t = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + t - mark[0]
        mark[0] = t
        if log:
            log(f"  {name}: {phases[name]:.1f} s")

    fit = json.loads(fit_path.read_text(encoding="utf-8"))
    now_us = _us(now or datetime.now(UTC))
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET maintenance_work_mem = '512MB'")
        city = load_city(conn)
        first_report = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM reports").fetchone()[0]
        first_event = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM report_events").fetchone()[0]
        phase("read the city")
        h = draw(city, fit, n, now_us, days, seed, delays)
        check_clock(h, city)
        state = final_state(h)
        ids = first_report + np.arange(n, dtype=np.int64)
        phase("draw")

        cur = conn.cursor()
        cur.execute("CREATE TEMP TABLE bench_reports (id int8, year int4, seq int8, category_id int4, lon float8, "
                    "lat float8, accuracy float8, ward_id int4, status int2, agency_id int8, channel int2, "
                    "submitted_at timestamptz, routed_at timestamptz, acknowledged_at timestamptz, "
                    "resolved_at timestamptz, closed_at timestamptz, due_at timestamptz, version int4, "
                    "duplicate_of_id int8, supporters int4, updated_at timestamptz) ON COMMIT DROP")
        cur.execute("CREATE TEMP TABLE bench_events (id int8, report_id int8, type int2, t timestamptz, "
                    "agency_id int8, from_st int2, to_st int2, actor int2, x_t1 timestamptz, x_t2 timestamptz, "
                    "x_i int8, x_j int8, x_f float8) ON COMMIT DROP")
        years, seqs = code_numbers(conn, city, h.sub, now_us)
        cat_ids = np.array([c["id"] for c in city.categories])[h.cat]
        ward_ids = np.array([w["id"] for w in city.wards])[h.ward]
        # Events, chunk by chunk (their count is the report's version, their last time its updated_at).
        total_events, next_id = 0, first_event
        version, updated = np.ones(n, np.int64), h.sub.copy()
        versioned = np.array([T[t] for t in VERSIONED])
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            events = events_of(h, ids, lo, hi, now_us)
            rows = events["rid"] - first_report
            version += np.bincount(rows[np.isin(events["type"], versioned)], minlength=n)
            np.maximum.at(updated, rows, events["t"])
            event_ids = next_id + np.arange(len(events), dtype=np.int64)
            next_id += len(events)
            total_events += len(events)
            x_i = events["x_i"].copy()
            ref = np.isin(events["type"], (T["duplicate"], T["supported"]))
            x_i[ref] = ids[x_i[ref]]  # (report indexes -> ids)
            binary_copy(cur, "bench_events", [
                ("id", "int8", event_ids), ("report_id", "int8", events["rid"]), ("type", "int2", events["type"]),
                ("t", "timestamptz", events["t"]), ("agency_id", "int8", events["agency"]),
                ("from_st", "int2", events["from"]), ("to_st", "int2", events["to"]),
                ("actor", "int2", events["actor"]), ("x_t1", "timestamptz", events["x_t1"]),
                ("x_t2", "timestamptz", events["x_t2"]), ("x_i", "int8", x_i), ("x_j", "int8", events["x_j"]),
                ("x_f", "float8", events["x_f"])])
        dup_of = np.where(h.is_dup, ids[np.maximum(h.dup_host, 0)], 0)
        binary_copy(cur, "bench_reports", [
            ("id", "int8", ids), ("year", "int4", years), ("seq", "int8", seqs), ("category_id", "int4", cat_ids),
            ("lon", "float8", h.lon), ("lat", "float8", h.lat), ("accuracy", "float8", h.accuracy),
            ("ward_id", "int4", ward_ids), ("status", "int2", state["status"]), ("agency_id", "int8", state["agency"]),
            ("channel", "int2", h.channel), ("submitted_at", "timestamptz", h.sub),
            ("routed_at", "timestamptz", h.routed), ("acknowledged_at", "timestamptz", h.ack),
            ("resolved_at", "timestamptz", state["resolved_at"]), ("closed_at", "timestamptz", state["closed_at"]),
            ("due_at", "timestamptz", state["due"]), ("version", "int4", version),
            ("duplicate_of_id", "int8", dup_of), ("supporters", "int4", state["supporters"]),
            ("updated_at", "timestamptz", updated)])
        phase("COPY")

        saved = drop_indexes(cur, ("reports", "report_events", "feedback"))
        # (PostgreSQL arrays count from 1, as the codes do: code 0 is NULL)
        params = {"prefix": city.prefix, "statuses": list(STATUSES[1:]), "channels": [c for c, _ in CHANNELS],
                  "types": list(TYPES), "actors": list(ACTORS), "a_resident": A["resident"],
                  **{f"t_{t}": T[t] for t in TYPES},
                  **{f"n_{k}": v for k, v in NOTES.items()}}
        cur.execute(REPORTS_SQL, params)
        phase("insert reports")
        cur.execute(EVENTS_SQL, params)
        phase("insert events")
        cur.execute("INSERT INTO feedback (report_id, rating, created_at) "
                    "SELECT report_id, x_i, t FROM bench_events WHERE type = %s", (T["feedback"],))
        feedback = cur.rowcount
        cur.execute("""INSERT INTO report_code_counters (prefix, year, last_value)
                       SELECT %s, year, max(seq) FROM bench_reports GROUP BY year
                       ON CONFLICT (prefix, year) DO UPDATE SET last_value =
                           greatest(report_code_counters.last_value, excluded.last_value)""", (city.prefix,))
        for table in ("reports", "report_events", "feedback"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT coalesce(max(id), 1) FROM {table}))")
        phase("insert feedback")
        for statement in saved:
            cur.execute(statement)
        phase("indexes")
        conn.commit()
        conn.autocommit = True
        for table in ("reports", "report_events", "feedback"):
            conn.execute(f"VACUUM ANALYZE {table}")
        phase("vacuum analyze")
    status = state["status"]
    open_ = np.isin(status, [S[s] for s in ("submitted", "routed", "acknowledged", "in_progress")])
    overdue = open_ & (state["due"] != NULL_TIME) & (state["due"] < now_us)
    return Made(n, total_events, feedback, int(open_.sum()), int(overdue.sum()), time.perf_counter() - began,
                phases)


def code_numbers(conn, city: City, sub: np.ndarray, now_us: int) -> tuple[np.ndarray, np.ndarray]:
    """Each report's public code: the local year of its submission and its number in that year's series,
    after the numbers the series has already given."""
    tz = city.calendar.tz
    first = _instant(sub.min()).astimezone(tz).year
    last = _instant(now_us).astimezone(tz).year
    bounds = np.array([_us(datetime(y, 1, 1, tzinfo=tz)) for y in range(first, last + 2)], np.int64)
    year = first + np.searchsorted(bounds, sub, "right") - 1
    used = dict(conn.execute("SELECT year, last_value FROM report_code_counters WHERE prefix = %s",
                             (city.prefix,)).fetchall())
    seq = np.zeros(len(sub), np.int64)
    for y in np.unique(year):
        m = year == y
        seq[m] = used.get(int(y), 0) + np.arange(1, m.sum() + 1)  # (sub is sorted: numbers follow time)
    return year, seq


def check_clock(h: History, city: City, sample: int = 500) -> None:
    """The vectorised deadlines are the calendar's own (on a sample)."""
    routed = np.flatnonzero(h.routed != NULL_TIME)
    for i in routed[:: max(1, len(routed) // sample)][:sample]:
        want = city.calendar.add_working_time(_instant(h.sub[i]), Decimal(int(h.sla_us[i])) / HOUR)
        if _us(want) != h.due0[i]:
            raise AssertionError(f"deadline of report {i}: {_instant(h.due0[i])}, the calendar says {want}")


def drop_indexes(cur, tables: tuple[str, ...]) -> list[str]:
    """Drop the tables' indexes that back no constraint; returns the statements that recreate them."""
    cur.execute("""
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""", (list(tables),))
    rows = cur.fetchall()
    for name, _ in rows:
        cur.execute(f"DROP INDEX {name}")
    return [definition for _, definition in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--delays", choices=("deadlines", "hours"), default="deadlines",
                        help="deadlines (default): each kind of work as often on time as in Boston, on the city's "
                        "deadlines; hours: Boston's times to resolve as they are, whatever the deadline")
    parser.add_argument("--database-url", help="a database migrated and seeded with the city (default: a "
                        "throw-away one on the project-local servers, dropped afterwards)")
    args = parser.parse_args()

    def run(url: str) -> None:
        made = generate(url, args.n, days=args.days, seed=args.seed, delays=args.delays, log=print)
        print(f"generated {made}")

    if args.database_url:
        run(args.database_url)
    else:
        from common import bench_stack

        with bench_stack() as env:
            run(env["DATABASE_URL"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

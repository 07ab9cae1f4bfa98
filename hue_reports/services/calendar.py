"""The city's working-time calendar: SLA deadlines count working hours, not clock hours.

A report's deadline is its submission time plus its category's SLA in working hours
on the city's calendar, which is data (City.calendar, from the data set's calendar.yaml):

* the working weekdays (ISO numbers, 1 = Monday) and the working periods of a day in
  local wall-clock time, e.g. 07:30-11:30 and 13:30-17:00;
* the public holidays of a country of the `holidays` package (which computes the lunar
  dates), with the package's own rules for days off in lieu, but WITHOUT the package's
  one-off special days: a government's yearly swaps (an extra day off bridging a holiday
  and a weekend, paid back by a make-up working Saturday) come from our data only
  (CalendarDay rows), so that they have one source and one place to be corrected;
* the city's IANA time zone.

Semantics (all of them in `WorkCalendar`):

* Time is real elapsed time between instants; the periods are placed in the zone's local
  wall time. On a day a clock change touches a period, that period is as much shorter or
  longer as the officers' day is. A wall time that does not exist (skipped when clocks go
  forward) is placed at the end of the gap; an ambiguous one (clocks going back) at its
  first occurrence.
* `add_working_time(start, 0)` is `start` itself (in UTC), wherever it falls.
* Otherwise counting begins at `start` if that is working time, else at the start of the
  next working period; and a deadline reached exactly at the end of a period is that end
  (Friday 17:00), not the start of the next period (Monday 07:30).
* A period is the half-open [start, end) for `is_working_time`: 17:00 itself is not
  working time, although a deadline may be 17:00.
"""

from __future__ import annotations

import time as clock
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package
from flask import current_app
from sqlalchemy import delete, select

from ..extensions import db
from ..models import CALENDAR_DAY_KINDS, CalendarDay, City

DAY_OFF, WORKING_DAY = CALENDAR_DAY_KINDS
DayName = tuple[str, str]  # (Vietnamese, English)

CALENDAR_CACHE_SECONDS = 60
# The origin of WorkCalendar.working_us (a local date; any fixed date works, readings are only subtracted).
WORKING_EPOCH = date(2020, 1, 1)
# add_working_time gives up after this many consecutive days without working time.
MAX_DAYS_WITHOUT_WORK = 3 * 366
CONFIG_KEYS = ("holidays", "weekdays", "periods")

_MICROSECONDS_PER_HOUR = 3_600_000_000
_HOUR = timedelta(hours=1)
_WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEKDAYS_VI = ("T2", "T3", "T4", "T5", "T6", "T7", "CN")
_DEFAULT_NAMES = {DAY_OFF: ("Ngày nghỉ", "Day off"), WORKING_DAY: ("Ngày làm bù", "Make-up working day")}


class CalendarNotConfigured(LookupError):
    """The city has no working calendar (or no city is loaded): deadlines cannot be computed."""


class SwapLike(Protocol):
    """A CalendarDay row or a Swap."""

    day: date
    kind: str
    name: str
    name_en: str


@dataclass(frozen=True)
class Swap:
    """A government swap: an extra day off (`day_off`) or a make-up working day (`working_day`)."""

    day: date
    kind: str
    name: str
    name_en: str


@dataclass(frozen=True)
class SpecialDay:
    """A day that breaks the weekly pattern: a working weekday off, or a make-up working day."""

    day: date
    working: bool
    name: DayName


def weekday_label(day: date) -> str:
    """'Thu (T5)': the English and Vietnamese abbreviations, independent of the process locale."""
    return f"{_WEEKDAYS_EN[day.weekday()]} ({_WEEKDAYS_VI[day.weekday()]})"


# --- public holidays from the `holidays` package ---------------------------------------------------------------

def _holiday_table(country: str, language: str | None, year: int) -> dict[date, str]:
    table = holidays_package.country_holidays(country, language=language)
    # Leave out the package's one-off days (special_*_holidays: the yearly swaps, which are our data).
    # They are added when a year is populated, which has not happened yet: no years were given.
    for attribute in dir(table):
        if attribute.startswith("special_") and isinstance(getattr(table, attribute, None), dict):
            setattr(table, attribute, {})
    table.has_special_holidays = False
    for populated in (year - 1, year, year + 1):  # a day off in lieu may cross the new year
        _ = date(populated, 1, 1) in table  # with expand=True, looking a day up populates its year
    return {day: name for day, name in table.items() if day.year == year}


def _languages(country: str) -> tuple[str | None, str | None]:
    """The languages for the (Vietnamese, English) names, as the package supports them."""
    table = holidays_package.country_holidays(country)
    supported = tuple(table.supported_languages)
    default = table.default_language
    vi = "vi" if "vi" in supported else default
    en = next((lang for lang in ("en_US", "en", "en_GB") if lang in supported),
              next((lang for lang in supported if lang.startswith("en")), default))
    return vi, en


@lru_cache(maxsize=256)
def statutory_holidays(country: str, year: int) -> Mapping[date, DayName]:
    """The public holidays of `country` in `year` by the `holidays` package, with its days off in lieu
    but without its special one-off days: {day: (Vietnamese name, English name)}."""
    vi, en = _languages(country)
    names_vi = _holiday_table(country, vi, year)
    names_en = _holiday_table(country, en, year) if en != vi else names_vi
    return MappingProxyType({day: (names_vi[day], names_en.get(day, names_vi[day])) for day in sorted(names_vi)})


@lru_cache(maxsize=1)  # the package's list takes ~75 ms to build
def supported_countries() -> frozenset[str]:
    return frozenset(holidays_package.list_supported_countries())


# --- configuration ---------------------------------------------------------------------------------------------

def zone(name: Any) -> ZoneInfo:
    """The IANA time zone `name`, or a ValueError that says so."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"time zone must be an IANA name such as 'Asia/Ho_Chi_Minh', not {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc


def _wall_time(value: Any, where: str) -> time:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 13:30 as the sexagesimal number 810.
        raise ValueError(f"{where}: {value!r} is a number: write times as quoted strings, e.g. \"13:30\"")
    if not isinstance(value, str):
        raise ValueError(f"{where}: a time is a string \"HH:MM\", not {value!r}")
    try:
        parsed = time.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is not None or len(value) < 5:
        raise ValueError(f"{where}: {value!r} is not a time \"HH:MM\" (00:00 to 23:59)")
    return parsed


def _format_time(value: time) -> str:
    return value.strftime("%H:%M") if not (value.second or value.microsecond) else value.isoformat()


def parse_config(config: Any) -> tuple[str | None, frozenset[int], tuple[tuple[time, time], ...]]:
    """The (holidays country, weekdays, periods) of a City.calendar / calendar.yaml mapping, checked:
    {"holidays": "VN" or null, "weekdays": [1, 2, 3, 4, 5], "periods": [["07:30", "11:30"], ...]}."""
    if not isinstance(config, Mapping):
        raise ValueError("the calendar must be a mapping with holidays, weekdays and periods")
    unknown = sorted(set(config) - set(CONFIG_KEYS), key=str)
    if unknown:
        raise ValueError(f"unknown calendar setting(s) {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(CONFIG_KEYS)})")
    missing = [key for key in ("weekdays", "periods") if key not in config]
    if missing:
        raise ValueError(f"the calendar needs {' and '.join(missing)}")
    country = config.get("holidays")
    if country is not None and (not isinstance(country, str) or country not in supported_countries()):
        raise ValueError(f"holidays: {country!r} is not a country code of the `holidays` package (e.g. VN)")
    weekdays = config["weekdays"]
    if (not isinstance(weekdays, list) or not weekdays or len(set(weekdays)) != len(weekdays)
            or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 7 for d in weekdays)):
        raise ValueError(f"weekdays: a list of distinct ISO weekday numbers (1 = Monday ... 7 = Sunday), "
                         f"not {weekdays!r}")
    raw_periods = config["periods"]
    if not isinstance(raw_periods, list) or not raw_periods:
        raise ValueError(f"periods: a list of [start, end] pairs such as [\"07:30\", \"11:30\"], not {raw_periods!r}")
    periods = []
    for n, period in enumerate(raw_periods, 1):
        if not isinstance(period, (list, tuple)) or len(period) != 2:
            raise ValueError(f"periods: period {n} must be a pair [start, end], not {period!r}")
        periods.append((_wall_time(period[0], f"periods: period {n}"), _wall_time(period[1], f"periods: period {n}")))
    return country, frozenset(weekdays), check_periods(periods)


def check_periods(periods: Iterable[tuple[time, time]]) -> tuple[tuple[time, time], ...]:
    """The periods as a tuple, or a ValueError: each start before its end, in order, not overlapping."""
    checked = tuple((start, end) for start, end in periods)
    if not checked:
        raise ValueError("periods: a working day needs at least one working period")
    for n, (start, end) in enumerate(checked, 1):
        if not (isinstance(start, time) and isinstance(end, time)) or start.tzinfo or end.tzinfo:
            raise ValueError(f"periods: period {n} must be two naive datetime.time values")
        if not start < end:
            raise ValueError(f"periods: period {n} ({_format_time(start)}-{_format_time(end)}) must start "
                             f"before it ends")
        if n > 1 and start < checked[n - 2][1]:
            previous = checked[n - 2]
            raise ValueError(f"periods: period {n} ({_format_time(start)}-{_format_time(end)}) must start at or "
                             f"after the end of period {n - 1} ({_format_time(previous[0])}-"
                             f"{_format_time(previous[1])}): periods are in order and do not overlap")
    return checked


def _named(days: Mapping[date, DayName] | Iterable[date], kind: str) -> dict[date, DayName]:
    if isinstance(days, Mapping):
        return {day: (name[0], name[1]) for day, name in days.items()}
    return {day: _DEFAULT_NAMES[kind] for day in days}


def _to_microseconds(hours: float | Decimal) -> int:
    if isinstance(hours, bool) or not isinstance(hours, (int, float, Decimal)):
        raise TypeError(f"hours must be a number, not {type(hours).__name__}")
    exact = Decimal(hours)  # a float's exact binary value: rounding happens once, below
    if not exact.is_finite() or exact < 0:
        raise ValueError(f"hours must be a finite number >= 0, not {hours!r}")
    return int((exact * _MICROSECONDS_PER_HOUR).to_integral_value())


def _utc(instant: datetime, what: str) -> datetime:
    if not isinstance(instant, datetime) or instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime (with a time zone), not {instant!r}")
    return instant.astimezone(UTC)


_Day = tuple[tuple[tuple[datetime, datetime], ...], timedelta]  # (UTC intervals, their total)
_NO_WORK: _Day = ((), timedelta(0))


class WorkCalendar:
    """A working-time calendar. Pure: no database, no application; safe to share between threads.

    `holidays` is a country code of the `holidays` package (None: no public holidays); its
    holidays are computed per year when first needed, so the calendar works for any year.
    `days_off` and `working_days` are the swaps (dates, or {date: (name_vi, name_en)}).
    A make-up working day is working even on a weekend or holiday; a day off is not working;
    otherwise a day works if its ISO weekday is in `weekdays` and it is not a public holiday.
    """

    def __init__(self, tz: tzinfo, weekdays: Iterable[int], periods: Iterable[tuple[time, time]], *,
                 holidays: str | None = None, days_off: Mapping[date, DayName] | Iterable[date] = (),
                 working_days: Mapping[date, DayName] | Iterable[date] = ()) -> None:
        if not isinstance(tz, tzinfo):
            raise ValueError(f"tz must be a time zone (zoneinfo.ZoneInfo), not {tz!r}")
        self.tz = tz
        self.weekdays = frozenset(weekdays)
        if not self.weekdays or not self.weekdays <= set(range(1, 8)):
            raise ValueError(f"weekdays: ISO weekday numbers 1 (Monday) to 7 (Sunday), at least one, "
                             f"not {sorted(self.weekdays)}")
        self.periods = check_periods(periods)
        if holidays is not None and holidays not in supported_countries():
            raise ValueError(f"holidays: {holidays!r} is not a country code of the `holidays` package")
        self.holidays = holidays
        self._days_off = _named(days_off, DAY_OFF)
        self._working_days = _named(working_days, WORKING_DAY)
        both = sorted(set(self._days_off) & set(self._working_days))
        if both:
            raise ValueError(f"{', '.join(map(str, both))}: both a day off and a working day")
        self._days: dict[date, _Day] = {}
        # working_us: the working microseconds before each day since WORKING_EPOCH, filled on demand
        self._before: list[int] = [0]

    @classmethod
    def from_config(cls, timezone: str, config: Any, swaps: Iterable[SwapLike] = ()) -> WorkCalendar:
        """The calendar of a City row's timezone and calendar settings, with its swaps (CalendarDay rows)."""
        country, weekdays, periods = parse_config(config)
        days: dict[str, dict[date, DayName]] = {DAY_OFF: {}, WORKING_DAY: {}}
        for swap in swaps:
            if swap.kind not in days:
                raise ValueError(f"{swap.day}: kind must be one of {', '.join(CALENDAR_DAY_KINDS)}, not {swap.kind!r}")
            days[swap.kind][swap.day] = (swap.name, swap.name_en)
        return cls(zone(timezone), weekdays, periods, holidays=country, days_off=days[DAY_OFF],
                   working_days=days[WORKING_DAY])

    def config(self) -> dict[str, Any]:
        """The settings as stored in City.calendar (JSON)."""
        return {"holidays": self.holidays, "weekdays": sorted(self.weekdays),
                "periods": [[_format_time(start), _format_time(end)] for start, end in self.periods]}

    def without_swaps(self) -> WorkCalendar:
        return WorkCalendar(self.tz, self.weekdays, self.periods, holidays=self.holidays)

    def __repr__(self) -> str:
        return (f"<WorkCalendar {self.tz} {self.config()} {len(self._days_off)} days off, "
                f"{len(self._working_days)} working days>")

    # --- days ---

    def public_holidays(self, year: int) -> Mapping[date, DayName]:
        return statutory_holidays(self.holidays, year) if self.holidays else MappingProxyType({})

    def is_working_day(self, day: date) -> bool:
        if day in self._working_days:
            return True
        if day in self._days_off:
            return False
        return day.isoweekday() in self.weekdays and day not in self.public_holidays(day.year)

    def day_off_name(self, day: date) -> DayName | None:
        """(Vietnamese, English) name of the holiday or swapped day off on `day` (also on a weekend);
        None on a working day or an ordinary weekend day."""
        if day in self._working_days:
            return None
        return self._days_off.get(day) or self.public_holidays(day.year).get(day)

    def working_day_name(self, day: date) -> DayName | None:
        """(Vietnamese, English) name of the make-up working day on `day`, else None."""
        return self._working_days.get(day)

    def working_hours(self, day: date) -> float:
        """The working hours of `day` (its periods' real length: a clock change makes them differ)."""
        return self._day(day)[1] / _HOUR

    def special_days(self, year: int) -> list[SpecialDay]:
        """Every weekday of `weekdays` that is not worked, and every other day that is, in `year`."""
        found = []
        day, end = date(year, 1, 1), date(year + 1, 1, 1)
        while day < end:
            weekday = day.isoweekday() in self.weekdays
            if self.is_working_day(day) != weekday:
                name = self.working_day_name(day) if not weekday else self.day_off_name(day)
                found.append(SpecialDay(day, not weekday, name or _DEFAULT_NAMES[DAY_OFF if weekday else WORKING_DAY]))
            day += timedelta(days=1)
        return found

    def _instant(self, day: date, wall: time) -> datetime:
        """The UTC instant of the local wall time `wall` on `day`."""
        naive = datetime.combine(day, wall)
        local = naive.replace(tzinfo=self.tz)  # fold=0: an ambiguous wall time is its first occurrence
        instant = local.astimezone(UTC)
        if instant.astimezone(self.tz).replace(tzinfo=None) == naive:
            return instant
        # `naive` was skipped (clocks went forward): the end of the gap, the first instant whose wall
        # time is later. fold=1 takes the offset after the change, an instant before it; fold=0 after it.
        low, high = local.replace(fold=1).astimezone(UTC), instant
        if low >= high:
            return high
        while high - low > timedelta(microseconds=1):
            middle = low + (high - low) // 2
            if middle.astimezone(self.tz).replace(tzinfo=None) >= naive:
                high = middle
            else:
                low = middle
        return high

    def _day(self, day: date) -> _Day:
        """The working intervals of `day` in UTC, in order and disjoint, and their total length."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        if not self.is_working_day(day):
            result = _NO_WORK
        else:
            intervals = []
            for start, end in self.periods:
                # Wall time to instant is monotone (see _instant), so the intervals stay in order.
                interval = (self._instant(day, start), self._instant(day, end))
                if interval[1] > interval[0]:
                    intervals.append(interval)
            result = (tuple(intervals), sum((b - a for a, b in intervals), timedelta(0)))
        if len(self._days) > 20_000:
            self._days.clear()
        self._days[day] = result
        return result

    def _local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.tz).date()

    # --- instants ---

    def is_working_time(self, instant: datetime) -> bool:
        """Whether `instant` is inside a working period, [start, end)."""
        at = _utc(instant, "instant")
        return any(start <= at < end for start, end in self._day(self._local_date(at))[0])

    def add_working_time(self, start: datetime, hours: float | Decimal) -> datetime:
        """The instant (aware, UTC) at which `hours` working hours have elapsed since `start`.

        0 hours is `start` itself. Otherwise counting begins at `start` if it is working time, else at
        the start of the next working period; a deadline reached exactly at the end of a period is that
        end, not the start of the next period. `hours` is rounded to the microsecond. Raises ValueError
        for negative hours, a naive `start`, or no working time in MAX_DAYS_WITHOUT_WORK days.
        """
        remaining = timedelta(microseconds=_to_microseconds(hours))
        at = _utc(start, "start")
        if not remaining:
            return at
        day = self._local_date(at)
        idle = 0
        first = True
        while True:
            intervals, total = self._day(day)
            if not total:
                idle += 1
                if idle > MAX_DAYS_WITHOUT_WORK:
                    raise ValueError(f"no working time in the {MAX_DAYS_WITHOUT_WORK} days after {start.isoformat()}: "
                                     "the calendar has no working days")
            elif not first and remaining > total:
                idle = 0
                remaining -= total  # a whole working day
            else:
                idle = 0
                for begin, end in intervals:
                    if end <= at:
                        continue
                    begin = max(begin, at)
                    if remaining <= end - begin:
                        return begin + remaining
                    remaining -= end - begin
            first = False
            day += timedelta(days=1)

    def working_time_between(self, a: datetime, b: datetime) -> float:
        """Working hours from `a` to `b` (negative if `b` is before `a`), exact to the microsecond
        before the conversion to a float of hours."""
        begin, end = _utc(a, "a"), _utc(b, "b")
        if end < begin:
            return -self.working_time_between(b, a)
        total = timedelta(0)
        day, last = self._local_date(begin), self._local_date(end)
        while day <= last:
            intervals, day_total = self._day(day)
            if intervals and intervals[0][0] >= begin and intervals[-1][1] <= end:
                total += day_total
            else:
                for start, stop in intervals:
                    low, high = max(start, begin), min(stop, end)
                    if high > low:
                        total += high - low
            day += timedelta(days=1)
        return total / _HOUR

    def working_us(self, instant: datetime) -> int:
        """The working microseconds from WORKING_EPOCH (local midnight) to `instant` (negative before it).

        A clock of working time: working_us(b) - working_us(a) is the working time from a to b, exactly
        (working_time_between(a, b) in microseconds), so a duration can be computed later from two stored
        readings. The metrics store readings and subtract them in SQL.
        """
        at = _utc(instant, "instant")
        day = self._local_date(at)
        partial = sum(((min(stop, at) - start) for start, stop in self._day(day)[0] if start < at), timedelta(0))
        return self._working_before(day) + partial // timedelta(microseconds=1)

    def _working_before(self, day: date) -> int:
        """Working microseconds from WORKING_EPOCH to the start of local `day`."""
        index = (day - WORKING_EPOCH).days
        if index < 0:  # (before the epoch: rare, not cached)
            total, current = 0, day
            while current < WORKING_EPOCH:
                total -= self._day(current)[1] // timedelta(microseconds=1)
                current += timedelta(days=1)
            return total
        before = self._before
        while len(before) <= index:
            current = WORKING_EPOCH + timedelta(days=len(before) - 1)
            before.append(before[-1] + self._day(current)[1] // timedelta(microseconds=1))
        return before[index]


# --- the swaps ------------------------------------------------------------------------------------------------

def check_swaps(base: WorkCalendar, swaps: Iterable[SwapLike]) -> None:
    """Refuse swaps that make no sense on `base` (a calendar without swaps): a day off that is not a
    working weekday (a weekend day, or already a public holiday), a make-up working day on a working
    weekday or a public holiday, an unknown kind, an empty name, the same date twice."""
    seen: set[date] = set()
    for swap in swaps:
        day = swap.day
        if not isinstance(day, date) or isinstance(day, datetime):
            raise ValueError(f"{day!r} is not a date (YYYY-MM-DD)")
        if day in seen:
            raise ValueError(f"{day} is given twice")
        seen.add(day)
        if swap.kind not in CALENDAR_DAY_KINDS:
            raise ValueError(f"{day}: kind must be one of {', '.join(CALENDAR_DAY_KINDS)}, not {swap.kind!r}")
        for field in ("name", "name_en"):
            value = getattr(swap, field)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{day}: {field} must be a non-empty string")
            if len(value) > 200:
                raise ValueError(f"{day}: {field} is longer than 200 characters")
        on_weekday = day.isoweekday() in base.weekdays
        holiday = base.public_holidays(day.year).get(day)
        label = f"{day} ({weekday_label(day)})"
        if swap.kind == DAY_OFF and not on_weekday:
            raise ValueError(f"{label} is already a weekend day: a day_off is a working weekday given off")
        if swap.kind == WORKING_DAY and on_weekday:
            raise ValueError(f"{label} is already a working weekday: a working_day is a make-up day "
                             "on a weekend day")
        if holiday:
            raise ValueError(f"{label} is already a public holiday ({holiday[0]} / {holiday[1]}) in the "
                             f"`holidays` package's {base.holidays} calendar")


# --- the database ---------------------------------------------------------------------------------------------

def _city(city_id: int | None) -> City:
    query = select(City).order_by(City.id).limit(1) if city_id is None else select(City).where(City.id == city_id)
    city = db.session.scalars(query).first()
    if city is None:
        raise CalendarNotConfigured("no city is loaded (flask seed)" if city_id is None else f"no city {city_id}")
    return city


def build_calendar(city: City) -> WorkCalendar:
    """The calendar of a City row and its CalendarDay rows (not cached)."""
    if city.calendar is None:
        raise CalendarNotConfigured(f"city {city.code} ({city.name_en}) has no working calendar: its data set "
                                    "needs calendar.yaml (then flask seed)")
    swaps = db.session.scalars(select(CalendarDay).where(CalendarDay.city_id == city.id)).all()
    return WorkCalendar.from_config(city.timezone, city.calendar, swaps)


def city_calendar(city_id: int | None = None) -> WorkCalendar:
    """The working calendar of city `city_id` (default: the city this instance serves), from the database;
    cached per process for a minute (it changes by admin action). Raises CalendarNotConfigured."""
    cache: dict[int | None, tuple[WorkCalendar, float]] = current_app.extensions.setdefault("hue_calendars", {})
    cached = cache.get(city_id)
    if cached and cached[1] > clock.monotonic():
        return cached[0]
    calendar = build_calendar(_city(city_id))
    cache[city_id] = (calendar, clock.monotonic() + CALENDAR_CACHE_SECONDS)
    return calendar


def forget_calendars() -> None:
    """Drop this process's cached calendars (after a calendar changed here)."""
    current_app.extensions.pop("hue_calendars", None)


class YearHasSwaps(ValueError):
    """The year already has swaps and replacing them was not asked for."""


def save_year(city: City, year: int, swaps: list[Swap], *, actor: Any, replace: bool = False) -> int:
    """Record the government's swaps of `year` for `city` and commit, with the audit entry of `actor` (an
    audit.Actor); with `replace`, instead of those the year has. Refuses (ValueError) swaps outside the
    year or that make no sense (check_swaps), and a year that already has swaps without `replace`. Returns
    the number of swaps the year had before."""
    from . import audit
    outside = [str(s.day) for s in swaps if s.day.year != year]
    if outside:
        raise ValueError(f"{', '.join(outside)}: not in {year}")
    if city.calendar is None:
        raise CalendarNotConfigured(f"city {city.code} has no working calendar: load its calendar.yaml first")
    check_swaps(WorkCalendar.from_config(city.timezone, city.calendar), swaps)
    in_year = (CalendarDay.city_id == city.id) & (CalendarDay.day >= date(year, 1, 1)) & (
        CalendarDay.day < date(year + 1, 1, 1))
    existing = db.session.scalars(select(CalendarDay).where(in_year).order_by(CalendarDay.day)).all()
    if existing and not replace:
        raise YearHasSwaps(f"{year} already has {len(existing)} swap(s) "
                           f"({', '.join(str(d.day) for d in existing)}): --replace to replace them")
    before = [{"day": d.day, "kind": d.kind, "name": d.name, "name_en": d.name_en} for d in existing]
    db.session.execute(delete(CalendarDay).where(in_year))
    db.session.add_all(CalendarDay(city_id=city.id, day=s.day, kind=s.kind, name=s.name.strip(),
                                   name_en=s.name_en.strip()) for s in swaps)
    audit.record(actor, "calendar.set_year", "calendar", f"{city.code}:{year}", {"swaps": before}, {"swaps": [
        {"day": s.day, "kind": s.kind, "name": s.name.strip(), "name_en": s.name_en.strip()} for s in swaps]})
    from . import metrics  # (the metrics read this module; imported here to keep the import graph one-way)

    changed = {(d["day"], d["kind"]) for d in before} ^ {(s.day, s.kind) for s in swaps}
    metrics.calendar_changed({day for day, _ in changed})
    db.session.commit()
    forget_calendars()
    return len(existing)

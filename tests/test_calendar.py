"""The working-time calendar deadlines are counted on: properties (hypothesis) and worked examples on the
pure WorkCalendar, the data set's swaps checked against the `holidays` package, then the database loader,
the seed and `flask calendar`."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import holidays
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from hue_reports.cli import DEFAULT_DATA_DIR
from hue_reports.models import CalendarDay, City
from hue_reports.services import calendar, seed
from hue_reports.services.calendar import Swap, WorkCalendar
from tests.support import flask_cli

DATA = yaml.safe_load((DEFAULT_DATA_DIR / "calendar.yaml").read_text(encoding="utf-8"))
TZ_NAME = yaml.safe_load((DEFAULT_DATA_DIR / "city.yaml").read_text(encoding="utf-8"))["timezone"]
HUE = ZoneInfo(TZ_NAME)
SWAPS = [Swap(e["date"], e["kind"], e["name"], e["name_en"]) for days in DATA["swaps"].values() for e in days or []]
CAL = WorkCalendar.from_config(TZ_NAME, {k: v for k, v in DATA.items() if k != "swaps"}, SWAPS)
US = timedelta(microseconds=1)
PROPERTIES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def hue(*args) -> datetime:
    return datetime(*args, tzinfo=HUE)


def local(instant: datetime, tz=HUE) -> datetime:
    return instant.astimezone(tz)


# --- the data set ------------------------------------------------------------------------------------------------

def test_the_data_is_huế_office_hours_on_vietnams_holidays():
    assert (TZ_NAME, DATA["holidays"], DATA["weekdays"]) == ("Asia/Ho_Chi_Minh", "VN", [1, 2, 3, 4, 5])
    assert DATA["periods"] == [["07:30", "11:30"], ["13:30", "17:00"]]
    assert set(DATA["swaps"]) >= {2025, 2026, 2027}
    assert DATA["swaps"][2027] == []  # nothing announced yet: the year is there, empty, to be filled in
    assert {(s.day, s.kind) for s in SWAPS if s.day.year in (2025, 2026)} == {
        (date(2025, 5, 2), "day_off"), (date(2025, 4, 26), "working_day"),
        (date(2026, 8, 31), "day_off"), (date(2026, 8, 22), "working_day")}


def test_the_package_holidays_leave_out_the_packages_own_swaps():
    """holidays.VN has its own list of the yearly swaps; ours come from the data set only."""
    full = holidays.VN(years=[2025, 2026])
    assert date(2025, 5, 2) in full and date(2026, 8, 31) in full
    ours = {**calendar.statutory_holidays("VN", 2025), **calendar.statutory_holidays("VN", 2026)}
    assert set(full) - set(ours) == {date(2025, 5, 2), date(2026, 8, 31)}
    assert set(ours) <= set(full)
    assert ours[date(2026, 4, 27)] == ("Ngày Giỗ Tổ Hùng Vương (nghỉ bù)", "Hung Kings' Commemoration Day (observed)")
    assert ours[date(2026, 2, 17)] == ("Tết Nguyên Đán", "Lunar New Year")


@pytest.mark.parametrize("year", sorted(y for y, days in DATA["swaps"].items() if days and y <= 2026))
def test_the_data_reproduces_the_packages_swaps(year):
    """The data cannot drift from the `holidays` package: the weekdays off and the make-up days of each year
    the package knows are the same (with its special days, which our calendar leaves out)."""
    assert year in (2024, 2025, 2026)
    full = holidays.VN(years=year)
    days = [d for d in (date(year, 1, 1) + timedelta(days=n) for n in range(366)) if d.year == year]
    ours_off = {d for d in days if d.weekday() < 5 and not CAL.is_working_day(d)}
    assert ours_off == {d for d in full if d.weekday() < 5}
    ours_worked = {d for d in days if d.weekday() >= 5 and CAL.is_working_day(d)}
    assert ours_worked == {d for d in full.weekend_workdays if d.year == year}


# --- worked examples -----------------------------------------------------------------------------------------------

def test_friday_1630_plus_one_hour_is_monday_0800():
    due = CAL.add_working_time(hue(2026, 3, 6, 16, 30), 1)
    assert due.tzinfo is UTC and local(due) == hue(2026, 3, 9, 8, 0)
    assert CAL.working_time_between(hue(2026, 3, 6, 16, 30), hue(2026, 3, 9, 8, 0)) == 1.0


def test_the_usual_sla_of_52_5_hours_is_seven_working_days():
    assert local(CAL.add_working_time(hue(2026, 3, 2, 7, 30), Decimal("52.5"))) == hue(2026, 3, 10, 17, 0)
    # Submitted on a Sunday: counting starts on Monday morning.
    assert local(CAL.add_working_time(hue(2026, 3, 1, 9, 0), 52.5)) == hue(2026, 3, 10, 17, 0)


def test_tet_2026_is_skipped():
    """Monday 16 to Friday 20 February 2026 are Tết: 1 h on Friday 13, 1 h on Monday 23."""
    assert local(CAL.add_working_time(hue(2026, 2, 13, 16, 0), 2)) == hue(2026, 2, 23, 8, 30)
    assert [CAL.is_working_day(date(2026, 2, d)) for d in range(13, 24)] == [
        True, False, False, False, False, False, False, False, False, False, True]


def test_the_swapped_saturday_works_and_the_swapped_friday_does_not():
    assert CAL.is_working_day(date(2025, 4, 26)) and not CAL.is_working_day(date(2025, 5, 2))
    assert local(CAL.add_working_time(hue(2025, 4, 25, 16, 0), 2)) == hue(2025, 4, 26, 8, 30)
    # Tuesday 29 April 16:00 + 8.5 h: 1 h on Tuesday, then 30/4, 1/5, 2/5 and the weekend off, and all of
    # Monday 5 May, to its very end (the end of a period, not the next morning).
    assert local(CAL.add_working_time(hue(2025, 4, 29, 16, 0), 8.5)) == hue(2025, 5, 5, 17, 0)
    assert CAL.working_day_name(date(2025, 4, 26))[1].startswith("Make-up working day")
    assert CAL.day_off_name(date(2025, 5, 2))[0].startswith("Ngày nghỉ hoán đổi")


def test_the_observed_hung_kings_day_2026_is_off():
    assert not CAL.is_working_day(date(2026, 4, 27))
    assert local(CAL.add_working_time(hue(2026, 4, 24, 17, 0), 1)) == hue(2026, 4, 28, 8, 30)


def test_a_deadline_at_the_end_of_a_period_is_that_end():
    assert local(CAL.add_working_time(hue(2026, 3, 2, 7, 30), 4)) == hue(2026, 3, 2, 11, 30)
    assert local(CAL.add_working_time(hue(2026, 3, 2, 7, 30), 4 + 1 / 3.6e9)) == hue(2026, 3, 2, 13, 30, 0, 1)
    assert local(CAL.add_working_time(hue(2026, 3, 6, 7, 30), 7.5)) == hue(2026, 3, 6, 17, 0)


def test_zero_hours_is_the_start_itself_wherever_it_is():
    sunday = hue(2026, 3, 1, 3, 14, 15, 926535)
    assert CAL.add_working_time(sunday, 0) == sunday and CAL.add_working_time(sunday, 0).tzinfo is UTC
    assert CAL.add_working_time(hue(2026, 3, 2, 12, 0), Decimal(0)) == hue(2026, 3, 2, 12, 0)


def test_counting_starts_at_the_next_period_from_a_break():
    assert local(CAL.add_working_time(hue(2026, 3, 2, 12, 0), 0.5)) == hue(2026, 3, 2, 14, 0)
    assert local(CAL.add_working_time(hue(2026, 3, 2, 17, 0), 0.5)) == hue(2026, 3, 3, 8, 0)
    assert local(CAL.add_working_time(hue(2026, 3, 2, 5, 0), 0.5)) == hue(2026, 3, 2, 8, 0)


def test_working_time_is_half_open():
    assert CAL.is_working_time(hue(2026, 3, 2, 7, 30)) and CAL.is_working_time(hue(2026, 3, 2, 16, 59, 59, 999999))
    assert not CAL.is_working_time(hue(2026, 3, 2, 17, 0)) and not CAL.is_working_time(hue(2026, 3, 2, 12, 0))
    assert not CAL.is_working_time(hue(2026, 2, 17, 9, 0))


def test_between_is_antisymmetric_and_counts_only_working_time():
    a, b = hue(2026, 2, 13, 16, 0), hue(2026, 2, 23, 8, 30)
    assert CAL.working_time_between(a, b) == 2.0 and CAL.working_time_between(b, a) == -2.0
    assert CAL.working_time_between(a, a) == 0.0
    assert CAL.working_time_between(hue(2026, 3, 2, 0, 0), hue(2026, 3, 9, 0, 0)) == 37.5


def test_a_year_without_swaps_in_the_data_still_has_its_holidays():
    assert not CAL.is_working_day(date(2030, 9, 2)) and CAL.is_working_day(date(2030, 9, 4))
    assert CAL.day_off_name(date(2030, 9, 2)) == ("Quốc khánh", "National Day")


def test_special_days_of_2026():
    special = {(s.day, s.working) for s in CAL.special_days(2026)}
    assert (date(2026, 8, 22), True) in special and (date(2026, 8, 31), False) in special
    assert {d for d, working in special if not working} >= {date(2026, 2, 16), date(2026, 4, 27), date(2026, 11, 24)}
    assert sum(CAL.is_working_day(date(2026, 1, 1) + timedelta(days=n)) for n in range(365)) == 249


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="aware"):
        CAL.add_working_time(datetime(2026, 3, 2, 8, 0), 1)
    with pytest.raises(ValueError, match=">= 0"):
        CAL.add_working_time(hue(2026, 3, 2, 8, 0), -1)
    with pytest.raises(ValueError, match=">= 0"):
        CAL.add_working_time(hue(2026, 3, 2, 8, 0), float("nan"))
    with pytest.raises(ValueError, match="aware"):
        CAL.working_time_between(hue(2026, 3, 2, 8, 0), datetime(2026, 3, 2, 9, 0))


def test_a_calendar_without_any_working_time_raises_instead_of_looping():
    mondays = {date(2025, 1, 6) + timedelta(weeks=n) for n in range(53 * 5)}
    cal = WorkCalendar(HUE, [1], [(time(8), time(9))], days_off=mondays)
    with pytest.raises(ValueError, match="no working time"):
        cal.add_working_time(hue(2025, 1, 1), 1)
    assert cal.working_time_between(hue(2025, 1, 1), hue(2028, 1, 1)) == 0.0


@pytest.mark.parametrize(("periods", "message"), [
    ([], "at least one"),
    ([(time(9), time(8))], "must start before it ends"),
    ([(time(8), time(8))], "must start before it ends"),
    ([(time(13), time(17)), (time(8), time(12))], "in order and do not overlap"),
    ([(time(8), time(12)), (time(11), time(17))], "in order and do not overlap"),
])
def test_invalid_periods_are_refused(periods, message):
    with pytest.raises(ValueError, match=message):
        WorkCalendar(HUE, [1, 2, 3, 4, 5], periods)


@pytest.mark.parametrize(("config", "message"), [
    ({"holidays": "VN", "weekdays": [1, 2], "periods": [["07:30", 810]]}, "is a number: write times as quoted"),
    ({"holidays": "VN", "weekdays": [1, 2], "periods": [["7h30", "11:30"]]}, "is not a time"),
    ({"holidays": "VN", "weekdays": [0, 1], "periods": [["07:30", "11:30"]]}, "ISO weekday numbers"),
    ({"holidays": "VN", "weekdays": [], "periods": [["07:30", "11:30"]]}, "ISO weekday numbers"),
    ({"holidays": "XX", "weekdays": [1], "periods": [["07:30", "11:30"]]}, "not a country code"),
    ({"holidays": "VN", "weekday": [1], "periods": [["07:30", "11:30"]]}, "unknown calendar setting"),
    ({"holidays": "VN", "weekdays": [1], "periods": [["07:30"]]}, "must be a pair"),
])
def test_invalid_settings_are_refused_with_a_clear_message(config, message):
    with pytest.raises(ValueError, match=message):
        WorkCalendar.from_config(TZ_NAME, config)


def test_the_yaml_trap_of_unquoted_times_is_explained():
    config = yaml.safe_load("weekdays: [1]\nperiods: [[07:30, 13:30]]\n")
    assert config["periods"] == [["07:30", 810]]  # YAML 1.1 sexagesimal: why times are quoted
    with pytest.raises(ValueError, match='"13:30"'):
        WorkCalendar.from_config(TZ_NAME, config)


# --- clock changes -------------------------------------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
NIGHT_SHIFT = WorkCalendar(BERLIN, range(1, 8), [(time(1), time(4))])


def test_a_period_across_a_clock_change_lasts_the_real_time():
    """On 29 March 2026 Berlin's clocks skip 02:00-03:00, on 25 October they repeat it."""
    assert NIGHT_SHIFT.working_hours(date(2026, 3, 28)) == 3.0
    assert NIGHT_SHIFT.working_hours(date(2026, 3, 29)) == 2.0
    assert NIGHT_SHIFT.working_hours(date(2026, 10, 25)) == 4.0
    start = datetime(2026, 3, 29, 1, 0, tzinfo=BERLIN)
    assert local(NIGHT_SHIFT.add_working_time(start, 2), BERLIN) == datetime(2026, 3, 29, 4, 0, tzinfo=BERLIN)
    assert local(NIGHT_SHIFT.add_working_time(start, 1.5), BERLIN) == datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN)
    autumn = datetime(2026, 10, 25, 1, 0, tzinfo=BERLIN)
    assert NIGHT_SHIFT.add_working_time(autumn, 4) == datetime(2026, 10, 25, 3, 0, tzinfo=UTC)  # 04:00 CET


def test_a_period_inside_the_skipped_hour_does_not_exist_that_day():
    cal = WorkCalendar(BERLIN, range(1, 8), [(time(2, 15), time(2, 45)), (time(9), time(10))])
    assert cal.working_hours(date(2026, 3, 29)) == 1.0 and cal.working_hours(date(2026, 3, 30)) == 1.5
    assert local(cal.add_working_time(datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN), 0.5), BERLIN) == datetime(
        2026, 3, 29, 9, 30, tzinfo=BERLIN)


# --- properties ----------------------------------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(2024, 6, 1), max_value=datetime(2027, 6, 30), timezones=st.just(UTC))
hours = st.one_of(st.floats(min_value=0, max_value=700, allow_nan=False, allow_infinity=False),
                  st.sampled_from([0, 0.5, 4, 7.5, 8, 52.5, 120]),
                  st.decimals(min_value=0, max_value=300, places=2).map(Decimal))
TIMEZONES = ("Asia/Ho_Chi_Minh", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe")
SOME_DAYS = st.sets(st.dates(min_value=date(2024, 6, 1), max_value=date(2028, 6, 30)), max_size=30)


@st.composite
def periods(draw, earliest: int = 0):
    """1 to 3 working periods in order, on a 5-minute grid from `earliest` minutes after midnight."""
    marks = sorted(draw(st.sets(st.integers(earliest // 5, 24 * 12 - 1), min_size=2, max_size=6)))
    if len(marks) % 2:
        marks = marks[:-1]
    pairs = list(zip(marks[::2], marks[1::2], strict=True))
    return [(time(a * 5 // 60, a * 5 % 60), time(b * 5 // 60, b * 5 % 60)) for a, b in pairs]


@st.composite
def calendars(draw, earliest: int = 0):
    """Hue's calendar, or a random one: any zone (some with clock changes, one by 30 minutes), weekdays,
    periods, days off and make-up days."""
    if draw(st.booleans()):
        return CAL
    days_off = draw(SOME_DAYS)
    return WorkCalendar(ZoneInfo(draw(st.sampled_from(TIMEZONES))),
                        draw(st.sets(st.integers(1, 7), min_size=1)), draw(periods(earliest)),
                        days_off=days_off, working_days=draw(SOME_DAYS) - days_off)


@PROPERTIES
@given(calendars(), instants, hours)
def test_between_inverts_add(cal, start, h):
    due = cal.add_working_time(start, h)
    assert abs(cal.working_time_between(start, due) - float(h)) < 1e-6
    if h >= 1e-9:  # and not a microsecond earlier
        assert cal.working_time_between(start, due - US) < float(h)


@PROPERTIES
@given(calendars(), instants, hours, hours)
def test_add_is_monotone_in_the_hours(cal, start, h1, h2):
    h1, h2 = sorted((Decimal(h1), Decimal(h2)))
    assert cal.add_working_time(start, h1) <= cal.add_working_time(start, h2)


@PROPERTIES
@given(calendars(), instants, instants, hours)
def test_add_is_monotone_in_the_start(cal, s1, s2, h):
    s1, s2 = sorted((s1, s2))
    assert cal.add_working_time(s1, h) <= cal.add_working_time(s2, h)


@PROPERTIES
@given(calendars(), instants, instants, instants)
def test_between_is_additive_and_antisymmetric(cal, a, b, c):
    ab, bc, ac = cal.working_time_between(a, b), cal.working_time_between(b, c), cal.working_time_between(a, c)
    assert abs(ab + bc - ac) < 1e-9
    assert cal.working_time_between(b, a) == -ab


def _hue_working_day_by_the_package(day: date) -> bool:
    """Independently of our data and code: the package's full calendar, its own swaps included (it
    knows them up to 2026; 2027 has none)."""
    full = holidays.VN(years=day.year)
    return day in full.weekend_workdays or (day.weekday() < 5 and day not in full)


# Random periods start at 04:00 here: a wall clock that jumps would be a poor oracle for where a deadline is.
@PROPERTIES
@given(calendars(earliest=4 * 60), instants, hours.filter(lambda h: h >= 1e-9))  # not rounded to 0 µs
def test_a_deadline_is_never_in_a_break_a_weekend_or_a_holiday(cal, start, h):
    due = cal.add_working_time(start, h)
    assert due > start or cal.is_working_time(start)
    just_before = local(due - US, cal.tz)  # the deadline is in a period or at its end
    wall = just_before.time().replace(tzinfo=None)
    assert any(begin <= wall < end for begin, end in cal.periods), (local(due, cal.tz), cal)
    assert cal.is_working_time(due - US)
    day = just_before.date()
    if cal is CAL:
        assume(day.year <= 2027)
        assert _hue_working_day_by_the_package(day), day
    else:
        assert (day.isoweekday() in cal.weekdays or cal.working_day_name(day)) and not cal.day_off_name(day), day


@PROPERTIES
@given(instants, hours)
def test_hue_deadlines_are_within_office_hours(start, h):
    due = local(CAL.add_working_time(start, h))
    if h >= 1e-9:
        assert time(7, 30) < due.time() <= time(11, 30) or time(13, 30) < due.time() <= time(17, 0)


# --- the database: seed, city_calendar, flask calendar ---------------------------------------------------------

@pytest.fixture
def fresh_calendars(app):
    """No calendar cached before or after (a test may change the calendar inside its transaction)."""
    with app.app_context():
        calendar.forget_calendars()
    yield
    with app.app_context():
        calendar.forget_calendars()


def _city(db_session) -> City:
    return db_session.scalars(select(City).order_by(City.id)).first()


def test_the_seed_loads_the_calendar_and_its_swaps(db_session, fresh_calendars):
    city = _city(db_session)
    assert city.calendar == {"holidays": "VN", "weekdays": [1, 2, 3, 4, 5],
                             "periods": [["07:30", "11:30"], ["13:30", "17:00"]]}
    rows = db_session.scalars(select(CalendarDay).where(CalendarDay.city_id == city.id)).all()
    assert {(r.day, r.kind, r.name, r.name_en) for r in rows} == {(s.day, s.kind, s.name, s.name_en) for s in SWAPS}


def test_city_calendar_is_the_databases_and_is_cached(db_session, fresh_calendars):
    cal = calendar.city_calendar()
    assert calendar.city_calendar() is cal and calendar.city_calendar(_city(db_session).id) is not None
    assert cal.config() == CAL.config()
    for year in (2024, 2025, 2026, 2027):
        assert cal.special_days(year) == CAL.special_days(year)
    assert local(cal.add_working_time(hue(2025, 4, 29, 16, 0), 8.5)) == hue(2025, 5, 5, 17, 0)
    calendar.forget_calendars()
    assert calendar.city_calendar() is not cal


def test_a_city_without_a_calendar_says_so(db_session, fresh_calendars):
    db_session.execute(text("UPDATE cities SET calendar = NULL"))
    with pytest.raises(calendar.CalendarNotConfigured, match="no working calendar"):
        calendar.city_calendar()
    with pytest.raises(calendar.CalendarNotConfigured, match="no city"):
        calendar.city_calendar(-1)


def test_reseeding_leaves_the_calendar_alone(db_session, fresh_calendars):
    before = db_session.execute(text("SELECT day, xmin::text FROM calendar_days ORDER BY day")).all()
    summary = seed.load_city(DEFAULT_DATA_DIR)
    assert summary["calendar_days"] == {"created": 0, "updated": 0, "unchanged": len(SWAPS)}
    assert summary["cities"] == {"created": 0, "updated": 0, "unchanged": 1}
    assert db_session.execute(text("SELECT day, xmin::text FROM calendar_days ORDER BY day")).all() == before


def _data_dir(tmp_path, edit) -> object:
    """A copy of the data set whose calendar.yaml `edit` changed (a function of the parsed file, or text)."""
    data_dir = tmp_path / "city"
    shutil.copytree(DEFAULT_DATA_DIR, data_dir)
    path = data_dir / "calendar.yaml"
    if callable(edit):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        edit(doc)
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    else:
        path.write_text(edit, encoding="utf-8")
    return data_dir


def test_an_edited_calendar_updates_the_city_and_its_days(db_session, fresh_calendars, tmp_path):
    def edit(doc):
        doc["periods"] = [["07:00", "11:30"], ["13:30", "17:00"]]
        doc["swaps"][2025][0]["name_en"] = "Renamed"
        doc["swaps"][2028] = [{"date": date(2028, 4, 3), "kind": "day_off", "name": "Nghỉ", "name_en": "Off"}]

    city = _city(db_session)
    changed, counts = seed.load_calendar(_data_dir(tmp_path, edit), city)
    assert changed and counts == {"created": 1, "updated": 1, "unchanged": len(SWAPS) - 1}
    assert city.calendar["periods"][0] == ["07:00", "11:30"]
    assert not calendar.city_calendar().is_working_day(date(2028, 4, 3))


def _swap(day, kind="day_off", **fields):
    return {"date": day, "kind": kind, "name": "Tên", "name_en": "Name", **fields}


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["swaps"][2025].append(_swap("2025-02-30")), r"swaps 2025, entry 3: date must be a date YYYY-MM-DD"),
    (lambda d: d["swaps"][2025].append(_swap(date(2025, 5, 5), "holiday")), "kind must be one of day_off"),
    (lambda d: d["swaps"][2025].append(_swap(date(2025, 5, 3))), r"2025-05-03 \(Sat \(T7\)\) is already a weekend"),
    (lambda d: d["swaps"][2025].append(_swap(date(2025, 5, 5), "working_day")), "already a working weekday"),
    (lambda d: d["swaps"][2025].append(_swap(date(2026, 5, 4))), "entry 3: 2026-05-04 is not in 2025"),
    (lambda d: d["swaps"][2025].append(_swap(date(2025, 9, 2))), r"already a public holiday \(Quốc khánh"),
    (lambda d: d["swaps"][2025].append(_swap(date(2025, 5, 2))), "2025-05-02 is given twice"),
    (lambda d: d["swaps"][2025].append({"date": date(2025, 5, 5), "kind": "day_off"}), "expected exactly date"),
    (lambda d: d["swaps"].update({"next": []}), "'next' is not a year"),
    (lambda d: d.update(periods=[["13:30", "17:00"], ["07:30", "11:30"]]), "calendar.yaml: periods: period 2"),
    (lambda d: d.update(holidays="XX"), "calendar.yaml: holidays: 'XX' is not a country code"),
    (lambda d: d.update(weekdays=[1, 8]), "calendar.yaml: weekdays: a list of distinct ISO"),
    ("holidays: VN\nweekdays: [1]\nperiods: [[07:30, 13:30]]\n", r"calendar.yaml: periods: period 1: 810 is a number"),
    ("- a list\n", "calendar.yaml: expected a mapping"),
])
def test_invalid_calendar_data_is_refused(db_session, tmp_path, edit, message):
    with pytest.raises(seed.SeedError, match=message):
        seed.load_calendar(_data_dir(tmp_path, edit), _city(db_session))


def test_an_invalid_calendar_fails_the_whole_seed_and_writes_nothing(db_session, fresh_calendars, tmp_path):
    data_dir = _data_dir(tmp_path, lambda d: d["swaps"][2026].append(_swap(date(2026, 8, 29))))
    with pytest.raises(seed.SeedError, match="2026-08-29 .* is already a weekend day"):
        seed.load_city(data_dir)
    assert db_session.scalar(select(CalendarDay.day).where(CalendarDay.day == date(2026, 8, 29))) is None


def test_a_missing_calendar_file_and_a_bad_time_zone_are_refused(db_session, tmp_path):
    data_dir = _data_dir(tmp_path, "")
    (data_dir / "calendar.yaml").unlink()
    with pytest.raises(seed.SeedError, match="missing data file: .*calendar.yaml"):
        seed.load_city(data_dir)
    city = yaml.safe_load((data_dir / "city.yaml").read_text(encoding="utf-8"))
    city["timezone"] = "Asia/Hue"
    (data_dir / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), encoding="utf-8")
    with pytest.raises(seed.SeedError, match="city.yaml: timezone: unknown IANA time zone 'Asia/Hue'"):
        seed.load_city(data_dir)


def _cli(app, *args):
    return app.test_cli_runner().invoke(args=["calendar", *args])


def test_flask_calendar_add_year_records_the_swaps(app, db_session, fresh_calendars):
    result = _cli(app, "add-year", "2028",
                  "--day-off", "2028-04-03", "Ngày nghỉ hoán đổi dịp Giỗ Tổ", "Swapped day off for Hung Kings' Day",
                  "--working-day", "2028-04-08", "Ngày làm bù cho ngày 3/4/2028", "Make-up working day for 3 April")
    assert result.exit_code == 0, result.output
    assert "2 ngày hoán đổi đã ghi / swap day(s) recorded" in result.output
    cal = calendar.city_calendar()
    assert not cal.is_working_day(date(2028, 4, 3)) and cal.is_working_day(date(2028, 4, 8))

    again = _cli(app, "add-year", "2028", "--day-off", "2028-05-03", "Nghỉ", "Off")
    assert again.exit_code != 0 and "2028 already has 2 swap(s)" in again.output and "--replace" in again.output

    replaced = _cli(app, "add-year", "2028", "--replace", "--day-off", "2028-05-03", "Nghỉ", "Off")
    assert replaced.exit_code == 0, replaced.output
    days = db_session.scalars(select(CalendarDay.day).where(CalendarDay.day >= date(2028, 1, 1))).all()
    assert days == [date(2028, 5, 3)]
    assert not calendar.city_calendar().is_working_day(date(2028, 5, 3))  # the cache was dropped

    shown = _cli(app, "show", "2028")
    assert shown.exit_code == 0, shown.output
    assert "2028-05-03 Wed (T4)  nghỉ / day off" in shown.output and "Nghỉ / Off" in shown.output


@pytest.mark.parametrize(("args", "message"), [
    (["--day-off", "2028-05-06", "Nghỉ", "Off"], "2028-05-06 (Sat (T7)) is already a weekend day"),
    (["--working-day", "2028-05-02", "Làm", "Work"], "already a working weekday"),
    (["--day-off", "2029-05-02", "Nghỉ", "Off"], "2029-05-02: not in 2028"),
    (["--day-off", "2028-09-01", "Nghỉ", "Off"], "already a public holiday"),
    (["--day-off", "2028-02-30", "Nghỉ", "Off"], "Invalid value"),
    ([], "give at least one --day-off or --working-day"),
])
def test_flask_calendar_add_year_refuses_nonsense(app, db_session, fresh_calendars, args, message):
    result = _cli(app, "add-year", "2028", *args)
    assert result.exit_code != 0 and message in result.output, result.output
    assert db_session.scalar(select(CalendarDay.day).where(CalendarDay.day >= date(2028, 1, 1))) is None


def test_flask_calendar_show_prints_the_years_exceptions_and_totals(app, db_session):
    result = _cli(app, "show", "2026")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Asia/Ho_Chi_Minh" in lines[0] and "2026" in lines[0]
    assert any(line.startswith("  2026-02-17 Tue (T3)  nghỉ / day off") and "Tết Nguyên Đán / Lunar New Year" in line
               for line in lines)
    assert any(line.startswith("  2026-08-22 Sat (T7)  làm bù / working day") for line in lines)
    assert any("2026-04-27" in line and "(observed)" in line for line in lines)
    assert any("2026-08-31" in line and "Swapped day off for National Day" in line for line in lines)
    assert lines[-1] == "249 ngày làm việc / working days, 1867.5 giờ làm việc / working hours"
    assert len(lines) == 1 + 14 + 1


def test_the_real_flask_command_shows_a_year(app, process_env):
    result = flask_cli(["calendar", "show", "2025"], process_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2025-05-02 Fri (T6)  nghỉ / day off" in result.stdout
    assert "2025-04-26 Sat (T7)  làm bù / working day" in result.stdout

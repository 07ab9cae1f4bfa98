"""Load a city's data set: wards and the city outline, categories, agencies, routing rules, the working
calendar and its yearly swaps, demo accounts.

Everything is an upsert keyed on the data's own codes (ward code and vintage,
category code, agency code; a routing rule by category, area and priority) that
writes a row only when something differs, in one transaction: loading the same
data twice changes nothing, not even a row version.

The files are authoritative for what they state, and only for that: a column a
file does not give (an agency's webhook URL or contacts, whether a category or
agency is active when the file does not say) is left as an admin set it, and
rows the files do not mention are left alone. Changing a rule's priority in the
file therefore adds a rule beside the old one; retiring rules, agencies and
categories is the admin commands' work (a calendar swap: `flask calendar
add-year --replace`). Demo accounts are created once and never touched again.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from ..extensions import db
from ..models import (CALENDAR_DAY_KINDS, Account, AdminArea, Agency, CalendarDay, Category, CategoryGroup, City,
                      RoutingRule)
from . import areas, audit, calendar, metrics
from .passwords import hash_password
from .upserts import Counts, upsert


class SeedError(ValueError):
    """The data set is inconsistent; the message names the file and the entry."""


def _yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise SeedError(f"missing data file: {path}") from exc


def load_areas(data_dir: Path, city_cfg: dict) -> tuple[Counts, dict[str, AdminArea], AdminArea]:
    """The wards of the data set's vintage and the city outline as their union (areas.load_vintage, with
    the polygons repaired: the shipped boundaries are simplified, and may self-intersect)."""
    areas_cfg = city_cfg["areas"]
    try:
        valid_from = date.fromisoformat(str(areas_cfg["valid_from"]))
    except ValueError as exc:
        raise SeedError(f"city.yaml: areas.valid_from must be a date (YYYY-MM-DD): {exc}") from exc
    with open(data_dir / areas_cfg["file"], encoding="utf-8") as fh:
        doc = json.load(fh)
    city_area = city_cfg["area"]
    try:
        vintage = areas.load_vintage(
            areas.features_of(doc), valid_from, areas_cfg["levels"],
            areas.CityArea(str(city_area["code"]), city_cfg["name"], city_cfg["name_en"], city_area["level"],
                           int(city_area["tier"])),
            min_hole_km2=float(areas_cfg.get("outline_fill_holes_below_km2", 0)), repair=True, reload=True)
    except areas.VintageError as exc:
        hint = (" Newer boundaries were loaded since (flask areas load): put them in the data set (city.yaml's "
                "areas and the ward file) to load it again." if exc.code == "vintage_not_newer" else "")
        raise SeedError(f"{areas_cfg['file']}: {exc}{hint}") from exc
    return vintage.counts, vintage.wards, vintage.city


def load_city_row(city_cfg: dict, city_area: AdminArea) -> Counts:
    return upsert(City.__table__, [{
        "code": str(city_cfg["code"]), "name": city_cfg["name"], "name_en": city_cfg["name_en"],
        "timezone": city_cfg["timezone"], "report_code_prefix": city_cfg["report_code_prefix"],
        "jurisdiction_id": city_cfg["jurisdiction_id"], "area_id": city_area.id,
    }], ("code",))


def load_categories(data_dir: Path) -> tuple[Counts, Counts]:
    groups = _yaml(data_dir / "categories.yaml")["groups"]
    group_rows = [{"code": g["code"], "name": g["name"], "name_en": g["name_en"], "sort_order": i}
                  for i, g in enumerate(groups)]
    group_counts = upsert(CategoryGroup.__table__, group_rows, ("code",))
    group_ids = dict(db.session.execute(select(CategoryGroup.code, CategoryGroup.id)).tuples().all())
    rows = []
    for group in groups:
        for i, cat in enumerate(group["categories"]):
            if not float(cat["sla_hours"]) > 0:
                raise SeedError(f"categories.yaml: {cat['code']}: sla_hours must be positive")
            row = {"code": cat["code"], "group_id": group_ids[group["code"]], "name": cat["name"],
                   "name_en": cat["name_en"], "sla_hours": cat["sla_hours"], "sort_order": i}
            row.update(_stated(cat, "description", "description_en", "urgent", "keywords", "attributes",
                               "active"))
            rows.append(row)
    return group_counts, upsert(Category.__table__, rows, ("code",))


def _stated(entry: dict, *names: str) -> dict[str, Any]:
    """The optional fields `entry` gives; the others stay as they are in the database."""
    return {name: entry[name] for name in names if name in entry}


def ward_committee_code(template: dict, ward: AdminArea) -> str:
    return template["code"].format(area_code=ward.code)


def load_agencies(data_dir: Path, wards: dict[str, AdminArea]) -> Counts:
    cfg = _yaml(data_dir / "agencies.yaml")
    rows = [{
        "code": a["code"], "name": a["name"], "name_en": a["name_en"], "kind": a["kind"],
        **_stated(a, "contact_email", "contact_phone", "webhook_url", "active"),
    } for a in cfg["agencies"]]
    if sum(row["kind"] == "dispatcher" for row in rows) != 1:
        raise SeedError("agencies.yaml: exactly one agency must be of kind `dispatcher`")
    template = cfg.get("ward_committees")
    if template:
        for ward in sorted(wards.values(), key=lambda w: w.code):
            values = {"area_code": ward.code, "short_name": ward.properties.get("short_name", ward.name),
                      "level_vi": str(ward.properties.get("level_vi", "")).lower(), "name_en": ward.name_en}
            rows.append({
                "code": ward_committee_code(template, ward), "name": template["name"].format(**values),
                "name_en": template["name_en"].format(**values), "kind": template["kind"],
                "area_id": ward.id,
            })
    return upsert(Agency.__table__, rows, ("code",))


def load_routing(data_dir: Path, wards: dict[str, AdminArea], city_area: AdminArea) -> Counts:
    cfg = _yaml(data_dir / "routing.yaml")
    committee = _yaml(data_dir / "agencies.yaml").get("ward_committees")
    categories = dict(db.session.execute(select(Category.code, Category.id)).tuples().all())
    agencies = dict(db.session.execute(select(Agency.code, Agency.id)).tuples().all())
    rows: dict[tuple, dict] = {}
    for n, rule in enumerate(cfg["rules"], 1):
        where = f"routing.yaml rule {n} ({rule.get('category')})"
        if rule["category"] not in categories:
            raise SeedError(f"{where}: unknown category {rule['category']!r}")
        if rule["area"] == "city":
            targets = [(city_area, rule["agency"])]
        elif rule["area"] == "each_ward":
            if rule["agency"] == "ward_committee":
                if not committee:
                    raise SeedError(f"{where}: agency ward_committee needs ward_committees in agencies.yaml")
                targets = [(w, ward_committee_code(committee, w)) for w in wards.values()]
            else:
                targets = [(w, rule["agency"]) for w in wards.values()]
        else:
            raise SeedError(f"{where}: area must be `city` or `each_ward`, not {rule['area']!r}")
        for area, agency_code in targets:
            if agency_code not in agencies:
                raise SeedError(f"{where}: unknown agency {agency_code!r}")
            key = (categories[rule["category"]], area.id, int(rule.get("priority", 100)))
            if key in rows:
                raise SeedError(f"{where}: duplicate rule for the same category, area and priority")
            rows[key] = {"category_id": key[0], "area_id": key[1], "priority": key[2],
                         "agency_id": agencies[agency_code], **_stated(rule, "active")}
    return upsert(RoutingRule.__table__, list(rows.values()), ("category_id", "area_id", "priority"))


def demo_password(data_dir: Path) -> str:
    return str(_yaml(data_dir / "demo_accounts.yaml")["password"])


def demo_usernames(data_dir: Path) -> list[str]:
    return [a["username"] for a in _yaml(data_dir / "demo_accounts.yaml")["accounts"]]


def load_demo_accounts(data_dir: Path) -> Counts:
    """Create the demo accounts that do not exist yet; existing accounts are never touched."""
    cfg = _yaml(data_dir / "demo_accounts.yaml")
    existing = set(db.session.scalars(select(Account.username)))
    agencies = dict(db.session.execute(select(Agency.code, Agency.id)).tuples().all())
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for entry in cfg["accounts"]:
        username = entry["username"].lower()
        if username in existing:
            counts["unchanged"] += 1
            continue
        agency = entry.get("agency")
        if agency is not None and agency not in agencies:
            raise SeedError(f"demo_accounts.yaml: {username}: unknown agency {agency!r}")
        db.session.add(Account(
            username=username, display_name=entry["display_name"], role=entry["role"],
            agency_id=agencies.get(agency), password_hash=hash_password(str(cfg["password"]))))
        counts["created"] += 1
    db.session.flush()
    return counts


CITY_KEYS = ("code", "name", "name_en", "timezone", "report_code_prefix", "jurisdiction_id", "area", "areas")


def check_city_cfg(city_cfg: Any) -> dict:
    """city.yaml's required keys and time zone, checked before anything is written."""
    if not isinstance(city_cfg, dict):
        raise SeedError("city.yaml: expected a mapping (code, name, name_en, timezone, ...)")
    missing = [key for key in CITY_KEYS if city_cfg.get(key) in (None, "")]
    if missing:
        raise SeedError(f"city.yaml: missing {', '.join(missing)}")
    try:
        calendar.zone(city_cfg["timezone"])
    except ValueError as exc:
        raise SeedError(f"city.yaml: timezone: {exc}") from exc
    return city_cfg


def _swap_date(value: Any, where: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise SeedError(f"{where}: date must be a date YYYY-MM-DD, not {value!r}")


SWAP_KEYS = {"date", "kind", "name", "name_en"}


def _calendar_swaps(swaps_cfg: Any) -> list[calendar.Swap]:
    """The swaps of calendar.yaml ({year: [{date, kind, name, name_en}, ...]}), with their structure
    checked; whether they make sense on the calendar is calendar.check_swaps'."""
    if swaps_cfg is None:
        return []
    if not isinstance(swaps_cfg, dict):
        raise SeedError("calendar.yaml: swaps must be a mapping of years to lists of days")
    swaps = []
    for year, entries in swaps_cfg.items():
        if not isinstance(year, int) or isinstance(year, bool) or not 1900 <= year <= 2999:
            raise SeedError(f"calendar.yaml: swaps: {year!r} is not a year")
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise SeedError(f"calendar.yaml: swaps {year}: expected a list of days (or [] for none)")
        for n, entry in enumerate(entries, 1):
            where = f"calendar.yaml: swaps {year}, entry {n}"
            if not isinstance(entry, dict) or set(entry) != SWAP_KEYS:
                given = sorted(entry) if isinstance(entry, dict) else entry
                raise SeedError(f"{where}: expected exactly date, kind, name, name_en, got {given!r}")
            day = _swap_date(entry["date"], where)
            if day.year != year:
                raise SeedError(f"{where}: {day} is not in {year}")
            if entry["kind"] not in CALENDAR_DAY_KINDS:
                raise SeedError(f"{where}: {day}: kind must be one of {', '.join(CALENDAR_DAY_KINDS)}, "
                                f"not {entry['kind']!r}")
            swaps.append(calendar.Swap(day, entry["kind"], entry["name"], entry["name_en"]))
    return swaps


def load_calendar(data_dir: Path, city: City) -> tuple[bool, Counts]:
    """The city's working calendar (calendar.yaml): its settings into City.calendar, its yearly swaps
    into calendar_days (added or updated, never deleted). Returns whether the settings changed, and the
    swaps' counts."""
    cfg = _yaml(data_dir / "calendar.yaml")
    if not isinstance(cfg, dict):
        raise SeedError("calendar.yaml: expected a mapping with holidays, weekdays, periods and swaps")
    try:
        base = calendar.WorkCalendar.from_config(city.timezone, {k: v for k, v in cfg.items() if k != "swaps"})
    except ValueError as exc:
        raise SeedError(f"calendar.yaml: {exc}") from exc
    swaps = _calendar_swaps(cfg.get("swaps"))
    try:
        calendar.check_swaps(base, swaps)
    except ValueError as exc:
        raise SeedError(f"calendar.yaml: swaps: {exc}") from exc
    settings = base.config()
    changed = city.calendar != settings
    if changed:
        if city.calendar is not None:  # (new working hours or holidays: every reading of the clock moves)
            metrics.calendar_changed(None)
        city.calendar = settings
        db.session.flush()
    if not swaps:
        return changed, {"created": 0, "updated": 0, "unchanged": 0}
    rows = [{"city_id": city.id, "day": s.day, "kind": s.kind, "name": s.name.strip(), "name_en": s.name_en.strip()}
            for s in swaps]
    counts = upsert(CalendarDay.__table__, rows, ("city_id", "day"))
    if counts["created"] or counts["updated"]:  # (days added or changed: which ones is not told, so any swap's)
        metrics.calendar_changed({s.day for s in swaps})
    return changed, counts


def complete_city(data_dir: Path) -> dict[str, Counts]:
    """For a city loaded by an older release: load the parts of the data set it does not have yet (the
    working calendar), and nothing else. Returns counts per table of what was loaded."""
    city = db.session.scalars(select(City).order_by(City.id).limit(1)).first()
    summary: dict[str, Counts] = {}
    if city is not None and city.calendar is None:
        try:
            _, summary["calendar_days"] = load_calendar(data_dir, city)
            summary["cities"] = {"created": 0, "updated": 1, "unchanged": 0}
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        calendar.forget_calendars()
    return summary


def city_loaded() -> bool:
    """True once a city's data set has been loaded."""
    return db.session.scalar(select(City.id).limit(1)) is not None


def load_city(data_dir: Path, *, demo: bool = False, actor: Any = None) -> dict[str, Counts]:
    """Load the whole data set in `data_dir` in one transaction; return counts per table. With an `actor`
    (an audit.Actor: `flask seed`), a load that changed anything is written to the audit log with it."""
    city_cfg = check_city_cfg(_yaml(data_dir / "city.yaml"))
    try:
        summary: dict[str, Counts] = {}
        summary["admin_areas"], wards, city_area = load_areas(data_dir, city_cfg)
        summary["cities"] = load_city_row(city_cfg, city_area)
        city = db.session.scalars(select(City).where(City.code == str(city_cfg["code"]))).one()
        calendar_changed, summary["calendar_days"] = load_calendar(data_dir, city)
        if calendar_changed and summary["cities"]["unchanged"]:  # a new city row is counted as created
            summary["cities"]["unchanged"] -= 1
            summary["cities"]["updated"] += 1
        summary["category_groups"], summary["categories"] = load_categories(data_dir)
        summary["agencies"] = load_agencies(data_dir, wards)
        summary["routing_rules"] = load_routing(data_dir, wards, city_area)
        if demo:
            summary["accounts"] = load_demo_accounts(data_dir)
        if actor is not None and any(c["created"] or c["updated"] for c in summary.values()):
            audit.record(actor, "data.load", "city", str(city_cfg["code"]), None,
                         {"data": data_dir.name, "demo": demo, "tables": summary})
        db.session.commit()
        areas.forget_city()
        calendar.forget_calendars()
    except Exception:
        db.session.rollback()
        raise
    return summary

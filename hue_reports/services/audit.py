"""The audit log: who changed what in the city's set-up, when, and what it was before and after.

Every admin change (agencies, categories, routing rules, ward vintages, re-routing, Open311 api_keys,
accounts and tokens, the calendar, a data set load) calls `record` inside the transaction of the change,
so the change and its entry are committed together or not at all. The snapshots are built by the
services from the objects' public fields: secrets (webhook secrets, api_keys, tokens, passwords and
their hashes) are never part of them, and `record` refuses a snapshot that names one.
"""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ..errors import ApiError
from ..extensions import db
from ..models import AuditEntry
from . import areas

# Keys a snapshot must never hold (their values are secrets, or hashes of secrets).
SECRET_KEYS = frozenset({"webhook_secret", "password", "password_hash", "api_key", "key_hash", "token",
                         "token_hash", "secret"})
PAGE_DEFAULT = 50
PAGE_MAX = 200


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an account through the API, or a system user running a `flask` command."""

    name: str
    account_id: int | None = None
    via: str = "api"

    @classmethod
    def of(cls, account: Any) -> Actor:
        return cls(account.username, account.id, "api")

    @classmethod
    def cli(cls) -> Actor:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # (no name for this uid, e.g. in a container)
            user = "unknown"
        return cls(f"cli:{user}", None, "cli")


def jsonable(value: Any) -> Any:
    """A snapshot value as JSON: decimals as numbers, dates as ISO strings, containers recursively."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return value


def _secret_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {k for k in value if k in SECRET_KEYS}
        for v in value.values():
            found |= _secret_keys(v)
        return found
    if isinstance(value, list):
        return set().union(*(_secret_keys(v) for v in value)) if value else set()
    return set()


def record(actor: Actor, action: str, object_type: str, object_key: Any, before: dict | None,
           after: dict | None) -> AuditEntry:
    """Add the entry of one change to the session (the caller's transaction commits it with the change)."""
    before, after = jsonable(before), jsonable(after)
    leaked = _secret_keys(before) | _secret_keys(after)
    if leaked:  # a programming error: never let a secret reach the log
        raise RuntimeError(f"audit snapshot holds secret fields: {', '.join(sorted(leaked))}")
    entry = AuditEntry(actor=actor.name, actor_account_id=actor.account_id, via=actor.via, action=action,
                       object_type=object_type, object_key=str(object_key)[:200], before=before, after=after)
    db.session.add(entry)
    db.session.flush()
    return entry


# -- reading -------------------------------------------------------------------------------------------

FILTERS = ("action", "object_type", "object", "actor")
_DECIMAL = re.compile(r"^\d{1,19}$")


def _bad(name: str, en: str, vi: str) -> ApiError:
    return ApiError(422, "validation_error", f"{name}: {en}", message_vi=f"{name}: {vi}", fields={name: [en]})


def _instant(name: str, raw: str, end: bool) -> datetime:
    """A date (the whole day in the city's time zone; `to` includes it) or an ISO date-time with an offset."""
    try:
        if len(raw) == 10:
            city = areas.current_city()
            tz = ZoneInfo(city.timezone) if city is not None else timezone.utc
            day = date.fromisoformat(raw)
            return datetime.combine(day + timedelta(days=1) if end else day, time(), tz)
        parsed = datetime.fromisoformat(raw)
    except (ValueError, OverflowError):
        raise _bad(name, "A date (YYYY-MM-DD) or a date-time with an offset.",
                   "Ngày (YYYY-MM-DD) hoặc thời điểm có múi giờ.") from None
    if parsed.tzinfo is None:
        raise _bad(name, "A date-time needs an offset (e.g. +07:00).", "Thời điểm cần có múi giờ (ví dụ +07:00).")
    return parsed


def entries(args: Any, limit: int) -> tuple[list[AuditEntry], str | None]:
    """A page of the log, newest first: filters `action` (exact, or a prefix ending in `.`: `agency.`),
    `object_type`, `object` (the object's key: a code, username or id), `actor`, `from` and `to` (dates or
    date-times), `cursor` (the `next_cursor` of the previous page). Returns the page and the next cursor."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    action = args.get("action")
    if action:
        stmt = stmt.where(AuditEntry.action.startswith(action, autoescape=True) if action.endswith(".")
                          else AuditEntry.action == action)
    for name, column in (("object_type", AuditEntry.object_type), ("object", AuditEntry.object_key),
                         ("actor", AuditEntry.actor)):
        value = args.get(name)
        if value:
            if len(value) > 200:
                raise _bad(name, "At most 200 characters.", "Tối đa 200 ký tự.")
            stmt = stmt.where(column == value)
    for name, end in (("from", False), ("to", True)):
        raw = args.get(name)
        if raw:
            instant = _instant(name, raw, end)
            stmt = stmt.where(AuditEntry.created_at < instant if end else AuditEntry.created_at >= instant)
    cursor = args.get("cursor")
    if cursor:
        if not _DECIMAL.match(cursor) or int(cursor) >= 2**63:
            raise _bad("cursor", "The next_cursor of a previous page.", "Giá trị next_cursor của trang trước.")
        stmt = stmt.where(AuditEntry.id < int(cursor))
    rows = list(db.session.scalars(stmt))
    page = rows[:limit]
    return page, (str(page[-1].id) if len(rows) > limit else None)

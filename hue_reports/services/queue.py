"""The officers' queue: an agency's reports, filtered, searched, sorted by deadline, paged by keyset.

Scope: officers and agency admins see their agency's reports (any status); the dispatcher and admins see
every report, the unrouted (`submitted`, no agency) and `routing_failed` ones included. A filter never
widens the scope: an officer naming another agency is refused (403).

One statement reads a page (the category, ward, agency and original of a duplicate joined in, the first
photo's thumbnail as a subquery), one more counts the reports per status in the same scope and filters
(the status filter aside, so that tabs show every count).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import Text, and_, case, false, func, literal, or_, select, true, tuple_
from sqlalchemy.orm import aliased, joinedload

from ..errors import ApiError
from ..extensions import db
from ..models import OPEN_STATUSES, AdminArea, Agency, Category, Photo, Report
from ..models.report import ALL_STATUSES
from . import areas

STAFF_ROLES = ("officer", "agency_admin", "dispatcher", "admin")
ALL_AGENCY_ROLES = ("dispatcher", "admin")  # roles that see every agency's reports and the unrouted ones
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class QueueEntry:
    """A report of the page, with what the page computed for it."""

    report: Report
    overdue: bool
    thumb_photo_id: int | None
    duplicate_of: dict | None  # the original's id, code and status


@dataclass
class QueuePage:
    entries: list[QueueEntry]
    next_cursor: str | None
    has_more: bool
    counts: dict[str, int]
    total: int
    sort: str
    limit: int


def _invalid(name: str, message: str, message_vi: str) -> ApiError:
    return ApiError(422, "validation_error", message, message_vi=message_vi, fields={name: [message]})


# --- cursors: opaque to clients, base64url of [sort, key, id] ------------------------------------------

_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,300}$")


def _sort_key(report: Report, sort: str) -> datetime | None:
    return report.due_at if sort == "due" else report.submitted_at


def encode_cursor(sort: str, key: datetime | None, report_id: int) -> str:
    payload = json.dumps([sort, key.isoformat() if key is not None else None, report_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(value: str, sort: str) -> tuple[datetime | None, int]:
    """(key, id) of a cursor given for this sort; 422 for anything else."""
    bad = _invalid("cursor", "cursor must be the next_cursor of a page in the same sort.",
                   "cursor phải là giá trị next_cursor của trang trước, cùng cách sắp xếp.")
    if not _CURSOR.match(value):
        raise bad
    try:
        decoded = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if not (isinstance(decoded, list) and len(decoded) == 3 and decoded[0] == sort):
        raise bad
    _, key, report_id = decoded
    if type(report_id) is not int or not 0 <= report_id <= MAX_ID:
        raise bad
    if key is None:
        if sort != "due":  # only a deadline can be missing (submitted_at never is)
            raise bad
        return None, report_id
    try:
        moment = datetime.fromisoformat(key) if isinstance(key, str) and len(key) <= 40 else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise bad
    return moment, report_id


def _after_cursor(sort: str, key: datetime | None, report_id: int):
    """Rows strictly after (key, id) in the page order. Deadlines sort ascending with NULLs last, so after a
    dated row come the later dates, the same date with a higher id, and every undated row; after an undated
    row, only undated rows with a higher id."""
    if sort == "due":
        if key is None:
            return and_(Report.due_at.is_(None), Report.id > report_id)
        return or_(Report.due_at > key, and_(Report.due_at == key, Report.id > report_id), Report.due_at.is_(None))
    if sort == "submitted":
        return tuple_(Report.submitted_at, Report.id) > tuple_(key, report_id)
    return tuple_(Report.submitted_at, Report.id) < tuple_(key, report_id)


def _order(sort: str):
    if sort == "due":
        return (Report.due_at.asc().nulls_last(), Report.id.asc())
    if sort == "submitted":
        return (Report.submitted_at.asc(), Report.id.asc())
    return (Report.submitted_at.desc(), Report.id.desc())


# --- filters ------------------------------------------------------------------------------------------

def search_pattern(q: str):
    """`%<search key of q>%`, with LIKE's wildcards taken literally (backslash is LIKE's escape). Escaped
    AFTER the search key: unaccent turns full-width ％ ＿ ＼ into % _ \\."""
    key = func.hue_search_key(q, type_=Text)
    escaped = func.replace(func.replace(func.replace(key, "\\", "\\\\"), "%", "\\%"), "_", "\\_")
    return literal("%", Text) + escaped + literal("%", Text)


def description_matches(q: str):
    """The description part of the search: the expression of the trigram index ix_reports_search, so that
    the index can serve it."""
    return func.hue_search_key(Report.description, type_=Text).like(search_pattern(q))


def search_condition(q: str):
    """q in the description, the address or the public code, with or without Vietnamese diacritics
    (hue_search_key is lower(unaccent(...)): "duong" finds "Đường" and "Đường" finds "duong")."""
    pattern = search_pattern(q)
    return or_(description_matches(q),
               func.hue_search_key(Report.address, type_=Text).like(pattern),
               func.hue_search_key(Report.public_code, type_=Text).like(pattern))


def overdue_condition(now: datetime):
    return and_(Report.status.in_(OPEN_STATUSES), Report.due_at.is_not(None), Report.due_at < now)


def _city_zone():
    city = areas.current_city()
    try:
        return ZoneInfo(city.timezone) if city else timezone.utc
    except (KeyError, ValueError):
        return timezone.utc


def submitted_bounds(start: date | datetime | None, end: date | datetime | None):
    """(lower bound inclusive, upper bound, upper bound inclusive?) as aware datetimes. Dates and naive
    times are in the city's time zone; a date as `to` takes that whole day."""
    if start is None and end is None:
        return None, None, False
    zone = _city_zone()

    def place(value: date | datetime, *, next_day: bool = False) -> datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=zone)
        return datetime.combine(value + timedelta(days=1) if next_day else value, time(0), tzinfo=zone)

    try:
        low = place(start) if start is not None else None
        high = place(end, next_day=True) if end is not None else None
    except OverflowError:
        raise _invalid("to" if end is not None else "from", "This date is out of range.",
                       "Ngày này nằm ngoài phạm vi.") from None
    inclusive = end is not None and isinstance(end, datetime)
    if low is not None and high is not None and (low > high or (low == high and not inclusive)):
        raise _invalid("to", "to is before from.", "Thời điểm 'to' đứng trước 'from'.")
    return low, high, inclusive


@dataclass(frozen=True)
class _Codes:
    category_id: int | None = None
    ward_ids: tuple[int, ...] = ()
    agency_id: int | None = None


def resolve_codes(args: dict) -> _Codes:
    """The ids of the category, ward and agency codes given, in one round trip; 422 for unknown codes.
    (Codes are matched case-insensitively; a ward code matches the area of every boundary vintage.)"""
    columns = {}
    if args.get("category"):
        columns["category"] = select(Category.id).where(
            func.lower(Category.code) == args["category"].lower()).limit(1).scalar_subquery()
    if args.get("ward"):
        columns["ward"] = select(func.array_agg(AdminArea.id)).where(
            func.lower(AdminArea.code) == args["ward"].lower()).scalar_subquery()
    if args.get("agency"):
        columns["agency"] = select(Agency.id).where(
            func.lower(Agency.code) == args["agency"].lower()).limit(1).scalar_subquery()
    if not columns:
        return _Codes()
    row = db.session.execute(select(*(c.label(name) for name, c in columns.items()))).one()._mapping
    unknown = {name: [f"No {name} has this code."] for name in columns if not row[name]}
    if unknown:
        raise ApiError(422, "validation_error", "Some codes are unknown.", message_vi="Một số mã không tồn tại.",
                       fields=unknown)
    return _Codes(row.get("category"), tuple(row.get("ward") or ()), row.get("agency"))


def _scope(account, codes: _Codes) -> list:
    """Which reports the account may list, narrowed by the `agency` filter (never widened)."""
    if account.role in ALL_AGENCY_ROLES:
        return [Report.agency_id == codes.agency_id] if codes.agency_id is not None else []
    if account.agency_id is None:  # (the accounts table forbids it; never widen the scope if it happens)
        raise ApiError(403, "forbidden", "This account belongs to no agency.",
                       message_vi="Tài khoản này không thuộc đơn vị nào.")
    if codes.agency_id is not None and codes.agency_id != account.agency_id:
        raise ApiError(403, "forbidden", "Officers see their own agency's reports only.",
                       message_vi="Cán bộ chỉ xem được phản ánh của đơn vị mình.",
                       fields={"agency": ["Not your agency."]})
    return [Report.agency_id == account.agency_id]


def filters(args: dict, codes: _Codes, now: datetime) -> list:
    """Every filter but the status one (the counts are per status)."""
    conditions = []
    if args.get("overdue") is not None:
        overdue = overdue_condition(now)
        conditions.append(overdue if args["overdue"] else ~overdue)
    if codes.category_id is not None:
        conditions.append(Report.category_id == codes.category_id)
    if args.get("ward"):
        conditions.append(Report.ward_id.in_(codes.ward_ids))
    low, high, inclusive = submitted_bounds(args.get("from_"), args.get("to"))
    if low is not None:
        conditions.append(Report.submitted_at >= low)
    if high is not None:
        conditions.append(Report.submitted_at <= high if inclusive else Report.submitted_at < high)
    if args.get("q"):
        conditions.append(search_condition(args["q"]))
    return conditions


def thumb_photo_id():
    """The first evidence photo's id when its derivatives are ready; NULL while it is processing (or failed)."""
    ready = and_(Photo.derivatives_ready_at.is_not(None), Photo.thumb_key.is_not(None))
    return (select(case((ready, Photo.id)))
            .where(Photo.report_id == Report.id, Photo.kind == "evidence")
            .order_by(Photo.id).limit(1).correlate(Report).scalar_subquery())


def agency_queue(account, args: dict, now: datetime | None = None) -> QueuePage:
    """A page of the account's queue for the arguments loaded by schemas.queue.load_query."""
    now = now or datetime.now(timezone.utc)
    sort, limit = args.get("sort", "due"), args["limit"]
    cursor = decode_cursor(args["cursor"], sort) if args.get("cursor") else None
    codes = resolve_codes(args)
    scoped = _scope(account, codes) + filters(args, codes, now)
    statuses = args.get("status")
    status_filter = [Report.status.in_(statuses)] if statuses else []

    overdue = case((overdue_condition(now), true()), else_=false())
    # The original of a duplicate as plain columns (it may be on the page itself, as a row of its own).
    original = aliased(Report)
    stmt = (select(Report, overdue.label("overdue"), thumb_photo_id().label("thumb_photo_id"),
                   original.id.label("original_id"), original.public_code.label("original_code"),
                   original.status.label("original_status"))
            .outerjoin(original, original.id == Report.duplicate_of_id)
            .where(*scoped, *status_filter, *([_after_cursor(sort, *cursor)] if cursor else []))
            .order_by(*_order(sort)).limit(limit + 1)
            .options(joinedload(Report.category), joinedload(Report.ward), joinedload(Report.agency)))
    rows = db.session.execute(stmt).all()
    entries = [QueueEntry(row.Report, bool(row.overdue), row.thumb_photo_id,
                          row.original_id and {"id": row.original_id, "code": row.original_code,
                                               "status": row.original_status})
               for row in rows[:limit]]
    has_more = len(rows) > limit
    next_cursor = None
    if has_more:
        last = entries[-1].report
        next_cursor = encode_cursor(sort, _sort_key(last, sort), last.id)

    counted = dict(db.session.execute(
        select(Report.status, func.count()).where(*scoped).group_by(Report.status)).tuples().all())
    counts = {status: int(counted.get(status, 0)) for status in ALL_STATUSES}
    total = sum(n for status, n in counts.items() if not statuses or status in statuses)
    return QueuePage(entries, next_cursor, has_more, counts, total, sort, limit)

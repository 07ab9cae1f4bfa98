"""Agencies as an admin runs them: create, change (names, contacts, webhook), rotate the webhook secret,
deactivate and activate. Each change commits with its audit entry, or not at all.

The webhook secret signs every message to the agency (services/outbox.py); it is made by the server,
shown once in the answer that made it (the agency's creation with a webhook URL, the first webhook URL, a
rotation), and never again. Messages still waiting in the outbox are signed with the secret in force when
they are sent, so after a rotation the agency's system must accept the new secret at once.

An agency cannot be deactivated while reports are open in its hands (they are listed: transfer them
first), nor while an active routing rule on a current area sends reports to it (retarget or deactivate
those first): a rule to an inactive agency would be skipped without anyone noticing. There is one active
dispatcher at most.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from ..errors import ApiError
from ..extensions import db
from ..models import OPEN_STATUSES, AdminArea, Agency, Category, Report, RoutingRule
from ..schemas.admin import AgencyCreateSchema, AgencySchema, AgencyUpdateSchema
from . import audit, committing, routing

SNAPSHOT = AgencySchema(exclude=("created_at", "updated_at"))
LISTED_MAX = 100  # open reports or rules named in a refusal


def snapshot(agency: Agency) -> dict[str, Any]:
    """The agency's public fields, for the audit log (never the secret: `webhook_secret_set`)."""
    return SNAPSHOT.dump(agency)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def listing() -> list[Agency]:
    return list(db.session.scalars(select(Agency).options(joinedload(Agency.area)).order_by(Agency.code)))


def find(code: str, *, lock: bool = False) -> Agency:
    """The agency `code` (404 otherwise); `lock`: locked until the transaction ends, as it is now. (FOR NO KEY
    UPDATE: its id never changes, so rows that refer to it, a routed report, an event, may still be written
    meanwhile: their foreign key's share lock does not wait for this one.)"""
    stmt = select(Agency).options(joinedload(Agency.area)).where(Agency.code == code)
    if lock:
        stmt = stmt.with_for_update(of=Agency, key_share=True).execution_options(populate_existing=True)
    agency = db.session.scalars(stmt).first() if "\x00" not in code else None  # (NUL: no code has one)
    if agency is None:
        raise ApiError(404, "agency_not_found", f"No agency {code!r}.", message_vi=f"Không có đơn vị {code!r}.")
    return agency


def current_area(code: str, field: str = "area") -> AdminArea:
    """The area of the current boundary vintage with this code; 422 naming `field` otherwise."""
    area = db.session.scalars(select(AdminArea).where(AdminArea.code == code, AdminArea.valid_to.is_(None))).first()
    if area is None:
        retired = db.session.scalar(select(func.count()).where(AdminArea.code == code))
        why = "an area of a retired boundary vintage" if retired else "no such area"
        raise ApiError(422, "validation_error", f"{field}: {code!r} is {why}; give a current ward or the city.",
                       message_vi=f"{code!r} không phải là địa bàn hiện hành.",
                       fields={field: [f"Not a current area ({why})."]})
    return area


def _one_dispatcher(agency: Agency) -> None:
    """409 if `agency` would be a second active dispatcher."""
    if agency.kind != "dispatcher" or not agency.active:
        return
    with db.session.no_autoflush:  # (the agency's change is written after this check)
        other = db.session.scalar(select(Agency.code).where(Agency.kind == "dispatcher", Agency.active,
                                                            Agency.id != agency.id).with_for_update())
    if other is not None:
        raise ApiError(409, "dispatcher_exists", f"{other} is the active dispatcher: deactivate it first (one "
                       "active dispatcher receives what no rule routes).",
                       message_vi=f"{other} đang là đơn vị điều phối: hãy ngừng hoạt động đơn vị đó trước.",
                       fields={"kind": [f"{other} is the active dispatcher."]})


def _flush(agency: Agency) -> None:
    """Write the agency; a concurrent change that took its code or made another dispatcher wins (409)."""
    try:
        with db.session.begin_nested():
            db.session.add(agency)
    except IntegrityError as exc:
        if "dispatcher" in str(exc.orig):
            raise ApiError(409, "dispatcher_exists", "Another agency became the active dispatcher meanwhile.",
                           message_vi="Đã có đơn vị điều phối khác.", fields={"kind": ["Taken."]}) from None
        raise ApiError(409, "agency_exists", f"An agency {agency.code!r} exists.",
                       message_vi=f"Đơn vị {agency.code!r} đã có.", fields={"code": ["Taken."]}) from None


def _apply(agency: Agency, data: dict[str, Any]) -> str | None:
    """Set the fields given; returns a new webhook secret if one was made (a first webhook URL)."""
    for name in ("name", "name_en", "kind", "contact_email", "contact_phone"):
        if name in data:
            setattr(agency, name, data[name])
    if "area" in data:
        agency.area = current_area(data["area"]) if data["area"] is not None else None
    secret = None
    if "webhook_url" in data:
        agency.webhook_url = data["webhook_url"]
        if data["webhook_url"] is None:
            agency.webhook_secret = None  # (no URL, nothing to sign; a new URL gets a new secret)
        elif not agency.webhook_secret:
            secret = agency.webhook_secret = new_secret()
    _one_dispatcher(agency)
    return secret


def create(fields: dict[str, Any], actor: audit.Actor) -> tuple[Agency, str | None]:
    """A new agency from AgencyCreateSchema's fields. Returns it and its webhook secret (if it has a
    webhook URL), which is shown this once. 409 `agency_exists`, `dispatcher_exists`."""
    data = AgencyCreateSchema().load(fields)
    with committing():
        if db.session.scalar(select(Agency.id).where(func.lower(Agency.code) == data["code"].lower())) is not None:
            raise ApiError(409, "agency_exists", f"An agency {data['code']!r} exists.",
                           message_vi=f"Đơn vị {data['code']!r} đã có.", fields={"code": ["Taken."]})
        agency = Agency(code=data["code"], active=data["active"])
        secret = _apply(agency, data)
        _flush(agency)
        audit.record(actor, "agency.create", "agency", agency.code, None, snapshot(agency))
    return agency, secret


def update(code: str, fields: dict[str, Any], actor: audit.Actor) -> tuple[Agency, str | None]:
    """Change an agency (rename it, its kind, area, contacts, webhook URL). A first webhook URL makes its
    secret, returned this once; removing the URL removes the secret."""
    data = AgencyUpdateSchema().load(fields)
    with committing():
        agency = find(code, lock=True)
        before = snapshot(agency)
        secret = _apply(agency, data)
        _flush(agency)
        audit.record(actor, "agency.update", "agency", agency.code, before, snapshot(agency))
    return agency, secret


def rotate_secret(code: str, actor: audit.Actor) -> tuple[Agency, str]:
    """A new webhook secret for the agency, returned this once; the old one stops signing at once."""
    with committing():
        agency = find(code, lock=True)
        if not agency.webhook_url:
            raise ApiError(409, "no_webhook", f"{agency.code} has no webhook URL: set one first (it makes a secret).",
                           message_vi=f"{agency.code} chưa có địa chỉ webhook.",
                           fields={"webhook_url": ["Not set."]})
        before = snapshot(agency)
        agency.webhook_secret = new_secret()
        db.session.flush()
        audit.record(actor, "agency.rotate_webhook_secret", "agency", agency.code, before,
                     {**snapshot(agency), "webhook_secret_rotated": True})
    return agency, agency.webhook_secret


def open_report_codes(agency_id: int) -> tuple[int, list[str]]:
    """How many reports are open in the agency's hands, and the codes of the first LISTED_MAX (oldest first)."""
    where = (Report.agency_id == agency_id, Report.status.in_(OPEN_STATUSES))
    count = db.session.scalar(select(func.count()).select_from(Report).where(*where))
    codes = db.session.scalars(select(Report.public_code).where(*where).order_by(Report.submitted_at, Report.id)
                               .limit(LISTED_MAX)).all()
    return count or 0, list(codes)


def set_active(code: str, active: bool, actor: audit.Actor) -> Agency:
    """Activate or deactivate an agency. Deactivating is refused (409) while reports are open in its
    hands (`agency_has_open_reports`, listing their codes) or active rules on current areas send reports
    to it (`agency_has_rules`, listing the rules' ids)."""
    with committing():
        if not active:
            # No report reaches it meanwhile: routing, transfers and reopenings hold their category's lock until
            # they commit, so once every category's is held none is under way, and the next ones see it
            # inactive. These locks come first, before the agency's row: routing holds its category's lock and
            # then writes rows that refer to the agency, so the other order would deadlock with it.
            routing.lock_categories(db.session.scalars(select(Category.id)).all())
        agency = find(code, lock=True)
        before = snapshot(agency)
        if not active and agency.active:
            count, codes = open_report_codes(agency.id)
            if count:
                more = f" (and {count - len(codes)} more)" if count > len(codes) else ""
                raise ApiError(409, "agency_has_open_reports",
                               f"{agency.code} still has {count} open report(s): transfer them first: "
                               f"{', '.join(codes)}{more}.",
                               message_vi=f"{agency.code} còn {count} phản ánh đang xử lý: hãy chuyển các phản "
                                          f"ánh này cho đơn vị khác trước.",
                               fields={"open_reports": codes})
            rules = db.session.scalars(
                select(RoutingRule.id).join(AdminArea, AdminArea.id == RoutingRule.area_id)
                .where(RoutingRule.agency_id == agency.id, RoutingRule.active, AdminArea.valid_to.is_(None))
                .order_by(RoutingRule.id).limit(LISTED_MAX)).all()
            if rules:
                raise ApiError(409, "agency_has_rules",
                               f"Active routing rules send reports to {agency.code}: give them another agency or "
                               f"deactivate them first (rules {', '.join(map(str, rules))}).",
                               message_vi=f"Còn quy tắc phân công đang chuyển phản ánh đến {agency.code}: hãy "
                                          "đổi đơn vị hoặc ngừng các quy tắc đó trước.",
                               fields={"routing_rules": list(rules)})
        agency.active = active
        _one_dispatcher(agency)
        _flush(agency)
        audit.record(actor, "agency.activate" if active else "agency.deactivate", "agency", agency.code, before,
                     snapshot(agency))
    return agency

"""Routing rules as an admin runs them, and re-routing open reports on purpose.

A rule is category x area -> agency, with a priority (services/routing.py reads them when a report is
routed). Rules are created, retargeted, reprioritised and (de)activated, never deleted: a deactivated rule
keeps its place in history (routed events name the rule they followed). Each change commits with its
audit entry. Refused: a rule on an area that is not current (a retired boundary vintage), a rule to an
inactive agency (422 `agency_inactive`: routing would skip it silently), and a second rule with the same
category, area and priority (409 `duplicate_rule`: which would win is not said).

Changing rules changes where NEW reports go; a report already routed stays where it is. To move the
open reports of a ward or a category to where the rules send them now, `reroute` transfers them through
the officers' workflow (services/workflow.py): each move is a `transferred` event by the admin, with the
agency's webhook and the reporter's push, so the metrics count it as the transfer it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from ..errors import ApiError
from ..extensions import db
from ..models import AdminArea, Agency, Category, Report, RoutingRule
from ..schemas.admin import RerouteSchema, RuleCreateSchema, RuleSchema, RuleUpdateSchema
from . import agencies, areas, audit, committing, routing, workflow

SNAPSHOT = RuleSchema(exclude=("created_at", "agency_active"))
# Open reports in an agency's hands, or waiting for the dispatcher after routing failed; `submitted`
# ones are routed by their job, with the rules in force then.
REROUTABLE = ("routed", "acknowledged", "in_progress", "routing_failed")
REROUTE_REASON = ("Điều chuyển theo quy tắc phân công hiện hành (quản trị viên). / "
                  "Re-routed under the current routing rules (administrator).")


def _rules_query():
    return select(RoutingRule).options(joinedload(RoutingRule.category), joinedload(RoutingRule.area),
                                       joinedload(RoutingRule.agency))


def listing(args: Any) -> list[RoutingRule]:
    """Rules, filtered by `category`, `area` (a code: every vintage of it), `agency` codes and `active`
    (true/false); by default on current areas only (`vintage=all` for every vintage)."""
    stmt = (_rules_query().join(RoutingRule.category).join(RoutingRule.area).join(RoutingRule.agency)
            .order_by(Category.code, AdminArea.tier, AdminArea.code, RoutingRule.priority, RoutingRule.id))
    for name, column in (("category", Category.code), ("area", AdminArea.code), ("agency", Agency.code)):
        if args.get(name):
            stmt = stmt.where(column == args[name])
    if args.get("active") in ("true", "false"):
        stmt = stmt.where(RoutingRule.active.is_(args["active"] == "true"))
    elif args.get("active"):
        raise ApiError(422, "validation_error", "active is true or false.", message_vi="active là true hoặc false.",
                       fields={"active": ["true or false."]})
    if args.get("vintage", "current") == "current":
        stmt = stmt.where(AdminArea.valid_to.is_(None))
    elif args.get("vintage") != "all":
        raise ApiError(422, "validation_error", "vintage is current or all.", message_vi="vintage là current hoặc all.",
                       fields={"vintage": ["current or all."]})
    return list(db.session.scalars(stmt).unique())


def find(rule_id: int, *, lock: bool = False) -> RoutingRule:
    stmt = _rules_query().where(RoutingRule.id == rule_id)
    rule = db.session.scalars(stmt.with_for_update(of=RoutingRule) if lock else stmt).first()
    if rule is None:
        raise ApiError(404, "rule_not_found", f"No routing rule {rule_id}.",
                       message_vi=f"Không có quy tắc phân công {rule_id}.")
    return rule


def _category(code: str) -> Category:
    category = db.session.scalars(select(Category).where(Category.code == code)).first()
    if category is None:
        raise ApiError(422, "validation_error", f"category: no category {code!r}.",
                       message_vi=f"Không có lĩnh vực {code!r}.", fields={"category": [f"No category {code!r}."]})
    return category


def _agency(code: str, active_needed: bool) -> Agency:
    """The agency a rule sends reports to, share-locked so that it cannot be deactivated meanwhile."""
    agency = db.session.scalars(select(Agency).where(Agency.code == code).with_for_update(read=True)).first()
    if agency is None:
        raise ApiError(422, "validation_error", f"agency: no agency {code!r}.",
                       message_vi=f"Không có đơn vị {code!r}.", fields={"agency": [f"No agency {code!r}."]})
    if active_needed and not agency.active:
        raise ApiError(422, "agency_inactive", f"{code} is inactive: a rule to it would never route a report. "
                       "Activate the agency first, or choose another.",
                       message_vi=f"Đơn vị {code} đã ngừng hoạt động: hãy chọn đơn vị khác.",
                       fields={"agency": ["Inactive."]})
    return agency


def _duplicate(category_id: int, area_id: int, priority: int, rule_id: int | None = None) -> ApiError | None:
    other = db.session.scalars(select(RoutingRule).where(
        RoutingRule.category_id == category_id, RoutingRule.area_id == area_id, RoutingRule.priority == priority,
        RoutingRule.id != (rule_id or 0))).first()
    if other is None:
        return None
    state = "" if other.active else " (inactive: change or activate it instead)"
    return _duplicate_error(f"Rule {other.id} already routes this category in this area at priority "
                            f"{priority}{state}: two rules of one priority leave the choice unsaid.")


def _duplicate_error(message: str) -> ApiError:
    return ApiError(409, "duplicate_rule", message,
                    message_vi="Đã có quy tắc cùng lĩnh vực, địa bàn và mức ưu tiên.",
                    fields={"priority": ["Another rule has this category, area and priority."]})


def _write(rule: RoutingRule) -> None:
    try:
        with db.session.begin_nested():  # (a concurrent rule with the same key loses here)
            db.session.add(rule)
    except IntegrityError:
        raise _duplicate_error("Another rule with this category, area and priority was just created.") from None


def create(fields: dict[str, Any], actor: audit.Actor) -> RoutingRule:
    """A new rule from RuleCreateSchema's fields; it routes the reports routed from now on."""
    data = RuleCreateSchema().load(fields)
    with committing():
        category = _category(data["category"])
        area = agencies.current_area(data["area"])
        agency = _agency(data["agency"], active_needed=data["active"])
        conflict = _duplicate(category.id, area.id, data["priority"])
        if conflict:
            raise conflict
        rule = RoutingRule(category=category, area=area, agency=agency, priority=data["priority"],
                           active=data["active"])
        _write(rule)
        audit.record(actor, "rule.create", "routing_rule", rule.id, None, SNAPSHOT.dump(rule))
    return rule


def update(rule_id: int, fields: dict[str, Any], actor: audit.Actor) -> RoutingRule:
    """Retarget, reprioritise, activate or deactivate a rule (its category and area stay). A rule on an area
    of a retired boundary vintage can only be deactivated (422 otherwise)."""
    data = RuleUpdateSchema().load(fields)
    with committing():
        rule = find(rule_id, lock=True)
        before = SNAPSHOT.dump(rule)
        if rule.area.valid_to is not None and (set(data) - {"active"} or data.get("active")):
            # (as create: a rule on a retired vintage's area would route by boundaries that no longer exist)
            raise ApiError(422, "validation_error",
                           f"area: rule {rule.id} is on {rule.area.code} of a retired boundary vintage (until "
                           f"{rule.area.valid_to}): it can only be deactivated; make a rule on a current area instead.",
                           message_vi=f"Quy tắc {rule.id} thuộc địa bàn {rule.area.code} đã hết hiệu lực: chỉ có thể "
                                      "ngừng quy tắc này; hãy tạo quy tắc cho địa bàn hiện hành.",
                           fields={"area": ["Of a retired boundary vintage: only deactivation is allowed."]})
        active = data.get("active", rule.active)
        if "agency" in data or active:
            rule.agency = _agency(data.get("agency", rule.agency.code), active_needed=active)
        if "priority" in data and data["priority"] != rule.priority:
            conflict = _duplicate(rule.category_id, rule.area_id, data["priority"], rule.id)
            if conflict:
                raise conflict
            rule.priority = data["priority"]
        rule.active = active
        _write(rule)
        audit.record(actor, "rule.update", "routing_rule", rule.id, before, SNAPSHOT.dump(rule))
    return rule


# -- re-routing ---------------------------------------------------------------------------------------

@dataclass
class Move:
    code: str
    status: str
    from_agency: str | None
    to_agency: str


@dataclass
class Rerouted:
    moved: list[Move] = field(default_factory=list)
    unchanged: int = 0
    audit_id: int | None = None
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "moved": [m.__dict__ for m in self.moved], "moved_count": len(self.moved),
                "unchanged": self.unchanged, "audit_id": self.audit_id}


# Where the rules send an open report now: at the area areas.rule_area_id gives (its ward if current, else the
# current ward covering its location, else the city); no rule: the dispatcher.
def _target(report: Report, city_area_id: int) -> tuple[int, str] | None:
    row = db.session.execute(routing.RULE_SQL, {"area_id": areas.rule_area_id(report.id, report.ward_id, city_area_id),
                                                "category_id": report.category_id}).mappings().first()
    if row is None:
        row = db.session.execute(routing.DISPATCHER_SQL).mappings().first()
    if row is None:
        return None
    return row["agency_id"], db.session.scalar(select(Agency.code).where(Agency.id == row["agency_id"]))


def reroute(fields: dict[str, Any], actor: audit.Actor, account: Any) -> Rerouted:
    """Move the open reports of a ward (every boundary vintage of its code) and/or a category to the
    agency the rules give now, as transfers by `account` (an admin's Account, or workflow.CommandAdmin),
    in one transaction with the audit entry. Reports already there are left alone. `dry_run`: say what
    would move and write nothing."""
    data = RerouteSchema().load(fields)
    city = areas.current_city()
    if city is None or city.area_id is None:
        raise ApiError(409, "no_city", "No city is loaded.", message_vi="Chưa nạp dữ liệu thành phố.")
    where = [Report.status.in_(REROUTABLE)]
    if data.get("category"):
        where.append(Report.category_id == _category(data["category"]).id)
    if data.get("ward"):
        ward_ids = db.session.scalars(select(AdminArea.id).where(AdminArea.code == data["ward"])).all()
        if not ward_ids:
            raise ApiError(422, "validation_error", f"ward: no area {data['ward']!r}.",
                           message_vi=f"Không có địa bàn {data['ward']!r}.", fields={"ward": ["No such area."]})
        where.append(Report.ward_id.in_(ward_ids))
    reason = REROUTE_REASON + (f"\n{data['reason']}" if data.get("reason") else "")
    result = Rerouted(dry_run=data["dry_run"])
    with committing():
        # Every category's routing lock first, in order, then the reports in id order: no report of them is
        # being routed, transferred or unlinked meanwhile, and nobody waits on us holding what we wait for.
        locked = db.session.scalars(select(func.distinct(Report.category_id)).where(*where)).all()
        routing.lock_categories(locked)
        # (a report of another category routed here meanwhile is left for the next run: its lock is not held)
        reports = db.session.scalars(select(Report).options(joinedload(Report.ward), joinedload(Report.agency))
                                     .where(*where, Report.category_id.in_(locked)).order_by(Report.id)
                                     .with_for_update(of=Report)).all()
        plan = []
        for report in reports:
            target = _target(report, city.area_id)
            if target is None or target[0] == report.agency_id:
                result.unchanged += 1
                continue
            plan.append((report, target[1]))
            result.moved.append(Move(report.public_code, report.status,
                                     report.agency.code if report.agency else None, target[1]))
        if result.dry_run:
            db.session.rollback()
            return result
        key = ",".join(f"{name}={data[name]}" for name in ("ward", "category") if data.get(name))
        entry = audit.record(actor, "reports.reroute", "reports", key,
                             {"ward": data.get("ward"), "category": data.get("category"),
                              "agencies": {m.code: m.from_agency for m in result.moved}},
                             {"agencies": {m.code: m.to_agency for m in result.moved}, "unchanged": result.unchanged,
                              "reason": data.get("reason")})
        result.audit_id = entry.id
        for report, agency_code in plan:
            workflow.transfer_in_transaction(report.id, account, report.version, agency_code, reason,
                                             {"reroute": True, "audit_id": entry.id})
    workflow.after_commit([])
    return result

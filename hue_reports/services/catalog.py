"""What residents can report: the active categories and their groups; and their administration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from ..errors import ApiError
from ..extensions import db
from ..models import Category, CategoryGroup
from ..schemas.admin import (CategoryCreateSchema, CategorySchema, CategoryUpdateSchema, GroupCreateSchema,
                             GroupSchema, GroupUpdateSchema)
from . import audit, committing


def active_categories() -> list[Category]:
    """Active categories with their group, in display order (group, then category)."""
    stmt = (
        select(Category)
        .join(Category.group)
        .options(joinedload(Category.group))
        .where(Category.active)
        .order_by(CategoryGroup.sort_order, CategoryGroup.code, Category.sort_order, Category.code)
    )
    return list(db.session.scalars(stmt))


# -- administration ---------------------------------------------------------------------------------------
#
# Categories and groups as an admin changes them; each change commits with its audit entry. A new SLA
# counts for the reports routed from then on: a deadline already given stays (reports keep their `due_at`;
# a reopening gets a fresh one on the SLA in force). A deactivated category is no longer offered to
# residents (/api/v1/services, Open311); its open reports are worked as before.

CATEGORY_SNAPSHOT = CategorySchema()
GROUP_SNAPSHOT = GroupSchema()


def all_categories() -> list[Category]:
    """Every category, active or not, in display order."""
    return list(db.session.scalars(
        select(Category).join(Category.group).options(joinedload(Category.group))
        .order_by(CategoryGroup.sort_order, CategoryGroup.code, Category.sort_order, Category.code)))


def all_groups() -> list[CategoryGroup]:
    return list(db.session.scalars(select(CategoryGroup).order_by(CategoryGroup.sort_order, CategoryGroup.code)))


def _not_found(kind: str, code: str) -> ApiError:
    vi = {"category": "lĩnh vực", "group": "nhóm lĩnh vực"}[kind]
    return ApiError(404, f"{kind}_not_found", f"No {kind} {code!r}.", message_vi=f"Không có {vi} {code!r}.")


def find_category(code: str, *, lock: bool = False) -> Category:
    stmt = select(Category).options(joinedload(Category.group)).where(Category.code == code)
    category = None if "\x00" in code else (  # (NUL: no code has one, PostgreSQL cannot compare it)
        db.session.scalars(stmt.with_for_update(of=Category) if lock else stmt).first())
    if category is None:
        raise _not_found("category", code)
    return category


def find_group(code: str, *, lock: bool = False) -> CategoryGroup:
    stmt = select(CategoryGroup).where(CategoryGroup.code == code)
    group = None if "\x00" in code else db.session.scalars(stmt.with_for_update() if lock else stmt).first()
    if group is None:
        raise _not_found("group", code)
    return group


def _group_field(code: str) -> CategoryGroup:
    group = db.session.scalars(select(CategoryGroup).where(CategoryGroup.code == code)).first()
    if group is None:
        raise ApiError(422, "validation_error", f"group: no group {code!r}.", message_vi=f"Không có nhóm {code!r}.",
                       fields={"group": [f"No group {code!r}."]})
    return group


def _set(obj: Any, data: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if name in data:
            setattr(obj, name, data[name])


CATEGORY_FIELDS = ("name", "name_en", "description", "description_en", "sla_hours", "urgent", "keywords",
                   "attributes", "active", "sort_order")


def _taken(kind: str, code: str) -> ApiError:
    return ApiError(409, f"{kind}_exists", f"A {kind} {code!r} exists.", message_vi=f"Mã {code!r} đã được dùng.",
                    fields={"code": ["Taken."]})


KINDS = {"category": (Category, "category", CATEGORY_SNAPSHOT), "group": (CategoryGroup, "category_group",
                                                                         GROUP_SNAPSHOT)}


def _create(kind: str, data: dict[str, Any], actor: audit.Actor, prepare: Callable[[Any], None]) -> Any:
    """A new category or group with the code in `data`, `prepare`d, written with its audit entry."""
    model, object_type, snapshot = KINDS[kind]
    with committing():
        if db.session.scalar(select(model.id).where(model.code == data["code"])) is not None:
            raise _taken(kind, data["code"])
        obj = model(code=data["code"])
        prepare(obj)
        try:
            with db.session.begin_nested():  # (a concurrent creation of the same code loses here)
                db.session.add(obj)
        except IntegrityError:
            raise _taken(kind, data["code"]) from None
        audit.record(actor, f"{kind}.create", object_type, obj.code, None, snapshot.dump(obj))
    return obj


def _update(kind: str, code: str, actor: audit.Actor, change: Callable[[Any], None]) -> Any:
    """Lock the category or group `code`, `change` it, write it with its audit entry."""
    _, object_type, snapshot = KINDS[kind]
    with committing():
        obj = (find_category if kind == "category" else find_group)(code, lock=True)
        before = snapshot.dump(obj)
        change(obj)
        db.session.flush()
        audit.record(actor, f"{kind}.update", object_type, obj.code, before, snapshot.dump(obj))
    return obj


def _category_change(data: dict[str, Any]) -> Callable[[Category], None]:
    def change(category: Category) -> None:
        if "group" in data:
            category.group = _group_field(data["group"])
        _set(category, data, CATEGORY_FIELDS)
    return change


def create_category(fields: dict[str, Any], actor: audit.Actor) -> Category:
    """A new category (an Open311 service) from CategoryCreateSchema's fields; 409 `category_exists`."""
    data = {"description": "", "description_en": "", "keywords": [], "attributes": [], "urgent": False,
            "active": True, "sort_order": 0, **CategoryCreateSchema().load(fields)}
    return _create("category", data, actor, _category_change(data))


def update_category(code: str, fields: dict[str, Any], actor: audit.Actor) -> Category:
    """Change a category: names, group, description, SLA (new reports only), attributes, active."""
    return _update("category", code, actor, _category_change(CategoryUpdateSchema().load(fields)))


GROUP_FIELDS = ("name", "name_en", "sort_order")


def create_group(fields: dict[str, Any], actor: audit.Actor) -> CategoryGroup:
    """A new group of categories; 409 `group_exists`."""
    data = {"sort_order": 0, **GroupCreateSchema().load(fields)}
    return _create("group", data, actor, lambda group: _set(group, data, GROUP_FIELDS))


def update_group(code: str, fields: dict[str, Any], actor: audit.Actor) -> CategoryGroup:
    """Rename or reorder a group."""
    data = GroupUpdateSchema().load(fields)
    return _update("group", code, actor, lambda group: _set(group, data, GROUP_FIELDS))

"""What residents can report: the active categories and their groups."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import Category, CategoryGroup


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

"""Who does the work: agencies, the categories of problems, and the routing rules between them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (Boolean, CheckConstraint, ForeignKey, Index, Numeric, String, Text,
                        UniqueConstraint, func, text)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .area import AdminArea
from .base import Base, Timestamps, sql_in

AGENCY_KINDS = ("department", "company", "service", "ward_committee", "police", "dispatcher", "other")


class Agency(Timestamps, Base):
    """A body that handles reports. The one active agency of kind `dispatcher` (the city
    operations centre) receives what no rule routes."""

    __tablename__ = "agencies"
    __table_args__ = (
        CheckConstraint(sql_in("kind", AGENCY_KINDS), name="kind"),
        # At most one active dispatcher.
        Index("uq_agencies_one_dispatcher", "kind", unique=True,
              postgresql_where=text("kind = 'dispatcher' AND active")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    name_en: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(32))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("admin_areas.id"))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    # The webhook secret signs outgoing messages (HMAC), so it is kept usable, not hashed.
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_secret: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")

    area: Mapped[AdminArea | None] = relationship()

    @property
    def is_dispatcher(self) -> bool:
        return self.kind == "dispatcher"

    def __repr__(self) -> str:
        return f"<Agency {self.code}>"


class CategoryGroup(Base):
    """A group of categories (Open311 `group`), e.g. "Chiếu sáng công cộng"."""

    __tablename__ = "category_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    sort_order: Mapped[int] = mapped_column(default=0, server_default="0")


class Category(Timestamps, Base):
    """A kind of problem residents report (an Open311 service), with its deadline.

    `sla_hours` are WORKING hours on the city's calendar: 52.5 is seven working
    days of 7.5 hours, Hue-S's usual answer time. `attributes` holds extra input
    fields as Open311 service-definition attributes.
    """

    __tablename__ = "categories"
    __table_args__ = (CheckConstraint("sla_hours > 0", name="sla_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("category_groups.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    description_en: Mapped[str] = mapped_column(Text, default="", server_default="")
    sla_hours: Mapped[Decimal] = mapped_column(Numeric(7, 2))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    keywords: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    attributes: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    sort_order: Mapped[int] = mapped_column(default=0, server_default="0")

    group: Mapped[CategoryGroup] = relationship()

    def __repr__(self) -> str:
        return f"<Category {self.code}>"


class RoutingRule(Base):
    """Category x area -> agency. The rule on the most specific covering area wins;
    among rules on the same area, the lowest `priority` number."""

    __tablename__ = "routing_rules"
    __table_args__ = (UniqueConstraint("category_id", "area_id", "priority"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), index=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("admin_areas.id"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    priority: Mapped[int] = mapped_column(default=100, server_default="100")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    category: Mapped[Category] = relationship()
    area: Mapped[AdminArea] = relationship()
    agency: Mapped[Agency] = relationship()

"""The accountability metrics' rollups: facts derived from `report_events`, and the published answers.

Nothing here is a source of truth: `flask metrics rebuild` recomputes every row from the events, and
`flask metrics verify` recomputes the published figures from the events alone and compares.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, SmallInteger, String, func
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, sql_in

# A report's state for the metrics: work still to do, fixed, refused as not a valid report, or a duplicate.
METRIC_STATES = ("open", "resolved", "rejected", "duplicate")
# One agency's custody of a report: in its hands now, fixed by it (and not reopened), passed on, refused.
CUSTODY_STATES = ("open", "resolved", "transferred", "rejected")


class MetricReport(Base):
    """One report's facts, as its events say (times in microseconds; `*_w` are readings of the city's
    working-time clock, WorkCalendar.working_us, so that working durations are differences)."""

    __tablename__ = "metric_reports"
    __table_args__ = (
        CheckConstraint(sql_in("state", METRIC_STATES), name="state"),
        Index("ix_metric_reports_submitted", "submitted_at"),
    )

    report_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("reports.id", ondelete="CASCADE"),
                                           primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    ward_id: Mapped[int | None] = mapped_column(ForeignKey("admin_areas.id"))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))  # in whose hands it is (or ended)
    submitted_at: Mapped[datetime]
    month: Mapped[date] = mapped_column(Date)  # the first day of the local month of submission
    submitted_w: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(12))
    resolved_at: Mapped[datetime | None]  # the last resolution (a reopened report is open again)
    resolve_us: Mapped[int | None] = mapped_column(BigInteger)  # submission to the last resolution
    resolve_work_us: Mapped[int | None] = mapped_column(BigInteger)
    due_at: Mapped[datetime | None]  # the deadline in force
    due_from_w: Mapped[int | None] = mapped_column(BigInteger)  # where that deadline's SLA started counting
    sla_us: Mapped[int | None] = mapped_column(BigInteger)
    on_time: Mapped[bool | None] = mapped_column(Boolean)  # resolved by the deadline in force
    transfers: Mapped[int] = mapped_column(SmallInteger, default=0)
    reopens: Mapped[int] = mapped_column(SmallInteger, default=0)
    rating: Mapped[int | None] = mapped_column(SmallInteger)


class MetricCustody(Base):
    """One agency's custody of one report: every spell it held the ticket, summed (the agency's clock)."""

    __tablename__ = "metric_custodies"
    __table_args__ = (
        CheckConstraint(sql_in("state", CUSTODY_STATES), name="state"),
        Index("ix_metric_custodies_agency", "agency_id"),
    )

    report_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("reports.id", ondelete="CASCADE"),
                                           primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(12))
    held_us: Mapped[int] = mapped_column(BigInteger)  # finished spells
    held_work_us: Mapped[int] = mapped_column(BigInteger)
    open_since: Mapped[datetime | None]  # the running spell's start
    open_since_w: Mapped[int | None] = mapped_column(BigInteger)
    ack_us: Mapped[int | None] = mapped_column(BigInteger)  # agency's clock at its first response
    ack_work_us: Mapped[int | None] = mapped_column(BigInteger)
    on_time: Mapped[bool | None] = mapped_column(Boolean)
    transfers_out: Mapped[int] = mapped_column(SmallInteger, default=0)
    reopens: Mapped[int] = mapped_column(SmallInteger, default=0)
    rating: Mapped[int | None] = mapped_column(SmallInteger)


class MetricState(Base):
    """How far the facts are: every event of a transaction below `events_through` is in them."""

    __tablename__ = "metric_state"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    events_through: Mapped[int] = mapped_column(BigInteger)
    refreshed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class MetricResult(Base):
    """A published answer of GET /api/v1/public/metrics (one grouping and period), refreshed by the
    scheduler while people ask for it."""

    __tablename__ = "metric_results"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # group_by|from|to
    body: Mapped[dict[str, Any]]
    as_of: Mapped[datetime]
    events_through: Mapped[int] = mapped_column(BigInteger)
    requested_at: Mapped[datetime] = mapped_column(server_default=func.now())

"""The report aggregate: a report, its reporter's contact, its photos, its events and feedback."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (BigInteger, Boolean, CheckConstraint, ForeignKey, Identity, Index, SmallInteger,
                        String, Text, UniqueConstraint, func, text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .agency import Agency, Category
from .area import AdminArea
from .base import SRID, Base, Timestamps, sql_in


class ReportStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    ROUTED = "routed"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    ROUTING_FAILED = "routing_failed"


# Labels shown to people: Vietnamese first, English alongside.
STATUS_LABELS: dict[str, dict[str, str]] = {
    "submitted": {"vi": "chờ tiếp nhận", "en": "submitted"},
    "routed": {"vi": "đã chuyển xử lý", "en": "sent to agency"},
    "acknowledged": {"vi": "đã tiếp nhận", "en": "acknowledged"},
    "in_progress": {"vi": "đang xử lý", "en": "in progress"},
    "resolved": {"vi": "đã xử lý", "en": "resolved"},
    "closed": {"vi": "đã đóng", "en": "closed"},
    "rejected": {"vi": "từ chối", "en": "rejected"},
    "duplicate": {"vi": "trùng lặp", "en": "duplicate"},
    "routing_failed": {"vi": "chưa chuyển được", "en": "routing failed"},
}
OVERDUE_LABEL = {"vi": "quá hạn", "en": "overdue"}

ALL_STATUSES = tuple(s.value for s in ReportStatus)
# Statuses in which the work is finished; everything else is open (and can be overdue).
FINISHED_STATUSES = ("resolved", "closed", "rejected", "duplicate")
OPEN_STATUSES = tuple(s for s in ALL_STATUSES if s not in FINISHED_STATUSES)

LOCATION_SOURCES = ("client", "exif")
CHANNELS = ("app", "web", "open311")
PHOTO_KINDS = ("evidence", "resolution")
ACTOR_KINDS = ("resident", "officer", "system", "admin")


class Report(Timestamps, Base):
    """One citizen report. Its history is in `events`; its reporter's contact in `contact`."""

    __tablename__ = "reports"
    __table_args__ = (
        CheckConstraint(sql_in("status", ALL_STATUSES), name="status"),
        CheckConstraint(sql_in("location_source", LOCATION_SOURCES), name="location_source"),
        CheckConstraint(sql_in("channel", CHANNELS), name="channel"),
        CheckConstraint("supporters >= 0", name="supporters_non_negative"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("location_accuracy_m IS NULL OR location_accuracy_m >= 0", name="accuracy_non_negative"),
        # Idempotency-Key is unique per client (scope), so a retried submission makes one report.
        UniqueConstraint("idempotency_scope", "idempotency_key"),
        Index("ix_reports_agency_status_due", "agency_id", "status", "due_at"),
        Index("ix_reports_open_due", "due_at", postgresql_where=text(sql_in("status", OPEN_STATUSES))),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    public_code: Mapped[str] = mapped_column(String(32), unique=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), index=True)
    description: Mapped[str] = mapped_column(Text)
    location: Mapped[WKBElement | None] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=True))
    location_source: Mapped[str | None] = mapped_column(String(16))
    location_accuracy_m: Mapped[float | None]
    address: Mapped[str | None] = mapped_column(Text)
    ward_id: Mapped[int | None] = mapped_column(ForeignKey("admin_areas.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=ReportStatus.SUBMITTED.value,
                                        server_default=ReportStatus.SUBMITTED.value, index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    channel: Mapped[str] = mapped_column(String(16), default="app", server_default="app")
    submitted_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    routed_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), index=True)
    supporters: Mapped[int] = mapped_column(default=0, server_default="0")
    tracking_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    idempotency_scope: Mapped[str | None] = mapped_column(String(128))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))

    category: Mapped[Category] = relationship()
    ward: Mapped[AdminArea | None] = relationship()
    agency: Mapped[Agency | None] = relationship()
    duplicate_of: Mapped[Report | None] = relationship(remote_side=[id])
    contact: Mapped[ReportContact | None] = relationship(back_populates="report", cascade="all, delete-orphan")
    photos: Mapped[list[Photo]] = relationship(back_populates="report", order_by="Photo.id")
    events: Mapped[list[ReportEvent]] = relationship(back_populates="report", order_by="ReportEvent.id")

    def __repr__(self) -> str:
        return f"<Report {self.public_code} {self.status}>"


class ReportContact(Base):
    """The reporter's personal data, kept apart from the report.

    Nothing public ever joins this table, and the retention job can erase a
    row without touching the report or its history.
    """

    __tablename__ = "report_contacts"

    report_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("reports.id", ondelete="CASCADE"),
                                           primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(320))
    device_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    erased_at: Mapped[datetime | None]

    report: Mapped[Report] = relationship(back_populates="contact")


class Photo(Base):
    """A photo of a report: the private original (content-addressed) and its public derivatives."""

    __tablename__ = "photos"
    __table_args__ = (
        CheckConstraint(sql_in("kind", PHOTO_KINDS), name="kind"),
        CheckConstraint("size_bytes > 0", name="size_positive"),
        UniqueConstraint("report_id", "sha256"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    report_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("report_events.id"))
    kind: Mapped[str] = mapped_column(String(16), default="evidence", server_default="evidence")
    storage_key: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int]
    height: Mapped[int]
    gps: Mapped[WKBElement | None] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=True))
    taken_at: Mapped[datetime | None]
    display_key: Mapped[str | None] = mapped_column(String(300))
    thumb_key: Mapped[str | None] = mapped_column(String(300))
    derivatives_ready_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    report: Mapped[Report] = relationship(back_populates="photos")

    @property
    def derivatives_ready(self) -> bool:
        return self.derivatives_ready_at is not None


class ReportEvent(Base):
    """One change in a report's life. Append-only: a database trigger refuses UPDATE and DELETE."""

    __tablename__ = "report_events"
    __table_args__ = (
        CheckConstraint(sql_in("actor_kind", ACTOR_KINDS), name="actor_kind"),
        Index("ix_report_events_report_created", "report_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    report_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("reports.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    type: Mapped[str] = mapped_column(String(32), index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    note: Mapped[str | None] = mapped_column(Text)
    # No default: whoever writes an event decides whether the public may see it.
    public: Mapped[bool] = mapped_column(Boolean)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")

    report: Mapped[Report] = relationship(back_populates="events")


class Feedback(Base):
    """The reporter's rating of the fix (1-5) and an optional comment."""

    __tablename__ = "feedback"
    __table_args__ = (CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    report_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

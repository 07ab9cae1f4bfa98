"""The report aggregate: a report, its reporter's contact, its photos, its events and feedback."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (BigInteger, Boolean, CheckConstraint, ForeignKey, Identity, Index, SmallInteger,
                        String, Text, UniqueConstraint, func, literal_column, text)
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
# What happened, in a report's timeline.
EVENT_LABELS: dict[str, dict[str, str]] = {
    "submitted": {"vi": "Người dân gửi phản ánh", "en": "Report submitted"},
    "routed": {"vi": "Đã chuyển đến đơn vị xử lý", "en": "Sent to the responsible agency"},
    "routing_failed": {"vi": "Chưa chuyển được đến đơn vị xử lý", "en": "Could not be routed"},
    "duplicate": {"vi": "Trùng với phản ánh đã có", "en": "Duplicate of an existing report"},
    "unlinked": {"vi": "Tách khỏi phản ánh trùng", "en": "No longer a duplicate"},
    "supported": {"vi": "Thêm người dân cùng phản ánh", "en": "Another resident reported the same problem"},
    "overdue": {"vi": "Quá hạn xử lý", "en": "Past its deadline"},
    "acknowledged": {"vi": "Đơn vị đã tiếp nhận", "en": "Acknowledged by the agency"},
    "started": {"vi": "Đang xử lý", "en": "Work started"},
    "resolved": {"vi": "Đã xử lý xong", "en": "Resolved"},
    "rejected": {"vi": "Không tiếp nhận", "en": "Rejected"},
    "transferred": {"vi": "Chuyển đơn vị xử lý", "en": "Transferred to another agency"},
    "closed": {"vi": "Đã đóng", "en": "Closed"},
    "reopened": {"vi": "Mở lại do người dân chưa hài lòng", "en": "Reopened: the resident was not satisfied"},
    "comment": {"vi": "Ghi chú", "en": "Comment"},
    "feedback": {"vi": "Người dân đánh giá kết quả", "en": "Resident rated the fix"},
    "personal_data_erased": {"vi": "Đã xoá dữ liệu cá nhân (hết thời hạn lưu trữ)",
                             "en": "Personal data erased (retention period over)"},
}

ALL_STATUSES = tuple(s.value for s in ReportStatus)
# Statuses in which the work is finished; everything else is open (and can be overdue).
FINISHED_STATUSES = ("resolved", "closed", "rejected", "duplicate")
OPEN_STATUSES = tuple(s for s in ALL_STATUSES if s not in FINISHED_STATUSES)

# How a report's location is known: the client's position, a photo's GPS, or the ward or commune its
# address names (services/geocode.py). The approximate ones are no position: never compared with others.
LOCATION_SOURCES = ("client", "exif", "address")
APPROXIMATE_LOCATION_SOURCES = ("address",)
CHANNELS = ("app", "web", "open311")
PHOTO_KINDS = ("evidence", "resolution")
ACTOR_KINDS = ("resident", "officer", "system", "admin")
# The current transaction's id as a bigint (xid8 has no cast to bigint but through text).
TXID_SQL = "(pg_current_xact_id()::text)::bigint"
# Events a report has at most one of (overdue: one per deadline).
ONCE_EVENTS = ("submitted", "routed")


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
        Index("ix_reports_agency_status_due", "agency_id", "status", "due_at"),
        Index("ix_reports_open_due", "due_at", postgresql_where=text(sql_in("status", OPEN_STATUSES))),
        # The officers' text search, with or without Vietnamese diacritics (migration 0004 defines the
        # function: lower(unaccent(text)), immutable).
        Index("ix_reports_search", func.hue_search_key(literal_column("description")).label("search_key"),
              postgresql_using="gin", postgresql_ops={"search_key": "gin_trgm_ops"}),
        Index("ix_reports_search_address", func.hue_search_key(literal_column("address")).label("address_key"),
              postgresql_using="gin", postgresql_ops={"address_key": "gin_trgm_ops"}),
        Index("ix_reports_search_code", func.hue_search_key(literal_column("public_code")).label("code_key"),
              postgresql_using="gin", postgresql_ops={"code_key": "gin_trgm_ops"}),
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
    # How often the sweep had to queue this report's routing again (a lost job, a killed worker).
    routing_requeues: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    tracking_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # When the retention job (services/privacy.py) last erased the reporter's personal data: contact,
    # tracking token, originals and the camera's metadata. Again if the report is reopened and closed later.
    privacy_erased_at: Mapped[datetime | None]

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
    # Where the reporter's app wants status changes pushed (a push gateway): never sent contact details.
    notify_url: Mapped[str | None] = mapped_column(Text)
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
    # Set when the derivatives cannot be made (an image that passed intake's checks yet fails to render).
    derivative_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Set when the retention job let go of this photo's original (services/privacy.py): it is served no more
    # (410), and the stored file is deleted once no photo within retention shares its content.
    original_deleted_at: Mapped[datetime | None]

    report: Mapped[Report] = relationship(back_populates="photos")

    @property
    def state(self) -> str:
        """`processing` until the public derivatives exist, then `ready` (or `failed`)."""
        if self.derivatives_ready_at is not None:
            return "ready"
        return "failed" if self.derivative_error else "processing"


class ReportEvent(Base):
    """One change in a report's life. Append-only: a database trigger refuses UPDATE and DELETE."""

    __tablename__ = "report_events"
    __table_args__ = (
        CheckConstraint(sql_in("actor_kind", ACTOR_KINDS), name="actor_kind"),
        Index("ix_report_events_report_created", "report_id", "created_at"),
        # A report is routed once and flagged overdue once, whatever runs twice.
        Index("uq_report_events_once", "report_id", "type", unique=True,
              postgresql_where=text(sql_in("type", ONCE_EVENTS))),
        # ... and flagged overdue once per deadline (a reopened report has a new one).
        Index("uq_report_events_overdue", "report_id", text("(data ->> 'due_epoch')"), unique=True,
              postgresql_where=text("type = 'overdue'")),
        # The feeds (GET /api/v1/agency/events), in the order of their cursor: one agency's, and everyone's.
        Index("ix_report_events_agency_feed", "agency_id", "txid", "id"),
        Index("ix_report_events_feed", "txid", "id"),
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
    # The id of the transaction that wrote the event. Ids are handed out at insert but become visible at
    # commit, out of order; a feed that pages by (txid, id) and stops below the oldest running transaction
    # never skips an event that commits late (services/reports.agency_events).
    txid: Mapped[int] = mapped_column(BigInteger, server_default=text(TXID_SQL))

    report: Mapped[Report] = relationship(back_populates="events")


class Feedback(Base):
    """The reporter's rating of the fix (1-5) and an optional comment."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
        UniqueConstraint("report_id", name="uq_feedback_once"),  # a reporter rates a fix once
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    report_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class IdempotencyKey(Base):
    """A client's Idempotency-Key: a retry with the same key and body replays the first answer.

    The primary key makes two racing requests with one key produce one report:
    the second INSERT waits for the first transaction and then finds its row.
    """

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(250), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    report_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("reports.id", ondelete="CASCADE"))
    # The first 201 body without the tracking token (re-derived on replay, never stored).
    response: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)


class ReportCodeCounter(Base):
    """The last number given in a public code series, e.g. HUE-2026-000123 (prefix HUE, year 2026)."""

    __tablename__ = "report_code_counters"

    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger)

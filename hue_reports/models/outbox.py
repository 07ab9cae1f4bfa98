"""Notifications to deliver (agency webhooks, e-mail), written in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Identity, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, sql_in

OUTBOX_KINDS = ("webhook", "email", "sms")


class OutboxMessage(Base):
    """One message to deliver, retried with backoff until delivered or given up."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(sql_in("kind", OUTBOX_KINDS), name="kind"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        # The delivery sweep reads only what is still pending.
        Index("ix_outbox_pending", "next_attempt_at",
              postgresql_where=text("delivered_at IS NULL AND gave_up_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    report_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("reports.id"), index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    # Makes enqueueing the same notification twice a no-op.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    delivered_at: Mapped[datetime | None]
    gave_up_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

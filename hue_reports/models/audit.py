"""The audit log: every change an administrator makes (through the admin API or a `flask` command)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Identity, Index, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, sql_in

AUDIT_CHANNELS = ("api", "cli")


class AuditEntry(Base):
    """Who changed what, when, and the object before and after (JSON, never a secret).

    Written in the same transaction as the change it records. Append-only: a database trigger refuses
    UPDATE and DELETE. `actor_account_id` is deliberately not a foreign key: the log outlives accounts,
    and `actor` keeps the name as it was (a username, or `cli:<system user>` for a command).
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(sql_in("via", AUDIT_CHANNELS), name="via"),
        Index("ix_audit_log_object", "object_type", "object_key", "id"),
        Index("ix_audit_log_action", "action", "id"),
        Index("ix_audit_log_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor: Mapped[str] = mapped_column(String(200))
    actor_account_id: Mapped[int | None]
    via: Mapped[str] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_key: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))

    def __repr__(self) -> str:
        return f"<AuditEntry {self.id} {self.action} {self.object_type}:{self.object_key}>"

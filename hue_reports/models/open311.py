"""Open311 GeoReport v2: the api_keys issued to client applications (`flask open311 keys create`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, func
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class Open311Key(Base):
    """One client application's api_key. Only its SHA-256 (hex) is stored; an admin can revoke it."""

    __tablename__ = "open311_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"<Open311Key {self.id} {self.name}>"

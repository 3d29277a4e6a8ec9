"""Ingest tables: WHIP credentials (encoders, OBS) and RTSP sources (录播 hosts) per classroom.

A WHIP credential is a bearer token shown once when minted; only its SHA-256 is stored. An
RTSP source's password is stored encrypted (server/secrets_box.py) and never shown again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db.models import ID, Base, Classroom, new_id, utcnow


class WhipCredential(Base):
    __tablename__ = "whip_credentials"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    classroom_id: Mapped[str] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), index=True
    )
    # What the admin calls it ("讲台 OBS", "编码器 1").
    name: Mapped[str] = mapped_column(String(200), default="")
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    classroom: Mapped[Classroom] = relationship(lazy="raise")


class RtspSource(Base):
    __tablename__ = "rtsp_sources"
    __table_args__ = (UniqueConstraint("classroom_id", "source"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    classroom_id: Mapped[str] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(16), default="camera")  # camera | board
    # rtsp://host[:port]/path, without user:password (those are the two columns below).
    url: Mapped[str] = mapped_column(String(1000))
    username: Mapped[str] = mapped_column(String(200), default="")
    password_sealed: Mapped[str] = mapped_column(String(1000), default="")
    transport: Mapped[str] = mapped_column(String(8), default="tcp")  # tcp | udp
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    classroom: Mapped[Classroom] = relationship(lazy="raise")

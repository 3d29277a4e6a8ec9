"""Classroom terminals: the devices enrolled once per classroom that join its lessons.

An admin makes an enrollment code for a classroom (shown as text and as a QR code); a
device trades it, once, for a long-lived credential. Both are shown once and stored only
as their SHA-256. A credential works until an admin revokes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db.models import ID, Base, Classroom, new_id, utcnow


class TerminalEnrollment(Base):
    """A one-time enrollment code: expires, and is spent by the device that uses it."""

    __tablename__ = "terminal_enrollments"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    classroom_id: Mapped[str] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), index=True
    )
    code_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    # Set when a device enrolled with it (the code cannot be used again).
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class ClassroomTerminal(Base):
    """An enrolled device of a classroom, with its credential's hash and when it was seen."""

    __tablename__ = "classroom_terminals"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    classroom_id: Mapped[str] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), index=True
    )
    # What the device calls itself at enrollment ("讲台一体机"), or "".
    name: Mapped[str] = mapped_column(String(200), default="")
    credential_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    classroom: Mapped[Classroom] = relationship(lazy="raise")

"""Attendance tables: each classroom's connected spans, and one summary row per lesson and
classroom written when the lesson ends.

`attendance_spans` is the raw, durable record (written as classrooms connect and drop, so a
node that dies mid-lesson leaves it); `lesson_attendance` is what reports read (issue 16's
督导 reports aggregate it in SQL by day, school and classroom: those columns are indexed).
docs/architecture.md "Attendance" explains every column.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db.models import Base, utcnow


class SpanEnd(StrEnum):
    """How a connected span ended."""

    LOST = "lost"  # the connection died (掉线): one of the periods lost
    LEFT = "left"  # the classroom left
    GONE = "gone"  # lost and not back within the resume window (the span ended at the loss)
    REPLACED = "replaced"  # another connection of the classroom took over
    ENDED = "ended"  # the lesson ended while it was connected
    INTERRUPTED = "interrupted"  # the server stopped: closed when the classroom came back


class AttendanceStatus(StrEnum):
    PENDING = "pending"  # the lesson has not ended yet
    PRESENT = "present"  # 出席: connected within late_after_s of the start
    LATE = "late"  # 迟到: first connected later than that
    ABSENT = "absent"  # 缺席: never connected while the lesson was live


class AttendanceSpan(Base):
    """One connected interval of a classroom in a lesson (before the start included)."""

    __tablename__ = "attendance_spans"
    __table_args__ = (Index("ix_attendance_spans_lesson_classroom", "lesson_id", "classroom_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lesson_id: Mapped[str] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"))
    classroom_id: Mapped[str] = mapped_column(ForeignKey("classrooms.id", ondelete="CASCADE"))
    joined_at: Mapped[datetime]
    # Null while connected (or if the node died: closed as interrupted later).
    left_at: Mapped[datetime | None] = mapped_column(default=None)
    # joined (a new connection) or resumed (within the resume window).
    began: Mapped[str] = mapped_column(String(16))
    ended: Mapped[str | None] = mapped_column(String(16), default=None)


class LessonAttendance(Base):
    """A lesson's lead or receiving classroom: when it came, how long, how well connected.

    Times in seconds; present_s and stage_s count only the live lesson (start to end)."""

    __tablename__ = "lesson_attendance"

    lesson_id: Mapped[str] = mapped_column(
        ForeignKey("lessons.id", ondelete="CASCADE"), primary_key=True
    )
    classroom_id: Mapped[str] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # Copied from the classroom and lesson so reports group without joins.
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # lead | receiver
    # The district's day of the lesson's scheduled start.
    day: Mapped[date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(16), default=AttendanceStatus.PENDING, index=True)
    joined_at: Mapped[datetime | None] = mapped_column(default=None)
    left_at: Mapped[datetime | None] = mapped_column(default=None)
    # First connection after the start, in seconds after it (0 when there before it).
    late_s: Mapped[float | None] = mapped_column(Float, default=None)
    present_s: Mapped[float] = mapped_column(Float, default=0.0)
    # New connections (a resume does not count) and connections that died (掉线).
    joins: Mapped[int] = mapped_column(Integer, default=0)
    periods_lost: Mapped[int] = mapped_column(Integer, default=0)
    stage_s: Mapped[float] = mapped_column(Float, default=0.0)
    # Connection quality over the lesson: percentiles of ~2 s reports (loss 0..1).
    quality_samples: Mapped[int] = mapped_column(Integer, default=0)
    loss_p50: Mapped[float | None] = mapped_column(Float, default=None)
    loss_p95: Mapped[float | None] = mapped_column(Float, default=None)
    jitter_p50_ms: Mapped[float | None] = mapped_column(Float, default=None)
    jitter_p95_ms: Mapped[float | None] = mapped_column(Float, default=None)
    rtt_p50_ms: Mapped[float | None] = mapped_column(Float, default=None)
    rtt_p95_ms: Mapped[float | None] = mapped_column(Float, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

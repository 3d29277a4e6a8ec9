"""The term timetable's tables: terms, their holidays and make-up days, weekly 1+N slots,
and per-date exceptions. Lessons generated from a slot carry (slot_id, slot_day).

Days are the district's calendar days (server/district_time.py) and period times are its
wall-clock times; both are plain DATE/TIME columns, turned into UTC only when a lesson is
generated. Report queries (issue 16) go by term, slot, classroom and day: those are indexed.
"""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum

from sqlalchemy import Column, Date, ForeignKey, Integer, String, Table, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db.models import ID, Account, Base, Classroom, new_id, utcnow


class DayKind(StrEnum):
    HOLIDAY = "holiday"  # 节假日: no lessons from first_day to last_day
    MAKEUP = "makeup"  # 调休: a weekend day that follows another weekday's timetable


class RecordingPolicy(StrEnum):
    ALWAYS = "always"  # recording starts when the lesson goes live
    NEVER = "never"  # recording cannot be switched on
    TEACHER = "teacher"  # the lead teacher decides (the default)


class StartMode(StrEnum):
    CLICK = "click"  # the lead teacher clicks 开始上课
    TIME = "time"  # the lead terminal starts the lesson at its scheduled time


class ExceptionAction(StrEnum):
    CANCEL = "cancel"  # no lesson that day
    MOVE = "move"  # another day and/or time
    SUBSTITUTE = "substitute"  # another teacher (代课)


class Term(Base):
    __tablename__ = "terms"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    first_day: Mapped[date] = mapped_column(Date, index=True)
    last_day: Mapped[date] = mapped_column(Date, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TermDay(Base):
    """A holiday range or one make-up day of a term."""

    __tablename__ = "term_days"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    term_id: Mapped[str] = mapped_column(ForeignKey("terms.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    # A make-up day runs this weekday's timetable (1 = Monday ... 5 = Friday).
    follows_weekday: Mapped[int | None] = mapped_column(Integer, default=None)
    name: Mapped[str] = mapped_column(String(200), default="")


slot_receivers = Table(
    "slot_receivers",
    Base.metadata,
    Column("slot_id", ID, ForeignKey("timetable_slots.id", ondelete="CASCADE"), primary_key=True),
    Column("classroom_id", ID, ForeignKey("classrooms.id", ondelete="RESTRICT"), primary_key=True),
    Column("position", Integer, nullable=False, default=0),
)


class TimetableSlot(Base):
    """One weekly 1+N lesson: weekday, period and its times, who teaches whom."""

    __tablename__ = "timetable_slots"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    term_id: Mapped[str] = mapped_column(ForeignKey("terms.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)  # 1 = Monday ... 5 = Friday
    period: Mapped[int] = mapped_column(Integer)  # 第几节
    starts: Mapped[time] = mapped_column(Time)
    ends: Mapped[time] = mapped_column(Time)
    title: Mapped[str] = mapped_column(String(300), default="")
    subject: Mapped[str] = mapped_column(String(64), default="")
    grade: Mapped[str] = mapped_column(String(32), default="")
    lead_classroom_id: Mapped[str] = mapped_column(
        ForeignKey("classrooms.id", ondelete="RESTRICT"), index=True
    )
    teacher_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    recording_policy: Mapped[str] = mapped_column(String(16), default=RecordingPolicy.TEACHER)
    start_mode: Mapped[str] = mapped_column(String(16), default=StartMode.CLICK)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lead_classroom: Mapped[Classroom] = relationship(lazy="raise")
    teacher: Mapped[Account] = relationship(lazy="raise")
    receivers: Mapped[list[Classroom]] = relationship(
        secondary=slot_receivers, order_by=slot_receivers.c.position, lazy="raise", viewonly=True
    )


class SlotException(Base):
    """What happens instead of a slot's lesson on one day; kept across regeneration."""

    __tablename__ = "slot_exceptions"
    __table_args__ = (UniqueConstraint("slot_id", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slot_id: Mapped[str] = mapped_column(
        ForeignKey("timetable_slots.id", ondelete="CASCADE"), index=True
    )
    day: Mapped[date] = mapped_column(Date)  # the slot's regular day this replaces
    action: Mapped[str] = mapped_column(String(16))
    # move: the new day and times (None keeps the slot's).
    new_day: Mapped[date | None] = mapped_column(Date, default=None)
    new_starts: Mapped[time | None] = mapped_column(Time, default=None)
    new_ends: Mapped[time | None] = mapped_column(Time, default=None)
    # substitute (or a move with another teacher).
    teacher_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), default=None
    )
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

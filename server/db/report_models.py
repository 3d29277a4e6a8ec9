"""Stored figures of the 督导 report: one row per (school, settled week), and the change marks
that say which of them no longer hold.

A term report of a whole district reads ~510,000 lesson and attendance rows when computed
from scratch (~600 ms on PostgreSQL); the weeks that are over rarely change, so their
per-school figures are kept here (~7,600 rows a term) and only the weeks still running, the
period's partial edge weeks and what changed since are computed live
(server/reports/stored_weeks.py).

Database triggers (migration 0011) add a mark (school, day) for every write that a stored
figure counts: lessons, attendance, talkbacks, notes, recordings, replay evaluations, slot
exceptions, and a classroom or a slot moving to another school (then the day is
`ALL_DAYS`: every week of the school). Triggers, not application code, so that every writer
(API, timetable generation, the signaling service, bulk COPY) marks without knowing about it.
A mark's day is the UTC day of the lesson's scheduled start (the district day for attendance
and slot exceptions): readers widen it by a day each side to cover the district's zone.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from server.db.models import ID, Base, utcnow

# A mark on this day means every week of the school.
ALL_DAYS = date(1970, 1, 1)


class ReportMark(Base):
    """Something a stored figure counts changed for this school on (or around) this day;
    `n` grows with each change, so a reader clears only the marks it has seen."""

    __tablename__ = "report_marks"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    # No foreign key: a mark may outlive its school (the school's rows are gone with it).
    school_id: Mapped[str] = mapped_column(ID, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=1)


class ReportWeek(Base):
    """A Monday whose week's rows are stored for every school (absent: none stored)."""

    __tablename__ = "report_weeks"

    monday: Mapped[date] = mapped_column(Date, primary_key=True)
    # The on-time grace the week was computed with: another setting means recompute.
    grace_s: Mapped[float] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportSchoolWeek(Base):
    """One school's figures for one stored week (schools with nothing that week: no row).
    The columns are server/reports/queries.Figures' summed fields, same names."""

    __tablename__ = "report_school_weeks"

    monday: Mapped[date] = mapped_column(
        ForeignKey("report_weeks.monday", ondelete="CASCADE"), primary_key=True
    )
    school_id: Mapped[str] = mapped_column(
        ForeignKey("schools.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    scheduled: Mapped[int] = mapped_column(Integer, default=0)
    held: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    not_held: Mapped[int] = mapped_column(Integer, default=0)
    on_time: Mapped[int] = mapped_column(Integer, default=0)
    receivers: Mapped[int] = mapped_column(Integer, default=0)
    delivered_hours: Mapped[float] = mapped_column(Float, default=0.0)
    patrolled: Mapped[int] = mapped_column(Integer, default=0)
    talks: Mapped[int] = mapped_column(Integer, default=0)
    evaluations: Mapped[int] = mapped_column(Integer, default=0)
    scored: Mapped[int] = mapped_column(Integer, default=0)
    score_sum: Mapped[float] = mapped_column(Float, default=0.0)
    recordings: Mapped[int] = mapped_column(Integer, default=0)
    exemplary: Mapped[int] = mapped_column(Integer, default=0)
    expected: Mapped[int] = mapped_column(Integer, default=0)
    present: Mapped[int] = mapped_column(Integer, default=0)
    late: Mapped[int] = mapped_column(Integer, default=0)
    received_hours: Mapped[float] = mapped_column(Float, default=0.0)
    quality_good: Mapped[int] = mapped_column(Integer, default=0)
    quality_fair: Mapped[int] = mapped_column(Integer, default=0)
    quality_poor: Mapped[int] = mapped_column(Integer, default=0)
    quality_bad: Mapped[int] = mapped_column(Integer, default=0)
    quality_unknown: Mapped[int] = mapped_column(Integer, default=0)

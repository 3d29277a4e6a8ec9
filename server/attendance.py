"""Attendance from its durable record: each classroom's connected spans and the stage
timeline, clipped to the live lesson, summed into one row per lesson and classroom.

`tally` is pure (tests feed it spans); `store_summary` writes the rows when a lesson ends;
`lesson_rows` computes them for the report (a live lesson counts up to now).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.attendance_models import (
    AttendanceSpan,
    AttendanceStatus,
    LessonAttendance,
    SpanEnd,
)
from server.db.models import Classroom, Lesson, LessonStatus, StageEvent, lesson_receivers
from server.district_time import local_day


@dataclass(frozen=True, slots=True)
class Span:
    joined_at: datetime
    left_at: datetime | None
    began: str
    ended: str | None


@dataclass(frozen=True, slots=True)
class Tally:
    joined_at: datetime | None
    left_at: datetime | None
    late_s: float | None
    present_s: float
    joins: int
    periods_lost: int
    stage_s: float
    status: AttendanceStatus


def _overlap(begin: datetime, end: datetime, lo: datetime, hi: datetime) -> float:
    return max(0.0, (min(end, hi) - max(begin, lo)).total_seconds())


def stage_seconds(
    timeline: Sequence[tuple[datetime, str | None]],
    started_at: datetime | None,
    until: datetime,
) -> dict[str, float]:
    """Seconds each classroom was on stage while live, from (at, classroom or None) events."""
    totals: dict[str, float] = {}
    if started_at is None:
        return totals
    ordered = sorted(timeline, key=lambda e: e[0])
    for index, (at, classroom_id) in enumerate(ordered):
        if classroom_id is None:
            continue
        end = ordered[index + 1][0] if index + 1 < len(ordered) else until
        totals[classroom_id] = totals.get(classroom_id, 0.0) + _overlap(at, end, started_at, until)
    return totals


def tally(
    spans: Iterable[Span],
    started_at: datetime | None,
    until: datetime,
    ended: bool,
    late_after_s: float,
    stage_s: float = 0.0,
) -> Tally:
    """One classroom's attendance. `until` is the end of the lesson (now while it is live);
    a span still open counts up to it."""
    ordered = sorted(spans, key=lambda s: s.joined_at)
    present = 0.0
    lost = 0
    late_s: float | None = None
    if started_at is not None:
        for span in ordered:
            end = span.left_at or until
            seconds = _overlap(span.joined_at, end, started_at, until)
            if seconds > 0 and late_s is None:
                late_s = round(max(0.0, (span.joined_at - started_at).total_seconds()), 1)
            present += seconds
            if span.ended == SpanEnd.LOST and span.left_at and started_at <= span.left_at <= until:
                lost += 1
    if not ended:
        status = AttendanceStatus.PENDING
    elif late_s is None:
        status = AttendanceStatus.ABSENT
    elif late_s > late_after_s:
        status = AttendanceStatus.LATE
    else:
        status = AttendanceStatus.PRESENT
    return Tally(
        joined_at=ordered[0].joined_at if ordered else None,
        left_at=ordered[-1].left_at if ordered else None,
        late_s=late_s,
        present_s=round(present, 1),
        joins=sum(1 for s in ordered if s.began == "joined"),
        periods_lost=lost,
        stage_s=round(stage_s, 1),
        status=status,
    )


async def lesson_tallies(
    session: AsyncSession, lesson: Lesson, now: datetime, late_after_s: float
) -> dict[str, Tally]:
    """Every classroom of the lesson (lead first, then the roster in order, then any other
    that came): its tally up to the lesson's end, or `now` while it is live."""
    ended = lesson.state == LessonStatus.ENDED.value
    until = lesson.ended_at if ended and lesson.ended_at is not None else now
    roster = await session.scalars(
        select(lesson_receivers.c.classroom_id)
        .where(lesson_receivers.c.lesson_id == lesson.id)
        .order_by(lesson_receivers.c.position)
    )
    spans: dict[str, list[Span]] = {lesson.lead_classroom_id: []}
    for classroom_id in roster:
        spans.setdefault(classroom_id, [])
    rows = await session.execute(
        select(AttendanceSpan).where(AttendanceSpan.lesson_id == lesson.id)
    )
    for (row,) in rows:
        spans.setdefault(row.classroom_id, []).append(
            Span(row.joined_at, row.left_at, row.began, row.ended)
        )
    timeline: list[tuple[datetime, str | None]] = [
        (at, classroom_id)
        for at, classroom_id in await session.execute(
            select(StageEvent.at, StageEvent.classroom_id)
            .where(StageEvent.lesson_id == lesson.id)
            .order_by(StageEvent.at, StageEvent.id)
        )
    ]
    on_stage = stage_seconds(timeline, lesson.started_at, until)
    return {
        classroom_id: tally(
            found, lesson.started_at, until, ended, late_after_s, on_stage.get(classroom_id, 0.0)
        )
        for classroom_id, found in spans.items()
    }


async def attendance_row(
    session: AsyncSession, lesson: Lesson, classroom_id: str, zone: tzinfo
) -> LessonAttendance | None:
    """The lesson's row for the classroom, made if missing; None for an unknown classroom."""
    row = await session.get(LessonAttendance, (lesson.id, classroom_id))
    if row is not None:
        return row
    classroom = await session.get(Classroom, classroom_id)
    if classroom is None:
        return None
    row = LessonAttendance(
        lesson_id=lesson.id,
        classroom_id=classroom_id,
        school_id=classroom.school_id,
        role="lead" if classroom_id == lesson.lead_classroom_id else "receiver",
        day=local_day(lesson.scheduled_start, zone),
        status=AttendanceStatus.PENDING.value,
        present_s=0.0,
        joins=0,
        periods_lost=0,
        stage_s=0.0,
        quality_samples=0,
    )
    session.add(row)
    return row


async def close_open_spans(session: AsyncSession, lesson_id: str, at: datetime) -> None:
    """The lesson ended: every span still open ends with it."""
    open_spans = await session.scalars(
        select(AttendanceSpan).where(
            AttendanceSpan.lesson_id == lesson_id, AttendanceSpan.left_at.is_(None)
        )
    )
    for span in open_spans:
        span.left_at = max(at, span.joined_at)
        span.ended = SpanEnd.ENDED.value


async def store_summary(
    session: AsyncSession, lesson: Lesson, zone: tzinfo, late_after_s: float
) -> None:
    """Writes (or rewrites) every classroom's row of an ended lesson; quality is kept."""
    until = lesson.ended_at or lesson.updated_at
    tallies = await lesson_tallies(session, lesson, until, late_after_s)
    for classroom_id, found in tallies.items():
        row = await attendance_row(session, lesson, classroom_id, zone)
        if row is None:
            continue
        row.status = found.status.value
        row.joined_at = found.joined_at
        row.left_at = found.left_at
        row.late_s = found.late_s
        row.present_s = found.present_s
        row.joins = found.joins
        row.periods_lost = found.periods_lost
        row.stage_s = found.stage_s


def live_window(lesson: Lesson, now: datetime) -> timedelta | None:
    """How long the lesson was (or has been) live; None if it never went live."""
    if lesson.started_at is None:
        return None
    return (lesson.ended_at or now) - lesson.started_at

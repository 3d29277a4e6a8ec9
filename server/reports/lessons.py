"""The drill-down: lessons led from a scope in a period, each with its figures (one query)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from server.db.attendance_models import AttendanceStatus, LessonAttendance
from server.db.models import Account, Classroom, Lesson, PatrolTalk, School
from server.reports.periods import Period
from server.reports.sql import epoch_s, for_aggregates


async def lesson_rows(
    session: AsyncSession,
    school_ids: Select[tuple[str]] | None,
    period: Period,
    grace_s: float,
    limit: int,
) -> list[dict[str, Any]]:
    room, school = aliased(Classroom), aliased(School)
    came = LessonAttendance.status.in_(
        [AttendanceStatus.PRESENT.value, AttendanceStatus.LATE.value]
    )
    attendance = (
        select(
            LessonAttendance.lesson_id,
            func.sum(case((came, 1), else_=0)).label("present"),
            func.sum(
                case((LessonAttendance.status != AttendanceStatus.PENDING.value, 1), else_=0)
            ).label("expected"),
        )
        .where(LessonAttendance.role == "receiver")
        .group_by(LessonAttendance.lesson_id)
        .subquery()
    )
    talks = (
        select(PatrolTalk.lesson_id, func.count().label("n"))
        .group_by(PatrolTalk.lesson_id)
        .subquery()
    )
    late_s = epoch_s(Lesson.started_at) - epoch_s(Lesson.scheduled_start)
    query = (
        select(
            Lesson.id,
            Lesson.title,
            Lesson.subject,
            Lesson.grade,
            Lesson.state,
            Lesson.scheduled_start,
            Lesson.started_at,
            Lesson.ended_at,
            Account.display_name,
            school.id,
            school.name,
            Lesson.receiver_count,  # kept by a trigger on lesson_receivers
            attendance.c.expected,
            attendance.c.present,
            func.coalesce(talks.c.n, 0),
            case((and_(Lesson.started_at.is_not(None), late_s <= grace_s), True), else_=False),
        )
        .join(room, room.id == Lesson.lead_classroom_id)
        .join(school, school.id == room.school_id)
        .join(Account, Account.id == Lesson.teacher_id)
        .outerjoin(attendance, attendance.c.lesson_id == Lesson.id)
        .outerjoin(talks, talks.c.lesson_id == Lesson.id)
        .where(Lesson.scheduled_start >= period.starts, Lesson.scheduled_start < period.ends)
        .order_by(Lesson.scheduled_start, Lesson.id)
        .limit(limit)
    )
    if school_ids is not None:
        query = query.where(school.id.in_(school_ids))
    await for_aggregates(session)
    rows = []
    for row in await session.execute(query):
        (lesson_id, title, subject, grade, state, start, started, ended, teacher, school_id,
         school_name, n, expected, present, n_talks, on_time) = row  # fmt: skip
        rows.append(
            {
                "id": lesson_id,
                "title": title,
                "subject": subject,
                "grade": grade,
                "state": state,
                "scheduled_start": start,
                "started_at": started,
                "ended_at": ended,
                "teacher": teacher,
                "school_id": school_id,
                "school": school_name,
                "receivers": int(n),
                "expected": int(expected or 0),
                "present": int(present or 0),
                "talks": int(n_talks),
                "on_time": bool(on_time) if started is not None else None,
            }
        )
    return rows

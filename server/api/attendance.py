"""GET /api/lessons/{id}/attendance: the lesson report (who came, when, for how long, on
stage how long, how well connected). A live lesson counts up to now; an ended one reads the
same figures the summary rows hold (server/attendance.py).

Whoever may read the lesson (its scope, server/api/access.py) reads its report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from server.api.access import EVERYONE, access
from server.api.crud import ERRORS
from server.api.lessons import classroom_ref, lesson_out, load_lesson
from server.api.schemas import ClassroomRef, LessonOut
from server.attendance import lesson_tallies, live_window
from server.auth import Principal, State
from server.db.attendance_models import LessonAttendance
from server.db.models import Classroom, utcnow

router = APIRouter(prefix="/lessons", tags=["attendance"])

LessonReader = Annotated[Principal, access(EVERYONE, resource="lesson")]


class QualityOut(BaseModel):
    # Quality reports behind the percentiles (one every ~2 s while connected); 0: none yet.
    samples: int
    loss_p50: float | None
    loss_p95: float | None
    jitter_p50_ms: float | None
    jitter_p95_ms: float | None
    rtt_p50_ms: float | None
    rtt_p95_ms: float | None


class ClassroomAttendanceOut(BaseModel):
    classroom: ClassroomRef
    role: str  # lead | receiver | other (came without being on the roster)
    status: str  # pending (live) | present | late | absent
    joined_at: datetime | None
    left_at: datetime | None
    late_s: float | None
    present_s: float
    present_min: float
    joins: int
    periods_lost: int
    stage_s: float
    quality: QualityOut


class LessonAttendanceOut(BaseModel):
    lesson: LessonOut
    # Seconds the lesson was (so far) live; null if it never went live.
    live_s: float | None
    late_after_s: float
    as_of: datetime
    classrooms: list[ClassroomAttendanceOut]


@router.get("/{lesson_id}/attendance", responses=ERRORS)
async def lesson_attendance(lesson_id: str, _: LessonReader, state: State) -> LessonAttendanceOut:
    now = utcnow()
    late_after_s = state.settings.attendance_late_after_s
    async with state.db.sessions.begin() as session:
        lesson = await load_lesson(session, lesson_id)
        tallies = await lesson_tallies(session, lesson, now, late_after_s)
        stored = {
            row.classroom_id: row
            for row in await session.scalars(
                select(LessonAttendance).where(LessonAttendance.lesson_id == lesson_id)
            )
        }
        known = {c.id: c for c in [lesson.lead_classroom, *lesson.receivers]}
        others = [c for c in tallies if c not in known]
        if others:
            extra = await session.scalars(
                select(Classroom)
                .where(Classroom.id.in_(others))
                .options(selectinload(Classroom.school))
            )
            known.update({c.id: c for c in extra})
        roster = {c.id for c in lesson.receivers}
        rows = []
        for classroom_id, found in tallies.items():
            classroom = known.get(classroom_id)
            if classroom is None:
                continue
            row = stored.get(classroom_id)
            rows.append(
                ClassroomAttendanceOut(
                    classroom=classroom_ref(classroom),
                    role="lead"
                    if classroom_id == lesson.lead_classroom_id
                    else "receiver"
                    if classroom_id in roster
                    else "other",
                    status=found.status.value,
                    joined_at=found.joined_at,
                    left_at=found.left_at,
                    late_s=found.late_s,
                    present_s=found.present_s,
                    present_min=round(found.present_s / 60.0, 1),
                    joins=found.joins,
                    periods_lost=found.periods_lost,
                    stage_s=found.stage_s,
                    quality=QualityOut(
                        samples=row.quality_samples if row else 0,
                        loss_p50=row.loss_p50 if row else None,
                        loss_p95=row.loss_p95 if row else None,
                        jitter_p50_ms=row.jitter_p50_ms if row else None,
                        jitter_p95_ms=row.jitter_p95_ms if row else None,
                        rtt_p50_ms=row.rtt_p50_ms if row else None,
                        rtt_p95_ms=row.rtt_p95_ms if row else None,
                    ),
                )
            )
        window = live_window(lesson, now)
        return LessonAttendanceOut(
            lesson=lesson_out(lesson),
            live_s=round(window.total_seconds(), 1) if window is not None else None,
            late_after_s=late_after_s,
            as_of=now,
            classrooms=rows,
        )

"""/api/patrol/lessons: the patrol wall (巡课墙). Every live lesson the inspector may patrol
(server/scope.py: led from or received in the scope), a page at a time, filtered by county,
school and subject, each with the counts the wall's tile shows before it connects: the
classrooms present (a connection open now, from the durable attendance spans, so any node
answers) out of the roster, recording, and who is on stage. Facets list what the filters
may choose among the caller's live lessons, with how many lessons each holds.

The health badge is not here: the tile reads it from the `quality` reports the lesson
sends its patrol peers (docs/protocol.md), which are seconds old, not minutes.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.access import access
from server.api.errors import ErrorResponse
from server.api.lessons import LESSON_LOAD, classroom_ref
from server.api.schemas import ClassroomRef
from server.auth import Principal, State
from server.db import lengths
from server.db.attendance_models import AttendanceSpan
from server.db.models import (
    AccountRole,
    Classroom,
    County,
    Lesson,
    LessonStatus,
    School,
    StageEvent,
    lesson_receivers,
)
from server.scope import AccountScope, ScopeLevel

router = APIRouter(prefix="/patrol", tags=["patrol"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 422)
}

# An inspector patrols the lessons his scope sees (the same rule as the patrol token).
Inspector = Annotated[Principal, access(frozenset({AccountRole.INSPECTOR}))]

# A page of tiles: each visible tile is one signaling connection and one low-layer video.
PER_PAGE_MAX = 48


class WallLesson(BaseModel):
    id: str
    title: str
    subject: str
    grade: str
    teacher: str
    lead: ClassroomRef
    county_id: str | None  # the lead school's county (None: 州直属)
    county: str | None
    started_at: datetime | None
    recording: bool
    # The receiving classroom on stage (上台) now, if any.
    stage_classroom_id: str | None
    stage_classroom: str | None
    # The roster (lead + receiving classrooms) and how many have a connection open now.
    expected: int
    present: int


class WallFacet(BaseModel):
    id: str  # a county or school id; for subjects, the subject itself
    name: str
    county_id: str | None = None  # schools: their county
    lessons: int


class WallOut(BaseModel):
    total: int
    page: int
    per_page: int
    pages: int
    lessons: list[WallLesson]
    counties: list[WallFacet]
    schools: list[WallFacet]
    subjects: list[WallFacet]


def _touching(place: AccountScope) -> ColumnElement[bool]:
    """Lessons led from or received in `place` (a county or a school)."""
    return place.lesson_clause()


async def _homes(
    session: AsyncSession, lesson_ids: list[str]
) -> list[tuple[str, str, str, str | None, str | None]]:
    """(lesson, school id, school name, county id, county name) for every classroom of each
    lesson's roster (lead and receivers)."""
    rooms = select(Lesson.id.label("lesson_id"), Lesson.lead_classroom_id.label("room")).where(
        Lesson.id.in_(lesson_ids)
    )
    received = select(
        lesson_receivers.c.lesson_id.label("lesson_id"),
        lesson_receivers.c.classroom_id.label("room"),
    ).where(lesson_receivers.c.lesson_id.in_(lesson_ids))
    roster = rooms.union_all(received).subquery()
    rows = await session.execute(
        select(roster.c.lesson_id, School.id, School.name, County.id, County.name)
        .join(Classroom, Classroom.id == roster.c.room)
        .join(School, School.id == Classroom.school_id)
        .outerjoin(County, County.id == School.county_id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _facets(
    homes: list[tuple[str, str, str, str | None, str | None]], subjects: dict[str, str]
) -> tuple[list[WallFacet], list[WallFacet], list[WallFacet]]:
    """Counties, schools and subjects of the caller's live lessons, each with its number
    of lessons (a lesson counts once per county and school it touches)."""
    county_names: dict[str, str] = {}
    school_names: dict[str, tuple[str, str | None]] = {}
    county_lessons: dict[str, set[str]] = {}
    school_lessons: dict[str, set[str]] = {}
    for lesson_id, school_id, school, county_id, county in homes:
        school_names[school_id] = (school, county_id)
        school_lessons.setdefault(school_id, set()).add(lesson_id)
        if county_id is not None and county is not None:
            county_names[county_id] = county
            county_lessons.setdefault(county_id, set()).add(lesson_id)
    counties = [
        WallFacet(id=c, name=county_names[c], lessons=len(ids)) for c, ids in county_lessons.items()
    ]
    schools = [
        WallFacet(id=s, name=school_names[s][0], county_id=school_names[s][1], lessons=len(ids))
        for s, ids in school_lessons.items()
    ]
    per_subject = Counter(s for s in subjects.values() if s)
    subject_facets = [WallFacet(id=s, name=s, lessons=n) for s, n in per_subject.items()]
    return tuple(sorted(f, key=lambda one: one.name) for f in (counties, schools, subject_facets))  # type: ignore[return-value]


async def _present(session: AsyncSession, lesson_ids: list[str]) -> dict[str, int]:
    """Classrooms of each lesson with a connection open now (a span not yet closed)."""
    rows = await session.execute(
        select(AttendanceSpan.lesson_id, func.count(distinct(AttendanceSpan.classroom_id)))
        .where(AttendanceSpan.lesson_id.in_(lesson_ids), AttendanceSpan.left_at.is_(None))
        .group_by(AttendanceSpan.lesson_id)
    )
    return {lesson_id: int(n) for lesson_id, n in rows}


async def _on_stage(session: AsyncSession, lesson_ids: list[str]) -> dict[str, str | None]:
    """Each lesson's classroom on stage now: its newest stage event."""
    newest = (
        select(StageEvent.lesson_id, func.max(StageEvent.id).label("id"))
        .where(StageEvent.lesson_id.in_(lesson_ids))
        .group_by(StageEvent.lesson_id)
        .subquery()
    )
    rows = await session.execute(
        select(StageEvent.lesson_id, StageEvent.classroom_id).join(
            newest, newest.c.id == StageEvent.id
        )
    )
    return {lesson_id: classroom_id for lesson_id, classroom_id in rows}


@router.get("/lessons", responses=ERRORS)
async def wall(
    principal: Inspector,
    state: State,
    county_id: Annotated[str | None, Query(max_length=64)] = None,
    school_id: Annotated[str | None, Query(max_length=64)] = None,
    subject: Annotated[str | None, Query(max_length=lengths.SUBJECT)] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=PER_PAGE_MAX)] = 12,
) -> WallOut:
    """Live lessons in the caller's scope, longest running first (then by title). A filter
    outside the scope simply matches nothing."""
    visible = select(Lesson.id, Lesson.subject).where(
        Lesson.state == LessonStatus.LIVE.value, principal.scope.lesson_clause()
    )
    chosen = visible
    if county_id:
        chosen = chosen.where(_touching(AccountScope(ScopeLevel.COUNTY, county_id)))
    if school_id:
        chosen = chosen.where(_touching(AccountScope(ScopeLevel.SCHOOL, None, school_id)))
    if subject:
        chosen = chosen.where(Lesson.subject == subject)
    async with state.db.sessions.begin() as session:
        subjects = {lesson_id: s for lesson_id, s in await session.execute(visible)}
        homes = await _homes(session, list(subjects))
        counties, schools, subject_facets = _facets(homes, subjects)
        total = int(await session.scalar(select(func.count()).select_from(chosen.subquery())) or 0)
        pages = max(1, math.ceil(total / per_page))
        ids = list(
            await session.scalars(
                select(Lesson.id)
                .where(Lesson.id.in_(chosen.with_only_columns(Lesson.id)))
                .order_by(Lesson.started_at, Lesson.title, Lesson.id)
                .offset((page - 1) * per_page)
                .limit(per_page)
            )
        )
        rows = {
            lesson.id: lesson
            for lesson in await session.scalars(
                select(Lesson).where(Lesson.id.in_(ids)).options(*LESSON_LOAD)
            )
        }
        present = await _present(session, ids)
        on_stage = await _on_stage(session, ids)
        county_of = {s: (c_id, c) for _, s, _, c_id, c in homes}
        lessons = []
        for lesson_id in ids:
            lesson = rows[lesson_id]
            lead = lesson.lead_classroom
            c_id, county = county_of.get(lead.school_id, (None, None))
            stage_id = on_stage.get(lesson_id)
            names = {c.id: c.name for c in lesson.receivers}
            lessons.append(
                WallLesson(
                    id=lesson.id,
                    title=lesson.title,
                    subject=lesson.subject,
                    grade=lesson.grade,
                    teacher=lesson.teacher.display_name,
                    lead=classroom_ref(lead),
                    county_id=c_id,
                    county=county,
                    started_at=lesson.started_at,
                    recording=lesson.recording,
                    stage_classroom_id=stage_id,
                    stage_classroom=names.get(stage_id) if stage_id else None,
                    expected=1 + len(lesson.receivers),
                    present=present.get(lesson_id, 0),
                )
            )
    return WallOut(
        total=total,
        page=page,
        per_page=per_page,
        pages=pages,
        lessons=lessons,
        counties=counties,
        schools=schools,
        subjects=subject_facets,
    )

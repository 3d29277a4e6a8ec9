"""/api/lessons: the timetable. Admins and the owning teacher change a lesson.

State: scheduled -> live (the lead starts it over signaling; or POST /{id}/start, or the
timetable's time for a 录播 host's lesson, with no lead page: server/rtsp_sources.py) -> ended.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from server.api.access import EVERYONE, PLANNERS, SignedIn, access, require_in_scope
from server.api.errors import ApiError, ErrorResponse, forbidden, not_found
from server.api.schemas import ClassroomRef, LessonIn, LessonOut, LessonPatch
from server.attendance import close_open_spans, store_summary
from server.auth import Principal, State
from server.db.models import (
    Account,
    AccountRole,
    Classroom,
    ClassroomKind,
    Lesson,
    LessonStatus,
    lesson_receivers,
    utcnow,
)
from server.district_time import days_span
from signaling.errors import ErrorCode, SignalingError

router = APIRouter(prefix="/lessons", tags=["lessons"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)
}

Planner = Annotated[Principal, access(PLANNERS)]
# Admins whose scope holds the lead classroom, and the lesson's own teacher (ensure_manages).
LessonManager = Annotated[Principal, access(PLANNERS, resource="lesson", manage=True)]
LessonReader = Annotated[Principal, access(EVERYONE, resource="lesson")]

LESSON_LOAD = (
    selectinload(Lesson.teacher),
    selectinload(Lesson.lead_classroom).selectinload(Classroom.school),
    selectinload(Lesson.receivers).selectinload(Classroom.school),
)


def classroom_ref(classroom: Classroom) -> ClassroomRef:
    return ClassroomRef(
        id=classroom.id,
        name=classroom.name,
        school_id=classroom.school_id,
        school=classroom.school.name,
    )


def lesson_out(lesson: Lesson) -> LessonOut:
    """A lesson loaded with LESSON_LOAD as its API shape."""
    return LessonOut(
        id=lesson.id,
        title=lesson.title,
        state=LessonStatus(lesson.state),
        teacher_id=lesson.teacher_id,
        teacher=lesson.teacher.display_name,
        lead=classroom_ref(lesson.lead_classroom),
        receivers=[classroom_ref(c) for c in lesson.receivers],
        scheduled_start=lesson.scheduled_start,
        scheduled_end=lesson.scheduled_end,
        started_at=lesson.started_at,
        ended_at=lesson.ended_at,
        recording=lesson.recording,
        stage=lesson.stage,
        subject=lesson.subject,
        grade=lesson.grade,
        textbook_version=lesson.textbook_version,
        volume=lesson.volume,
        unit=lesson.unit,
        slot_id=lesson.slot_id,
        slot_day=lesson.slot_day,
        recording_policy=lesson.recording_policy,
        start_mode=lesson.start_mode,
    )


async def load_lesson(session: AsyncSession, lesson_id: str) -> Lesson:
    lesson = await session.scalar(
        select(Lesson).where(Lesson.id == lesson_id).options(*LESSON_LOAD)
    )
    if lesson is None:
        raise not_found("lesson")
    return lesson


def ensure_manages(principal: Principal, lesson: Lesson) -> None:
    """Admins manage every lesson; a teacher only his own."""
    if not (principal.is_admin or principal.account_id == lesson.teacher_id):
        raise forbidden("Only an admin or the lesson's teacher may change this lesson.")


def ensure_not_ended(lesson: Lesson) -> None:
    if lesson.state == LessonStatus.ENDED.value:
        raise ApiError(409, "lesson_ended", "The lesson has ended.")


def ensure_scheduled(lesson: Lesson) -> None:
    ensure_not_ended(lesson)
    if lesson.state == LessonStatus.LIVE.value:
        raise ApiError(409, "lesson_live", "The lesson is live; its roster and time are fixed.")


async def _check_teacher(session: AsyncSession, teacher_id: str) -> None:
    teacher = await session.get(Account, teacher_id)
    if teacher is None:
        raise not_found("account")
    if teacher.role != AccountRole.TEACHER.value or not teacher.active:
        raise ApiError(422, "not_a_teacher", "A lesson's teacher must be an active teacher.")


async def check_roster_scope(
    session: AsyncSession, principal: Principal, lead_id: str, receiver_ids: list[str]
) -> None:
    """Every classroom of a roster lies in the caller's scope (404 classroom_not_found)."""
    for classroom_id in dict.fromkeys([lead_id, *receiver_ids]):
        await require_in_scope(session, principal, "classroom", classroom_id, manage=True)


def check_roster_size(receiver_ids: list[str], limit: int) -> None:
    """The setting max_receiving_classrooms: a lesson names at most this many receivers."""
    if len(receiver_ids) > limit:
        raise ApiError(
            422,
            "roster_too_large",
            f"A lesson may have at most {limit} receiving classrooms "
            f"(max_receiving_classrooms); this one names {len(receiver_ids)}.",
        )


async def _check_roster(session: AsyncSession, lead_id: str, receiver_ids: list[str]) -> None:
    if lead_id in receiver_ids or len(set(receiver_ids)) != len(receiver_ids):
        raise ApiError(422, "roster_duplicate", "A classroom appears twice in the roster.")
    rooms = {
        c.id: c
        for c in await session.scalars(
            select(Classroom).where(Classroom.id.in_([lead_id, *receiver_ids]))
        )
    }
    missing = [i for i in (lead_id, *receiver_ids) if i not in rooms]
    if missing:
        raise ApiError(404, "classroom_not_found", f"No such classroom: {', '.join(missing)}.")
    if rooms[lead_id].kind == ClassroomKind.RECEIVING.value:
        raise ApiError(
            422, "classroom_not_lead_capable", "The lead classroom is a receiving-only classroom."
        )
    if any(rooms[i].kind == ClassroomKind.LEAD.value for i in receiver_ids):
        raise ApiError(
            422, "classroom_not_receiving", "A lead-only classroom cannot be a receiver."
        )


def _check_schedule(start: datetime, end: datetime) -> None:
    if end <= start:
        raise ApiError(422, "invalid_schedule", "scheduled_end must be after scheduled_start.")


async def _set_receivers(session: AsyncSession, lesson_id: str, receiver_ids: list[str]) -> None:
    await session.execute(delete(lesson_receivers).where(lesson_receivers.c.lesson_id == lesson_id))
    if receiver_ids:
        await session.execute(
            insert(lesson_receivers),
            [
                {"lesson_id": lesson_id, "classroom_id": cid, "position": n}
                for n, cid in enumerate(receiver_ids)
            ],
        )


@router.get("", responses=ERRORS)
async def list_lessons(
    principal: SignedIn,
    state: State,
    on: Annotated[date | None, Query(alias="date", description="local day, YYYY-MM-DD")] = None,
    utc_offset_minutes: Annotated[int | None, Query(ge=-840, le=840)] = None,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    lesson_state: Annotated[LessonStatus | None, Query(alias="state")] = None,
    teacher_id: str | None = None,
) -> list[LessonOut]:
    """Lessons by scheduled start. `date` is a day in the district's time zone (the
    `timezone` setting), or at `utc_offset_minutes` from UTC when that is given."""
    query = (
        select(Lesson)
        .where(principal.scope.lesson_clause())
        .options(*LESSON_LOAD)
        .order_by(Lesson.scheduled_start)
    )
    if on is not None:
        zone: tzinfo = state.settings.zone
        if utc_offset_minutes is not None:
            zone = timezone(timedelta(minutes=utc_offset_minutes))
        first, after = days_span(on, on, zone)
        query = query.where(Lesson.scheduled_start >= first, Lesson.scheduled_start < after)
    if start_from is not None:
        query = query.where(Lesson.scheduled_start >= _as_utc(start_from))
    if start_to is not None:
        query = query.where(Lesson.scheduled_start < _as_utc(start_to))
    if lesson_state is not None:
        query = query.where(Lesson.state == lesson_state.value)
    if teacher_id is not None:
        query = query.where(Lesson.teacher_id == teacher_id)
    async with state.db.sessions.begin() as session:
        return [lesson_out(lesson) for lesson in await session.scalars(query)]


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@router.get("/{lesson_id}", responses=ERRORS)
async def get_lesson(lesson_id: str, _: LessonReader, state: State) -> LessonOut:
    async with state.db.sessions.begin() as session:
        return lesson_out(await load_lesson(session, lesson_id))


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_lesson(body: LessonIn, principal: Planner, state: State) -> LessonOut:
    teacher_id = body.teacher_id
    if not principal.is_admin:
        if teacher_id not in (None, principal.account_id):
            raise forbidden("A teacher may only schedule his own lessons.")
        teacher_id = principal.account_id
    if teacher_id is None:
        raise ApiError(422, "teacher_required", "Name the lesson's teacher (teacher_id).")
    _check_schedule(body.scheduled_start, body.scheduled_end)
    check_roster_size(body.receiver_classroom_ids, state.settings.max_receiving_classrooms)
    async with state.db.sessions.begin() as session:
        await check_roster_scope(
            session, principal, body.lead_classroom_id, body.receiver_classroom_ids
        )
        await require_in_scope(session, principal, "account", teacher_id, manage=False)
        await _check_teacher(session, teacher_id)
        await _check_roster(session, body.lead_classroom_id, body.receiver_classroom_ids)
        lesson = Lesson(
            teacher_id=teacher_id,
            **body.model_dump(exclude={"teacher_id", "receiver_classroom_ids"}),
        )
        session.add(lesson)
        await session.flush()
        await _set_receivers(session, lesson.id, body.receiver_classroom_ids)
        lesson_id = lesson.id
    async with state.db.sessions.begin() as session:
        return lesson_out(await load_lesson(session, lesson_id))


@router.patch("/{lesson_id}", responses=ERRORS)
async def update_lesson(
    lesson_id: str, body: LessonPatch, principal: LessonManager, state: State
) -> LessonOut:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if body.receiver_classroom_ids is not None:
        check_roster_size(body.receiver_classroom_ids, state.settings.max_receiving_classrooms)
    async with state.db.sessions.begin() as session:
        lesson = await load_lesson(session, lesson_id)
        ensure_manages(principal, lesson)
        fixed = {"teacher_id", "lead_classroom_id", "receiver_classroom_ids"}
        fixed |= {"scheduled_start", "scheduled_end"}
        if fixed & changes.keys():
            ensure_scheduled(lesson)
        teacher_id = changes.pop("teacher_id", None)
        if teacher_id is not None and teacher_id != lesson.teacher_id:
            if not principal.is_admin:
                raise forbidden("Only an admin may hand a lesson to another teacher.")
            await require_in_scope(session, principal, "account", teacher_id, manage=False)
            await _check_teacher(session, teacher_id)
            lesson.teacher_id = teacher_id
        receiver_ids = changes.pop("receiver_classroom_ids", None)
        lead_id = changes.pop("lead_classroom_id", lesson.lead_classroom_id)
        if receiver_ids is not None or lead_id != lesson.lead_classroom_id:
            if receiver_ids is None:
                receiver_ids = [c.id for c in lesson.receivers]
            await _check_roster(session, lead_id, receiver_ids)
            await check_roster_scope(session, principal, lead_id, receiver_ids)
            lesson.lead_classroom_id = lead_id
            await _set_receivers(session, lesson.id, receiver_ids)
        _check_schedule(
            changes.get("scheduled_start", lesson.scheduled_start),
            changes.get("scheduled_end", lesson.scheduled_end),
        )
        for field, value in changes.items():
            setattr(lesson, field, value)
    async with state.db.sessions.begin() as session:
        return lesson_out(await load_lesson(session, lesson_id))


@router.post("/{lesson_id}/start", responses={**ERRORS, 503: {"model": ErrorResponse}})
async def start_lesson(
    lesson_id: str, principal: LessonManager, state: State, request: Request
) -> LessonOut:
    """Start a scheduled lesson as its lead's 开始上课 does, with no lead page needed: a
    lesson whose picture comes from its 录播 host (RTSP) or an encoder (WHIP). 409
    lesson_live (live already), lesson_ended, wrong_node (many nodes: its room is on
    another node, where the lead page starts it), capacity."""
    async with state.db.sessions.begin() as session:
        lesson = await load_lesson(session, lesson_id)
        ensure_manages(principal, lesson)
        ensure_scheduled(lesson)
    try:
        started = await state.rooms.start_lesson(lesson_id)
    except SignalingError as exc:
        raise ApiError(409 if exc.code is not ErrorCode.CAPACITY else 503, exc.code.value,
                       exc.message) from None  # fmt: skip
    if not started:
        raise ApiError(409, "lesson_live", "The lesson is live already.")
    rtsp = getattr(request.app.state, "rtsp", None)
    if rtsp is not None:
        rtsp.poke()  # its 录播 host's pull starts now, not at the next poll
    async with state.db.sessions.begin() as session:
        return lesson_out(await load_lesson(session, lesson_id))


@router.post("/{lesson_id}/end", responses=ERRORS)
async def end_lesson(lesson_id: str, principal: LessonManager, state: State) -> LessonOut:
    """End a live lesson, or cancel a scheduled one. Ending twice is a 409 lesson_ended."""
    async with state.db.sessions.begin() as session:
        lesson = await load_lesson(session, lesson_id)
        ensure_manages(principal, lesson)
        ensure_not_ended(lesson)
    # A room of the lesson here ends as by its lead: the classrooms in it are told
    # (lesson_ended, their ended screens) and closed; recording and attendance close with it.
    if await state.rooms.end_lesson(lesson_id):
        async with state.db.sessions.begin() as session:
            return lesson_out(await load_lesson(session, lesson_id))
    async with state.db.sessions.begin() as session:
        lesson = await load_lesson(session, lesson_id)
        ensure_not_ended(lesson)  # ended by its lead meanwhile
        lesson.state = LessonStatus.ENDED.value
        lesson.ended_at = utcnow()
        lesson.recording = False
        # Ended here, not by its lead: its attendance is summed up all the same.
        await close_open_spans(session, lesson_id, lesson.ended_at)
        await session.flush()
        settings = state.settings
        await store_summary(session, lesson, settings.zone, settings.attendance_late_after_s)
    async with state.db.sessions.begin() as session:
        return lesson_out(await load_lesson(session, lesson_id))


@router.delete("/{lesson_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_lesson(lesson_id: str, principal: LessonManager, state: State) -> Response:
    """Only a lesson that never went live can be deleted; the others belong to the record."""
    async with state.db.sessions.begin() as session:
        lesson = await load_lesson(session, lesson_id)
        ensure_manages(principal, lesson)
        ensure_scheduled(lesson)
        # Links and receivers go with it (ON DELETE CASCADE).
        await session.execute(delete(Lesson).where(Lesson.id == lesson_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)

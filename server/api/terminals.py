"""Classroom terminals (docs/api.md "Classroom terminals").

Admins (whose scope holds the classroom):
POST   /api/classrooms/{id}/terminal-codes   a one-time enrollment code (+ its page URL)
GET    /api/classrooms/{id}/terminals        enrolled devices, last seen, revoked
DELETE /api/terminals/{id}                   revoke one (its credential is refused)

The device (its enrollment code, then its credential, is the credential):
POST   /api/terminal/enroll                  trade a code for a credential (shown once)
GET    /api/terminal/today                   the classroom's day, the service's clock
POST   /api/terminal/lessons/{id}/join       a join token for this classroom's role
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from server.api.access import ADMINS, access
from server.api.errors import ApiError, ErrorResponse, not_found
from server.api.join import home_ws_url, join_response
from server.api.lessons import classroom_ref, load_lesson
from server.api.links import classroom_role
from server.api.schemas import ClassroomRef, JoinOut
from server.auth import Principal, State
from server.db.models import Classroom, LessonStatus, utcnow
from server.db.terminal_models import ClassroomTerminal, TerminalEnrollment
from server.origin import public_base
from server.terminals import (
    authenticate,
    lessons_today,
    new_credential,
    new_enroll_code,
    normalize_code,
    service_now,
    sha256,
)
from signaling.grants import Role

router = APIRouter(tags=["terminals"])
device_router = APIRouter(
    prefix="/terminal",
    tags=["terminals"],
    dependencies=[access(None, why="the enrollment code, then the terminal's credential")],
)

ClassroomAdmin = Annotated[Principal, access(ADMINS, resource="classroom", manage=True)]
TerminalAdmin = Annotated[Principal, access(ADMINS, resource="terminal", manage=True)]

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 410, 422)
}


class EnrollCodeOut(BaseModel):
    classroom_id: str
    # XXXX-XXXX, typed on the device at /terminal/ (case, spaces and dashes do not matter).
    code: str
    # The terminal page with the code in it: what the QR code holds.
    enroll_url: str
    expires_at: datetime


class TerminalOut(BaseModel):
    id: str
    classroom_id: str
    name: str
    created_at: datetime
    last_seen_at: datetime | None
    revoked_at: datetime | None


class EnrollIn(BaseModel):
    code: str = Field(min_length=4, max_length=40)
    # What the device is ("讲台一体机"); shown to admins in the list.
    name: str = Field(default="", max_length=200)


class EnrolledOut(BaseModel):
    # Sent as `Authorization: Bearer` from now on. Shown once; only its hash is kept.
    credential: str
    terminal: TerminalOut
    classroom: ClassroomRef


class TerminalLesson(BaseModel):
    id: str
    title: str
    subject: str
    grade: str
    teacher: str
    lead: ClassroomRef
    # This classroom's part: lead or receiver.
    role: Role
    state: LessonStatus
    scheduled_start: datetime
    scheduled_end: datetime
    started_at: datetime | None
    ended_at: datetime | None
    start_mode: str  # click | time


class TodayOut(BaseModel):
    # The service's clock when it answered: the page counts down from it, not its own.
    server_time: datetime
    day: str  # the district's date, YYYY-MM-DD
    timezone: str
    classroom: ClassroomRef
    terminal: TerminalOut
    join_before_s: int
    clock_warn_s: int
    lessons: list[TerminalLesson]


class TerminalJoinOut(JoinOut):
    server_time: datetime
    start_mode: str


def terminal_out(row: ClassroomTerminal) -> TerminalOut:
    return TerminalOut(
        id=row.id,
        classroom_id=row.classroom_id,
        name=row.name,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        revoked_at=row.revoked_at,
    )


@router.post(
    "/classrooms/{classroom_id}/terminal-codes",
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
)
async def make_enroll_code(
    classroom_id: str, principal: ClassroomAdmin, state: State, request: Request
) -> EnrollCodeOut:
    """A one-time enrollment code for a device of the classroom, valid for
    terminal_enroll_ttl_s."""
    code = new_enroll_code()
    expires_at = utcnow() + timedelta(seconds=state.settings.terminal_enroll_ttl_s)
    async with state.db.sessions.begin() as session:
        if await session.get(Classroom, classroom_id) is None:
            raise not_found("classroom")
        session.add(
            TerminalEnrollment(
                classroom_id=classroom_id,
                code_sha256=sha256(normalize_code(code)),
                created_by_id=principal.account_id,
                created_at=utcnow(),
                expires_at=expires_at,
            )
        )
    base = public_base(request, state.settings)
    return EnrollCodeOut(
        classroom_id=classroom_id,
        code=code,
        enroll_url=f"{base}/terminal/?enroll={code}",
        expires_at=expires_at,
    )


@router.get("/classrooms/{classroom_id}/terminals", responses=ERRORS)
async def list_terminals(classroom_id: str, _: ClassroomAdmin, state: State) -> list[TerminalOut]:
    """The classroom's enrolled devices, revoked ones too, oldest first."""
    async with state.db.sessions.begin() as session:
        rows = await session.scalars(
            select(ClassroomTerminal)
            .where(ClassroomTerminal.classroom_id == classroom_id)
            .order_by(ClassroomTerminal.created_at)
        )
        return [terminal_out(row) for row in rows]


@router.delete("/terminals/{terminal_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def revoke_terminal(terminal_id: str, _: TerminalAdmin, state: State) -> Response:
    """Revoke a terminal: its credential is refused from now on (terminal_revoked). A lesson
    it is in keeps its connection; it cannot get a new join token. Twice is harmless."""
    async with state.db.sessions.begin() as session:
        row = await session.get(ClassroomTerminal, terminal_id)
        if row is None:
            raise not_found("terminal")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@device_router.post("/enroll", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def enroll(body: EnrollIn, state: State) -> EnrolledOut:
    """Trade an enrollment code for a credential. 404 enroll_code_unknown, 410
    enroll_code_used or enroll_code_expired."""
    credential = new_credential()
    async with state.db.sessions.begin() as session:
        enrollment = await session.scalar(
            select(TerminalEnrollment)
            .where(TerminalEnrollment.code_sha256 == sha256(normalize_code(body.code)))
            .with_for_update()
        )
        if enrollment is None:
            raise ApiError(
                404,
                "enroll_code_unknown",
                "No such enrollment code; check it or ask for a new one.",
            )
        now = utcnow()
        if enrollment.used_at is not None:
            raise ApiError(
                410, "enroll_code_used", "This enrollment code was used already; ask for a new one."
            )
        if enrollment.expires_at <= now:
            raise ApiError(
                410, "enroll_code_expired", "This enrollment code has expired; ask for a new one."
            )
        enrollment.used_at = now
        terminal = ClassroomTerminal(
            classroom_id=enrollment.classroom_id,
            name=body.name.strip(),
            credential_sha256=sha256(credential),
            created_at=now,
            last_seen_at=now,
        )
        session.add(terminal)
        await session.flush()
        classroom = await session.scalar(
            select(Classroom)
            .where(Classroom.id == enrollment.classroom_id)
            .options(selectinload(Classroom.school))
        )
        assert classroom is not None  # the enrollment's classroom (ON DELETE CASCADE)
        return EnrolledOut(
            credential=credential,
            terminal=terminal_out(terminal),
            classroom=classroom_ref(classroom),
        )


@device_router.get("/today", responses=ERRORS)
async def today(state: State, request: Request) -> TodayOut:
    """The classroom's lessons today (the district's day on the service's clock) and any
    live one, with the service's time. 401 terminal_unauthorized, terminal_unknown,
    terminal_revoked."""
    settings = state.settings
    async with state.db.sessions.begin() as session:
        terminal = await authenticate(session, request)
        now = service_now(settings)
        lessons = await lessons_today(session, settings, terminal.classroom_id, now)
        classroom = terminal.classroom
        return TodayOut(
            server_time=service_now(settings),
            day=now.astimezone(settings.zone).date().isoformat(),
            timezone=settings.timezone,
            classroom=classroom_ref(classroom),
            terminal=terminal_out(terminal),
            join_before_s=settings.terminal_join_before_s,
            clock_warn_s=settings.terminal_clock_warn_s,
            lessons=[
                TerminalLesson(
                    id=lesson.id,
                    title=lesson.title,
                    subject=lesson.subject,
                    grade=lesson.grade,
                    teacher=lesson.teacher.display_name,
                    lead=classroom_ref(lesson.lead_classroom),
                    role=Role.LEAD if lesson.lead_classroom_id == classroom.id else Role.RECEIVER,
                    state=LessonStatus(lesson.state),
                    scheduled_start=lesson.scheduled_start,
                    scheduled_end=lesson.scheduled_end,
                    started_at=lesson.started_at,
                    ended_at=lesson.ended_at,
                    start_mode=lesson.start_mode,
                )
                for lesson in lessons
            ],
        )


@device_router.post("/lessons/{lesson_id}/join", responses=ERRORS)
async def join_lesson(lesson_id: str, state: State, request: Request) -> TerminalJoinOut:
    """A join token for the terminal's classroom in one of its lessons (lead or receiver,
    as the roster says). 401 as /today; 404 lesson_not_found (also a lesson the classroom
    is not in); 409 lesson_ended; 503 as /api/join."""
    async with state.db.sessions.begin() as session:
        terminal = await authenticate(session, request)
        try:
            lesson = await load_lesson(session, lesson_id)
            role = classroom_role(lesson, terminal.classroom_id)
        except ApiError as exc:
            if exc.code == "classroom_not_in_lesson":
                raise not_found("lesson") from None
            raise
        classroom = terminal.classroom
    ws_url = await home_ws_url(state, lesson)
    join = join_response(state, lesson, role, classroom, ws_url=ws_url)
    return TerminalJoinOut(
        **join.model_dump(), server_time=service_now(state.settings), start_mode=lesson.start_mode
    )

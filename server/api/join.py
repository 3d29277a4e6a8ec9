"""/api/join/{code}: a classroom terminal or inspector trades a join link for a join token.

No account is needed: the link is the credential, and it can be revoked or expire.
"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from server.api.errors import ApiError, ErrorResponse
from server.api.lessons import LESSON_LOAD, classroom_ref
from server.api.schemas import JoinOut, LessonSummary
from server.auth import State
from server.db.models import Account, Classroom, JoinLink, Lesson, LessonStatus, utcnow
from server.state import AppState
from signaling.grants import Role, default_grant

router = APIRouter(tags=["join"])

# The WebSocket endpoint, relative to the page's origin.
WS_PATH = "/ws"


def lesson_summary(lesson: Lesson) -> LessonSummary:
    return LessonSummary(
        id=lesson.id,
        title=lesson.title,
        state=LessonStatus(lesson.state),
        teacher=lesson.teacher.display_name,
        school=lesson.lead_classroom.school.name,
        subject=lesson.subject,
        grade=lesson.grade,
        scheduled_start=lesson.scheduled_start,
        scheduled_end=lesson.scheduled_end,
    )


def join_response(
    state: AppState,
    lesson: Lesson,
    role: Role,
    classroom: Classroom | None = None,
    account: Account | None = None,
) -> JoinOut:
    """Mint a join token for one peer of `lesson` (loaded with LESSON_LOAD)."""
    if lesson.state == LessonStatus.ENDED.value:
        raise ApiError(409, "lesson_ended", "The lesson has ended.")
    if classroom is not None:
        name = f"{classroom.school.name} {classroom.name}"
    else:
        name = account.display_name if account is not None else role.value
    account_id = account.id if account is not None else None
    if role is Role.LEAD and account_id is None:
        # The lead speaks for the lesson's teacher (notes written from the lead name him).
        account_id = lesson.teacher_id
    grant = default_grant(
        lesson.id,
        role,
        name,
        classroom_id=classroom.id if classroom is not None else None,
        account_id=account_id,
    )
    return JoinOut(
        token=state.tokens.issue(grant),
        expires_in=state.tokens.ttl_s,
        role=role,
        lesson=lesson_summary(lesson),
        classroom=classroom_ref(classroom) if classroom is not None else None,
        ws_url=WS_PATH,
        ice_servers=list(state.settings.ice_servers),
    )


@router.post(
    "/join/{code}",
    responses={code: {"model": ErrorResponse} for code in (404, 409, 410)},
)
async def join(code: str, state: State) -> JoinOut:
    """Open a join link. 404 link_not_found, 410 link_revoked or link_expired,
    409 lesson_ended."""
    async with state.db.sessions.begin() as session:
        link = await session.scalar(
            select(JoinLink)
            .where(JoinLink.code == code)
            .options(
                selectinload(JoinLink.lesson).options(*LESSON_LOAD),
                selectinload(JoinLink.classroom).selectinload(Classroom.school),
                selectinload(JoinLink.account),
            )
        )
    if link is None:
        raise ApiError(404, "link_not_found", "This join link does not exist.")
    if link.revoked_at is not None:
        raise ApiError(410, "link_revoked", "This join link was revoked.")
    if link.expires_at is not None and link.expires_at <= utcnow():
        raise ApiError(410, "link_expired", "This join link has expired.")
    if link.account is not None and not link.account.active:
        raise ApiError(410, "link_revoked", "The account this link belongs to is deactivated.")
    return join_response(state, link.lesson, Role(link.role), link.classroom, link.account)

"""/api/join/{code}: a classroom terminal or inspector trades a join link for a join token.

No account is needed: the link is the credential, and it can be revoked or expire.
"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from server.api.access import access
from server.api.errors import ApiError, ErrorResponse
from server.api.lessons import classroom_ref
from server.api.schemas import (
    JoinOut,
    LessonSummary,
    OutcomeOut,
    RecordingOutcome,
    RecordingSpaceOut,
)
from server.auth import State
from server.cluster.placement import PlacementError
from server.db.models import (
    Account,
    Classroom,
    JoinLink,
    Lesson,
    LessonStatus,
    LibraryRecording,
    utcnow,
)
from server.disk_space import folder_space, min_free_bytes
from server.state import AppState
from signaling.grants import Role, default_grant
from signaling.redis_bus import TRANSIENT

# The link's code is the credential (revocable, expiring), not an account.
router = APIRouter(
    tags=["join"], dependencies=[access(None, why="the join link is the credential")]
)

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
    ws_url: str = WS_PATH,
    link_id: str | None = None,
) -> JoinOut:
    """Mint a join token for one peer of `lesson` (its teacher and lead classroom's school
    loaded, as LESSON_LOAD does). The token names `link_id`, the link it came from, so
    join refuses it once the link is revoked (server/revocations.py)."""
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
        link_id=link_id,
    )
    return JoinOut(
        token=state.tokens.issue(grant),
        expires_in=state.tokens.ttl_s,
        role=role,
        lesson=lesson_summary(lesson),
        classroom=classroom_ref(classroom) if classroom is not None else None,
        ws_url=ws_url,
        ice_servers=list(state.settings.ice_servers),
    )


@router.post(
    "/join/{code}",
    responses={code: {"model": ErrorResponse} for code in (404, 409, 410, 503)},
)
async def join(code: str, state: State) -> JoinOut:
    """Open a join link. 404 link_not_found, 410 link_revoked or link_expired,
    409 lesson_ended, 503 no_node_available (many nodes: all draining or full).
    `ws_url` is where to open the WebSocket: relative on one node or when the lesson lives
    on this node, else the absolute URL of the lesson's home node."""
    async with state.db.sessions.begin() as session:
        link = await session.scalar(
            select(JoinLink)
            .where(JoinLink.code == code)
            .options(
                # One query and only what the reply needs, not the roster: with LESSON_LOAD
                # a 64-classroom lesson made each join load ~140 rows in 7 queries, and 100
                # joins at once queued for seconds (tests/signaling/test_join_load.py).
                joinedload(JoinLink.lesson).options(
                    joinedload(Lesson.teacher),
                    joinedload(Lesson.lead_classroom).joinedload(Classroom.school),
                ),
                joinedload(JoinLink.classroom).joinedload(Classroom.school),
                joinedload(JoinLink.account),
            )
        )
    link = usable_link(link)
    ws_url = await home_ws_url(state, link.lesson)
    return join_response(
        state,
        link.lesson,
        Role(link.role),
        link.classroom,
        link.account,
        ws_url=ws_url,
        link_id=link.id,
    )


async def home_ws_url(state: AppState, lesson: Lesson) -> str:
    """Many nodes: the WebSocket URL of the lesson's home node, placing the lesson (by load)
    if it has none; the relative WS_PATH when that is this node, or on one node."""
    if state.cluster is None or lesson.state == LessonStatus.ENDED.value:
        return WS_PATH
    try:
        return await state.cluster.ws_url_for(lesson.id)
    except PlacementError as exc:
        raise ApiError(503, exc.code, exc.message) from None  # no_node_available, placement_busy
    except TRANSIENT:
        raise ApiError(
            503, "cluster_unavailable", "The lesson directory (Redis) is unreachable; try again."
        ) from None


def usable_link(link: JoinLink | None) -> JoinLink:
    """The link if it can be used, else 404 link_not_found or 410 revoked / expired (the
    refusals of join, with its account loaded)."""
    if link is None:
        raise ApiError(404, "link_not_found", "This join link does not exist.")
    if link.revoked_at is not None:
        raise ApiError(410, "link_revoked", "This join link was revoked.")
    if link.expires_at is not None and link.expires_at <= utcnow():
        raise ApiError(410, "link_expired", "This join link has expired.")
    if link.account is not None and not link.account.active:
        raise ApiError(410, "link_revoked", "The account this link belongs to is deactivated.")
    return link


@router.get(
    "/join/{code}/outcome",
    responses={code: {"model": ErrorResponse} for code in (404, 410)},
)
async def outcome(code: str, state: State) -> OutcomeOut:
    """How the link's lesson went: state, when it ran and for how long, and its recordings
    with the rendition's progress and the replay page. The ended screens of the classroom
    pages read it; the link is the credential, as for join. 404 link_not_found, 410
    link_revoked or link_expired; an ended lesson is answered (that is the point)."""
    async with state.db.sessions.begin() as session:
        link = await session.scalar(
            select(JoinLink)
            .where(JoinLink.code == code)
            .options(
                joinedload(JoinLink.lesson).options(
                    joinedload(Lesson.teacher),
                    joinedload(Lesson.lead_classroom).joinedload(Classroom.school),
                ),
                joinedload(JoinLink.account),
            )
        )
        lesson = usable_link(link).lesson
        rows = list(
            await session.scalars(
                select(LibraryRecording)
                .where(LibraryRecording.lesson_id == lesson.id)
                .order_by(LibraryRecording.started_at)
            )
        )
    duration = None
    if lesson.started_at is not None and lesson.ended_at is not None:
        duration = max(0.0, (lesson.ended_at - lesson.started_at).total_seconds())
    return OutcomeOut(
        lesson=lesson_summary(lesson),
        state=LessonStatus(lesson.state),
        started_at=lesson.started_at,
        ended_at=lesson.ended_at,
        duration_s=duration,
        recordings=[
            RecordingOutcome(
                recording_id=row.id,
                state=row.state,
                rendition_state=row.rendition_state,
                rendition_progress=row.rendition_progress,
                replay_url=f"/replay/?id={row.id}",
            )
            for row in rows
        ],
    )


@router.get(
    "/join/{code}/recording-space",
    responses={code: {"model": ErrorResponse} for code in (403, 404, 410)},
)
async def recording_space(code: str, state: State) -> RecordingSpaceOut:
    """Free space in the recording root, for the lead page's warning before it records (the
    lead classroom holds a link, not an account). Lead links only: 403 forbidden for others;
    404 link_not_found, 410 link_revoked or link_expired as for join."""
    async with state.db.sessions.begin() as session:
        link = usable_link(
            await session.scalar(
                select(JoinLink).where(JoinLink.code == code).options(joinedload(JoinLink.account))
            )
        )
    if link.role != Role.LEAD.value:
        raise ApiError(403, "forbidden", "Only the lead classroom's link reads this.")
    space = folder_space("recordings", state.settings.effective_recording_root)
    threshold = min_free_bytes(state.settings)
    return RecordingSpaceOut(
        free_bytes=space.free_bytes, min_free_bytes=threshold, space_low=space.low(threshold)
    )

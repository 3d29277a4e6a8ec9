"""/api/lessons/{id}/links: join links per classroom (lead or receiver) and patrol links.

Page URLs: lead and receiver links open `{base}/join/{code}`; patrol links open
`{base}/patrol?link={code}`. Either page POSTs the code to /api/join/{code}. `base` is
public_url when set, else the origin the request arrived on (server/origin.py): an admin
who reached the service at https://192.168.1.10:8443 hands out links classrooms can open.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from server.api.access import access, require_in_scope
from server.api.errors import ApiError, ErrorResponse, not_found
from server.api.join import home_ws_url, join_response
from server.api.lessons import LessonManager, ensure_manages, ensure_not_ended, load_lesson
from server.api.schemas import JoinOut, LinkIn, LinkOut, LinksForRosterIn
from server.auth import Principal, State
from server.db.models import Account, AccountRole, JoinLink, Lesson, utcnow
from server.origin import public_base
from signaling.grants import Role

router = APIRouter(prefix="/lessons/{lesson_id}", tags=["join links"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)
}

# An inspector patrols the lessons his scope sees (led from it, or received in it).
Inspector = Annotated[Principal, access(frozenset({AccountRole.INSPECTOR}), resource="lesson")]


def new_code() -> str:
    return secrets.token_urlsafe(24)  # 32 characters, 192 bits


def link_url(base: str, role: str, code: str) -> str:
    """The page URL of a join link under `base` (scheme://host[:port], no trailing slash)."""
    if role == Role.PATROL.value:
        return f"{base}/patrol?link={code}"
    return f"{base}/join/{code}"


def link_out(base: str, link: JoinLink) -> LinkOut:
    """A link loaded with its classroom, its URL under `base`."""
    return LinkOut(
        id=link.id,
        code=link.code,
        url=link_url(base, link.role, link.code),
        lesson_id=link.lesson_id,
        role=Role(link.role),
        classroom_id=link.classroom_id,
        classroom=link.classroom.name if link.classroom is not None else None,
        account_id=link.account_id,
        created_at=link.created_at,
        expires_at=link.expires_at,
        revoked_at=link.revoked_at,
    )


def classroom_role(lesson: Lesson, classroom_id: str) -> Role:
    """Lead for the lead classroom, receiver for a receiving one; 422 otherwise."""
    if classroom_id == lesson.lead_classroom_id:
        return Role.LEAD
    if any(c.id == classroom_id for c in lesson.receivers):
        return Role.RECEIVER
    raise ApiError(422, "classroom_not_in_lesson", "That classroom is not in this lesson.")


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= utcnow():
        raise ApiError(422, "invalid_expiry", "expires_at must be in the future.")


async def make_link(
    session: AsyncSession,
    lesson: Lesson,
    role: Role,
    *,
    classroom_id: str | None = None,
    account_id: str | None = None,
    created_by_id: str | None = None,
    expires_at: datetime | None = None,
) -> JoinLink:
    link = JoinLink(
        code=new_code(),
        lesson_id=lesson.id,
        classroom_id=classroom_id,
        role=role.value,
        account_id=account_id,
        created_by_id=created_by_id,
        expires_at=expires_at,
        created_at=utcnow(),
    )
    session.add(link)
    await session.flush()
    return link


async def _reload(session: AsyncSession, link_ids: list[str]) -> list[JoinLink]:
    rows = await session.scalars(
        select(JoinLink)
        .where(JoinLink.id.in_(link_ids))
        .options(selectinload(JoinLink.classroom))
        .order_by(JoinLink.created_at)
    )
    by_id = {link.id: link for link in rows}
    return [by_id[i] for i in link_ids]


@router.get("/links", responses=ERRORS)
async def list_links(
    lesson_id: str, principal: LessonManager, state: State, request: Request
) -> list[LinkOut]:
    async with state.db.sessions.begin() as session:
        ensure_manages(principal, await load_lesson(session, lesson_id))
        rows = await session.scalars(
            select(JoinLink)
            .where(JoinLink.lesson_id == lesson_id)
            .options(selectinload(JoinLink.classroom))
            .order_by(JoinLink.created_at)
        )
        return [link_out(public_base(request, state.settings), link) for link in rows]


@router.post("/links", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_link(
    lesson_id: str, body: LinkIn, principal: LessonManager, state: State, request: Request
) -> LinkOut:
    """A classroom link (its role follows the roster) or a patrol link for an inspector."""
    _check_expiry(body.expires_at)
    async with state.db.sessions.begin() as session:
        lesson = await load_lesson(session, lesson_id)
        ensure_manages(principal, lesson)
        ensure_not_ended(lesson)
        if body.account_id is not None or body.role is Role.PATROL:
            if body.classroom_id is not None or body.account_id is None:
                raise ApiError(
                    422, "patrol_needs_inspector", "A patrol link names an inspector account only."
                )
            await require_in_scope(session, principal, "account", body.account_id, manage=False)
            inspector = await session.get(Account, body.account_id)
            if inspector is None:
                raise not_found("account")
            if inspector.role != AccountRole.INSPECTOR.value or not inspector.active:
                raise ApiError(
                    422, "patrol_needs_inspector", "Patrol links are for active inspectors only."
                )
            role = Role.PATROL
        elif body.classroom_id is None:
            raise ApiError(422, "classroom_required", "Name the classroom (classroom_id).")
        else:
            role = classroom_role(lesson, body.classroom_id)
            if body.role is not None and body.role is not role:
                raise ApiError(
                    422, "role_mismatch", f"That classroom joins this lesson as {role.value}."
                )
        link = await make_link(
            session,
            lesson,
            role,
            classroom_id=body.classroom_id,
            account_id=body.account_id,
            created_by_id=principal.account_id,
            expires_at=body.expires_at,
        )
        (link,) = await _reload(session, [link.id])
        return link_out(public_base(request, state.settings), link)


@router.post("/links/roster", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_roster_links(
    lesson_id: str, body: LinksForRosterIn, principal: LessonManager, state: State, request: Request
) -> list[LinkOut]:
    """One new link for the lead classroom and one for each receiving classroom."""
    _check_expiry(body.expires_at)
    async with state.db.sessions.begin() as session:
        lesson = await load_lesson(session, lesson_id)
        ensure_manages(principal, lesson)
        ensure_not_ended(lesson)
        rooms = [(Role.LEAD, lesson.lead_classroom_id)]
        rooms += [(Role.RECEIVER, c.id) for c in lesson.receivers]
        ids = []
        for role, classroom_id in rooms:
            link = await make_link(
                session,
                lesson,
                role,
                classroom_id=classroom_id,
                created_by_id=principal.account_id,
                expires_at=body.expires_at,
            )
            ids.append(link.id)
        return [
            link_out(public_base(request, state.settings), link)
            for link in await _reload(session, ids)
        ]


async def _revoke(
    state: State, request: Request, principal: Principal, lesson_id: str, link_id: str
) -> LinkOut:
    async with state.db.sessions.begin() as session:
        ensure_manages(principal, await load_lesson(session, lesson_id))
        link = await session.scalar(
            select(JoinLink)
            .where(JoinLink.id == link_id, JoinLink.lesson_id == lesson_id)
            .options(selectinload(JoinLink.classroom))
        )
        if link is None:
            raise ApiError(404, "link_not_found", "This lesson has no such join link.")
        if link.revoked_at is None:
            link.revoked_at = utcnow()
        out = link_out(public_base(request, state.settings), link)
    state.revocations_changed()  # tokens it minted are refused at join (token_revoked)
    return out


@router.post("/links/{link_id}/revoke", responses=ERRORS)
async def revoke_link(
    lesson_id: str, link_id: str, principal: LessonManager, state: State, request: Request
) -> LinkOut:
    """Revoke a link: opening it answers 410 link_revoked, and the join tokens it minted
    are refused at join with token_revoked. Revoking twice is harmless."""
    return await _revoke(state, request, principal, lesson_id, link_id)


@router.delete("/links/{link_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_link(
    lesson_id: str, link_id: str, principal: LessonManager, state: State, request: Request
) -> Response:
    """Same as revoke (the row stays, so a reused code can never come back to life)."""
    await _revoke(state, request, principal, lesson_id, link_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/patrol-token", responses=ERRORS)
async def patrol_token(lesson_id: str, principal: Inspector, state: State) -> JoinOut:
    """An inspector's own patrol join token, without a link."""
    async with state.db.sessions.begin() as session:
        lesson = await load_lesson(session, lesson_id)
        inspector = await session.get_one(Account, principal.account_id)
    ws_url = await home_ws_url(state, lesson)
    return join_response(state, lesson, Role.PATROL, account=inspector, ws_url=ws_url)

"""Classroom terminals: enrollment codes, credentials and the classroom's day.

A terminal is a classroom's own device (often a 一体机 on the wall). An admin makes a
one-time enrollment code for the classroom; the device trades it for a credential it keeps
(in the browser's localStorage) and sends as `Authorization: Bearer` from then on. Only
SHA-256 hashes are stored, so a stolen database enrolls nothing. A revoked or unknown
credential is refused with 401 and a code the terminal page turns into "enroll again".

The terminal's clock is the service's (`service_now`): its countdown and auto-join follow
the service, and it only warns when its own clock is far off. `clock_offset_s` shifts that
clock in tests, so a test reaches a lesson's start without waiting for it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from fastapi import Request
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from server.api.errors import ApiError
from server.db.models import Classroom, Lesson, LessonStatus, lesson_receivers, utcnow
from server.db.terminal_models import ClassroomTerminal
from server.district_time import days_span, local_day
from server.settings import Settings

# Enrollment codes are typed on a classroom PC: no 0/O, 1/I/L. Eight of 31 symbols
# (~40 bits), one use, expiring: guessing one is hopeless within its lifetime.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8

# last_seen_at is written at most this often per terminal (a terminal polls every ~30 s).
SEEN_EVERY_S = 20.0

WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="terminal"'}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_enroll_code() -> str:
    """Eight symbols shown as XXXX-XXXX."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


def normalize_code(code: str) -> str:
    """What a person typed, as stored: upper case, without spaces or dashes."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def new_credential() -> str:
    return secrets.token_urlsafe(32)


def service_now(settings: Settings) -> datetime:
    """The service's clock for schedules (clock_offset_s shifts it in tests)."""
    return utcnow() + timedelta(seconds=settings.clock_offset_s)


def _refused(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers=WWW_AUTHENTICATE)


async def authenticate(session: AsyncSession, request: Request) -> ClassroomTerminal:
    """The live terminal whose credential the request bears, with its classroom and school
    loaded; its last_seen_at brought up to date. 401 terminal_unauthorized (none sent),
    terminal_unknown (no such credential) or terminal_revoked."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise _refused("terminal_unauthorized", "Send the terminal's credential as a Bearer token.")
    terminal = await session.scalar(
        select(ClassroomTerminal)
        .where(ClassroomTerminal.credential_sha256 == sha256(credential.strip()))
        .options(selectinload(ClassroomTerminal.classroom).selectinload(Classroom.school))
    )
    if terminal is None:
        raise _refused(
            "terminal_unknown",
            "This terminal is not enrolled here (or its classroom was deleted); enroll it again.",
        )
    if terminal.revoked_at is not None:
        raise _refused("terminal_revoked", "This terminal was revoked; enroll it again.")
    now = utcnow()
    if terminal.last_seen_at is None or (now - terminal.last_seen_at).total_seconds() > (
        SEEN_EVERY_S
    ):
        terminal.last_seen_at = now
    return terminal


def classroom_lessons(classroom_id: str) -> object:
    """WHERE clause: lessons the classroom leads or receives."""
    received = select(lesson_receivers.c.lesson_id).where(
        lesson_receivers.c.classroom_id == classroom_id
    )
    return or_(Lesson.lead_classroom_id == classroom_id, Lesson.id.in_(received))


async def lessons_today(
    session: AsyncSession, settings: Settings, classroom_id: str, now: datetime
) -> list[Lesson]:
    """The classroom's lessons whose start falls on the district's day of `now`, and any
    lesson of it that is live (one that began yesterday evening, say), by start."""
    first, after = days_span(local_day(now, settings.zone), local_day(now, settings.zone),
                             settings.zone)  # fmt: skip
    rows = await session.scalars(
        select(Lesson)
        .where(
            classroom_lessons(classroom_id),
            or_(
                (Lesson.scheduled_start >= first) & (Lesson.scheduled_start < after),
                Lesson.state == LessonStatus.LIVE.value,
            ),
        )
        .options(
            selectinload(Lesson.teacher),
            selectinload(Lesson.lead_classroom).selectinload(Classroom.school),
        )
        .order_by(Lesson.scheduled_start)
    )
    return list(rows)

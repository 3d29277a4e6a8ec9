"""Admin API for a classroom's ingest: WHIP credentials (encoders, OBS) and RTSP sources
(录播 hosts).

GET    /api/classrooms/{id}/whip-credentials          the credentials (never their token)
POST   /api/classrooms/{id}/whip-credentials          mint one: its token is shown ONCE
DELETE /api/whip-credentials/{id}                     revoke it; its live sessions end
GET    /api/classrooms/{id}/rtsp-sources              sources with their pull's state
POST   /api/classrooms/{id}/rtsp-sources              attach one (camera or board)
PATCH  /api/classrooms/{id}/rtsp-sources/{source_id}  change it (its pull restarts)
DELETE /api/classrooms/{id}/rtsp-sources/{source_id}  detach it (its pull stops)
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.access import ADMINS, access
from server.api.errors import ApiError, ErrorResponse, not_found
from server.auth import Principal, State
from server.db.ingest_models import RtspSource, WhipCredential
from server.db.models import Classroom, utcnow
from server.origin import public_base
from server.rtsp_sources import RtspSupervisor
from server.whip import end_sessions_of, token_sha256

router = APIRouter(tags=["ingest"])

# Admins whose scope holds the classroom (or the credential's classroom).
ClassroomAdmin = Annotated[Principal, access(ADMINS, resource="classroom", manage=True)]
CredentialAdmin = Annotated[Principal, access(ADMINS, resource="whip_credential", manage=True)]

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 422)
}


class WhipCredentialIn(BaseModel):
    name: str = Field(default="", max_length=200)


class WhipCredentialOut(BaseModel):
    id: str
    classroom_id: str
    name: str
    # The URL an encoder publishes to (OBS: 服务器 / Server).
    whip_url: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class WhipCredentialMinted(WhipCredentialOut):
    # The bearer token (OBS: Bearer 令牌 / Bearer Token). Shown here once, never again.
    token: str


def _out(base: str, row: WhipCredential) -> WhipCredentialOut:
    return WhipCredentialOut(
        id=row.id,
        classroom_id=row.classroom_id,
        name=row.name,
        whip_url=f"{base}/whip/{row.classroom_id}",
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


@router.get("/classrooms/{classroom_id}/whip-credentials", responses=ERRORS)
async def list_whip_credentials(
    classroom_id: str, _: ClassroomAdmin, state: State, request: Request
) -> list[WhipCredentialOut]:
    async with state.db.sessions.begin() as session:
        if await session.get(Classroom, classroom_id) is None:
            raise not_found("classroom")
        rows = await session.scalars(
            select(WhipCredential)
            .where(WhipCredential.classroom_id == classroom_id)
            .order_by(WhipCredential.created_at)
        )
        base = public_base(request, state.settings)
        return [_out(base, row) for row in rows]


@router.post(
    "/classrooms/{classroom_id}/whip-credentials",
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
)
async def mint_whip_credential(
    classroom_id: str,
    body: WhipCredentialIn,
    principal: ClassroomAdmin,
    state: State,
    request: Request,
) -> WhipCredentialMinted:
    token = secrets.token_urlsafe(32)
    async with state.db.sessions.begin() as session:
        if await session.get(Classroom, classroom_id) is None:
            raise not_found("classroom")
        row = WhipCredential(
            classroom_id=classroom_id,
            name=body.name.strip(),
            token_sha256=token_sha256(token),
            created_by_id=principal.account_id,
            created_at=utcnow(),
        )
        session.add(row)
        await session.flush()
        out = _out(public_base(request, state.settings), row)
    return WhipCredentialMinted(**out.model_dump(), token=token)


@router.delete(
    "/whip-credentials/{credential_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS,
)
async def revoke_whip_credential(credential_id: str, _: CredentialAdmin, state: State) -> Response:
    async with state.db.sessions.begin() as session:
        row = await session.get(WhipCredential, credential_id)
        if row is None:
            raise not_found("whip_credential")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
    end_sessions_of(state, credential_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- RTSP sources --------------------------------------------------------------------------


class RtspSourceIn(BaseModel):
    # rtsp://host[:port]/path; user:password in it are split off and kept as the two below.
    url: str = Field(min_length=8, max_length=1000)
    username: str = Field(default="", max_length=200)
    password: str = Field(default="", max_length=200)
    transport: Literal["tcp", "udp"] = "tcp"
    source: Literal["camera", "board"] = "camera"
    enabled: bool = True


class RtspSourcePatch(BaseModel):
    url: str | None = Field(default=None, min_length=8, max_length=1000)
    username: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=200)  # "" clears it
    transport: Literal["tcp", "udp"] | None = None
    enabled: bool | None = None


class RtspPullStatus(BaseModel):
    # connecting | live | retrying | failed | closed
    state: str
    code: str
    message: str
    video: str
    audio: str
    reconnects: int


class RtspSourceOut(BaseModel):
    id: str
    classroom_id: str
    source: str
    url: str  # never with credentials
    username: str
    has_password: bool  # the password itself is never shown again
    transport: str
    enabled: bool
    created_at: datetime
    # The pull's state while a lesson of the classroom is live; None otherwise.
    status: RtspPullStatus | None


def _split_url(url: str) -> tuple[str, str, str]:
    """(url without credentials, user, password); 422 unless rtsp:// or rtsps://."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("rtsp", "rtsps") or not parts.hostname:
        raise ApiError(422, "invalid_rtsp_url", "The URL must look like rtsp://host[:port]/path.")
    try:
        port = parts.port
    except ValueError:
        raise ApiError(422, "invalid_rtsp_url", "The URL's port is not a number.") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{port}" if port else host
    clean = urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, ""))
    return clean, unquote(parts.username or ""), unquote(parts.password or "")


def _supervisor(request: Request) -> RtspSupervisor:
    return request.app.state.rtsp  # type: ignore[no-any-return]


def _source_out(request: Request, row: RtspSource) -> RtspSourceOut:
    status = _supervisor(request).status(row.id)
    return RtspSourceOut(
        id=row.id,
        classroom_id=row.classroom_id,
        source=row.source,
        url=row.url,
        username=row.username,
        has_password=bool(row.password_sealed),
        transport=row.transport,
        enabled=row.enabled,
        created_at=row.created_at,
        status=None
        if status is None
        else RtspPullStatus(
            state=status.state.value,
            code=status.code,
            message=status.message,
            video=status.video,
            audio=status.audio,
            reconnects=status.reconnects,
        ),
    )


@router.get("/classrooms/{classroom_id}/rtsp-sources", responses=ERRORS)
async def list_rtsp_sources(
    classroom_id: str, _: ClassroomAdmin, state: State, request: Request
) -> list[RtspSourceOut]:
    async with state.db.sessions.begin() as session:
        if await session.get(Classroom, classroom_id) is None:
            raise not_found("classroom")
        rows = await session.scalars(
            select(RtspSource)
            .where(RtspSource.classroom_id == classroom_id)
            .order_by(RtspSource.source)
        )
        return [_source_out(request, row) for row in rows]


@router.post(
    "/classrooms/{classroom_id}/rtsp-sources",
    status_code=status.HTTP_201_CREATED,
    responses={**ERRORS, 409: {"model": ErrorResponse}},
)
async def attach_rtsp_source(
    classroom_id: str,
    body: RtspSourceIn,
    principal: ClassroomAdmin,
    state: State,
    request: Request,
) -> RtspSourceOut:
    url, user, password = _split_url(body.url)
    box = _supervisor(request).box
    async with state.db.sessions.begin() as session:
        if await session.get(Classroom, classroom_id) is None:
            raise not_found("classroom")
        taken = await session.scalar(
            select(RtspSource.id).where(
                RtspSource.classroom_id == classroom_id, RtspSource.source == body.source
            )
        )
        if taken is not None:
            raise ApiError(
                409, "rtsp_source_exists", f"This classroom already has an RTSP {body.source}."
            )
        row = RtspSource(
            classroom_id=classroom_id,
            source=body.source,
            url=url,
            username=body.username or user,
            password_sealed=box.seal(body.password or password),
            transport=body.transport,
            enabled=body.enabled,
            created_by_id=principal.account_id,
            created_at=utcnow(),
        )
        session.add(row)
        await session.flush()
        out = _source_out(request, row)
    _supervisor(request).poke()
    return out


async def _source_of(session: AsyncSession, classroom_id: str, source_id: str) -> RtspSource:
    row = await session.get(RtspSource, source_id)
    if row is None or row.classroom_id != classroom_id:
        raise not_found("rtsp_source")
    return row


@router.patch("/classrooms/{classroom_id}/rtsp-sources/{source_id}", responses=ERRORS)
async def change_rtsp_source(
    classroom_id: str,
    source_id: str,
    body: RtspSourcePatch,
    _: ClassroomAdmin,
    state: State,
    request: Request,
) -> RtspSourceOut:
    box = _supervisor(request).box
    async with state.db.sessions.begin() as session:
        row = await _source_of(session, classroom_id, source_id)
        if body.url is not None:
            row.url, user, password = _split_url(body.url)
            if user:
                row.username = user
            if password:
                row.password_sealed = box.seal(password)
        if body.username is not None:
            row.username = body.username
        if body.password is not None:
            row.password_sealed = box.seal(body.password)
        if body.transport is not None:
            row.transport = body.transport
        if body.enabled is not None:
            row.enabled = body.enabled
        out = _source_out(request, row)
    _supervisor(request).poke()
    return out


@router.delete(
    "/classrooms/{classroom_id}/rtsp-sources/{source_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS,
)
async def detach_rtsp_source(
    classroom_id: str, source_id: str, _: ClassroomAdmin, state: State, request: Request
) -> Response:
    async with state.db.sessions.begin() as session:
        await session.delete(await _source_of(session, classroom_id, source_id))
    _supervisor(request).poke()
    return Response(status_code=status.HTTP_204_NO_CONTENT)

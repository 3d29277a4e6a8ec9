"""Admin API for a classroom's ingest: WHIP credentials (encoders, OBS).

GET    /api/classrooms/{id}/whip-credentials     the credentials (never their token)
POST   /api/classrooms/{id}/whip-credentials     mint one: its token is shown ONCE
DELETE /api/whip-credentials/{id}                revoke it; its live sessions end
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from server.api.access import ADMINS, access
from server.api.errors import ErrorResponse, not_found
from server.auth import Principal, State
from server.db.ingest_models import WhipCredential
from server.db.models import Classroom, utcnow
from server.origin import public_base
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

"""WHIP ingest (RFC 9725): an encoder or OBS publishes a classroom's camera and mic.

``POST /whip/{classroom_id}`` with ``Authorization: Bearer <credential>`` (minted per
classroom: server/api/ingest.py) and an SDP offer (``application/sdp``) publishes into the
classroom's live lesson; ``201 Created`` carries the answer and ``Location`` names the
session's resource, which ``DELETE`` ends. Errors carry the API's JSON error shape:
401 (no or wrong credential), 404 (no such classroom or resource), 409 (no live lesson),
415 (not ``application/sdp``), 422 (an offer tongke cannot take), 503 (no media plane).

Many nodes: a lesson's media lives on its home node, and tongke tells clients where that is
rather than carrying their traffic (docs/architecture.md "Routing"). A POST to another node
is answered ``307 Temporary Redirect`` with ``Location`` the home's own WHIP URL (RFC 9725
section 4.5), a DELETE there likewise; the home answers with an absolute ``Location``, so
the encoder's later DELETE goes to it directly.
"""

from __future__ import annotations

import hashlib
import logging

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import or_, select

from server.api.access import access
from server.api.errors import ApiError, not_found
from server.auth import State
from server.db.ingest_models import WhipCredential
from server.db.models import Classroom, Lesson, LessonStatus, lesson_receivers, utcnow
from signaling import ingest
from signaling.errors import ErrorCode, SignalingError
from signaling.redis_bus import TRANSIENT

log = logging.getLogger(__name__)

# The classroom's WHIP bearer credential (revocable) is checked by each route, not an account.
router = APIRouter(
    prefix="/whip",
    tags=["whip"],
    dependencies=[access(None, why="the classroom's WHIP credential is the bearer")],
)

SDP = "application/sdp"
MAX_OFFER_BYTES = 64 * 1024  # an encoder's offer is a few KiB


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        401, "whip_unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="whip"'}
    )


async def _credential(state: State, request: Request, classroom_id: str) -> str:
    """The id of the classroom's live credential the request bears (401 otherwise)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Send the classroom's WHIP credential as a Bearer token.")
    async with state.db.sessions.begin() as session:
        if await session.get(Classroom, classroom_id) is None:
            raise not_found("classroom")
        credential = await session.scalar(
            select(WhipCredential).where(
                WhipCredential.token_sha256 == token_sha256(token.strip()),
                WhipCredential.classroom_id == classroom_id,
                WhipCredential.revoked_at.is_(None),
            )
        )
        if credential is None:
            raise _unauthorized("The WHIP credential is wrong or revoked for this classroom.")
        credential.last_used_at = utcnow()
        return credential.id


async def live_lesson_of(state: State, classroom_id: str) -> str | None:
    """The live lesson the classroom leads or receives (the latest started), if any."""
    async with state.db.sessions.begin() as session:
        received = select(lesson_receivers.c.lesson_id).where(
            lesson_receivers.c.classroom_id == classroom_id
        )
        lesson_id = await session.scalar(
            select(Lesson.id)
            .where(
                Lesson.state == LessonStatus.LIVE.value,
                or_(Lesson.lead_classroom_id == classroom_id, Lesson.id.in_(received)),
            )
            .order_by(Lesson.started_at.desc())
            .limit(1)
        )
        return lesson_id


_STATUS = {
    ErrorCode.LESSON_NOT_LIVE: 409,
    ErrorCode.LESSON_ENDED: 409,
    ErrorCode.LESSON_NOT_FOUND: 409,
    ErrorCode.NOT_ON_ROSTER: 409,
    ErrorCode.INVALID_SDP: 422,
    ErrorCode.MEDIA_UNAVAILABLE: 503,
    ErrorCode.WRONG_NODE: 409,
}


@router.options("/{classroom_id}")
async def whip_options(classroom_id: str) -> Response:
    return Response(
        status_code=status.HTTP_204_NO_CONTENT,
        headers={"Accept-Post": SDP, "Allow": "OPTIONS, POST"},
    )


@router.post("/{classroom_id}")
async def whip_publish(classroom_id: str, request: Request, state: State) -> Response:
    credential_id = await _credential(state, request, classroom_id)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != SDP:
        raise ApiError(415, "whip_not_sdp", "A WHIP offer is sent as application/sdp.")
    body = await request.body()
    if len(body) > MAX_OFFER_BYTES:
        raise ApiError(413, "whip_offer_too_large", "The offer is larger than 64 KiB.")
    try:
        offer = body.decode("utf-8")
        tracks = ingest.tracks_of(offer)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(422, "invalid_sdp", f"The offer cannot be ingested: {exc}") from None
    lesson_id = await live_lesson_of(state, classroom_id)
    if lesson_id is None:
        raise ApiError(409, "no_live_lesson", "No lesson of this classroom is live now.")
    try:
        peer_id, answer = await ingest.attach(
            state.rooms, lesson_id, classroom_id, "whip", offer, tracks, owner=credential_id
        )
    except SignalingError as exc:
        if exc.code is ErrorCode.WRONG_NODE:
            home = await _home_url(state, lesson_id)
            if home is not None:
                return _redirect(f"{home}/whip/{classroom_id}")
        raise ApiError(_STATUS.get(exc.code, 500), exc.code.value, exc.message) from None
    log.info("WHIP ingest %s publishes classroom %s in lesson %s", peer_id, classroom_id,
             lesson_id)  # fmt: skip
    # Many nodes: absolute, so that a client redirected here sends its DELETE here too.
    base = state.cluster.registry.url if state.cluster is not None else ""
    return Response(
        content=answer,
        status_code=status.HTTP_201_CREATED,
        media_type=SDP,
        headers={"Location": f"{base}/whip/{classroom_id}/{peer_id}", "ETag": f'"{peer_id}"'},
    )


async def _home_url(state: State, lesson_id: str) -> str | None:
    """Many nodes: the public URL of the lesson's live home when it is another node."""
    cluster = state.cluster
    if cluster is None:
        return None
    try:
        home = await cluster.placement.home_of(lesson_id)
    except TRANSIENT:
        return None
    if home is None or home.id == cluster.node_id or not home.url:
        return None
    return home.url.rstrip("/")


def _redirect(location: str) -> Response:
    # 307 keeps the method and body (RFC 9725 4.5); the client sends its bearer again there.
    return Response(status_code=status.HTTP_307_TEMPORARY_REDIRECT, headers={"Location": location})


@router.delete("/{classroom_id}/{resource_id}")
async def whip_end(classroom_id: str, resource_id: str, request: Request, state: State) -> Response:
    await _credential(state, request, classroom_id)
    peer = ingest.find(state.rooms, resource_id)
    if peer is None or peer.classroom_id != classroom_id or peer.ingest != "whip":
        lesson_id = await live_lesson_of(state, classroom_id) if state.cluster else None
        home = await _home_url(state, lesson_id) if lesson_id is not None else None
        if home is not None:  # the session lives on the lesson's home node
            return _redirect(f"{home}/whip/{classroom_id}/{resource_id}")
        raise not_found("whip_session")
    ingest.detach(state.rooms, peer.lesson_id, peer.peer_id)
    return Response(status_code=status.HTTP_200_OK)


@router.patch("/{classroom_id}/{resource_id}")
async def whip_patch(classroom_id: str, resource_id: str) -> Response:
    # No trickle ICE or ICE restart: the offer carries its candidates (RFC 9725 4.3.1).
    return Response(status_code=status.HTTP_405_METHOD_NOT_ALLOWED, headers={"Allow": "DELETE"})


def end_sessions_of(state: State, credential_id: str) -> int:
    """A revoked credential's live sessions end now; returns how many."""
    ended = 0
    for peer in ingest.owned_by(state.rooms, credential_id):
        ended += ingest.detach(state.rooms, peer.lesson_id, peer.peer_id)
    return ended

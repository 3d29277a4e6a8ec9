"""/api/lessons/{id}/faults: fault drills on one peer of a live lesson (admins only).

Off unless the node runs with ``TONGKE_FAULTS=true``, and never in production: a drill
degrades a real classroom's link on purpose (docs/operations.md "Fault drills"). Each
direction (``to_peer``: what the server sends the peer; ``from_peer``: what arrives from it)
takes media faults (loss, delay, jitter, reordering, a bitrate cap) and signaling faults
(lost or late WebSocket messages). Faults stay on the classroom's peer across its
reconnects (a resume, or a join that replaces it) until deleted or, with ``duration_s``,
until the drill has run that long.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from media.faults import NO_FAULTS, AnyFaults, FaultInjector
from server.api.access import ADMINS, access
from server.api.errors import ApiError, ErrorResponse
from server.auth import Principal, State
from server.state import AppState
from signaling.faults import MessageFaults

router = APIRouter(prefix="/lessons", tags=["faults"])

# Admins whose scope holds the lesson's lead classroom.
LessonAdmin = Annotated[Principal, access(ADMINS, resource="lesson", manage=True)]

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)
}


class MediaFaultsIn(BaseModel):
    """RTP/RTCP faults of one direction (media/faults.py)."""

    model_config = ConfigDict(extra="forbid")

    drop: float = Field(0.0, ge=0, le=1, description="Fraction of packets lost at random.")
    delay_ms: float = Field(0.0, ge=0, le=10_000, description="Added one-way delay.")
    jitter_ms: float = Field(0.0, ge=0, le=10_000, description="Extra random delay 0..jitter.")
    reorder: float = Field(0.0, ge=0, lt=1, description="Fraction of packets sent out of order.")
    rate_kbps: float | None = Field(
        None, ge=8, description="Bitrate cap of the link (token bucket); null: no cap."
    )
    queue_ms: float = Field(200.0, ge=10, le=5000, description="What the capped link buffers.")

    def injector(self, seed: int) -> AnyFaults:
        if not (self.drop or self.delay_ms or self.jitter_ms or self.reorder or self.rate_kbps):
            return NO_FAULTS
        return FaultInjector(
            self.drop,
            self.delay_ms,
            seed,
            jitter_ms=self.jitter_ms,
            reorder_rate=self.reorder,
            rate_kbps=self.rate_kbps,
            queue_ms=self.queue_ms,
        )


class SignalingFaultsIn(BaseModel):
    """WebSocket message faults of one direction (signaling/faults.py)."""

    model_config = ConfigDict(extra="forbid")

    drop: float = Field(0.0, ge=0, le=1, description="Fraction of messages lost.")
    delay_ms: float = Field(0.0, ge=0, le=10_000, description="Delay of every message.")


class DirectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media: MediaFaultsIn = Field(default_factory=MediaFaultsIn)
    signaling: SignalingFaultsIn = Field(default_factory=SignalingFaultsIn)


class FaultsIn(BaseModel):
    """The complete faults of one peer; what is left out is fault-free."""

    model_config = ConfigDict(extra="forbid")

    to_peer: DirectionIn = Field(default_factory=DirectionIn)
    from_peer: DirectionIn = Field(default_factory=DirectionIn)
    seed: int = Field(1, description="Random seed (the same seed drops the same packets).")
    duration_s: float | None = Field(
        None, gt=0, le=3600, description="The drill ends by itself after this long; null: DELETE."
    )


class FaultsOut(BaseModel):
    lesson_id: str
    peer_id: str
    classroom_id: str | None
    faults: FaultsIn
    # What the injectors did so far: media_to_peer, media_from_peer, signaling counters.
    stats: dict[str, dict[str, Any]]


def _check_enabled(state: AppState) -> None:
    # Production first: a production node must say so, whatever else is configured.
    if state.settings.production:
        raise ApiError(
            403,
            "faults_forbidden_in_production",
            "Fault injection is refused in production mode; drills run on a test node.",
        )
    if not state.settings.faults or state.rooms.faults is None:
        raise ApiError(
            409,
            "faults_disabled",
            "Fault injection is off on this node; start it with TONGKE_FAULTS=true.",
        )


def _peer(state: AppState, lesson_id: str, peer_id: str) -> Any:
    room = state.rooms.rooms.get(lesson_id)
    if room is None:
        raise ApiError(404, "lesson_not_live", "The lesson is not live on this node.")
    peer = room.peers.get(peer_id)
    if peer is None:
        raise ApiError(404, "peer_not_found", "No such peer in this lesson.")
    return peer


def _out(state: AppState, lesson_id: str, peer: Any) -> FaultsOut:
    to_peer, from_peer = state.media.faults(peer.peer_id)
    registry = state.rooms.faults
    signaling = registry.get(peer.peer_id) if registry is not None else None
    return FaultsOut(
        lesson_id=lesson_id,
        peer_id=peer.peer_id,
        classroom_id=peer.classroom_id,
        faults=registry.drills.get(peer.peer_id, FaultsIn()) if registry else FaultsIn(),
        stats={
            "media_to_peer": to_peer.stats(),
            "media_from_peer": from_peer.stats(),
            "signaling": signaling.stats() if signaling is not None else {},
        },
    )


@router.get("/{lesson_id}/faults", responses=ERRORS)
async def list_faults(lesson_id: str, _: LessonAdmin, state: State) -> list[FaultsOut]:
    """The peers of a live lesson that have faults, with what the faults did so far."""
    _check_enabled(state)
    room = state.rooms.rooms.get(lesson_id)
    registry = state.rooms.faults
    if room is None or registry is None:
        return []
    return [_out(state, lesson_id, p) for p in room.peers.values() if p.peer_id in registry.drills]


@router.put("/{lesson_id}/faults/{peer_id}", responses=ERRORS)
async def put_faults(
    lesson_id: str, peer_id: str, body: FaultsIn, _: LessonAdmin, state: State
) -> FaultsOut:
    """Replace one peer's faults (media and signaling, both directions)."""
    _check_enabled(state)
    peer = _peer(state, lesson_id, peer_id)
    registry = state.rooms.faults
    assert registry is not None  # _check_enabled
    state.media.set_faults(
        peer_id,
        to_peer=body.to_peer.media.injector(body.seed),
        from_peer=body.from_peer.media.injector(body.seed + 1),
    )
    registry.set(
        peer_id,
        to_peer=MessageFaults(body.to_peer.signaling.drop, body.to_peer.signaling.delay_ms),
        from_peer=MessageFaults(body.from_peer.signaling.drop, body.from_peer.signaling.delay_ms),
    )
    registry.drills[peer_id] = body
    registry.deadlines.pop(peer_id, None)
    if body.duration_s is not None:
        loop = asyncio.get_running_loop()
        registry.deadlines[peer_id] = loop.time() + body.duration_s
        loop.call_later(body.duration_s, _end_due_drills, state)
    return _out(state, lesson_id, peer)


def _end_due_drills(state: AppState) -> None:
    """Lifts the drills whose duration has passed (under whatever peer id they follow now)."""
    registry = state.rooms.faults
    if registry is None:
        return
    for peer_id in registry.due(asyncio.get_running_loop().time() + 0.001):
        clear(state, peer_id)


@router.delete(
    "/{lesson_id}/faults/{peer_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS
)
async def delete_faults(lesson_id: str, peer_id: str, _: LessonAdmin, state: State) -> Response:
    """Remove every fault of one peer (idempotent for a peer of the lesson)."""
    _check_enabled(state)
    _peer(state, lesson_id, peer_id)
    clear(state, peer_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def clear(state: AppState, peer_id: str) -> None:
    state.media.set_faults(peer_id, NO_FAULTS, NO_FAULTS)
    if state.rooms.faults is not None:
        state.rooms.faults.clear(peer_id)

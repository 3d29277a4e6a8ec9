"""Ingest peers: a classroom's camera and mic from an encoder (WHIP) or a 录播 host (RTSP).

An ingest peer publishes as its classroom (role lead or receiver, by the lesson's roster)
but is not the classroom's presence: it joins no participant list, replaces nobody,
subscribes to nothing and has no WebSocket. While it publishes a source, that source of the
classroom's own page (the lead page, a receiving terminal) is not forwarded: receivers
see one camera, the 录播 host's, and the teacher still runs the lesson from the lead page
(stage, hands, recording).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from signaling.errors import ErrorCode, SignalingError
from signaling.grants import Grant, Role, Source
from signaling.hooks import LessonState
from signaling.media_port import TrackOffer
from signaling.peer import Peer, PeerState
from signaling.policy import Layer
from signaling.protocol import IngestState

if TYPE_CHECKING:
    from signaling.room import Room
    from signaling.rooms import RoomManager

# Ingest peer ids start with their kind: "whip-…", "rtsp-…" (docs/protocol.md "Ingest").
INGEST_KINDS = ("whip", "rtsp")


def is_ingest_peer(peer_id: str) -> bool:
    """Whether ``peer_id`` is an ingest's (the recorder, which sees media peers only, asks)."""
    return peer_id.startswith(tuple(f"{kind}-" for kind in INGEST_KINDS))


# What an ingest may publish: its classroom's camera (a second video: its board) and mic.
INGEST_SOURCES = frozenset({Source.CAMERA, Source.BOARD, Source.MIC})


class IngestRefused(SignalingError):
    """No live lesson has the classroom (``lesson_not_live``), or its media was refused."""


async def _admit(
    rooms: RoomManager, lesson_id: str, classroom_id: str, kind: str, owner: str
) -> tuple[Room, Peer]:
    """The ingest peer, in the live lesson's room (IngestRefused otherwise)."""
    room = await rooms.room_for(lesson_id)
    try:
        async with room.lock:
            if room.state is not LessonState.LIVE:
                raise IngestRefused(ErrorCode.LESSON_NOT_LIVE, "The lesson is not live.")
            role = Role.LEAD if classroom_id == room.info.lead.id else Role.RECEIVER
            room.check_roster(role, classroom_id)
            grant = Grant(
                lesson_id=lesson_id,
                role=role,
                name=kind,
                classroom_id=classroom_id,
                publish=INGEST_SOURCES,
            )
            peer = Peer(f"{kind}-{uuid.uuid4().hex[:12]}", grant, secrets.token_urlsafe(24), None)
            peer.ingest = kind
            peer.ingest_owner = owner
            room.peers[peer.peer_id] = peer
            rooms.stats.peers[role.value] += 1
    finally:
        rooms.room_released(room)
    return room, peer


async def attach(
    rooms: RoomManager,
    lesson_id: str,
    classroom_id: str,
    kind: str,
    sdp: str,
    tracks: Sequence[TrackOffer],
    owner: str = "",
) -> tuple[str, str]:
    """Publish ``sdp`` as ``classroom_id``'s ingest in its live lesson ``lesson_id``.

    Returns (ingest peer id, answer SDP). Raises IngestRefused: ``lesson_not_live``,
    ``not_on_roster``, or the media plane's ``invalid_sdp`` / ``media_unavailable``."""
    room, peer = await _admit(rooms, lesson_id, classroom_id, kind, owner)
    try:
        answer = await room.media.publish(peer.info, sdp, tracks)
    except SignalingError as exc:
        room.remove(peer, "left")
        raise IngestRefused(exc.code, exc.message) from None
    return peer.peer_id, answer


async def attach_local(
    rooms: RoomManager,
    lesson_id: str,
    classroom_id: str,
    kind: str,
    tracks: Sequence[Any],
    owner: str = "",
) -> tuple[str, list[Any]]:
    """As :func:`attach` for producers this process feeds (an RTSP pull): ``tracks`` are
    media.sfu_types.LocalTrack; returns (ingest peer id, the media plane's (info, producer)
    pairs). The lesson's home node runs it; ``media_unavailable`` elsewhere."""
    room, peer = await _admit(rooms, lesson_id, classroom_id, kind, owner)
    local = getattr(room.media, "local", room.media)  # a cluster port's own node's SFU
    publish_local = getattr(local, "publish_local", None)
    try:
        if publish_local is None:
            raise IngestRefused(ErrorCode.MEDIA_UNAVAILABLE, "No media plane runs here.")
        return peer.peer_id, publish_local(peer.info, tracks)
    except SignalingError as exc:
        room.remove(peer, "left")
        raise IngestRefused(exc.code, exc.message) from None


def detach(rooms: RoomManager, lesson_id: str, peer_id: str) -> bool:
    """End an ingest (its media closes; the classroom's own page is forwarded again).
    False when it was gone already (the lesson ended, its transport failed)."""
    room = rooms.rooms.get(lesson_id)
    peer = room.peers.get(peer_id) if room is not None else None
    if room is None or peer is None or peer.ingest is None or peer.state is PeerState.GONE:
        return False
    room.remove(peer, "left")
    return True


def find(rooms: RoomManager, peer_id: str) -> Peer | None:
    """The live ingest peer ``peer_id`` in any room here."""
    for room in rooms.rooms.values():
        peer = room.peers.get(peer_id)
        if peer is not None and peer.ingest is not None and peer.state is PeerState.CONNECTED:
            return peer
    return None


def owned_by(rooms: RoomManager, owner: str) -> list[Peer]:
    """The live ingest peers ``owner`` (a credential or source id) opened."""
    return [
        peer
        for room in rooms.rooms.values()
        for peer in room.peers.values()
        if peer.ingest is not None and peer.ingest_owner == owner
    ]


def tracks_of(sdp: str) -> list[TrackOffer]:
    """An encoder's offer as tracks: its first video m-line is the camera, a second one the
    board, its audio m-line the mic. ValueError names what does not fit."""
    tracks: list[TrackOffer] = []
    kind = ""
    videos = audios = 0
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
            if kind == "video":
                videos += 1
            elif kind == "audio":
                audios += 1
            else:
                raise ValueError(f"An m={kind} line cannot be ingested (audio and video only).")
            if videos > 2 or audios > 1:
                raise ValueError(
                    "An ingest carries at most two videos (camera, board) and one audio."
                )
            tracks.append(TrackOffer("", Source.MIC, Layer.MAIN))
        elif line.startswith("a=mid:") and tracks and not tracks[-1].mid:
            source = (
                Source.MIC if kind == "audio" else Source.CAMERA if videos == 1 else Source.BOARD
            )
            tracks[-1] = TrackOffer(line[6:].strip(), source, Layer.MAIN)
    if not tracks:
        raise ValueError("The offer has no m-line.")
    if any(not t.mid for t in tracks):
        raise ValueError("Every m-line needs an a=mid (tongke bundles all media on one transport).")
    return tracks


def ingest_tracks(peers: Sequence[Peer]) -> frozenset[tuple[str | None, Source]]:
    """(classroom, source) pairs an ingest peer publishes now: the page's own are hidden."""
    return frozenset(
        (t.classroom_id, t.source)
        for p in peers
        if p.ingest is not None and p.state is PeerState.CONNECTED
        for t in p.tracks
    )


def tell_state(rooms: RoomManager, lesson_id: str, state: IngestState) -> None:
    """An RTSP ingest's state changed: its lesson's lead and patrol peers hear it (and any
    that join later, from the room's snapshot)."""
    room = rooms.rooms.get(lesson_id)
    if room is not None and not room.closed:
        room.set_ingest_state(state.classroom_id, state.source.value, state)

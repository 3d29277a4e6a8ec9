"""The room manager: serves connections, admits peers (join, resume) and keeps one Room per lesson.

A join token names exactly one lesson; the room is chosen from the verified grant, never
from anything else the client says, so a token for lesson A never reaches lesson B.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from signaling import commands
from signaling.bus import Bus
from signaling.errors import CloseCode, ErrorCode, SignalingError
from signaling.faults import SignalingFaults
from signaling.grants import Grant, Role
from signaling.hooks import LessonHooks, LessonState
from signaling.media_port import MediaPort, NullMediaPort, QualityReport, SubscriptionOffer
from signaling.peer import Peer, PeerState
from signaling.policy import LOW_LAYER_ABOVE, PublishedTrack
from signaling.protocol import (
    PROTOCOL_VERSION,
    ClientMessage,
    Error,
    IceServer,
    Join,
    Ping,
    Pong,
    Quality,
    RecordingChanged,
    Resume,
)
from signaling.room import Room, utcnow
from signaling.session import Connection, Session
from signaling.stats import SignalingStats

log = logging.getLogger("tongke.signaling")


def now_ms() -> int:
    """Monotonic ms, the clock of the media plane's arrival times (media.aiortc_hooks)."""
    return time.monotonic_ns() // 1_000_000


# Verifies a join token; raises an exception carrying `code` (token_invalid, token_expired)
# and `message` when it is refused (server.tokens.JoinTokens.verify does).
TokenVerifier = Callable[[str], Grant]


@dataclass(frozen=True, slots=True)
class RoomConfig:
    heartbeat_interval_s: float = 2.0
    heartbeat_timeout_s: float = 6.0
    # A peer is lost when neither messages nor media (RTP/RTCP on either transport) arrived
    # for this long: a dead uplink shows within ~4-4.5 s, a 3 s blip never does. Media that
    # flows keeps a peer whose WebSocket is silent (pings lost, TCP retransmitting) for up to
    # three heartbeat timeouts. 0 turns the media check off (heartbeat_timeout_s alone).
    # See docs/operations.md "Fault drills".
    silence_timeout_s: float = 4.0
    resume_window_s: float = 30.0
    max_message_bytes: int = 64 * 1024
    rate_per_s: float = 20.0
    rate_burst: int = 60
    max_peers: int = 500
    # Protocol errors (invalid, oversize, rate-limited) one connection may cause before
    # it is closed with 4400.
    max_strikes: int = 50
    # Outbound messages queued per connection before it is closed as a slow consumer.
    outbox_size: int = 256
    # The lead receives receivers' video on the low layer above this many receivers.
    low_layer_above: int = LOW_LAYER_ABOVE
    # A receiving classroom not connected this long after the lesson went live is flagged
    # to the lead and patrol as missing, and as late when it comes (attendance_flags).
    late_after_s: float = 120.0


class RoomManager:
    def __init__(
        self,
        bus: Bus,
        hooks: LessonHooks,
        config: RoomConfig,
        media: MediaPort | None = None,
        ice_servers: Callable[[Peer], list[IceServer]] | None = None,
        faults: SignalingFaults | None = None,
    ) -> None:
        self.bus = bus
        # Signaling fault injection (tests, drills); None: connections are never wrapped.
        self.faults = faults
        if faults is not None:
            faults.identify = self._frame_peer
        self.ice_servers = ice_servers
        self.hooks = hooks
        self.config = config
        self.media: MediaPort = media if media is not None else NullMediaPort()
        self.media.set_listener(self)
        self.stats = SignalingStats()
        self.rooms: dict[str, Room] = {}
        self._resume: dict[str, Peer] = {}
        # Open connections and the token verifier each was served with.
        self._sessions: dict[Session, TokenVerifier] = {}
        self._ended: deque[str] = deque(maxlen=1024)
        self._create_lock = asyncio.Lock()
        self._closed = False

    @property
    def peer_count(self) -> int:
        return sum(len(room.peers) for room in self.rooms.values())

    # Connections -----------------------------------------------------------------------

    async def serve(self, conn: Connection, verify: TokenVerifier) -> None:
        """Serves one connection until it closes. Never raises for what the client sends."""
        faulty = self.faults.wrap(conn) if self.faults is not None else None
        session = Session(faulty or conn, self.config, self.stats, self.config.outbox_size)
        if faulty is not None:
            faulty.session = session
        self._sessions[session] = verify
        try:
            await session.run(self)
        finally:
            self._sessions.pop(session, None)

    async def handle(self, session: Session, message: ClientMessage) -> None:
        if isinstance(message, Ping):
            session.send(Pong(id=message.id))
            return
        if isinstance(message, Join | Resume):
            if session.peer is not None:
                raise SignalingError(ErrorCode.ALREADY_JOINED, "This connection already joined.")
            if message.version != PROTOCOL_VERSION:
                raise SignalingError(
                    ErrorCode.UNSUPPORTED_VERSION,
                    f"This server speaks protocol version {PROTOCOL_VERSION}.",
                )
            if isinstance(message, Join):
                await self._join(session, message)
            else:
                self._resume_peer(session, message)
            return
        peer = session.peer
        if peer is None:
            raise SignalingError(ErrorCode.NOT_JOINED, "Send join (or resume) first.")
        if peer.session is not session or peer.state is not PeerState.CONNECTED:
            return  # replaced or removed while this message was in flight
        room = self.rooms.get(peer.lesson_id)
        if room is None:
            raise SignalingError(ErrorCode.LESSON_ENDED, "The lesson has ended.")
        await commands.handle(room, peer, message)

    def _frame_peer(self, session: Session | None, frame: str | bytes) -> str | None:
        """The peer a join or resume on a new connection speaks for: the resumed peer, or
        the classroom's current occupant (a drill on it then holds this connection too)."""
        try:
            raw = json.loads(frame)
        except (ValueError, RecursionError):
            return None
        if not isinstance(raw, dict):
            return None
        if raw.get("type") == "resume":
            resumed = self._resume.get(str(raw.get("resume_token")))
            return resumed.peer_id if resumed is not None else None
        verify = self._sessions.get(session) if session is not None else None
        token = raw.get("token")
        if raw.get("type") != "join" or verify is None or not isinstance(token, str):
            return None
        try:
            grant = verify(token)
        except Exception:
            return None  # the join itself is refused with its own error
        room = self.rooms.get(grant.lesson_id)
        occupant = room.classrooms.get(grant.classroom_id or "") if room is not None else None
        return occupant.peer_id if occupant is not None else None

    def media_silence_s(self, session: Session) -> float | None:
        """Seconds since the session's peer last sent media (None: no media to judge by)."""
        peer = session.peer
        if peer is None:
            return None
        last = self.media.last_heard_ms(peer.peer_id)
        return None if last is None else max(0.0, (now_ms() - last) / 1000.0)

    async def session_ended(self, session: Session) -> None:
        peer = session.peer
        if peer is None or peer.session is not session:
            return
        room = self.rooms.get(peer.lesson_id)
        if room is not None:
            room.lose(peer)

    # Admission -------------------------------------------------------------------------

    async def _join(self, session: Session, message: Join) -> None:
        try:
            grant = self._sessions[session](message.token)
        except Exception as exc:
            code = getattr(exc, "code", ErrorCode.TOKEN_INVALID)
            if code not in (ErrorCode.TOKEN_INVALID, ErrorCode.TOKEN_EXPIRED):
                code = ErrorCode.TOKEN_INVALID
            raise SignalingError(
                ErrorCode(code), getattr(exc, "message", "The join token is not valid.")
            ) from None
        if message.lesson_id is not None and message.lesson_id != grant.lesson_id:
            raise SignalingError(ErrorCode.WRONG_LESSON, "The join token is for another lesson.")
        await self._check_not_revoked(grant)
        if grant.lesson_id not in self.rooms and self.peer_count >= self.config.max_peers:
            # A full node refuses a new lesson before loading it or claiming it on the bus;
            # joins to a room here are checked under its lock (a replacing join may enter).
            raise SignalingError(ErrorCode.CAPACITY, "This node is full; try again later.")
        while True:
            # The room is held (room.admitting) from here until the join is done: a room
            # that empties meanwhile (its lone lead replaced by this very join, a receiver
            # leaving) is not dropped under us, so one lesson never splits into two rooms.
            room = await self._room_for(grant.lesson_id)
            try:
                async with room.lock:
                    if room.state is LessonState.ENDED:
                        raise SignalingError(ErrorCode.LESSON_ENDED, "The lesson has ended.")
                    if room.closed:
                        continue  # evicted while we waited: look again
                    self._admit(session, room, grant, message)
                    return
            finally:
                room.admitting -= 1
                self._room_changed(room)  # a refused first join leaves no room behind

    async def _check_not_revoked(self, grant: Grant) -> None:
        """token_revoked when the token's link was revoked or its account deactivated. If
        that cannot be read (database down), the signature and expiry decide: a lesson in
        progress keeps running on the tokens it was given."""
        try:
            refusal = await self.hooks.token_refusal(grant)
        except Exception as exc:
            log.warning(
                "join of lesson %s admitted unchecked for revocation: %s", grant.lesson_id, exc
            )
            return
        if refusal is not None:
            raise SignalingError(ErrorCode.TOKEN_REVOKED, refusal + " Ask for a new join link.")

    def _admit(self, session: Session, room: Room, grant: Grant, message: Join) -> None:
        """Admits a verified peer to its room (called under the room lock)."""
        room.check_roster(grant.role, grant.classroom_id)
        peer = Peer(
            peer_id=uuid.uuid4().hex[:16],
            grant=grant,
            resume_token=secrets.token_urlsafe(24),
            session=session,
            school=room.school_of(grant.role, grant.classroom_id),
        )
        occupant = room.occupant(peer)
        if occupant is None and self.peer_count >= self.config.max_peers:
            raise SignalingError(ErrorCode.CAPACITY, "This node is full; try again later.")
        if occupant is not None and self.faults is not None:
            # A drill on the classroom holds across its reconnects, a fresh join included.
            if self.faults.move(occupant.peer_id, peer.peer_id):
                self.media.move_faults(occupant.peer_id, peer.peer_id)
        session.peer = peer
        self._resume[peer.resume_token] = peer
        self.stats.peers[peer.role.value] += 1
        room.add(peer, message.id)

    async def _room_for(self, lesson_id: str) -> Room:
        async with self._create_lock:
            room = self.rooms.get(lesson_id)
            if room is not None and not room.closed:
                room.admitting += 1
                return room
            if lesson_id in self._ended:
                raise SignalingError(ErrorCode.LESSON_ENDED, "The lesson has ended.")
            info = await self.hooks.lesson_info(lesson_id)
            if info is None:
                raise SignalingError(ErrorCode.LESSON_NOT_FOUND, "No such lesson.")
            if info.state is LessonState.ENDED:
                raise SignalingError(ErrorCode.LESSON_ENDED, "The lesson has ended.")
            await self.bus.claim_lesson(lesson_id)
            room = Room(
                info,
                self.hooks,
                self.media,
                self.config,
                on_peer_gone=self._peer_gone,
                on_changed=self._room_changed,
                ice_servers=self.ice_servers,
            )
            room.admitting += 1
            self.rooms[lesson_id] = room
            self._refresh_live()
            if room.stage is not None or room.recording:
                room.carry_on()
            if room.state is LessonState.LIVE:
                room.watch_attendance()
            return room

    def _resume_peer(self, session: Session, message: Resume) -> None:
        peer = self._resume.pop(message.resume_token, None)
        room = self.rooms.get(peer.lesson_id) if peer is not None else None
        if peer is None or room is None or peer.state is PeerState.GONE:
            raise SignalingError(
                ErrorCode.RESUME_FAILED, "Nothing to resume (the window has passed); join again."
            )
        peer.resume_token = secrets.token_urlsafe(24)
        self._resume[peer.resume_token] = peer
        session.peer = peer
        room.resume(peer, session, message.id)

    # Room callbacks --------------------------------------------------------------------

    async def room_for(self, lesson_id: str) -> Room:
        """The lesson's room here, loaded if needed and held until :meth:`room_released`
        (an ingest attaching, signaling/ingest.py). SignalingError as for a join."""
        return await self._room_for(lesson_id)

    def room_released(self, room: Room) -> None:
        room.admitting -= 1
        self._room_changed(room)

    def _peer_gone(self, peer: Peer) -> None:
        self._resume.pop(peer.resume_token, None)
        self.stats.peers[peer.role.value] -= 1
        if self.faults is not None:  # a drill's faults outlive a resume, not the peer
            self.faults.clear(peer.peer_id)
        self.media.clear_faults(peer.peer_id)

    def _room_changed(self, room: Room) -> None:
        if room.state is LessonState.ENDED:
            self._ended.append(room.lesson_id)
        empty = not room.peers and room.admitting == 0
        if (room.closed or empty) and self.rooms.get(room.lesson_id) is room:
            del self.rooms[room.lesson_id]
            room.closed = True
            asyncio.get_running_loop().create_task(self._release(room.lesson_id))
        self._refresh_live()

    async def _release(self, lesson_id: str) -> None:
        """Gives the lesson up on the bus, unless a join made a new room of it meanwhile:
        under the creation lock, so a late release never undoes that room's claim."""
        async with self._create_lock:
            if lesson_id not in self.rooms:
                await self.bus.release_lesson(lesson_id)

    async def start_lesson(self, lesson_id: str) -> bool:
        """Starts a scheduled lesson as its lead's start_lesson does, whether or not any peer
        is here (a 录播 host's lesson whose lead page is never opened: POST
        /api/lessons/{id}/start, or its timetable time). The room is loaded (and the lesson
        placed on this node) if needed; it is dropped again when nobody is in it, the
        database keeping the lesson live for the next join or ingest. False when it was
        live already. SignalingError as for a join (lesson_ended, wrong_node, capacity)."""
        while True:
            room = await self._room_for(lesson_id)
            try:
                async with room.lock:
                    if room.closed:
                        continue  # evicted while we waited: look again
                    if room.state is LessonState.LIVE:
                        return False
                    refused = await commands.start_lesson(room)
                    if refused is not None:
                        log.warning("lesson %s started unrecorded: %s", lesson_id, refused)
                    return True
            finally:
                room.admitting -= 1
                self._room_changed(room)

    async def end_lesson(self, lesson_id: str) -> bool:
        """Ends a lesson whose room is here, as its lead's end_lesson does (the hooks record
        it, then everyone gets lesson_ended and is closed): POST /api/lessons/{id}/end by an
        admin or teacher. False when no live room of the lesson is here."""
        room = self.rooms.get(lesson_id)
        if room is None:
            return False
        async with room.lock:
            if room.closed or room.state is LessonState.ENDED:
                return False
            at = utcnow()
            await self.hooks.lesson_ended(lesson_id, at)
            room.end(at)
        return True

    def evict(self, lesson_id: str) -> bool:
        """Many nodes: the directory names another node as this lesson's home (this node
        missed heartbeats and the lesson was placed again). Two rooms of one lesson must not
        go on side by side, so this one closes every connection with 4301 (MOVED): its peers
        open their join link again and meet the others on the new home. The lesson is not
        ended (the database keeps it live) and the directory entry, the new home's, is left
        alone. False when no room of the lesson is here."""
        room = self.rooms.pop(lesson_id, None)
        if room is None:
            return False
        room.closed = True
        for peer in tuple(room.peers.values()):
            session = peer.session
            peer.cancel_tasks()
            peer.session = None  # session_ended then leaves the room alone
            if session is not None:
                session.close(CloseCode.MOVED, "lesson moved to another node")
            peer.set_state(PeerState.GONE)
            room.spawn(self.media.close_peer(peer.info), "media close_peer")
            self._peer_gone(peer)
        room.peers.clear()
        room.classrooms.clear()
        self._refresh_live()
        log.warning("lesson %s moved to another node: its room here is closed", lesson_id)
        return True

    def _refresh_live(self) -> None:
        self.stats.live_lessons = sum(
            1 for room in self.rooms.values() if room.state is LessonState.LIVE
        )

    # MediaListener ---------------------------------------------------------------------

    def producers_changed(
        self, lesson_id: str, peer_id: str, tracks: tuple[PublishedTrack, ...]
    ) -> None:
        room = self.rooms.get(lesson_id)
        peer = room.peers.get(peer_id) if room is not None else None
        if room is None or peer is None or peer.state is not PeerState.CONNECTED:
            return
        # Only what the grant allows, whatever the media plane says (a patrol's talkback mic
        # is kept: the policy forwards it only while the patrol talks).
        peer.tracks = tuple(t for t in tracks if peer.grant.may_hold(t.source))
        room.sync()

    def quality_changed(self, lesson_id: str, peer_id: str, report: QualityReport) -> None:
        room = self.rooms.get(lesson_id)
        peer = room.peers.get(peer_id) if room is not None else None
        if room is None or peer is None:
            return
        if peer.visible and peer.classroom_id is not None:
            room.attendance.quality(peer.classroom_id, report.loss, report.jitter_ms, report.rtt_ms)
        message = Quality(
            peer_id=peer_id,
            classroom_id=peer.classroom_id,
            loss=report.loss,
            jitter_ms=report.jitter_ms,
            rtt_ms=report.rtt_ms,
            bitrate_kbps=report.bitrate_kbps,
        )
        room.broadcast(message, exclude=peer, roles=frozenset({Role.LEAD, Role.PATROL}))

    def active_speaker_changed(self, lesson_id: str, peer_id: str | None) -> None:
        room = self.rooms.get(lesson_id)
        if room is not None:
            room.set_active_speaker(peer_id)

    def recording_failed(self, lesson_id: str, code: str, message: str) -> None:
        """The recorder stopped by itself (disk full, write error): tell everyone, lead first."""
        room = self.rooms.get(lesson_id)
        if room is None or not room.recording:
            return
        room.recording = False
        at = utcnow()
        # Stored like the lead's own switch: the lesson's flag and the recording timeline.
        room.spawn(room.hooks.recording_changed(lesson_id, False, at), "recording stop hook")
        room.broadcast(RecordingChanged(on=False, at=at.isoformat(), reason=code, message=message))

    def subscription_offer(self, lesson_id: str, peer_id: str, offer: SubscriptionOffer) -> None:
        room = self.rooms.get(lesson_id)
        peer = room.peers.get(peer_id) if room is not None else None
        if room is None or peer is None or peer.state is not PeerState.CONNECTED:
            return
        room.send_offer(peer, offer)

    def publish_failed(self, lesson_id: str, peer_id: str, reason: str) -> None:
        """The peer's send transport failed after publish_answer (media/sfu.py): its tracks
        are withdrawn (never offered to anyone if it never connected); it hears why."""
        room = self.rooms.get(lesson_id)
        peer = room.peers.get(peer_id) if room is not None else None
        if peer is None:
            return
        log.info("published media of peer %s in lesson %s failed: %s", peer_id, lesson_id, reason)
        if peer.ingest is not None and room is not None:
            room.remove(peer, "gone")  # its encoder or 录播 host must publish anew
            return
        peer.send(
            Error(
                code=ErrorCode.TRANSPORT_FAILED,
                message=f"Your published media did not connect: {reason}. Nobody receives "
                "it; publish again.",
            )
        )

    def subscribe_refused(self, lesson_id: str, peer_id: str, reason: str) -> None:
        """The peer's subscribe_answer refused an m-line (media/sfu.py): it cannot decode
        the producer's codec, so nothing comes on it; it hears which and why."""
        room = self.rooms.get(lesson_id)
        peer = room.peers.get(peer_id) if room is not None else None
        if peer is None:
            return
        log.info("peer %s in lesson %s refused a codec: %s", peer_id, lesson_id, reason)
        peer.send(Error(code=ErrorCode.UNSUPPORTED_CODEC, message=reason))

    def media_lost(self, lesson_id: str, peer_id: str) -> None:
        """Its media node died: close its connection with 4301 (MOVED). The client opens its
        join link again, as after a moved lesson; its new join replaces this peer, whose
        transports are gone, and gets media from a live node."""
        room = self.rooms.get(lesson_id)
        peer = room.peers.get(peer_id) if room is not None else None
        if peer is None or peer.session is None:
            return
        log.warning("peer %s of lesson %s lost its media node: asked to join again",
                    peer_id, lesson_id)  # fmt: skip
        peer.session.close(CloseCode.MOVED, "media node gone; join again")

    async def close(self) -> None:
        """Shutdown: close every connection and room; idempotent."""
        if self._closed:
            return
        self._closed = True
        for room in tuple(self.rooms.values()):
            await room.close()
        self.rooms.clear()
        for session in tuple(self._sessions):
            session.close(1000, "server shutting down")

"""One live lesson's state: members, stage, hands, mute, recording, and their events.

Audio toward the lead (classroom echo): a receiving classroom is heard by the lead while it
is on stage, unless the lead muted it, or when the lead explicitly unmuted it. The lead's
explicit choice is kept as an override per classroom; an override equal to the default is
dropped, and moving the stage clears the overrides of the classrooms it leaves and reaches,
so taking a classroom off stage silences it again. `muted` lists the roster's receiving
classrooms the lead does not hear.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from signaling.attendance import Attendance
from signaling.errors import CloseCode, ErrorCode, SignalingError
from signaling.grants import Role
from signaling.hooks import LessonHooks, LessonInfo, LessonState
from signaling.ingest import ingest_tracks
from signaling.media_port import MediaError, MediaPort, SubscriptionOffer
from signaling.peer import Peer, PeerState
from signaling.policy import LessonView, ProducerRef, desired_subscriptions
from signaling.protocol import (
    ActiveSpeaker,
    AttendanceFlag,
    AttendanceFlags,
    ConsumerInfo,
    HandLowered,
    IceServer,
    Joined,
    LessonEnded,
    LessonReport,
    LessonSummary,
    MutedChanged,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantLost,
    ParticipantUpdated,
    Producer,
    ProducersChanged,
    StageChanged,
    SubscribeOffer,
    You,
    _Server,
)
from signaling.talk import Talkback

if TYPE_CHECKING:
    from signaling.rooms import RoomConfig
    from signaling.session import Session

log = logging.getLogger("tongke.signaling")


def utcnow() -> datetime:
    return datetime.now(UTC)


def producer_model(ref: ProducerRef) -> Producer:
    return Producer(
        peer_id=ref.peer_id,
        classroom_id=ref.classroom_id,
        kind=ref.kind,
        source=ref.source,
        layer=ref.layer,
    )


# Who is told the active speaker.
SPEAKER_ROLES = frozenset({Role.LEAD, Role.PATROL})


class Room:
    def __init__(
        self,
        info: LessonInfo,
        hooks: LessonHooks,
        media: MediaPort,
        config: RoomConfig,
        on_peer_gone: Callable[[Peer], None],
        on_changed: Callable[[Room], None],
        ice_servers: Callable[[Peer], list[IceServer]] | None = None,
    ) -> None:
        self.info = info
        self.lesson_id = info.id
        self.hooks = hooks
        self.media = media
        self.config = config
        self.state = info.state
        self.started_at = info.started_at
        self.roster = {c.id: c for c in info.receivers}
        live = info.state is LessonState.LIVE
        # A live lesson's room built again (restart, fail-over) carries on where it was.
        self.stage: str | None = info.stage if live and info.stage in self.roster else None
        self.hands: list[str] = []
        # The lead's explicit audio choices: classroom id -> heard by the lead.
        self.audio: dict[str, bool] = {}
        self.recording = live and info.recording
        # For the lead's summary at the end: who came, hands raised, notes written.
        self.attendance = Attendance(info.id, hooks.record_attendance)
        # Late and missing receiving classrooms, as last told to the lead and patrol.
        self.flags: list[AttendanceFlag] = []
        self._roll_call: asyncio.TimerHandle | None = None
        self.hands_raised = 0
        self.notes = 0
        self.ever_recorded = self.recording
        # The media plane's loudest publisher (peer id), told to lead and patrol peers.
        self.active_speaker: str | None = None
        # The latest state of each ingest pulled for this lesson (a 录播 host over RTSP), by
        # (classroom, source): told to lead and patrol peers, and to those that join later.
        self.ingest_states: dict[tuple[str, str], _Server] = {}
        # Inspectors talking back to one classroom each (signaling/talk.py).
        self.talkback = Talkback(self)
        self.peers: dict[str, Peer] = {}
        self.classrooms: dict[str, Peer] = {}
        self.lock = asyncio.Lock()
        self.closed = False
        # Joins in flight for this room (RoomManager): an empty room is kept while any is.
        self.admitting = 0
        self._on_peer_gone = on_peer_gone
        self._on_changed = on_changed
        # Each peer's ICE servers (TURN credentials are minted per peer and join).
        self._ice_servers = ice_servers
        self._tasks: set[asyncio.Task[Any]] = set()

    # Derived state ---------------------------------------------------------------------

    def audible(self) -> frozenset[str]:
        heard = {c for c, on in self.audio.items() if on}
        if self.stage is not None and self.audio.get(self.stage, True):
            heard.add(self.stage)
        return frozenset(heard)

    def muted(self) -> list[str]:
        heard = self.audible()
        return sorted(c for c in self.roster if c not in heard)

    def view(self) -> LessonView:
        peers = [p for p in self.peers.values() if p.state is PeerState.CONNECTED]
        # A source an ingest publishes (a 录播 host's camera) replaces the page's own.
        ingested = ingest_tracks(peers)
        tracks = tuple(
            t
            for p in peers
            for t in p.tracks
            if p.ingest is not None or (t.classroom_id, t.source) not in ingested
        )
        return LessonView(
            tracks,
            self.stage,
            self.audible(),
            self.config.low_layer_above,
            self.talkback.pairs(),
        )

    def summary(self) -> LessonSummary:
        info = self.info
        return LessonSummary(
            id=info.id,
            title=info.title,
            state=self.state,
            subject=info.subject,
            grade=info.grade,
            teacher=info.teacher,
            school=info.school,
            started_at=self.started_at.isoformat() if self.started_at else None,
            recording_policy=info.recording_policy,
        )

    def joined(self, peer: Peer, id: str | None, resumed: bool) -> Joined:
        grant = peer.grant
        return Joined(
            id=id,
            peer_id=peer.peer_id,
            resume_token=peer.resume_token,
            resumed=resumed,
            role=peer.role,
            lesson=self.summary(),
            you=You(
                classroom_id=peer.classroom_id,
                name=grant.name,
                publish=sorted(grant.publish),
                controls=sorted(grant.controls),
            ),
            participants=[p.participant() for p in self.peers.values() if p.visible],
            stage=self.stage,
            hands=list(self.hands),
            muted=self.muted(),
            recording=self.recording,
            heartbeat_interval_s=self.config.heartbeat_interval_s,
            heartbeat_timeout_s=self.config.heartbeat_timeout_s,
            resume_window_s=self.config.resume_window_s,
            ice_servers=self._ice_servers(peer) if self._ice_servers is not None else [],
        )

    # Delivery --------------------------------------------------------------------------

    def broadcast(
        self,
        message: _Server,
        exclude: Peer | None = None,
        roles: frozenset[Role] | None = None,
    ) -> None:
        for peer in tuple(self.peers.values()):
            if peer is not exclude and (roles is None or peer.role in roles):
                peer.send(message)

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Runs a side job (a hook, a media release) without holding the caller up."""

        async def guarded() -> None:
            try:
                await coro
            except Exception:
                log.exception("%s failed for lesson %s", what, self.lesson_id)

        task = asyncio.create_task(guarded(), name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Membership ------------------------------------------------------------------------

    def check_roster(self, peer_role: Role, classroom_id: str | None) -> None:
        if peer_role is Role.LEAD and classroom_id != self.info.lead.id:
            raise SignalingError(
                ErrorCode.NOT_ON_ROSTER, "This classroom is not the lead classroom of the lesson."
            )
        if peer_role is Role.RECEIVER and classroom_id not in self.roster:
            raise SignalingError(
                ErrorCode.NOT_ON_ROSTER,
                "This classroom is not a receiving classroom of the lesson.",
            )

    def school_of(self, peer_role: Role, classroom_id: str | None) -> str:
        if peer_role is Role.LEAD:
            return self.info.lead.school
        room = self.roster.get(classroom_id or "")
        return room.school if room else ""

    def occupant(self, peer: Peer) -> Peer | None:
        """The member that holds the same classroom, if any (lead and receivers only)."""
        if not peer.visible or peer.classroom_id is None:
            return None
        return self.classrooms.get(peer.classroom_id)

    def add(self, peer: Peer, id: str | None) -> None:
        old = self.occupant(peer)
        if old is not None:
            self.replace(old)
        self.peers[peer.peer_id] = peer
        if peer.visible and peer.classroom_id is not None:
            self.classrooms[peer.classroom_id] = peer
            self.attendance.joined(peer.classroom_id, utcnow())
        peer.send(self.joined(peer, id, resumed=False))
        self._tell_speaker(peer)
        self._tell_ingests(peer)
        self._tell_flags(peer)
        if peer.visible:
            self.broadcast(ParticipantJoined(participant=peer.participant()), exclude=peer)
            self.roll_call()
        self.sync()

    def replace(self, old: Peer) -> None:
        if old.session is not None:
            old.session.send_error(
                ErrorCode.REPLACED, "Another connection joined as this classroom."
            )
            old.session.close(CloseCode.REPLACED, ErrorCode.REPLACED)
        self.remove(old, "replaced")

    def resume(self, peer: Peer, session: Session, id: str | None) -> None:
        was = peer.state
        if peer.session is not None and peer.session is not session:
            peer.session.send_error(ErrorCode.REPLACED, "This peer resumed on another connection.")
            peer.session.close(CloseCode.REPLACED, ErrorCode.REPLACED)
            self._release_media(peer)
        if peer.expiry is not None:
            peer.expiry.cancel()
            peer.expiry = None
        peer.session = session
        peer.desired = None
        peer.set_state(PeerState.CONNECTED)
        if peer.visible and peer.classroom_id is not None:
            self.attendance.connected(peer.classroom_id, utcnow())
        peer.send(self.joined(peer, id, resumed=True))
        self._tell_speaker(peer)
        self._tell_flags(peer)
        self.talkback.resumed(peer)
        if peer.visible and was is PeerState.LOST:
            self.broadcast(ParticipantUpdated(participant=peer.participant()), exclude=peer)
        self.sync()

    def lose(self, peer: Peer) -> None:
        """The connection died: keep the peer resumable for the window, release its media."""
        if peer.state is not PeerState.CONNECTED:
            return
        self.talkback.peer_gone(peer, utcnow())
        peer.session = None
        peer.set_state(PeerState.LOST)
        self._release_media(peer)
        if peer.visible and peer.classroom_id is not None:
            self.attendance.disconnected(peer.classroom_id, utcnow(), "lost")
        if peer.visible:
            participant = peer.participant()
            lead = frozenset({Role.LEAD})
            self.broadcast(ParticipantLost(participant=participant), roles=lead)
            others = frozenset(Role) - lead
            self.broadcast(ParticipantUpdated(participant=participant), roles=others)
        loop = asyncio.get_running_loop()
        peer.expiry = loop.call_later(self.config.resume_window_s, self.remove, peer, "gone")
        self.sync()

    def remove(self, peer: Peer, reason: str) -> None:
        """Removes a member for good (left, gone after the window, or replaced)."""
        if peer.state is PeerState.GONE:
            return
        self.talkback.peer_gone(peer, utcnow())
        connected = peer.state is PeerState.CONNECTED
        peer.cancel_tasks()
        peer.session = None
        peer.set_state(PeerState.GONE)
        self.peers.pop(peer.peer_id, None)
        classroom = peer.classroom_id
        if classroom is not None and self.classrooms.get(classroom) is peer:
            del self.classrooms[classroom]
            kind = "replaced" if reason == "replaced" else "gone" if reason == "gone" else "left"
            self.attendance.disconnected(classroom, utcnow(), kind)
        if connected:
            self._release_media(peer)
        if (
            classroom is not None
            and reason != "replaced"
            and peer.role is Role.RECEIVER
            and peer.ingest is None
        ):
            self.lower_hand(classroom)
            if self.stage == classroom:
                self.set_stage(None)
        if peer.visible:
            self.broadcast(
                ParticipantLeft(peer_id=peer.peer_id, classroom_id=classroom, reason=reason)
            )
        self._on_peer_gone(peer)
        self.sync()
        self._on_changed(self)

    def carry_on(self) -> None:
        """A room built again for a live lesson (restart, fail-over) kept its stage or
        recording: the hooks hear it (the recorder starts a new session) and the staged
        classroom has the resume window to come back, as a dropped one would."""
        self.spawn(
            self.hooks.lesson_restored(self.lesson_id, self.stage, self.recording), "restore hook"
        )
        if self.stage is not None:
            asyncio.get_running_loop().call_later(
                self.config.resume_window_s, self._stage_back_or_cleared, self.stage
            )

    def _stage_back_or_cleared(self, classroom_id: str) -> None:
        if not self.closed and self.stage == classroom_id and classroom_id not in self.classrooms:
            self.set_stage(None)
            self.sync()

    def _release_media(self, peer: Peer) -> None:
        peer.tracks = ()
        peer.desired = None
        self.spawn(self.media.close_peer(peer.info), "media close_peer")

    def end(self, at: datetime) -> None:
        """The lesson ended: tell everyone (their final message; the lead's carries its
        summary) and close every peer."""
        self.state = LessonState.ENDED
        self.talkback.lesson_ended(at)
        self.attendance.flush()
        if self._roll_call is not None:
            self._roll_call.cancel()
        started = self.started_at
        ended = LessonEnded(
            at=at.isoformat(),
            started_at=started.isoformat() if started is not None else None,
            duration_s=round((at - started).total_seconds(), 1) if started is not None else None,
            recorded=self.ever_recorded,
        )
        report = LessonReport(
            classrooms=self.attendance.report(self.roster.values(), started, at),
            hands_raised=self.hands_raised,
            notes=self.notes,
        )
        for peer in tuple(self.peers.values()):
            lead = peer.role is Role.LEAD
            peer.send(ended.model_copy(update={"report": report}) if lead else ended)
        for peer in tuple(self.peers.values()):
            session = peer.session
            if session is not None:
                session.close(CloseCode.LESSON_ENDED, ErrorCode.LESSON_ENDED)
            peer.cancel_tasks()
            peer.session = None
            peer.set_state(PeerState.GONE)
            self.spawn(self.media.close_peer(peer.info), "media close_peer")
            self._on_peer_gone(peer)
        self.peers.clear()
        self.classrooms.clear()
        self.closed = True
        self._on_changed(self)

    async def close(self) -> None:
        """Server shutdown: close sessions, cancel timers, wait for side jobs."""
        for peer in tuple(self.peers.values()):
            if peer.session is not None:
                peer.session.close(CloseCode.NORMAL, "server shutting down")
            peer.cancel_tasks()
        self.closed = True
        if self._tasks:
            await asyncio.wait(tuple(self._tasks), timeout=2.0)

    def changed(self) -> None:
        self._on_changed(self)

    # Late and missing classrooms (attendance_flags) -------------------------------------

    def watch_attendance(self) -> None:
        """The lesson is live: call the roll when late_after_s has passed since its start."""
        if self.started_at is None or self._roll_call is not None:
            return
        deadline = self.started_at + timedelta(seconds=self.config.late_after_s)
        due = (deadline - utcnow()).total_seconds()
        self._roll_call = asyncio.get_running_loop().call_later(
            max(0.0, due), self.roll_call, deadline
        )

    def roll_call(self, not_before: datetime | None = None) -> None:
        """Tells the lead and patrol when the late or missing classrooms changed.

        `not_before`: the timer's deadline. The loop's monotonic timer can fire a hair before
        the wall clock reaches it, and a roll call that saw "not yet due" then flagged nobody
        for good (a flaky test found it)."""
        if self.closed or self.state is not LessonState.LIVE:
            return
        now = utcnow() if not_before is None else max(utcnow(), not_before)
        flags = self.attendance.flags(
            self.roster.values(), self.started_at, now, self.config.late_after_s
        )
        if flags != self.flags:
            self.flags = flags
            self.broadcast(AttendanceFlags(classrooms=flags), roles=SPEAKER_ROLES)

    def _tell_flags(self, peer: Peer) -> None:
        if self.flags and peer.role in SPEAKER_ROLES:
            peer.send(AttendanceFlags(classrooms=self.flags))

    # Stage, hands, mute (state changes with their events) -----------------------------

    def set_stage(self, classroom_id: str | None) -> None:
        previous = self.stage
        for c in (previous, classroom_id):
            if c is not None:
                self.audio.pop(c, None)
        self.stage = classroom_id
        if classroom_id is not None:
            self.lower_hand(classroom_id)
        self.broadcast(
            StageChanged(classroom_id=classroom_id, previous=previous, muted=self.muted())
        )
        self.spawn(self.hooks.stage_changed(self.lesson_id, classroom_id, utcnow()), "stage hook")

    def lower_hand(self, classroom_id: str) -> None:
        if classroom_id in self.hands:
            self.hands.remove(classroom_id)
            self.broadcast(HandLowered(classroom_id=classroom_id, hands=list(self.hands)))

    def set_heard(self, classroom_id: str, heard: bool) -> bool:
        """Records the lead's choice; True when the classroom's muted state changed."""
        before = classroom_id in self.audible()
        default = classroom_id == self.stage
        if heard == default:
            self.audio.pop(classroom_id, None)
        else:
            self.audio[classroom_id] = heard
        if before == heard:
            return False
        self.broadcast(
            MutedChanged(classroom_id=classroom_id, muted=not heard, all_muted=self.muted())
        )
        return True

    # Active speaker --------------------------------------------------------------------

    def set_active_speaker(self, peer_id: str | None) -> None:
        """The media plane's loudest publisher changed; lead and patrol peers are told (a
        receiving classroom's own page has no use for it, and the policy sends it nothing
        about other classrooms)."""
        peer = self.peers.get(peer_id) if peer_id is not None else None
        if peer is None or not peer.visible:
            peer_id = None  # gone already, or not a participant: nobody to mark
        if peer_id == self.active_speaker:
            return
        self.active_speaker = peer_id
        self.broadcast(self._speaker_message(), roles=SPEAKER_ROLES)

    def _speaker_message(self) -> ActiveSpeaker:
        peer = self.peers.get(self.active_speaker) if self.active_speaker is not None else None
        if peer is None:
            return ActiveSpeaker(peer_id=None, classroom_id=None)
        return ActiveSpeaker(peer_id=peer.peer_id, classroom_id=peer.classroom_id)

    def set_ingest_state(self, classroom_id: str, source: str, message: _Server) -> None:
        """An ingest's state changed (signaling/ingest.py): lead and patrol peers hear it."""
        self.ingest_states[(classroom_id, source)] = message
        self.broadcast(message, roles=SPEAKER_ROLES)

    def _tell_ingests(self, peer: Peer) -> None:
        if peer.role in SPEAKER_ROLES:
            for message in self.ingest_states.values():
                peer.send(message)

    def _tell_speaker(self, peer: Peer) -> None:
        """A lead or patrol that (re)joins mid-sentence learns who is speaking at once."""
        if self.active_speaker is not None and peer.role in SPEAKER_ROLES:
            peer.send(self._speaker_message())

    # Subscriptions ---------------------------------------------------------------------

    def sync(self, exclude: Peer | None = None) -> None:
        """Recomputes every connected peer's subscriptions; tells those whose set changed."""
        if self.closed:
            return
        view = self.view()
        for peer in tuple(self.peers.values()):
            if peer.state is not PeerState.CONNECTED or peer.ingest is not None:
                continue
            desired = desired_subscriptions(view, peer.view)
            if desired == peer.desired:
                continue
            peer.desired = desired
            peer.send(ProducersChanged(producers=[producer_model(r) for r in sorted(desired)]))
            if peer is not exclude:
                peer.run_media_sync(self.media_sync)

    async def media_sync(
        self, peer: Peer, id: str | None = None, raise_errors: bool = False
    ) -> SubscribeOffer | None:
        """Asks the media plane to make the peer's subscriptions real; sends any offer.

        Policy-driven syncs swallow media_unavailable (no media plane: nothing to do);
        a client's own set_subscriptions gets every error."""
        desired = peer.desired if peer.desired is not None else frozenset()
        try:
            offer = await self.media.set_subscriptions(peer.info, desired)
        except MediaError as exc:
            if raise_errors:
                raise
            if exc.code is not ErrorCode.MEDIA_UNAVAILABLE and peer.session is not None:
                peer.session.send_error(exc.code, exc.message)
            return None
        if offer is None:
            return None
        return self.send_offer(peer, offer, id)

    def send_offer(
        self, peer: Peer, offer: SubscriptionOffer, id: str | None = None
    ) -> SubscribeOffer:
        """Sends the peer the server's offer for its receive transport."""
        message = SubscribeOffer(
            id=id,
            sdp=offer.sdp,
            consumers=[
                ConsumerInfo(
                    consumer_id=c.consumer_id, mid=c.mid, producer=producer_model(c.producer)
                )
                for c in offer.consumers
            ],
        )
        peer.send(message)
        return message

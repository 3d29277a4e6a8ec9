"""One member of a lesson room. It outlives its connection for the resume window."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from signaling.grants import Grant, Role
from signaling.media_port import PeerInfo
from signaling.policy import PeerView, ProducerRef, PublishedTrack, Want
from signaling.protocol import Participant

if TYPE_CHECKING:
    from signaling.protocol import _Server
    from signaling.session import Session

log = logging.getLogger("tongke.signaling")


class PeerState(StrEnum):
    CONNECTED = "connected"
    LOST = "lost"  # the connection is gone; resumable until the window closes
    GONE = "gone"  # removed from the room for good


class Peer:
    def __init__(
        self,
        peer_id: str,
        grant: Grant,
        resume_token: str,
        session: Session | None,
        school: str = "",
    ) -> None:
        self.peer_id = peer_id
        self.grant = grant
        self.resume_token = resume_token
        self.session: Session | None = session
        self.school = school
        self.state = PeerState.CONNECTED
        # An ingest (signaling/ingest.py: "whip", "rtsp"): publishes as its classroom, is
        # not its presence, subscribes to nothing.
        self.ingest: str | None = None
        # Who opened the ingest (a WHIP credential id, an RTSP source id): revoking it ends it.
        self.ingest_owner: str | None = None
        # The peer's own devices, as it last said (set_media_state).
        self.mic_on = True
        self.camera_on = True
        # Patrol only: what it asked to receive (None: the default wall view).
        self.wants: tuple[Want, ...] | None = None
        # What the media plane reports this peer publishes.
        self.tracks: tuple[PublishedTrack, ...] = ()
        # The subscriptions last sent to the peer (None: never, or must be resent).
        self.desired: frozenset[ProducerRef] | None = None
        self.expiry: asyncio.TimerHandle | None = None
        self.on_state_changed: Callable[[Peer, PeerState], None] | None = None
        self._media_task: asyncio.Task[None] | None = None
        self._media_dirty = False

    @property
    def role(self) -> Role:
        return self.grant.role

    @property
    def classroom_id(self) -> str | None:
        return self.grant.classroom_id

    @property
    def lesson_id(self) -> str:
        return self.grant.lesson_id

    @property
    def visible(self) -> bool:
        """Patrol, recorder and ingest peers never appear to others."""
        return self.role in (Role.LEAD, Role.RECEIVER) and self.ingest is None

    @property
    def info(self) -> PeerInfo:
        return PeerInfo(self.lesson_id, self.peer_id, self.role, self.classroom_id)

    @property
    def view(self) -> PeerView:
        return PeerView(self.peer_id, self.role, self.classroom_id, self.wants)

    def set_state(self, state: PeerState) -> None:
        """The only writer of `state`; tells the listener only on a real change."""
        if state is self.state:
            return
        self.state = state
        if self.on_state_changed is not None:
            self.on_state_changed(self, state)

    def participant(self) -> Participant:
        return Participant(
            peer_id=self.peer_id,
            role=self.role,
            classroom_id=self.classroom_id,
            name=self.grant.name,
            school=self.school,
            state="lost" if self.state is PeerState.LOST else "connected",
            mic_on=self.mic_on,
            camera_on=self.camera_on,
        )

    def send(self, message: _Server) -> None:
        """Queues a message if connected; a lost peer catches up with a snapshot on resume."""
        if self.session is not None and self.state is PeerState.CONNECTED:
            self.session.send(message)

    def run_media_sync(self, sync: Callable[[Peer], asyncio.Future[None]]) -> None:
        """Runs `sync` now, or once more after the running one: calls never pile up."""
        if self._media_task is not None and not self._media_task.done():
            self._media_dirty = True
            return

        async def loop() -> None:
            while True:
                self._media_dirty = False
                try:
                    await sync(self)
                except Exception:
                    log.exception("subscription sync failed for %s", self.peer_id)
                if not self._media_dirty or self.state is not PeerState.CONNECTED:
                    return

        self._media_task = asyncio.create_task(loop(), name=f"media-sync-{self.peer_id}")

    def cancel_tasks(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        if self._media_task is not None:
            self._media_task.cancel()
            self._media_task = None

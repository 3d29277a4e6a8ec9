"""Talkback (实时音频互动反馈): an inspector talking to one classroom of a live lesson.

A patrol peer is invisible. While it talks to a classroom (the lead's or one receiving
classroom) that classroom, and only it, is told who is talking (`talk_started`) and
receives the patrol's mic (the subscription policy reads `pairs()`); everyone else still
never learns the patrol is there. A talk ends when the patrol releases it, talks to another
classroom instead, is lost or leaves, when the addressed classroom is lost or leaves, or
when the lesson ends; the classroom and the patrol are told (`talk_stopped`) and the
patrol is invisible again. One classroom hears one inspector at a time.

Every talk is logged through the lesson hooks: once as it starts (a crash mid-talk still
leaves its record), again with its duration as it ends.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from signaling.errors import ErrorCode, SignalingError
from signaling.grants import Role
from signaling.hooks import LessonState, Talk
from signaling.protocol import TalkStarted, TalkStopped

if TYPE_CHECKING:
    from signaling.peer import Peer
    from signaling.room import Room

StopReason = Literal["released", "switched", "classroom_left", "patrol_left", "lesson_ended"]


@dataclass(frozen=True, slots=True)
class ActiveTalk:
    talk: Talk
    patrol: Peer


class Talkback:
    """The talks of one room, by patrol peer id. Every call runs under the room's lock or
    from the room's own membership changes (no awaits between check and change)."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.talks: dict[str, ActiveTalk] = {}

    def pairs(self) -> frozenset[tuple[str, str]]:
        return frozenset((p, a.talk.classroom_id) for p, a in self.talks.items())

    def talker_to(self, classroom_id: str) -> ActiveTalk | None:
        for active in self.talks.values():
            if active.talk.classroom_id == classroom_id:
                return active
        return None

    def _target(self, classroom_id: str | None) -> str:
        room = self.room
        target = room.info.lead.id if classroom_id is None else classroom_id
        if target != room.info.lead.id and target not in room.roster:
            raise SignalingError(
                ErrorCode.INVALID_TARGET, "Talk to the lead classroom or a receiving classroom."
            )
        occupant = room.classrooms.get(target)
        if occupant is None or occupant.state.value != "connected":
            raise SignalingError(
                ErrorCode.INVALID_TARGET, "That classroom is not connected to the lesson now."
            )
        return target

    def _name(self, classroom_id: str) -> str:
        info = self.room.info
        if classroom_id == info.lead.id:
            return info.lead.name
        room = self.room.roster.get(classroom_id)
        return room.name if room is not None else classroom_id

    async def start(self, patrol: Peer, classroom_id: str | None, at: datetime) -> Talk:
        """Starts (or moves) the patrol's talk; the caller has checked grant and live state."""
        target = self._target(classroom_id)
        busy = self.talker_to(target)
        if busy is not None and busy.patrol is not patrol:
            raise SignalingError(
                ErrorCode.TALK_BUSY, "Another inspector is talking to that classroom."
            )
        current = self.talks.get(patrol.peer_id)
        if current is not None and current.talk.classroom_id == target:
            return current.talk  # pressed again: nothing changes
        room = self.room
        started = room.started_at
        talk = Talk(
            id=uuid.uuid4().hex,
            lesson_id=room.lesson_id,
            inspector=patrol.grant.name,
            account_id=patrol.grant.account_id,
            classroom_id=target,
            classroom_name=self._name(target),
            at=at,
            offset_s=(
                round((at - started).total_seconds(), 3)
                if room.state is LessonState.LIVE and started is not None
                else None
            ),
        )
        if current is not None:
            self.stop(patrol.peer_id, "switched", at)
        await room.hooks.talk_started(talk)
        active = self.talks[patrol.peer_id] = ActiveTalk(talk, patrol)
        self._tell(patrol, target, self._started(active))
        return talk

    def stop(self, patrol_id: str, reason: StopReason, at: datetime) -> bool:
        """Ends the patrol's talk, if any; True when there was one."""
        active = self.talks.pop(patrol_id, None)
        if active is None:
            return False
        talk = active.talk
        duration = round(max(0.0, (at - talk.at).total_seconds()), 3)
        room = self.room
        room.spawn(room.hooks.talk_ended(talk, at, duration), "talk hook")
        if reason != "lesson_ended":
            message = TalkStopped(
                talk_id=talk.id,
                peer_id=patrol_id,
                classroom_id=talk.classroom_id,
                at=at.isoformat(),
                duration_s=duration,
                reason=reason,
            )
            self._tell(active.patrol, talk.classroom_id, message)
        return True

    def peer_gone(self, peer: Peer, at: datetime) -> bool:
        """A member was lost or removed: the talks it was part of end. True if any did."""
        if peer.role is Role.PATROL:
            return self.stop(peer.peer_id, "patrol_left", at)
        classroom = peer.classroom_id
        if not peer.visible or classroom is None or self.room.classrooms.get(classroom) is not peer:
            return False  # not the classroom's current member (a replaced one, say)
        active = self.talker_to(classroom)
        if active is None:
            return False
        return self.stop(active.patrol.peer_id, "classroom_left", at)

    def resumed(self, peer: Peer) -> None:
        """A connected peer resumed on a new connection mid-talk: tell it again."""
        active = self.talks.get(peer.peer_id)
        if active is None and peer.visible and peer.classroom_id is not None:
            active = self.talker_to(peer.classroom_id)
        if active is not None:
            peer.send(self._started(active))

    def _started(self, active: ActiveTalk) -> TalkStarted:
        talk = active.talk
        return TalkStarted(
            talk_id=talk.id,
            peer_id=active.patrol.peer_id,
            name=talk.inspector,
            classroom_id=talk.classroom_id,
            at=talk.at.isoformat(),
        )

    def lesson_ended(self, at: datetime) -> None:
        for patrol_id in tuple(self.talks):
            self.stop(patrol_id, "lesson_ended", at)

    def _tell(self, patrol: Peer, classroom_id: str, message: TalkStarted | TalkStopped) -> None:
        patrol.send(message)
        occupant = self.room.classrooms.get(classroom_id)
        if occupant is not None:
            occupant.send(message)

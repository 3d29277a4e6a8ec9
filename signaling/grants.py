"""Roles and grants: what a peer may publish and control. Deny by default.

A join token carries a Grant; the server enforces it, the UI only reflects it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    LEAD = "lead"
    RECEIVER = "receiver"
    PATROL = "patrol"
    RECORDER = "recorder"


class Source(StrEnum):
    """What a producer carries."""

    CAMERA = "camera"
    BOARD = "board"
    SCREEN = "screen"
    MIC = "mic"


class Control(StrEnum):
    """Room actions beyond publishing. A message that needs one is refused without it."""

    STAGE = "stage"  # put a receiving classroom on stage / take it off
    MUTE = "mute"  # mute or unmute a receiving classroom's audio toward the lead
    RECORDING = "recording"  # recording on/off
    LESSON = "lesson"  # start and end the lesson
    HAND = "hand"  # raise/lower own hand
    NOTE = "note"  # write timestamped evaluation notes
    SUBSCRIBE_ANY = "subscribe_any"  # choose subscriptions freely (patrol)
    # Talk back to one classroom (patrol): publish its mic and be heard there while talking.
    TALK = "talk"


DEFAULT_PUBLISH: dict[Role, frozenset[Source]] = {
    Role.LEAD: frozenset({Source.CAMERA, Source.BOARD, Source.SCREEN, Source.MIC}),
    Role.RECEIVER: frozenset({Source.CAMERA, Source.MIC}),
    Role.PATROL: frozenset(),
    Role.RECORDER: frozenset(),
}

DEFAULT_CONTROLS: dict[Role, frozenset[Control]] = {
    Role.LEAD: frozenset(
        {Control.STAGE, Control.MUTE, Control.RECORDING, Control.LESSON, Control.NOTE}
    ),
    Role.RECEIVER: frozenset({Control.HAND}),
    Role.PATROL: frozenset({Control.NOTE, Control.SUBSCRIBE_ANY, Control.TALK}),
    Role.RECORDER: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a peer is and what it may do, as signed into its join token."""

    lesson_id: str
    role: Role
    name: str
    # The classroom this peer is; None for patrol and recorder peers.
    classroom_id: str | None = None
    # The account behind the token (inspector, teacher), if any.
    account_id: str | None = None
    # The join link the token was minted from, if any: join refuses the token once the
    # link is revoked (token_revoked).
    link_id: str | None = None
    publish: frozenset[Source] = field(default_factory=frozenset)
    controls: frozenset[Control] = field(default_factory=frozenset)

    def may_publish(self, source: Source) -> bool:
        return source in self.publish

    def may(self, control: Control) -> bool:
        return control in self.controls

    def may_hold(self, source: Source) -> bool:
        """A producer of `source` may exist: granted, or a talkback mic (control `talk`;
        published only while talking, forwarded only then)."""
        return source in self.publish or (source is Source.MIC and Control.TALK in self.controls)


def default_grant(
    lesson_id: str,
    role: Role,
    name: str,
    classroom_id: str | None = None,
    account_id: str | None = None,
    link_id: str | None = None,
) -> Grant:
    """The grant the roles table of DESIGN.md gives a role; nothing more."""
    return Grant(
        lesson_id=lesson_id,
        role=role,
        name=name,
        classroom_id=classroom_id,
        account_id=account_id,
        link_id=link_id,
        publish=DEFAULT_PUBLISH[role],
        controls=DEFAULT_CONTROLS[role],
    )

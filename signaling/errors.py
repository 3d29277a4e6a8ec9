"""Stable error codes and WebSocket close codes of the signaling protocol.

Never reuse or repurpose a code: retire it in place and add a new one (STYLE rule 10).
docs/protocol.md documents every one of them.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    MESSAGE_TOO_LARGE = "message_too_large"
    RATE_LIMITED = "rate_limited"
    NOT_JOINED = "not_joined"
    ALREADY_JOINED = "already_joined"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    # The token's join link was revoked, or its account deactivated, after it was minted.
    TOKEN_REVOKED = "token_revoked"
    WRONG_LESSON = "wrong_lesson"
    LESSON_NOT_FOUND = "lesson_not_found"
    LESSON_ENDED = "lesson_ended"
    LESSON_NOT_LIVE = "lesson_not_live"
    FORBIDDEN = "forbidden"
    NOT_ON_ROSTER = "not_on_roster"
    INVALID_TARGET = "invalid_target"
    RESUME_FAILED = "resume_failed"
    CAPACITY = "capacity"
    MEDIA_UNAVAILABLE = "media_unavailable"
    INVALID_SDP = "invalid_sdp"
    INTERNAL_ERROR = "internal_error"
    REPLACED = "replaced"
    SLOW_CONSUMER = "slow_consumer"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    # Many nodes: the lesson's home is another node; the message names its WebSocket URL.
    WRONG_NODE = "wrong_node"
    # Unsolicited: the peer's published media failed to connect (or broke); the message
    # names the reason (ICE, DTLS ...). Its tracks are withdrawn; publish again.
    TRANSPORT_FAILED = "transport_failed"
    # Unsolicited: the peer's subscribe_answer refused an m-line (it cannot decode the
    # producer's codec, e.g. an H.264 profile); the message names it. Nothing comes on it.
    UNSUPPORTED_CODEC = "unsupported_codec"
    # Another inspector is already talking to that classroom.
    TALK_BUSY = "talk_busy"
    # The lesson's timetable slot says it is never recorded (recording_policy never).
    RECORDING_NOT_ALLOWED = "recording_not_allowed"
    # The recording root cannot be written (read-only, missing, full): recording stays off.
    RECORDING_UNAVAILABLE = "recording_unavailable"
    # add_note: a score names no item of the rubric version, or lies outside its scale.
    UNKNOWN_RUBRIC_ITEM = "unknown_rubric_item"
    BAD_SCORE = "bad_score"
    # add_note: rubric_version_id names no rubric version.
    UNKNOWN_RUBRIC_VERSION = "unknown_rubric_version"


class CloseCode(IntEnum):
    """WebSocket close codes the server uses (4000-4999 is the application range)."""

    NORMAL = 1000  # the peer left, or the server shuts down
    # Many nodes: the lesson now lives on another node (this one missed heartbeats and it
    # was placed again); open the join link again, it names the new home.
    MOVED = 4301
    ABUSE = 4400  # too many invalid, oversize or rate-limited messages
    ORIGIN_FORBIDDEN = 4403  # the Origin header is not allowed (closed before accept)
    TIMEOUT = 4408  # no join within the timeout, or no message within heartbeat_timeout_s
    REPLACED = 4409  # another connection took over this classroom or this peer
    LESSON_ENDED = 4410  # the lesson ended; the final message was lesson_ended
    INTERNAL = 4500  # the server failed while serving this connection
    SLOW_CONSUMER = 4503  # the outbound queue overflowed: the peer does not read fast enough


class SignalingError(Exception):
    """A request is refused with a stable code; the session turns it into an error message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

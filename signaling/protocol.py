"""The signaling protocol: every message as a pydantic model. docs/protocol.md is its prose.

One `ClientMessage` and one `ServerMessage`, each a discriminated union on `type`. Never
reuse or repurpose a `type`, a field or an error code; deprecate in place and bump
PROTOCOL_VERSION (checked at join). STYLE rule 10.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from signaling.errors import ErrorCode
from signaling.grants import Control, Role, Source
from signaling.hooks import LessonState
from signaling.policy import Kind, Layer

PROTOCOL_VERSION = 1

Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ClassroomId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=60_000)]
NoteText = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
ScoreName = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class _Client(BaseModel):
    # Strict and closed: a typo is an error with its field path, never silently ignored.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    id: Id | None = None


class _Server(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str | None = None


# Client -> server ------------------------------------------------------------------------


class Join(_Client):
    type: Literal["join"]
    version: int
    token: Token
    # Optional: the lesson the client means to join; refused with wrong_lesson if the token
    # names another one.
    lesson_id: ClassroomId | None = None


class Resume(_Client):
    type: Literal["resume"]
    version: int
    resume_token: Token


class Ping(_Client):
    type: Literal["ping"]


class Leave(_Client):
    type: Literal["leave"]


class StartLesson(_Client):
    type: Literal["start_lesson"]


class EndLesson(_Client):
    type: Literal["end_lesson"]


class SetStage(_Client):
    type: Literal["set_stage"]
    classroom_id: ClassroomId | None


class RaiseHand(_Client):
    type: Literal["raise_hand"]


class LowerHand(_Client):
    type: Literal["lower_hand"]


class Mute(_Client):
    type: Literal["mute"]
    classroom_id: ClassroomId
    muted: bool


class SetRecording(_Client):
    type: Literal["set_recording"]
    on: bool


class AddNote(_Client):
    type: Literal["add_note"]
    text: NoteText
    scores: dict[ScoreName, Annotated[int, Field(ge=0, le=100)]] | None = Field(
        default=None, max_length=20
    )
    # The rubric version the scores are given on (GET /api/rubrics/current); left out: the
    # rubric in use. Items and range are checked against it (unknown_rubric_item, bad_score).
    rubric_version_id: str | None = Field(default=None, max_length=32)


class SetMediaState(_Client):
    """The sender's own devices: microphone muted or not, camera off or not (a classroom's
    own choice, unlike `mute`, which is the lead's choice of what it hears)."""

    type: Literal["set_media_state"]
    mic_on: bool
    camera_on: bool


class TalkStart(_Client):
    """Press to talk (patrol, control `talk`): to the lead classroom (null) or one receiving
    classroom. Talking to another classroom while talking moves the talk there."""

    type: Literal["talk_start"]
    classroom_id: ClassroomId | None


class TalkStop(_Client):
    """Release: the talk ends and the patrol is invisible again."""

    type: Literal["talk_stop"]


class TrackSpec(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    mid: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    source: Source
    layer: Layer = Layer.MAIN


class Publish(_Client):
    type: Literal["publish"]
    sdp: Sdp
    tracks: list[TrackSpec] = Field(min_length=1, max_length=8)


class SubscribeAnswer(_Client):
    type: Literal["subscribe_answer"]
    sdp: Sdp


class WantSpec(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    source: Source
    # None: the lead classroom's source.
    classroom_id: ClassroomId | None = None
    layer: Layer = Layer.LOW


class SetSubscriptions(_Client):
    type: Literal["set_subscriptions"]
    # None: back to the default patrol view (lead camera low + lead mic).
    wants: list[WantSpec] | None = Field(max_length=32)


ClientMessage = Annotated[
    Join
    | Resume
    | Ping
    | Leave
    | StartLesson
    | EndLesson
    | SetStage
    | RaiseHand
    | LowerHand
    | Mute
    | SetRecording
    | SetMediaState
    | AddNote
    | Publish
    | SubscribeAnswer
    | SetSubscriptions
    | TalkStart
    | TalkStop,
    Field(discriminator="type"),
]

# Every client type, read off the union itself so a new message cannot be left out.
CLIENT_TYPES: frozenset[str] = frozenset(
    m.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for m in get_args(get_args(ClientMessage)[0])
)

client_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


def parse_client(text: str | bytes) -> ClientMessage:
    """Validates one JSON frame (strict JSON mode: enums from strings, no coercion);
    raises pydantic.ValidationError."""
    return client_adapter.validate_json(text)


# Server -> client: shared parts ----------------------------------------------------------


class LessonSummary(BaseModel):
    id: str
    title: str
    state: LessonState
    subject: str = ""
    grade: str = ""
    teacher: str = ""
    school: str = ""
    started_at: str | None = None
    # always | never | teacher: whether the lead's recording switch applies (timetable slot).
    recording_policy: str = "teacher"


class You(BaseModel):
    classroom_id: str | None
    name: str
    publish: list[Source]
    controls: list[Control]


class Participant(BaseModel):
    peer_id: str
    role: Role
    classroom_id: str | None
    name: str
    school: str = ""
    state: Literal["connected", "lost"] = "connected"
    # The participant's own devices (set_media_state); true until it says otherwise.
    mic_on: bool = True
    camera_on: bool = True


class IceServer(BaseModel):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class Producer(BaseModel):
    peer_id: str
    classroom_id: str | None
    kind: Kind
    source: Source
    layer: Layer


class ConsumerInfo(BaseModel):
    consumer_id: str
    mid: str
    producer: Producer


class NoteInfo(BaseModel):
    id: str
    author: str
    author_role: str
    at: str
    offset_s: float | None
    text: str
    scores: dict[str, int] = Field(default_factory=dict)
    rubric_version_id: str | None = None


# Server -> client: messages --------------------------------------------------------------


class Joined(_Server):
    type: Literal["joined"] = "joined"
    peer_id: str
    resume_token: str
    resumed: bool = False
    role: Role
    lesson: LessonSummary
    you: You
    participants: list[Participant]
    stage: str | None
    hands: list[str]
    muted: list[str]
    recording: bool
    heartbeat_interval_s: float
    heartbeat_timeout_s: float
    resume_window_s: float
    ice_servers: list[IceServer] = Field(default_factory=list)
    version: int = PROTOCOL_VERSION


class Pong(_Server):
    type: Literal["pong"] = "pong"


class Ok(_Server):
    type: Literal["ok"] = "ok"
    of: str


class Error(_Server):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str


class Heartbeat(_Server):
    type: Literal["heartbeat"] = "heartbeat"


class ParticipantJoined(_Server):
    type: Literal["participant_joined"] = "participant_joined"
    participant: Participant


class ParticipantLeft(_Server):
    type: Literal["participant_left"] = "participant_left"
    peer_id: str
    classroom_id: str | None
    reason: Literal["left", "gone", "replaced"]


class ParticipantUpdated(_Server):
    type: Literal["participant_updated"] = "participant_updated"
    participant: Participant


class ParticipantLost(_Server):
    type: Literal["participant_lost"] = "participant_lost"
    participant: Participant


class StageChanged(_Server):
    type: Literal["stage_changed"] = "stage_changed"
    classroom_id: str | None
    previous: str | None
    muted: list[str]


class HandRaised(_Server):
    type: Literal["hand_raised"] = "hand_raised"
    classroom_id: str
    hands: list[str]


class HandLowered(_Server):
    type: Literal["hand_lowered"] = "hand_lowered"
    classroom_id: str
    hands: list[str]


class MutedChanged(_Server):
    type: Literal["muted_changed"] = "muted_changed"
    classroom_id: str
    muted: bool
    all_muted: list[str]


class RecordingChanged(_Server):
    type: Literal["recording_changed"] = "recording_changed"
    on: bool
    at: str
    # Set when the server stopped recording by itself: recording_disk_full, recording_write_failed.
    reason: str | None = None
    message: str | None = None


class LessonStarted(_Server):
    type: Literal["lesson_started"] = "lesson_started"
    at: str


class ClassroomAttendance(BaseModel):
    classroom_id: str
    name: str
    school: str = ""
    # Seconds connected while the lesson was live (0: never came).
    present_s: float
    # Connections (a rejoin or a second device counts again; a resume does not).
    joins: int


class AttendanceFlag(BaseModel):
    """A receiving classroom still missing (未到) late_after_s into the live lesson, or one
    that came late (迟到): first connected that long after the start."""

    classroom_id: str
    name: str
    school: str = ""
    status: Literal["missing", "late"]
    # late only: when it first connected and how long after the start.
    joined_at: str | None = None
    late_s: float | None = None


class AttendanceFlags(_Server):
    """Lead and patrol only: every flagged classroom, sent whenever the list changes and to
    a lead or patrol that joins a live lesson while it is not empty."""

    type: Literal["attendance_flags"] = "attendance_flags"
    classrooms: list[AttendanceFlag]


class LessonReport(BaseModel):
    """The lead's short summary of a lesson that ended (this room's own record: a room
    rebuilt after a restart counts from then)."""

    classrooms: list[ClassroomAttendance]
    hands_raised: int
    notes: int


class LessonEnded(_Server):
    type: Literal["lesson_ended"] = "lesson_ended"
    at: str
    started_at: str | None = None
    # Seconds from start to end; None if the lesson never went live.
    duration_s: float | None = None
    # Recording was on at some point (the replay is in the library once catalogued).
    recorded: bool = False
    # The lead only; None for everyone else.
    report: LessonReport | None = None


class NoteAdded(_Server):
    type: Literal["note_added"] = "note_added"
    note: NoteInfo


class PublishAnswer(_Server):
    type: Literal["publish_answer"] = "publish_answer"
    sdp: str


class SubscribeOffer(_Server):
    type: Literal["subscribe_offer"] = "subscribe_offer"
    sdp: str
    consumers: list[ConsumerInfo]


class ProducersChanged(_Server):
    type: Literal["producers_changed"] = "producers_changed"
    producers: list[Producer]


class Quality(_Server):
    type: Literal["quality"] = "quality"
    peer_id: str
    classroom_id: str | None
    loss: float
    jitter_ms: float
    rtt_ms: float | None
    bitrate_kbps: float


class ActiveSpeaker(_Server):
    type: Literal["active_speaker"] = "active_speaker"
    # Whose microphone is loudest now (from ssrc-audio-level, nothing decoded); both None
    # after silence. classroom_id is the speaker's classroom (the lead's own included).
    peer_id: str | None
    classroom_id: str | None


class IngestState(_Server):
    """A classroom's camera pulled from a 录播 host (RTSP): its state, to lead and patrol."""

    type: Literal["ingest_state"] = "ingest_state"
    classroom_id: str
    source: Source
    kind: Literal["rtsp"] = "rtsp"
    # connecting | live | retrying | failed | stopped
    state: Literal["connecting", "live", "retrying", "failed", "stopped"]
    # Why it is not live: unreachable, unauthorized, not_found, unsupported_codec, no_video,
    # source_error (empty while live).
    code: str = ""
    message: str = ""
    video: str = ""  # what the source sends, e.g. "H.264 1920x1080 25 fps (640028)"
    audio: str = ""  # e.g. "AAC 44100 Hz -> Opus"
    reconnects: int = 0


class TalkStarted(_Server):
    """An inspector talks to `classroom_id`: sent to that classroom and the patrol only."""

    type: Literal["talk_started"] = "talk_started"
    talk_id: str
    peer_id: str
    # The inspector's name, as the classroom shows it ("巡课员 李XX 正在讲话").
    name: str
    classroom_id: str
    at: str


class TalkStopped(_Server):
    type: Literal["talk_stopped"] = "talk_stopped"
    talk_id: str
    peer_id: str
    classroom_id: str
    at: str
    duration_s: float
    reason: Literal["released", "switched", "classroom_left", "patrol_left"]


ServerMessage = Annotated[
    Joined
    | Pong
    | Ok
    | Error
    | Heartbeat
    | ParticipantJoined
    | ParticipantLeft
    | ParticipantUpdated
    | ParticipantLost
    | StageChanged
    | HandRaised
    | HandLowered
    | MutedChanged
    | RecordingChanged
    | LessonStarted
    | LessonEnded
    | NoteAdded
    | PublishAnswer
    | SubscribeOffer
    | ProducersChanged
    | Quality
    | ActiveSpeaker
    | IngestState
    | TalkStarted
    | TalkStopped
    | AttendanceFlags,
    Field(discriminator="type"),
]

server_adapter: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


def encode(message: _Server) -> str:
    return message.model_dump_json()

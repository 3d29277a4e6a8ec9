"""What the room logic asks of the rest of the service: lesson facts and durable records.

signaling never imports server; the server passes an implementation of LessonHooks
(backed by the database) to the RoomManager. NullLessonHooks serves tests and tools.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol

from signaling.grants import Grant


class LessonState(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class ClassroomInfo:
    id: str
    name: str
    school: str = ""


@dataclass(frozen=True, slots=True)
class LessonInfo:
    """The durable facts of a lesson the room needs: roster and state.

    For a live lesson also where its last room left off (``stage``, ``recording``): a room
    built again after a restart or a fail-over carries on with them."""

    id: str
    title: str
    state: LessonState
    lead: ClassroomInfo
    receivers: tuple[ClassroomInfo, ...] = ()
    subject: str = ""
    grade: str = ""
    teacher: str = ""
    school: str = ""
    started_at: datetime | None = None
    stage: str | None = None
    recording: bool = False
    # From the timetable slot: always (recording starts when the lesson goes live), never
    # (it cannot be switched on) or teacher (the lead decides).
    recording_policy: str = "teacher"


@dataclass(frozen=True, slots=True)
class Note:
    """A timestamped evaluation note (评课) written during a live lesson."""

    id: str
    lesson_id: str
    author: str
    author_role: str
    at: datetime
    # Seconds since the lesson went live; None if it is not live.
    offset_s: float | None
    text: str
    account_id: str | None = None
    scores: dict[str, int] = field(default_factory=dict)
    # The rubric version the scores were given on (None: the rubric in use, or no scores).
    rubric_version_id: str | None = None


@dataclass(frozen=True, slots=True)
class Talk:
    """An inspector talking back to one classroom (实时音频互动反馈), from `at` on."""

    id: str
    lesson_id: str
    # The inspector as named in the grant, and the account behind it, if any.
    inspector: str
    account_id: str | None
    classroom_id: str
    classroom_name: str
    at: datetime
    # Seconds since the lesson went live (a talk needs a live lesson).
    offset_s: float | None


# How a classroom's connection began or ended (attendance spans, docs/architecture.md).
PresenceKind = Literal["joined", "resumed", "lost", "left", "gone", "replaced"]


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """A lead or receiving classroom connected (joined, resumed) or stopped being connected
    (lost: its connection died; left; gone: the resume window ran out; replaced: a new
    connection took the classroom over)."""

    lesson_id: str
    classroom_id: str
    at: datetime
    kind: PresenceKind


@dataclass(frozen=True, slots=True)
class QualitySummary:
    """A classroom's connection quality over the lesson so far: percentiles of the media
    plane's reports (every ~2 s; loss as a fraction 0..1). None where nothing was measured."""

    lesson_id: str
    classroom_id: str
    samples: int
    loss_p50: float | None
    loss_p95: float | None
    jitter_p50_ms: float | None
    jitter_p95_ms: float | None
    rtt_p50_ms: float | None
    rtt_p95_ms: float | None


AttendanceRecord = PresenceEvent | QualitySummary


class LessonHooks(Protocol):
    async def lesson_info(self, lesson_id: str) -> LessonInfo | None: ...

    async def token_refusal(self, grant: Grant) -> str | None:
        """Why a verified join token may no longer join (its link revoked, its account
        deactivated), or None. Asked at every join, so it answers from a short cache."""
        ...

    def revocations_changed(self) -> None:
        """A link was revoked or an account (de)activated: token_refusal reads afresh."""
        ...

    async def lesson_started(self, lesson_id: str, at: datetime) -> None: ...

    async def lesson_ended(self, lesson_id: str, at: datetime) -> None: ...

    async def recording_changed(self, lesson_id: str, on: bool, at: datetime) -> None: ...

    async def lesson_restored(self, lesson_id: str, stage: str | None, recording: bool) -> None:
        """A live lesson's room was built again (restart, fail-over) with this stage and
        recording switch: what follows them (the recorder) picks up from here."""
        ...

    async def stage_changed(
        self, lesson_id: str, classroom_id: str | None, at: datetime
    ) -> None: ...

    async def note_added(self, note: Note) -> Note:
        """Stores a note and returns it as stored (scores checked against the rubric, its
        version named); raises SignalingError to refuse it (bad_score ...)."""
        ...

    async def talk_started(self, talk: Talk) -> None:
        """Logs a talk as it starts, so a crash mid-talk still leaves its record."""
        ...

    async def talk_ended(self, talk: Talk, at: datetime, duration_s: float) -> None: ...

    def record_attendance(self, record: AttendanceRecord) -> None:
        """Keeps one attendance record durably. A plain call that never blocks: records are
        queued and written in the order they were made (lesson_ended waits for them)."""
        ...


class NullLessonHooks:
    """Hooks for tests and tools: lessons kept in memory as the database would keep them
    (state, start, stage, recording), so a room built again finds where the last one was."""

    def __init__(self, lessons: dict[str, LessonInfo] | None = None) -> None:
        self.lessons = dict(lessons or {})
        # Join links revoked and accounts deactivated: their tokens are refused at join.
        self.revoked_links: set[str] = set()
        self.inactive_accounts: set[str] = set()
        self.notes: list[Note] = []
        # Talk id -> (talk, duration in seconds; None while it goes on).
        self.talks: dict[str, tuple[Talk, float | None]] = {}
        self.attendance: list[AttendanceRecord] = []

    def _update(self, lesson_id: str, **changes: object) -> None:
        if lesson_id in self.lessons:
            self.lessons[lesson_id] = replace(self.lessons[lesson_id], **changes)  # type: ignore[arg-type]

    async def lesson_info(self, lesson_id: str) -> LessonInfo | None:
        return self.lessons.get(lesson_id)

    async def token_refusal(self, grant: Grant) -> str | None:
        if grant.link_id is not None and grant.link_id in self.revoked_links:
            return "The join link this token came from was revoked."
        if grant.account_id is not None and grant.account_id in self.inactive_accounts:
            return "The account this join token was issued to is deactivated."
        return None

    def revocations_changed(self) -> None:
        return None

    async def lesson_started(self, lesson_id: str, at: datetime) -> None:
        self._update(lesson_id, state=LessonState.LIVE, started_at=at)

    async def lesson_ended(self, lesson_id: str, at: datetime) -> None:
        self._update(lesson_id, state=LessonState.ENDED, stage=None, recording=False)

    async def recording_changed(self, lesson_id: str, on: bool, at: datetime) -> None:
        self._update(lesson_id, recording=on)

    async def lesson_restored(self, lesson_id: str, stage: str | None, recording: bool) -> None:
        return None

    async def stage_changed(self, lesson_id: str, classroom_id: str | None, at: datetime) -> None:
        self._update(lesson_id, stage=classroom_id)

    async def note_added(self, note: Note) -> Note:
        self.notes.append(note)
        return note

    async def talk_started(self, talk: Talk) -> None:
        self.talks[talk.id] = (talk, None)

    async def talk_ended(self, talk: Talk, at: datetime, duration_s: float) -> None:
        self.talks[talk.id] = (talk, duration_s)

    def record_attendance(self, record: AttendanceRecord) -> None:
        self.attendance.append(record)

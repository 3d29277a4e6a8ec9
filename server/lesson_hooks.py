"""LessonHooks backed by the database: the room asks for the roster and records events.

Each call is one short transaction. Unknown lessons are ignored (logged), since a room
must never fail because a row vanished; a lesson that ended never goes live again.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from server.attendance import close_open_spans, store_summary
from server.attendance_writer import AttendanceWriter
from server.db import Database
from server.db.models import (
    Account,
    Classroom,
    EvaluationNote,
    Lesson,
    LessonStatus,
    PatrolTalk,
    RecordingEvent,
    StageEvent,
)
from server.district_time import DEFAULT_ZONE
from server.recording import RecordingController, RecordingUnavailable
from server.revocations import Revocations
from server.rubrics import RubricError, check_scores, scoring_version
from signaling.errors import ErrorCode, SignalingError
from signaling.grants import Grant
from signaling.hooks import (
    AttendanceRecord,
    ClassroomInfo,
    LessonInfo,
    LessonState,
    Note,
    Talk,
)

log = logging.getLogger("tongke.lessons")

DISTRICT_ZONE = ZoneInfo(DEFAULT_ZONE)


def _classroom(classroom: Classroom) -> ClassroomInfo:
    return ClassroomInfo(id=classroom.id, name=classroom.name, school=classroom.school.name)


class DatabaseLessonHooks:
    """signaling.hooks.LessonHooks against the tongke database."""

    def __init__(
        self,
        db: Database,
        recording: RecordingController | None = None,
        zone: tzinfo = DISTRICT_ZONE,
        late_after_s: float = 120.0,
    ) -> None:
        self.db = db
        # Join-time revocation (token_refusal); the API forgets it when it revokes.
        self.revocations = Revocations(db)
        # Told of the switch, the stage and the end. Errors are logged, except a recorder
        # that cannot start: the lead is refused (recording_unavailable).
        self.recording = recording
        self.zone = zone
        self.late_after_s = late_after_s
        self.attendance = AttendanceWriter(db, zone)

    async def close(self) -> None:
        """Writes the attendance records still queued."""
        await self.attendance.close()

    def record_attendance(self, record: AttendanceRecord) -> None:
        self.attendance.add(record)

    async def token_refusal(self, grant: Grant) -> str | None:
        return await self.revocations.refusal(grant.link_id, grant.account_id)

    def revocations_changed(self) -> None:
        self.revocations.forget()

    async def _tell_recorder(self, name: str, *args: object) -> None:
        if self.recording is None:
            return
        try:
            result = getattr(self.recording, name)(*args)
            if result is not None:
                await result
        except Exception:
            log.exception("recording controller %s failed", name)

    async def lesson_info(self, lesson_id: str) -> LessonInfo | None:
        async with self.db.sessions.begin() as session:
            lesson = await session.scalar(
                select(Lesson)
                .where(Lesson.id == lesson_id)
                .options(
                    selectinload(Lesson.teacher),
                    selectinload(Lesson.lead_classroom).selectinload(Classroom.school),
                    selectinload(Lesson.receivers).selectinload(Classroom.school),
                )
            )
            live = lesson is not None and lesson.state == LessonStatus.LIVE.value
            # Where a live lesson's last room left off (a restart or a fail-over carries on).
            stage = (
                await session.scalar(
                    select(StageEvent.classroom_id)
                    .where(StageEvent.lesson_id == lesson_id)
                    .order_by(StageEvent.at.desc(), StageEvent.id.desc())
                    .limit(1)
                )
                if live
                else None
            )
        if lesson is None:
            return None
        return LessonInfo(
            id=lesson.id,
            title=lesson.title,
            state=LessonState(lesson.state),
            lead=_classroom(lesson.lead_classroom),
            receivers=tuple(_classroom(c) for c in lesson.receivers),
            subject=lesson.subject,
            grade=lesson.grade,
            teacher=lesson.teacher.display_name,
            school=lesson.lead_classroom.school.name,
            started_at=lesson.started_at,
            stage=stage,
            recording=live and lesson.recording,
            recording_policy=lesson.recording_policy,
        )

    async def lesson_started(self, lesson_id: str, at: datetime) -> None:
        async with self.db.sessions.begin() as session:
            result = await session.execute(
                update(Lesson)
                .where(Lesson.id == lesson_id, Lesson.state == LessonStatus.SCHEDULED.value)
                .values(state=LessonStatus.LIVE.value, started_at=at)
            )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            log.info("lesson %s not started: unknown, already live or ended", lesson_id)

    async def lesson_ended(self, lesson_id: str, at: datetime) -> None:
        # Who came and went before the end is written first: the summary counts it.
        await self.attendance.written()
        async with self.db.sessions.begin() as session:
            lesson = await session.get(Lesson, lesson_id)
            if lesson is None or lesson.state == LessonStatus.ENDED.value:
                return
            if lesson.recording:
                # Close the recording timeline so the recorder sees where it stops.
                session.add(RecordingEvent(lesson_id=lesson_id, on=False, at=at))
            lesson.state = LessonStatus.ENDED.value
            lesson.ended_at = at
            lesson.recording = False
            await close_open_spans(session, lesson_id, at)
            await session.flush()
            await store_summary(session, lesson, self.zone, self.late_after_s)
        await self._tell_recorder("lesson_ended", lesson_id)

    async def recording_changed(self, lesson_id: str, on: bool, at: datetime) -> None:
        if on:
            # The recorder first: a root it cannot write refuses the switch, and the lesson
            # stays off (SignalingError recording_unavailable), never "on" with nothing written.
            await self._start_recorder(lesson_id)
        try:
            async with self.db.sessions.begin() as session:
                lesson = await session.get(Lesson, lesson_id)
                if lesson is None:
                    log.info("recording change for unknown lesson %s ignored", lesson_id)
                    return
                lesson.recording = on
                session.add(RecordingEvent(lesson_id=lesson_id, on=on, at=at))
        except Exception:
            if on:  # the switch stays off: so does the recorder
                await self._tell_recorder("stop", lesson_id)
            raise
        if not on:
            await self._tell_recorder("stop", lesson_id)

    async def _start_recorder(self, lesson_id: str) -> None:
        if self.recording is None:
            return
        try:
            await self.recording.start(lesson_id)
        except RecordingUnavailable as exc:
            raise SignalingError(ErrorCode.RECORDING_UNAVAILABLE, str(exc)) from exc

    async def lesson_restored(self, lesson_id: str, stage: str | None, recording: bool) -> None:
        # The database already says so; the recorder of this process must hear it. Starting
        # opens a new session: the one the stopped process left is repaired by recovery.
        await self._tell_recorder("set_stage", lesson_id, stage)
        if recording:
            try:
                await self._start_recorder(lesson_id)
            except SignalingError as exc:  # the controller told the room (recording_failed)
                log.warning("recording of lesson %s not resumed: %s", lesson_id, exc)

    async def stage_changed(self, lesson_id: str, classroom_id: str | None, at: datetime) -> None:
        async with self.db.sessions.begin() as session:
            if await session.get(Lesson, lesson_id) is None:
                log.info("stage change for unknown lesson %s ignored", lesson_id)
                return
            if classroom_id is not None and await session.get(Classroom, classroom_id) is None:
                log.info("stage change names unknown classroom %s; kept as nobody", classroom_id)
                classroom_id = None
            session.add(StageEvent(lesson_id=lesson_id, classroom_id=classroom_id, at=at))
        await self._tell_recorder("set_stage", lesson_id, classroom_id)

    async def note_added(self, note: Note) -> Note:
        async with self.db.sessions.begin() as session:
            if note.scores:
                # Scores on the district's rubric: its items, its scale (server/rubrics.py).
                try:
                    spec = await scoring_version(session, note.rubric_version_id)
                    scores = check_scores(spec, note.scores, complete=False)
                except RubricError as exc:
                    codes = {c.value: c for c in ErrorCode}
                    code = codes.get(exc.code, ErrorCode.INTERNAL_ERROR)  # no rubric in use
                    raise SignalingError(code, exc.message) from None
                note = replace(note, scores=scores, rubric_version_id=spec.version_id)
            else:
                note = replace(note, rubric_version_id=None)
            if await session.get(Lesson, note.lesson_id) is None:
                log.info("note for unknown lesson %s ignored", note.lesson_id)
                return note
            account_id = note.account_id
            if account_id is not None and await session.get(Account, account_id) is None:
                account_id = None
            session.add(
                EvaluationNote(
                    # Ids are 32 hex characters; a dashed uuid fits once its dashes go.
                    id=note.id.replace("-", "")[:32],
                    lesson_id=note.lesson_id,
                    account_id=account_id,
                    author=note.author,
                    author_role=note.author_role,
                    at=note.at,
                    offset_s=note.offset_s,
                    text=note.text,
                    scores=dict(note.scores),
                    rubric_version_id=note.rubric_version_id,
                )
            )
        return note

    async def talk_started(self, talk: Talk) -> None:
        async with self.db.sessions.begin() as session:
            if await session.get(Lesson, talk.lesson_id) is None:
                log.info("talk for unknown lesson %s ignored", talk.lesson_id)
                return
            account_id = talk.account_id
            if account_id is not None and await session.get(Account, account_id) is None:
                account_id = None
            classroom_id: str | None = talk.classroom_id
            if await session.get(Classroom, talk.classroom_id) is None:
                classroom_id = None
            session.add(
                PatrolTalk(
                    id=talk.id,
                    lesson_id=talk.lesson_id,
                    account_id=account_id,
                    inspector=talk.inspector,
                    classroom_id=classroom_id,
                    classroom_name=talk.classroom_name,
                    started_at=talk.at,
                    offset_s=talk.offset_s,
                )
            )

    async def talk_ended(self, talk: Talk, at: datetime, duration_s: float) -> None:
        async with self.db.sessions.begin() as session:
            await session.execute(
                update(PatrolTalk).where(PatrolTalk.id == talk.id).values(duration_s=duration_s)
            )

"""DatabaseLessonHooks: the room reads the roster and writes state and timelines."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from server.db import Database, open_database
from server.db.models import (
    Account,
    Classroom,
    EvaluationNote,
    Lesson,
    PatrolTalk,
    RecordingEvent,
    School,
    StageEvent,
    lesson_receivers,
    utcnow,
)
from server.lesson_hooks import DatabaseLessonHooks
from server.settings import Settings
from signaling.hooks import ClassroomInfo, LessonHooks, LessonState, Note, Talk


@dataclass(frozen=True)
class Roster:
    db: Database
    lesson_id: str
    teacher_id: str
    lead_id: str
    receiver_ids: tuple[str, ...]


@pytest.fixture
async def roster(database_url: str, tmp_path: Path) -> AsyncIterator[Roster]:
    settings = Settings(data_dir=tmp_path, database_url=database_url, secret_key="x")
    async with open_database(settings) as db:
        async with db.sessions.begin() as session:
            central = School(name="城关中心校", kind="central")
            point = School(name="石门教学点", kind="teaching_point")
            session.add_all([central, point])
            await session.flush()
            lead = Classroom(school_id=central.id, name="录播教室", kind="lead")
            rooms = [Classroom(school_id=point.id, name=f"教室{n}") for n in (1, 2)]
            teacher = Account(
                username="t", display_name="王老师", role="teacher", password_hash="-"
            )
            session.add_all([lead, *rooms, teacher])
            await session.flush()
            start = utcnow()
            lesson = Lesson(
                title="口算乘法",
                teacher_id=teacher.id,
                lead_classroom_id=lead.id,
                scheduled_start=start,
                scheduled_end=start + timedelta(minutes=45),
                subject="数学",
                grade="三年级",
            )
            session.add(lesson)
            await session.flush()
            # Listed in reverse on purpose: the roster keeps the given order.
            await session.execute(
                lesson_receivers.insert(),
                [
                    {"lesson_id": lesson.id, "classroom_id": rooms[1].id, "position": 0},
                    {"lesson_id": lesson.id, "classroom_id": rooms[0].id, "position": 1},
                ],
            )
        yield Roster(db, lesson.id, teacher.id, lead.id, (rooms[1].id, rooms[0].id))


async def _lesson(roster: Roster) -> Lesson:
    async with roster.db.sessions.begin() as session:
        return await session.get_one(Lesson, roster.lesson_id)


def test_database_hooks_implement_every_lesson_hooks_method_with_its_signature() -> None:
    names = [n for n, v in vars(LessonHooks).items() if inspect.isfunction(v) and n[0] != "_"]
    assert names
    for name in names:
        ours = inspect.signature(getattr(DatabaseLessonHooks, name))
        assert ours == inspect.signature(getattr(LessonHooks, name)), name
        # Recording attendance (it only queues) and forgetting revocation answers are plain
        # calls; the others are awaited.
        coroutine = inspect.iscoroutinefunction(getattr(LessonHooks, name))
        assert inspect.iscoroutinefunction(getattr(DatabaseLessonHooks, name)) == coroutine, name
        assert coroutine != (name in ("record_attendance", "revocations_changed")), name


async def test_lesson_info_gives_the_roster_with_school_names(roster: Roster) -> None:
    info = await DatabaseLessonHooks(roster.db).lesson_info(roster.lesson_id)
    assert info is not None
    assert info.state is LessonState.SCHEDULED
    assert info.lead == ClassroomInfo(roster.lead_id, "录播教室", "城关中心校")
    assert [r.id for r in info.receivers] == list(roster.receiver_ids)
    assert {r.school for r in info.receivers} == {"石门教学点"}
    assert (info.title, info.subject, info.grade) == ("口算乘法", "数学", "三年级")
    assert (info.teacher, info.school, info.started_at) == ("王老师", "城关中心校", None)


async def test_an_unknown_lesson_has_no_info(roster: Roster) -> None:
    assert await DatabaseLessonHooks(roster.db).lesson_info("nope") is None


async def test_start_then_end_moves_the_lesson_through_its_states(roster: Roster) -> None:
    hooks = DatabaseLessonHooks(roster.db)
    started = utcnow()
    await hooks.lesson_started(roster.lesson_id, started)
    info = await hooks.lesson_info(roster.lesson_id)
    assert info is not None and info.state is LessonState.LIVE and info.started_at == started
    # A second start (a resumed lead, another node) keeps the first time.
    await hooks.lesson_started(roster.lesson_id, started + timedelta(minutes=1))
    assert (await _lesson(roster)).started_at == started
    ended = started + timedelta(minutes=40)
    await hooks.lesson_ended(roster.lesson_id, ended)
    lesson = await _lesson(roster)
    assert (lesson.state, lesson.ended_at) == ("ended", ended)
    # An ended lesson never goes live again, and its end time stays.
    await hooks.lesson_started(roster.lesson_id, ended + timedelta(minutes=1))
    await hooks.lesson_ended(roster.lesson_id, ended + timedelta(minutes=2))
    lesson = await _lesson(roster)
    assert (lesson.state, lesson.ended_at) == ("ended", ended)


async def test_recording_and_stage_changes_append_to_their_timelines(roster: Roster) -> None:
    hooks = DatabaseLessonHooks(roster.db)
    t0 = utcnow()
    await hooks.lesson_started(roster.lesson_id, t0)
    await hooks.recording_changed(roster.lesson_id, True, t0 + timedelta(seconds=1))
    assert (await _lesson(roster)).recording is True
    await hooks.stage_changed(roster.lesson_id, roster.receiver_ids[0], t0 + timedelta(seconds=2))
    await hooks.stage_changed(roster.lesson_id, None, t0 + timedelta(seconds=3))
    await hooks.stage_changed(roster.lesson_id, "no-such-room", t0 + timedelta(seconds=4))
    await hooks.lesson_ended(roster.lesson_id, t0 + timedelta(seconds=5))
    async with roster.db.sessions.begin() as session:
        recording = [
            (e.on, e.at - t0)
            for e in await session.scalars(select(RecordingEvent).order_by(RecordingEvent.id))
        ]
        stage = [
            (e.classroom_id, e.at - t0)
            for e in await session.scalars(select(StageEvent).order_by(StageEvent.id))
        ]
    # Ending a lesson that records closes its recording timeline.
    assert recording == [(True, timedelta(seconds=1)), (False, timedelta(seconds=5))]
    assert stage == [
        (roster.receiver_ids[0], timedelta(seconds=2)),
        (None, timedelta(seconds=3)),
        (None, timedelta(seconds=4)),
    ]
    assert (await _lesson(roster)).recording is False


class RecorderCalls:
    """Stands where the RecordingController sits: keeps what the hooks tell it."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def set_stage(self, lesson_id: str, classroom_id: str | None) -> None:
        self.calls.append(("set_stage", lesson_id, classroom_id))

    async def start(self, lesson_id: str) -> bool:
        self.calls.append(("start", lesson_id))
        return True


async def test_a_live_lessons_info_says_where_its_last_room_left_off(roster: Roster) -> None:
    recorder = RecorderCalls()
    hooks = DatabaseLessonHooks(roster.db, recorder)  # type: ignore[arg-type]
    t0 = utcnow()
    on_stage = roster.receiver_ids[1]
    await hooks.stage_changed(roster.lesson_id, on_stage, t0)  # before going live: not kept
    info = await hooks.lesson_info(roster.lesson_id)
    assert info is not None and (info.stage, info.recording) == (None, False)
    await hooks.lesson_started(roster.lesson_id, t0)
    await hooks.recording_changed(roster.lesson_id, True, t0 + timedelta(seconds=1))
    await hooks.stage_changed(roster.lesson_id, None, t0 + timedelta(seconds=2))
    await hooks.stage_changed(roster.lesson_id, on_stage, t0 + timedelta(seconds=3))
    info = await hooks.lesson_info(roster.lesson_id)
    assert info is not None and (info.stage, info.recording) == (on_stage, True)
    # A room built again (restart, fail-over) tells this process's recorder to carry on.
    recorder.calls.clear()
    await hooks.lesson_restored(roster.lesson_id, on_stage, True)
    assert recorder.calls == [
        ("set_stage", roster.lesson_id, on_stage),
        ("start", roster.lesson_id),
    ]
    recorder.calls.clear()
    await hooks.lesson_restored(roster.lesson_id, on_stage, False)
    assert recorder.calls == [("set_stage", roster.lesson_id, on_stage)]
    # Once ended, nothing carries on.
    await hooks.lesson_ended(roster.lesson_id, t0 + timedelta(seconds=4))
    info = await hooks.lesson_info(roster.lesson_id)
    assert info is not None and (info.stage, info.recording) == (None, False)


async def test_notes_are_stored_with_their_offset_and_scores(roster: Roster) -> None:
    hooks = DatabaseLessonHooks(roster.db)
    note = Note(
        id=str(uuid.uuid4()),
        lesson_id=roster.lesson_id,
        author="李巡课员",
        author_role="patrol",
        at=utcnow(),
        offset_s=125.5,
        text="板书清晰，互动充分",
        account_id=roster.teacher_id,
        scores={"interaction": 5},
    )
    await hooks.note_added(note)
    await hooks.note_added(Note("x", "no-such-lesson", "a", "patrol", utcnow(), None, "lost"))
    async with roster.db.sessions.begin() as session:
        stored = (await session.scalars(select(EvaluationNote))).all()
    assert len(stored) == 1
    (row,) = stored
    assert row.id == note.id.replace("-", "")
    assert (row.text, row.offset_s, row.scores) == (note.text, 125.5, {"interaction": 5})
    assert (row.at, row.account_id, row.author_role) == (note.at, roster.teacher_id, "patrol")


async def test_timeline_calls_for_unknown_lessons_are_ignored(roster: Roster) -> None:
    hooks = DatabaseLessonHooks(roster.db)
    now = utcnow()
    await hooks.lesson_started("nope", now)
    await hooks.lesson_ended("nope", now)
    await hooks.recording_changed("nope", True, now)
    await hooks.stage_changed("nope", None, now)
    async with roster.db.sessions.begin() as session:
        assert (await session.scalars(select(RecordingEvent))).all() == []


async def test_a_talk_is_logged_as_it_starts_and_completed_as_it_ends(roster: Roster) -> None:
    hooks = DatabaseLessonHooks(roster.db)
    t0 = utcnow()
    talk = Talk(
        id=uuid.uuid4().hex,
        lesson_id=roster.lesson_id,
        inspector="李巡课",
        account_id="not-an-account",
        classroom_id=roster.receiver_ids[0],
        classroom_name="教室2",
        at=t0,
        offset_s=12.5,
    )
    await hooks.talk_started(talk)
    async with roster.db.sessions.begin() as session:
        row = await session.get_one(PatrolTalk, talk.id)
    # An unknown account is kept as nobody; the talk is on record before it ends.
    assert (row.inspector, row.classroom_id, row.account_id) == (
        "李巡课",
        roster.receiver_ids[0],
        None,
    )
    assert row.started_at == t0 and row.offset_s == 12.5 and row.duration_s is None
    await hooks.talk_ended(talk, t0 + timedelta(seconds=7), 7.0)
    async with roster.db.sessions.begin() as session:
        assert (await session.get_one(PatrolTalk, talk.id)).duration_s == 7.0


async def test_a_talk_of_an_unknown_lesson_is_ignored(roster: Roster) -> None:
    hooks = DatabaseLessonHooks(roster.db)
    talk = Talk(uuid.uuid4().hex, "nope", "李", None, roster.lead_id, "录播教室", utcnow(), None)
    await hooks.talk_started(talk)
    await hooks.talk_ended(talk, utcnow(), 1.0)
    async with roster.db.sessions.begin() as session:
        assert await session.get(PatrolTalk, talk.id) is None

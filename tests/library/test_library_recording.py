"""RecordingController with a real MediaService, real aiortc publishers on loopback, a real
database and a real rendition job: record a few seconds with a stage switch, catalogue the
session and render it. (A crash of the real service: test_library_service_crash.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from media.sfu import MediaService, TrackSpec
from media.synthetic import SyntheticPublisher
from recorder.jobs import RenditionRunner
from server.db import Database, open_database
from server.db.models import Account, Classroom, County, Lesson, LibraryRecording, School
from server.lesson_hooks import DatabaseLessonHooks
from server.recording import RecordingController
from server.settings import Settings

LOOPBACK = ["127.0.0.1"]


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[Settings, Database]]:
    settings = Settings(data_dir=tmp_path, seed_demo=False, secret_key="x" * 40)
    async with open_database(settings) as database:
        yield settings, database


async def make_lesson(db: Database) -> dict[str, str]:
    async with db.sessions.begin() as session:
        county = County(name="示范县")
        session.add(county)
        await session.flush()
        school = School(name="城关小学", kind="central", county_id=county.id)
        session.add(school)
        await session.flush()
        rooms = [Classroom(school_id=school.id, name=n) for n in ("主讲", "甲", "乙")]
        teacher = Account(username="t", display_name="李老师", role="teacher", password_hash="x")
        session.add_all([*rooms, teacher])
        await session.flush()
        lesson = Lesson(
            title="圆的面积", teacher_id=teacher.id, lead_classroom_id=rooms[0].id,
            scheduled_start=now(), scheduled_end=now(), state="live", stage="小学",
            subject="数学", grade="六年级", textbook_version="人教版", volume="上册",
        )  # fmt: skip
        session.add(lesson)
    return {"lesson": lesson.id, "lead": rooms[0].id, "a": rooms[1].id, "b": rooms[2].id}


async def publish(media: MediaService, lesson: str, peer: str) -> SyntheticPublisher:
    publisher = SyntheticPublisher(host_addresses=LOOPBACK, layers=("main", "low"))
    offer = await publisher.create_offer()
    specs = [TrackSpec(t.mid, t.source, t.layer) for t in publisher.tracks]
    result = await media.publish(lesson, peer, offer, specs)
    await publisher.accept_answer(result.sdp)
    return publisher


async def test_a_recorded_lesson_with_a_stage_switch_becomes_a_rendered_library_entry(
    db: tuple[Settings, Database],
) -> None:
    settings, database = db
    ids = await make_lesson(database)
    lesson = ids["lesson"]
    media = MediaService(host_addresses=LOOPBACK)
    runner = RenditionRunner(1, 10, on_update=lambda job: controller.job_updated(job))
    controller = RecordingController(media, database, settings, runner, title_seconds=1.0)
    errors: list[tuple[str, str, str]] = []
    controller.on_error = lambda *args: errors.append(args)
    hooks = DatabaseLessonHooks(database, controller)
    publishers = []
    try:
        await controller.start_recovery()
        publishers.append(await publish(media, lesson, "lead-peer"))
        controller.set_peer_classroom(lesson, "lead-peer", ids["lead"], "lead")
        await hooks.recording_changed(lesson, True, now())
        assert controller.status(lesson)["recording"] is True
        # Room A publishes after recording began: the media listener tells the controller.
        publishers.append(await publish(media, lesson, "a-peer"))
        controller.set_peer_classroom(lesson, "a-peer", ids["a"], "receiver")
        for info in media.producers(lesson):
            controller.producer_added(info)
        await asyncio.sleep(2.5)
        await hooks.stage_changed(lesson, ids["a"], now())
        await asyncio.sleep(3.0)
        await hooks.stage_changed(lesson, None, now())
        await asyncio.sleep(1.0)
        await hooks.recording_changed(lesson, False, now())
        status = controller.status(lesson)
        assert status["recording"] is False and status["error"] is None
        recording_id = status["recording_id"]
        await controller.flush()  # the rendition job is queued
        job = await runner.wait(recording_id)
        assert job.state == "done", job.error
        await controller.flush()
    finally:
        for publisher in publishers:
            await publisher.close()
        await controller.close()
        await runner.close()
        await media.close()
    assert errors == []
    async with database.sessions.begin() as session:
        row = await session.get(LibraryRecording, recording_id)
    assert row is not None
    assert (row.title, row.subject, row.teacher, row.school) == (
        "圆的面积",
        "数学",
        "李老师",
        "城关小学",
    )
    assert row.state == "finished" and not row.interrupted
    assert row.rendition_state == "done" and row.rendition_progress == 1.0
    assert 6.0 <= row.duration_s <= 9.0
    # Lead camera + mic (main layer only), room A camera + mic while it was on stage.
    by_room = sorted((t["classroom"], t["kind"]) for t in row.tracks)
    assert by_room == sorted(
        [(ids["lead"], "video"), (ids["lead"], "audio"), (ids["a"], "video"), (ids["a"], "audio")]
    )
    assert all(t["size"] > 0 and len(t["sha256"]) == 64 for t in row.tracks)
    assert row.size_bytes == sum(t["size"] for t in row.tracks)
    folder = settings.effective_recording_root / row.directory
    stage = [
        json.loads(line)["classroom"] for line in (folder / "stage.jsonl").read_text().splitlines()
    ]
    assert stage == [None, ids["a"], None]
    room_a_video = next(
        t for t in row.tracks if t["classroom"] == ids["a"] and t["kind"] == "video"
    )
    assert 2.0 <= room_a_video["offset_s"] <= 4.0 and 2.0 <= room_a_video["duration_s"] <= 4.0
    video = folder / row.rendition_files["video"]
    with av.open(str(video)) as container:
        streams = [(s.type, s.codec_context.name) for s in container.streams]
        assert sorted(streams) == [("audio", "aac"), ("video", "h264")]
        duration = container.duration / 1_000_000
        frames = sum(1 for _ in container.decode(video=0))
    assert abs(duration - row.duration_s) <= 0.5
    assert frames >= 25 * (row.duration_s - 1)
    assert (folder / row.rendition_files["poster"]).stat().st_size > 0


async def test_a_write_error_stops_the_recording_keeps_it_and_tells_the_lead(
    db: tuple[Settings, Database],
) -> None:
    settings, database = db
    ids = await make_lesson(database)
    lesson = ids["lesson"]
    media = MediaService(host_addresses=LOOPBACK)
    runner = RenditionRunner(1, 10)
    told: list[tuple[str, str, str]] = []
    controller = RecordingController(
        media, database, settings, runner, on_error=lambda *a: told.append(a)
    )
    publisher = await publish(media, lesson, "lead-peer")
    try:
        controller.set_peer_classroom(lesson, "lead-peer", ids["lead"], "lead")
        assert await controller.start(lesson)
        await asyncio.sleep(1.5)
        recording = controller._active[lesson].recording
        track = next(iter(recording._active.values()))
        # What a TrackRecorder reports when its write fails with ENOSPC (the recorder's own
        # tests produce the real error with RLIMIT_FSIZE in a child process).
        recording._on_error(track, "recording_disk_full", "No space left on device: 001.mkv")
        await controller.flush()
        status = controller.status(lesson)
    finally:
        await publisher.close()
        await controller.close()
        await runner.close()
        await media.close()
    assert told == [(lesson, "recording_disk_full", "No space left on device: 001.mkv")]
    assert status["recording"] is False
    assert status["error"] == {
        "code": "recording_disk_full",
        "message": "No space left on device: 001.mkv",
    }
    async with database.sessions.begin() as session:
        row = await session.get(LibraryRecording, status["recording_id"])
    assert row is not None and row.state == "failed" and row.error_code == "recording_disk_full"
    assert row.size_bytes > 0  # what was written is kept

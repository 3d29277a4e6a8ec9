from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import av
import pytest
from recorder_media import EncodedFrame
from synthetic_lesson import lesson_spec, record_lesson

from recorder.compose import TrackSource
from recorder.jobs import RENDITION_FAILED, JobState, RenditionJob, RenditionRunner
from recorder.rendition import RenditionSpec, TitleCard

STAGE = ((0.0, None), (1.0, "room-a"))


@pytest.fixture(scope="module")
def sidecars(
    tmp_path_factory: pytest.TempPathFactory,
    vp8_clip: list[EncodedFrame],
    opus_clip: list[EncodedFrame],
    green_clip: list[EncodedFrame],
    magenta_clip: list[EncodedFrame],
) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("jobs")
    short = [f for f in vp8_clip if f.timestamp < 3 * 90000]
    return record_lesson(directory, short, opus_clip[:150], green_clip[:75], magenta_clip[:75])


def short_spec(sidecars: dict[str, Path], output: Path) -> RenditionSpec:
    return replace(lesson_spec(sidecars, output, 3.0, STAGE), thumbnails=1)


async def test_jobs_run_one_at_a_time_in_a_child_process_and_report_progress(
    sidecars: dict[str, Path], tmp_path: Path
) -> None:
    updates: list[tuple[str, JobState, float]] = []
    one_running = asyncio.Event()
    second_state_when_one_ran: list[JobState] = []

    def on_update(job: RenditionJob) -> None:
        updates.append((job.id, job.state, job.progress))
        if job.id == "one" and job.state == JobState.RUNNING and not one_running.is_set():
            second_state_when_one_ran.append(runner.get("two").state)  # type: ignore[union-attr]
            one_running.set()

    runner = RenditionRunner(max_concurrent=1, on_update=on_update)
    first = runner.submit(short_spec(sidecars, tmp_path / "one"), "one")
    second = runner.submit(short_spec(sidecars, tmp_path / "two"), "two")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1  # the loop keeps turning while children render
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    await one_running.wait()
    await runner.wait("two")
    task.cancel()
    await runner.close()
    assert second_state_when_one_ran == [JobState.QUEUED]  # bounded: one slot
    assert ticks > 0
    assert first.state == second.state == JobState.DONE, (first.error, second.error)
    assert first.result is not None and first.result.video.exists()
    with av.open(str(first.result.video)) as container:
        assert container.duration / 1_000_000 == pytest.approx(3.0, abs=0.5)
    one = [(state, progress) for job, state, progress in updates if job == "one"]
    assert one[0] == (JobState.QUEUED, 0.0)
    assert any(0.0 < progress < 1.0 for state, progress in one if state == JobState.RUNNING)
    assert one[-1] == (JobState.DONE, 1.0)
    # "two" started only after "one" ended.
    assert updates.index(("one", JobState.DONE, 1.0)) < updates.index(
        ("two", JobState.RUNNING, 0.0)
    )


async def test_a_rendition_that_fails_reports_its_error(tmp_path: Path) -> None:
    runner = RenditionRunner()
    spec = short_spec_missing(tmp_path)
    job = runner.submit(spec)
    await runner.wait(job.id)
    await runner.close()
    assert job.state == JobState.FAILED
    assert job.error_code == RENDITION_FAILED
    assert "missing.mkv" in (job.error or "")


def short_spec_missing(tmp_path: Path) -> RenditionSpec:
    return RenditionSpec(
        output_dir=tmp_path,
        duration_s=2.0,
        title=TitleCard("x"),
        lead_video=TrackSource(tmp_path / "missing.mkv"),
    )


async def test_cancelling_queued_and_running_jobs_stops_them(
    sidecars: dict[str, Path], tmp_path: Path
) -> None:
    started = asyncio.Event()
    runner = RenditionRunner(
        max_concurrent=1, on_update=lambda job: job.state == JobState.RUNNING and started.set()
    )
    running = runner.submit(short_spec(sidecars, tmp_path / "a"))
    queued = runner.submit(short_spec(sidecars, tmp_path / "b"))
    await started.wait()
    assert runner.cancel(queued.id) and runner.cancel(running.id)
    await runner.wait(running.id)
    await runner.wait(queued.id)
    assert running.state == queued.state == JobState.CANCELLED
    assert not runner.cancel(running.id)  # already over
    await runner.close()
    with pytest.raises(RuntimeError, match="closed"):
        runner.submit(short_spec(sidecars, tmp_path / "c"))

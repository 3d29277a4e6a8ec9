"""One recording session of a lesson: what the server drives when the lead records.

``LessonRecording`` owns a folder ``<root>/<lesson_id>/<session>/`` holding one track file
(and sidecar) per producer segment, the stage timeline ``stage.jsonl`` (appended and
flushed per change, fsynced in a worker thread, so it survives a crash or a power loss)
and the manifest ``lesson.json``. The server
creates a ``TrackRecorder`` per recorded producer with ``add_track`` (it is the consumer's
RtpSink), removes it when the producer leaves the stage or closes, reports stage changes,
and calls ``finish`` when recording stops. ``recover(root)`` at start repairs what a crash
left; ``rendition_spec`` turns a session folder into the input of a rendition job.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.compose import TrackSource
from recorder.mkv_writer import track_suffix
from recorder.rendition import RenditionSpec, TitleCard, track_source
from recorder.repair import RepairResult, repair_all
from recorder.sidecar import (
    RecordingState,
    TrackInfo,
    fsync_path,
    read_sidecar,
    write_sidecar,
)
from recorder.track_writer import (
    DISK_FULL,
    DISK_FULL_ERRNOS,
    WRITE_FAILED,
    CodecLike,
    ErrorCallback,
    RecordingSummary,
    TrackRecorder,
)

logger = logging.getLogger(__name__)

MANIFEST = "lesson.json"
STAGE = "stage.jsonl"
SESSION_LOCK = ".recording.lock"


@dataclass(frozen=True, slots=True)
class LessonSummary:
    directory: Path
    state: RecordingState
    started_at: float
    duration_s: float
    tracks: tuple[RecordingSummary, ...]


class LessonRecording:
    """Records one lesson session; create on the event loop (callbacks come back to it)."""

    def __init__(
        self,
        root: Path,
        lesson_id: str,
        lead_classroom: str,
        *,
        on_error: ErrorCallback | None = None,
        clock: Callable[[], float] = time.time,
        **recorder_options: Any,
    ) -> None:
        self._clock = clock
        self.started_at = clock()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.started_at))
        self.directory = _new_folder(Path(root) / lesson_id, stamp)
        try:
            # Held while this process records, before the manifest exists: ``recover`` on
            # another node sharing the root (or a restart racing a live one) leaves it
            # alone. The kernel drops the lock when the process dies: a crash frees it.
            self._lock_fd: int | None = _hold_session_lock(self.directory)
        except OSError:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self.lesson_id = lesson_id
        self._on_error = on_error
        self._options = recorder_options
        self._active: dict[str, TrackRecorder] = {}
        self._summaries: list[RecordingSummary] = []
        self._count = 0
        self._finished = False
        # Set when finishing could not write the manifest: {code, message}.
        self.error: dict[str, str] | None = None
        self._manifest: dict[str, Any] = {
            "format": 1,
            "kind": "lesson",
            "state": RecordingState.RECORDING.value,
            "lesson_id": lesson_id,
            "lead_classroom": lead_classroom,
            "started_at": self.started_at,
            "ended_at": None,
            "duration_s": None,
        }
        try:
            write_sidecar(self.directory / MANIFEST, self._manifest)
            self._stage = (self.directory / STAGE).open("a", encoding="utf-8", buffering=1)
        except OSError:  # a full or failing disk: no half-made session is left behind
            os.close(self._lock_fd)
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self._stage_lock = threading.Lock()  # fsync in a worker vs. close in finish
        self._stage_syncs: set[asyncio.Future[None]] = set()

    @classmethod
    async def open(
        cls, root: Path, lesson_id: str, lead_classroom: str, **options: Any
    ) -> LessonRecording:
        """Create the session folder off the event loop (it touches the disk)."""
        return await asyncio.to_thread(cls, root, lesson_id, lead_classroom, **options)

    @property
    def recording(self) -> bool:
        return not self._finished

    def track(self, producer_id: str) -> TrackRecorder | None:
        return self._active.get(producer_id)

    def add_track(
        self, producer_id: str, codec: CodecLike, *, source: str, classroom: str, peer_id: str = ""
    ) -> TrackRecorder:
        """Start recording a producer; the returned recorder is the consumer's sink."""
        if self._finished:
            raise RuntimeError(f"Recording of lesson {self.lesson_id} has finished.")
        if producer_id in self._active:
            raise ValueError(f"Producer {producer_id} is already being recorded.")
        self._count += 1
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in producer_id)
        path = self.directory / f"{self._count:03d}-{safe}{track_suffix(codec.mime_type)}"
        info = TrackInfo(producer_id, source, classroom, self.lesson_id, peer_id)
        recorder = TrackRecorder(
            path, codec, info, on_error=self._on_error, clock=self._clock, **self._options
        )
        self._active[producer_id] = recorder
        return recorder

    async def remove_track(self, producer_id: str) -> RecordingSummary | None:
        """Stop recording a producer (it left the stage or closed); None if unknown."""
        recorder = self._active.pop(producer_id, None)
        if recorder is None:
            return None
        summary = await recorder.finish()
        self._summaries.append(summary)
        return summary

    def set_stage(self, classroom: str | None) -> None:
        """Record who is on stage from now on (None: nobody). One short line appended to a
        line-buffered file (a stage change is a rare human action, so the write stays on
        the loop); the fsync that makes it survive a power loss runs in a worker thread."""
        if self._finished:
            return
        self._stage.write(json.dumps({"t": self._clock(), "classroom": classroom}) + "\n")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._sync_stage()  # no loop (a test or a script): nothing to block
            return
        future = loop.run_in_executor(None, self._sync_stage)
        self._stage_syncs.add(future)
        future.add_done_callback(self._stage_syncs.discard)

    def _sync_stage(self) -> None:
        with self._stage_lock:
            if self._stage.closed:
                return
            try:
                os.fsync(self._stage.fileno())
            except OSError as exc:  # the line is in the page cache: a process crash keeps it
                logger.warning("stage timeline %s not synced: %s", self.directory, exc)

    async def finish(self) -> LessonSummary:
        """Finish every track and mark the session finished (idempotent)."""
        if not self._finished:
            self._finished = True
            results = await asyncio.gather(*(r.finish() for r in self._active.values()))
            self._summaries.extend(results)
            self._active.clear()
            if self._stage_syncs:
                await asyncio.gather(*self._stage_syncs, return_exceptions=True)
            with self._stage_lock:
                self._stage.close()
            ended = self._clock()
            self._manifest.update(
                state=RecordingState.FINISHED.value,
                ended_at=ended,
                duration_s=round(ended - self.started_at, 3),
            )
            try:
                await asyncio.to_thread(write_sidecar, self.directory / MANIFEST, self._manifest)
            except OSError as exc:  # a full disk: the tracks are final, the manifest is not
                code = DISK_FULL if exc.errno in DISK_FULL_ERRNOS else WRITE_FAILED
                self.error = {"code": code, "message": f"Writing {MANIFEST} failed: {exc}"}
                self._manifest.update(state=RecordingState.FAILED.value, error=self.error)
                logger.warning("recording %s not finalized: %s", self.directory, exc)
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # closing the descriptor releases the lock
                self._lock_fd = None
        return LessonSummary(
            self.directory,
            RecordingState(self._manifest["state"]),
            self.started_at,
            self._manifest["duration_s"],
            tuple(self._summaries),
        )


def recover(root: Path) -> tuple[list[RepairResult], list[Path]]:
    """Repair partial tracks, then mark unfinished sessions ``interrupted``. Returns
    (tracks repaired, sessions marked). Sessions whose lock a live process holds (another
    node sharing the root) are left alone. Blocking: run it with ``asyncio.to_thread``."""
    live = {d.parent for d in Path(root).rglob(SESSION_LOCK) if session_is_live(d.parent)}
    repaired = repair_all(root, skip=live)
    sessions = []
    for manifest in sorted(Path(root).rglob(MANIFEST)):
        try:
            data = read_sidecar(manifest)
        except ValueError:
            continue
        if data.get("kind") != "lesson" or data["state"] != RecordingState.RECORDING:
            continue
        if manifest.parent in live:
            continue  # recording now, in another process or on another node
        end = data["started_at"]
        for _, track in _tracks(manifest.parent):
            if track.get("started_at"):
                end = max(end, track["started_at"] + (track.get("duration_s") or 0.0))
        data.update(
            state=RecordingState.INTERRUPTED.value,
            ended_at=end,
            duration_s=round(end - data["started_at"], 3),
        )
        write_sidecar(manifest, data)
        sessions.append(manifest.parent)
    return repaired, sessions


def read_stage(directory: Path, lesson_start: float) -> tuple[tuple[float, str | None], ...]:
    """The stage timeline of a session, in seconds from ``lesson_start``; a line cut by a
    crash is skipped."""
    events: list[tuple[float, str | None]] = []
    path = Path(directory) / STAGE
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
                events.append((max(0.0, float(item["t"]) - lesson_start), item["classroom"]))
            except (ValueError, KeyError, TypeError):
                continue
    return tuple(sorted(events, key=lambda e: e[0]))


def rendition_spec(
    directory: Path,
    title: TitleCard,
    output_dir: Path | None = None,
    *,
    lead_source: str = "camera",
    **options: Any,
) -> RenditionSpec:
    """The rendition input for a finished or interrupted session folder.

    The lead's main picture is its ``lead_source`` track (else its first video track);
    the lead's sound is its first audio track; other classrooms' tracks become insets and
    stage sound, keyed by classroom id as in the stage timeline. Every H.264 track gets an
    MP4 copy in the output folder (``<track stem>.mp4``) for the browsers' multi-track view.
    """
    manifest = read_sidecar(Path(directory) / MANIFEST)
    start = manifest["started_at"]
    lead = manifest["lead_classroom"]
    lead_video: list[tuple[int, TrackSource]] = []
    lead_audio: TrackSource | None = None
    videos: list[tuple[str, TrackSource]] = []
    audios: list[tuple[str, TrackSource]] = []
    for sidecar, track in _tracks(Path(directory)):
        if not track.get("started_at") or not track.get("frames"):
            continue
        source = track_source(sidecar, start)
        is_video = track["codec"]["mime_type"].lower().startswith("video/")
        if track["classroom"] == lead:
            if is_video:
                lead_video.append((0 if track["source"] == lead_source else 1, source))
            elif lead_audio is None:
                lead_audio = source
        else:
            (videos if is_video else audios).append((track["classroom"], source))
    duration = manifest.get("duration_s") or 0.0
    out = Path(output_dir or Path(directory) / "rendition")
    copies = tuple(
        (sidecar.with_name(track["file"]), out / f"{Path(track['file']).stem}.mp4")
        for sidecar, track in _tracks(Path(directory))
        if track.get("frames") and track["codec"]["mime_type"].lower() == "video/h264"
    )
    return RenditionSpec(
        output_dir=out,
        duration_s=duration,
        title=title,
        lead_video=min(lead_video, key=lambda item: item[0])[1] if lead_video else None,
        lead_audio=lead_audio,
        classroom_video=tuple(videos),
        classroom_audio=tuple(audios),
        stage=read_stage(Path(directory), start),
        copies=copies,
        **options,
    )


def _hold_session_lock(directory: Path) -> int:
    fd = os.open(directory / SESSION_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh folder: never contended
    return fd


def session_is_live(directory: Path) -> bool:
    """Whether some process holds the session's lock (it is recording into it now)."""
    try:
        fd = os.open(directory / SESSION_LOCK, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the probe's own lock
    return False


def _new_folder(parent: Path, stamp: str) -> Path:
    if not parent.is_dir():
        parent.mkdir(parents=True, exist_ok=True)
        fsync_path(parent.parent, directory=True)  # the lesson's folder in the root
    for n in range(1, 1000):
        folder = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        fsync_path(parent, directory=True)  # the session folder survives a power loss
        return folder
    raise FileExistsError(f"Too many recording sessions in {parent} at {stamp}.")


def _tracks(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for sidecar in sorted(directory.glob("*.json")):
        try:
            data = read_sidecar(sidecar)
        except ValueError:
            continue
        if data.get("kind") == "track":
            found.append((sidecar, data))
    return found

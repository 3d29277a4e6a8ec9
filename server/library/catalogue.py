"""The library catalogue: recording sessions on disk become rows, rendition jobs update them.

A session folder (``<root>/<lesson_id>/<stamp>/``, see docs/recording.md) is read off the
event loop into :class:`SessionFacts`; :func:`catalogue_session` copies the lesson's
metadata next to it so that the entry outlives timetable edits. Adding the same folder
twice returns the existing row: crash repair and a normal stop may both see it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from recorder.jobs import JobState, RenditionJob
from recorder.lesson import MANIFEST
from recorder.rendition import TitleCard
from recorder.sidecar import RecordingState, read_sidecar
from server.db import Database
from server.db.models import Classroom, Lesson, LibraryRecording, School


@dataclass(frozen=True, slots=True)
class SessionFacts:
    directory: str  # relative to the recording root, with forward slashes
    lesson_id: str
    lead_classroom: str
    state: str
    started_at: float
    duration_s: float
    tracks: tuple[dict[str, Any], ...]

    @property
    def size_bytes(self) -> int:
        return sum(int(t.get("size") or 0) for t in self.tracks)

    @property
    def track_error(self) -> dict[str, str] | None:
        """The first write error of a track (disk full ...), if any."""
        for track in self.tracks:
            if track.get("error"):
                return dict(track["error"])
        return None


def read_session(root: Path, directory: Path) -> SessionFacts:
    """Read a session folder's manifest and sidecars (blocking: call in a thread).
    ValueError if the folder holds no readable manifest."""
    manifest = read_sidecar(directory / MANIFEST)
    if manifest.get("kind") != "lesson":
        raise ValueError(f"{directory} is not a lesson recording.")
    start = float(manifest["started_at"])
    tracks = []
    for sidecar in sorted(directory.glob("*.json")):
        try:
            data = read_sidecar(sidecar)
        except ValueError:
            continue
        if data.get("kind") != "track":
            continue
        codec = data.get("codec") or {}
        mime = str(codec.get("mime_type", ""))
        started = data.get("started_at")
        tracks.append(
            {
                "name": data["file"],
                "producer_id": data.get("producer_id", ""),
                "source": data.get("source", ""),
                "classroom": data.get("classroom", ""),
                "kind": "video" if mime.lower().startswith("video/") else "audio",
                "mime_type": mime,
                "offset_s": round(max(0.0, started - start), 3) if started else None,
                "duration_s": data.get("duration_s") or 0.0,
                "frames": data.get("frames") or 0,
                "size": data.get("size") or 0,
                "sha256": data.get("sha256") or "",
                "state": data.get("state"),
                "error": data.get("error"),
            }
        )
    return SessionFacts(
        directory=directory.relative_to(root).as_posix(),
        lesson_id=str(manifest.get("lesson_id", "")),
        lead_classroom=str(manifest.get("lead_classroom", "")),
        state=str(manifest["state"]),
        started_at=start,
        duration_s=float(manifest.get("duration_s") or 0.0),
        tracks=tuple(tracks),
    )


def find_sessions(root: Path) -> list[Path]:
    """Every session folder under the root (blocking)."""
    return sorted(p.parent for p in Path(root).glob(f"*/*/{MANIFEST}"))


async def catalogue_session(
    db: Database,
    facts: SessionFacts,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
) -> LibraryRecording:
    """The catalogue row for a finished or interrupted session (created once)."""
    error = facts.track_error
    if error_code is None and error is not None:
        error_code, error_message = error.get("code"), error.get("message")
    async with db.sessions.begin() as session:
        row = await session.scalar(
            select(LibraryRecording).where(LibraryRecording.directory == facts.directory)
        )
        if row is not None:
            return row
        lesson = await session.scalar(
            select(Lesson)
            .where(Lesson.id == facts.lesson_id)
            .options(
                selectinload(Lesson.teacher),
                selectinload(Lesson.lead_classroom)
                .selectinload(Classroom.school)
                .selectinload(School.county),
            )
        )
        interrupted = facts.state == RecordingState.INTERRUPTED.value
        row = LibraryRecording(
            lesson_id=lesson.id if lesson else None,
            directory=facts.directory,
            state="failed" if error_code else facts.state,
            interrupted=interrupted,
            error_code=error_code,
            error_message=error_message,
            started_at=datetime.fromtimestamp(facts.started_at, UTC),
            duration_s=facts.duration_s,
            size_bytes=facts.size_bytes,
            tracks=list(facts.tracks),
            rendition_state=JobState.QUEUED.value,
        )
        if lesson is not None:
            school = lesson.lead_classroom.school
            row.title = lesson.title
            row.stage, row.subject, row.grade = lesson.stage, lesson.subject, lesson.grade
            row.textbook_version, row.volume = lesson.textbook_version, lesson.volume
            row.unit = lesson.unit
            row.teacher, row.teacher_id = lesson.teacher.display_name, lesson.teacher_id
            # The county's name as it was (区县), kept with the entry like the others.
            row.school = school.name
            row.district = school.county.name if school.county is not None else ""
        else:
            row.title = f"lesson {facts.lesson_id}"
        session.add(row)
    return row


def title_card(row: LibraryRecording, seconds: float = 4.0) -> TitleCard:
    """The 一师一优课 title card: course, grade, textbook and volume, school, teacher."""
    grade = " ".join(p for p in (row.stage, row.grade, row.subject) if p)
    textbook = " ".join(p for p in (row.textbook_version, row.volume, row.unit) if p)
    return TitleCard(row.title, grade, textbook, row.school, row.teacher, seconds=seconds)


def rendition_values(job: RenditionJob, root: Path, directory: str) -> dict[str, Any]:
    """The catalogue columns a job update changes."""
    values: dict[str, Any] = {
        "rendition_state": job.state.value,
        "rendition_progress": round(job.progress, 3),
        "rendition_error": f"{job.error_code}: {job.error}" if job.error_code else None,
    }
    if job.state == JobState.DONE and job.result is not None:
        base = root / directory

        def rel(path: Path) -> str:
            return Path(path).relative_to(base).as_posix()

        values["rendition_files"] = {
            "video": rel(job.result.video),
            "poster": rel(job.result.poster),
            "thumbnails": [rel(p) for p in job.result.thumbnails],
            # Track file name -> its MP4 copy (H.264 tracks), which the replay page plays.
            "tracks": {Path(src).name: rel(copy) for src, copy in job.result.copies},
            "duration_s": job.result.duration_s,
            "width": job.result.width,
            "height": job.result.height,
            "size": job.result.size,
            "sha256": job.result.sha256,
        }
    return values


async def update_rendition(db: Database, recording_id: str, values: dict[str, Any]) -> None:
    async with db.sessions.begin() as session:
        row = await session.get(LibraryRecording, recording_id)
        if row is None:
            return
        for key, value in values.items():
            setattr(row, key, value)


async def read_session_async(root: Path, directory: Path) -> SessionFacts:
    return await asyncio.to_thread(read_session, root, directory)

"""/api/library: search the course-example library, read an entry, fetch its files.

Every route needs a signed-in account; admins, teachers and inspectors (every role there
is) may see every recording: the library exists so that teachers learn from each other's
lessons across the district. Files are served with HTTP Range support (206 / 416), so
the replay page seeks at once. A track's ``url`` is what browsers play: the WebM file
itself (VP8, Opus) or, once the rendition job made it, the MP4 copy of an H.264 track
(``original_url`` is the recorded Matroska file).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlalchemy import select

from recorder.mkv_writer import WEBM_CODECS  # Matroska with these codecs is WebM
from server.api.access import EVERYONE, access
from server.api.errors import ErrorResponse, not_found
from server.api.lessons import LessonReader
from server.auth import Principal, State
from server.db.models import (
    EvaluationNote,
    ExemplaryStep,
    LibraryEvaluation,
    LibraryRecording,
    PatrolTalk,
)
from server.disk_space import folder_space, min_free_bytes
from server.library.queries import Filters, exemplary_counts, search
from server.rubrics import in_use as rubric_in_use
from server.rubrics import versions as rubric_versions

router = APIRouter(prefix="/library", tags=["library"])

# Shared across the district by design: teachers learn from every county's lessons.
LibraryReader = Annotated[Principal, access(EVERYONE, why="the library is shared district-wide")]

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 416, 422)
}


class RecordingOut(BaseModel):
    id: str
    lesson_id: str | None
    title: str
    stage: str
    subject: str
    grade: str
    textbook_version: str
    volume: str
    unit: str
    teacher: str
    teacher_id: str | None
    school: str
    district: str
    started_at: datetime
    duration_s: float
    size_bytes: int
    state: str
    interrupted: bool
    error_code: str | None
    error_message: str | None
    rendition_state: str
    rendition_progress: float
    rendition_error: str | None
    video_url: str | None
    poster_url: str | None
    score: float | None
    exemplary_state: str


class TrackOut(BaseModel):
    name: str
    url: str  # what the replay page plays (the MP4 copy of an H.264 track when made)
    media_type: str
    original_url: str  # the recorded file itself (WebM, or Matroska for H.264)
    producer_id: str = ""
    source: str = ""
    classroom: str = ""
    kind: str = ""
    mime_type: str = ""
    offset_s: float | None = None
    duration_s: float = 0.0
    size: int = 0
    sha256: str = ""
    state: str | None = None


class LiveNoteOut(BaseModel):
    id: str
    author: str
    author_role: str
    at: datetime
    t_s: float  # seconds on the recording's timeline (may be outside it)
    in_recording: bool
    text: str
    scores: dict[str, Any]
    rubric_version_id: str | None  # the rubric version the scores were given on


class TalkOut(BaseModel):
    """An inspector talked back to a classroom (实时音频互动反馈) during the lesson."""

    id: str
    inspector: str
    classroom_id: str | None
    classroom_name: str
    at: datetime
    t_s: float  # seconds on the recording's timeline (may be outside it)
    in_recording: bool
    # None: the talk's end was never recorded (the node stopped mid-talk).
    duration_s: float | None


class EvaluationOut(BaseModel):
    id: str
    author: str
    author_role: str
    account_id: str | None
    t_s: float
    text: str
    scores: dict[str, int]
    rubric_version_id: str | None  # the rubric version the scores were given on
    created_at: datetime


class StepOut(BaseModel):
    action: str
    actor: str
    account_id: str | None
    at: datetime
    comment: str
    scores: dict[str, int]
    rubric_version_id: str | None  # the rubric version the scores were given on


class RecordingDetailOut(RecordingOut):
    tracks: list[TrackOut]
    thumbnails: list[str]
    live_notes: list[LiveNoteOut]
    talks: list[TalkOut]
    evaluations: list[EvaluationOut]
    steps: list[StepOut]
    # The rubric in use (key -> label), the same in full, and every version scores name.
    rubric: dict[str, str]
    rubric_version: dict[str, Any]
    rubric_versions: dict[str, dict[str, Any]]


class RecordingPage(BaseModel):
    items: list[RecordingOut]
    total: int
    page: int
    per_page: int


class CountOut(BaseModel):
    district: str
    year: int
    nominated: int
    exemplary: int
    returned: int


class CountsOut(BaseModel):
    counts: list[CountOut]


TRACK_FIELDS = tuple(
    k for k in TrackOut.model_fields if k not in ("url", "media_type", "original_url")
)


def file_url(recording_id: str, name: str) -> str:
    return f"/api/library/{recording_id}/files/{name}"


def recording_out(row: LibraryRecording) -> dict[str, Any]:
    files = row.rendition_files or {}
    return {
        **{name: getattr(row, name) for name in RecordingOut.model_fields if hasattr(row, name)},
        "video_url": file_url(row.id, files["video"]) if files.get("video") else None,
        "poster_url": file_url(row.id, files["poster"]) if files.get("poster") else None,
    }


def media_type(name: str, mime_type: str = "") -> str:
    if name.endswith(".mp4"):
        return "video/mp4"
    if name.endswith(".jpg"):
        return "image/jpeg"
    if name.endswith((".webm", ".mkv")):
        # Older recordings wrote VP8/Opus as .mkv: the content is what WebM allows.
        if name.endswith(".webm") or mime_type.lower() in WEBM_CODECS:
            return "audio/webm" if mime_type.lower().startswith("audio/") else "video/webm"
        return "video/x-matroska"
    return "application/octet-stream"


def track_out(row: LibraryRecording, track: dict[str, Any]) -> dict[str, Any]:
    copy = ((row.rendition_files or {}).get("tracks") or {}).get(track["name"])
    mime = track.get("mime_type", "")
    return {
        **{k: track[k] for k in TRACK_FIELDS if track.get(k) is not None},
        "url": file_url(row.id, copy or track["name"]),
        "media_type": media_type(copy or track["name"], mime),
        "original_url": file_url(row.id, track["name"]),
    }


async def load_recording(state: State, recording_id: str) -> LibraryRecording:
    async with state.db.sessions.begin() as session:
        row = await session.get(LibraryRecording, recording_id)
    if row is None:
        raise not_found("recording")
    return row


@router.get("", response_model=RecordingPage, responses=ERRORS)
async def list_recordings(
    state: State,
    principal: LibraryReader,
    q: Annotated[str, Query(max_length=200)] = "",
    stage: str = "",
    subject: str = "",
    grade: str = "",
    textbook_version: str = "",
    volume: str = "",
    unit: str = "",
    teacher: str = "",
    school: str = "",
    district: str = "",
    exemplary: Literal["", "none", "nominated", "exemplary", "returned"] = "",
    interrupted: bool | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    sort: Literal["date", "score"] = "date",
    order: Literal["desc", "asc"] = "desc",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Search by words in the title and filter by the CELTS-42 style fields."""
    filters = Filters(
        q, stage, subject, grade, textbook_version, volume, unit, teacher, school, district,
        exemplary, interrupted, date_from, date_to, sort, order, page, per_page,
        state.settings.zone,
    )  # fmt: skip
    async with state.db.sessions.begin() as session:
        rows, total = await search(session, filters)
    return {
        "items": [recording_out(r) for r in rows],
        "total": total,
        "page": page,
        "per_page": per_page,
    }


@router.get("/exemplary/counts", response_model=CountsOut, responses=ERRORS)
async def counts(
    state: State, principal: LibraryReader, year: Annotated[int | None, Query()] = None
) -> dict[str, Any]:
    """Exemplary-workflow counts per county (区县) and year."""
    async with state.db.sessions.begin() as session:
        return {"counts": await exemplary_counts(session, year, state.settings.zone)}


@router.get("/recording-status/{lesson_id}", responses=ERRORS)
async def recording_status(state: State, principal: LessonReader, lesson_id: str) -> dict[str, Any]:
    """Whether a lesson records now, its last catalogue entry and its last error; and the
    recording root's free space, so the lead page warns before recording onto a full disk."""
    space = folder_space("recordings", state.settings.effective_recording_root)
    disk = {
        "free_bytes": space.free_bytes,
        "space_low": space.low(min_free_bytes(state.settings)),
    }
    if state.recording is None:
        return {"recording": False, "recording_id": None, "error": None, **disk}
    return {**state.recording.status(lesson_id), **disk}


@router.get("/{recording_id}", response_model=RecordingDetailOut, responses=ERRORS)
async def get_recording(
    state: State, principal: LibraryReader, recording_id: str
) -> dict[str, Any]:
    """One entry: metadata, tracks, rendition, live notes, evaluations, workflow steps."""
    async with state.db.sessions.begin() as session:
        row = await session.get(LibraryRecording, recording_id)
        if row is None:
            raise not_found("recording")
        notes = []
        talks: list[PatrolTalk] = []
        if row.lesson_id is not None:
            talks = list(
                await session.scalars(
                    select(PatrolTalk)
                    .where(PatrolTalk.lesson_id == row.lesson_id)
                    .order_by(PatrolTalk.started_at)
                )
            )
            notes = list(
                await session.scalars(
                    select(EvaluationNote)
                    .where(EvaluationNote.lesson_id == row.lesson_id)
                    .order_by(EvaluationNote.at)
                )
            )
        evaluations = list(
            await session.scalars(
                select(LibraryEvaluation)
                .where(LibraryEvaluation.recording_id == row.id)
                .order_by(LibraryEvaluation.t_s, LibraryEvaluation.created_at)
            )
        )
        steps = list(
            await session.scalars(
                select(ExemplaryStep)
                .where(ExemplaryStep.recording_id == row.id)
                .order_by(ExemplaryStep.at, ExemplaryStep.id)
            )
        )
        current = await rubric_in_use(session)
        named = [x.rubric_version_id for x in (*notes, *evaluations, *steps)]
        used = await rubric_versions(session, [current.version_id, *named])
    files = row.rendition_files or {}
    live = []
    for note in notes:
        t = (note.at - row.started_at).total_seconds()
        live.append(
            {
                "id": note.id,
                "author": note.author,
                "author_role": note.author_role,
                "at": note.at,
                "t_s": round(t, 3),
                "in_recording": 0 <= t <= row.duration_s,
                "text": note.text,
                "scores": note.scores or {},
                "rubric_version_id": note.rubric_version_id,
            }
        )
    talks_out = []
    for talk in talks:
        t = (talk.started_at - row.started_at).total_seconds()
        talks_out.append(
            {
                "id": talk.id,
                "inspector": talk.inspector,
                "classroom_id": talk.classroom_id,
                "classroom_name": talk.classroom_name,
                "at": talk.started_at,
                "t_s": round(t, 3),
                "in_recording": 0 <= t <= row.duration_s,
                "duration_s": talk.duration_s,
            }
        )
    return {
        **recording_out(row),
        "tracks": [track_out(row, track) for track in row.tracks],
        "thumbnails": [file_url(row.id, name) for name in files.get("thumbnails", [])],
        "live_notes": live,
        "talks": talks_out,
        "evaluations": [
            {k: getattr(e, k) for k in EvaluationOut.model_fields} for e in evaluations
        ],
        "steps": [{k: getattr(s, k) for k in StepOut.model_fields} for s in steps],
        "rubric": {item.key: item.label for item in current.items},
        "rubric_version": current.out(),
        "rubric_versions": {vid: spec.out() for vid, spec in used.items()},
    }


# HEAD too: players and download managers ask for the size and type first.
@router.get("/{recording_id}/files/{name:path}", responses=ERRORS)
@router.head("/{recording_id}/files/{name:path}", responses=ERRORS)
async def get_file(
    state: State, principal: LibraryReader, recording_id: str, name: str
) -> FileResponse:
    """A track file, the rendition, its poster or a thumbnail; Range requests answer 206."""
    row = await load_recording(state, recording_id)
    files = row.rendition_files or {}
    allowed = {t["name"]: t.get("mime_type", "") for t in row.tracks}
    for key in ("video", "poster"):
        if files.get(key):
            allowed[files[key]] = ""
    for thumb in files.get("thumbnails", []):
        allowed[thumb] = ""
    for copy in (files.get("tracks") or {}).values():
        allowed[copy] = ""
    if name not in allowed:  # only names the catalogue lists: no path tricks
        raise not_found("file")
    root = state.settings.effective_recording_root
    path = Path(root) / row.directory / name
    if not path.is_file():
        raise not_found("file")
    return FileResponse(
        path,
        media_type=media_type(name, allowed[name]),
        content_disposition_type="inline",
        filename=Path(name).name,
    )

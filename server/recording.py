"""RecordingController: turns the lead's recording switch into files, catalogue rows and jobs.

While a lesson records, an internal subscriber (one ``media.Router`` consumer per recorded
producer, sink = ``recorder.track_writer.TrackRecorder``) records the lead classroom's main
tracks and the on-stage classroom's main tracks, following the stage. The controller learns

- producers from ``MediaService`` (``media.producers``) and from ``producer_added`` /
  ``producer_removed``, which the media listener forwards;
- which classroom a peer belongs to from ``set_peer_classroom`` (signaling knows it);
- the stage from ``set_stage`` and the switch from ``start`` / ``stop`` (lesson hooks).

On stop (switch off, lesson end, or a write error such as a full disk) the session becomes a
catalogue row and a rendition job whose progress is written back to that row. At start,
``start_recovery`` repairs what a crash left (``recorder.lesson.recover``) and catalogues it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from media.codecs import RtpParameters
from media.sfu import MediaService, ProducerInfo
from recorder.jobs import JobState, RenditionJob, RenditionRunner
from recorder.lesson import LessonRecording, recover, rendition_spec
from recorder.track_writer import TrackRecorder
from server.db import Database
from server.db.models import Lesson, LibraryRecording
from server.library.catalogue import (
    catalogue_session,
    find_sessions,
    read_session,
    read_session_async,
    rendition_values,
    title_card,
    update_rendition,
)
from server.settings import Settings
from signaling.errors import ErrorCode
from signaling.ingest import is_ingest_peer
from signaling.media_port import PeerInfo

log = logging.getLogger("tongke.recording")

ErrorHandler = Callable[[str, str, str], None]  # (lesson_id, code, message)


class RecordingUnavailable(Exception):
    """Recording cannot start: the recording root cannot be written (read-only, missing,
    not a folder, full). The message names the folder and the system's reason."""


# Jobs that did not end (the service stopped) are queued again at the next start.
UNFINISHED_JOBS = (JobState.QUEUED.value, JobState.RUNNING.value, JobState.CANCELLED.value)


@dataclass
class _Active:
    """One lesson being recorded."""

    recording: LessonRecording
    lead_classroom: str
    consumers: dict[str, Any] = field(default_factory=dict)  # producer id -> Consumer
    pending: set[asyncio.Task[Any]] = field(default_factory=set)
    error: tuple[str, str] | None = None


class RecordingController:
    """Create on the event loop, in the lifespan; ``close`` before the runner closes."""

    def __init__(
        self,
        media: MediaService,
        db: Database,
        settings: Settings,
        runner: RenditionRunner,
        *,
        on_error: ErrorHandler | None = None,
        title_seconds: float = 4.0,
    ) -> None:
        self.media = media
        self.db = db
        self.root = Path(settings.effective_recording_root)
        self.runner = runner
        self.on_error = on_error
        self.title_seconds = title_seconds
        self._peers: dict[str, dict[str, tuple[str, str]]] = {}
        self._stage: dict[str, str | None] = {}
        self._active: dict[str, _Active] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._status: dict[str, dict[str, Any]] = {}
        self._job_dirs: dict[str, str] = {}
        self._dirty: dict[str, dict[str, Any]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._recovery: asyncio.Task[None] | None = None
        self._ids = 0
        self._closed = False

    # -- what signaling tells us ---------------------------------------------------------

    def set_peer_classroom(
        self, lesson_id: str, peer_id: str, classroom_id: str, role: str
    ) -> None:
        """A peer joined (or resumed): its classroom and role (lead | receiver | patrol)."""
        self._peers.setdefault(lesson_id, {})[peer_id] = (classroom_id, role)
        self._reconcile(lesson_id)

    def producer_added(self, info: ProducerInfo) -> None:
        self._reconcile(info.lesson_id)

    def producer_removed(self, info: ProducerInfo) -> None:
        active = self._active.get(info.lesson_id)
        if active is not None and info.id in active.consumers:
            self._drop(active, info.id)

    def set_stage(self, lesson_id: str, classroom_id: str | None) -> None:
        """Who is on stage now (None: nobody); kept while not recording too."""
        self._stage[lesson_id] = classroom_id
        active = self._active.get(lesson_id)
        if active is not None:
            active.recording.set_stage(classroom_id)
            self._reconcile(lesson_id)

    async def lesson_ended(self, lesson_id: str) -> None:
        await self.stop(lesson_id)
        self._peers.pop(lesson_id, None)
        self._stage.pop(lesson_id, None)
        self._locks.pop(lesson_id, None)

    # -- the switch ------------------------------------------------------------------------

    def recording(self, lesson_id: str) -> bool:
        return lesson_id in self._active

    def status(self, lesson_id: str) -> dict[str, Any]:
        """{recording, recording_id (the last catalogued), error {code, message} | None}."""
        last = self._status.get(lesson_id, {})
        return {
            "recording": lesson_id in self._active,
            "recording_id": last.get("recording_id"),
            "error": last.get("error"),
        }

    async def start(self, lesson_id: str) -> bool:
        """Start recording (idempotent); False if the lesson is unknown or we are closed.
        Raises RecordingUnavailable when the session folder cannot be created."""
        if self._recovery is not None:
            await asyncio.shield(self._recovery)  # a live folder must not look crashed
        async with self._lock(lesson_id):
            if lesson_id in self._active or self._closed:
                return lesson_id in self._active
            async with self.db.sessions.begin() as session:
                lead = await session.scalar(
                    select(Lesson.lead_classroom_id).where(Lesson.id == lesson_id)
                )
            if lead is None:
                log.warning("recording requested for unknown lesson %s", lesson_id)
                return False
            try:
                recording = await LessonRecording.open(
                    self.root,
                    lesson_id,
                    lead,
                    on_error=lambda _rec, code, message: self._track_failed(
                        lesson_id, code, message
                    ),
                )
            except OSError as exc:
                log.error("recording lesson %s impossible: %s", lesson_id, exc)
                reason = exc.strerror or str(exc)
                message = f"The recording folder {self.root} cannot be written: {reason}."
                # A room that believed it records (a restart carrying on) hears it stopped.
                self._report(lesson_id, ErrorCode.RECORDING_UNAVAILABLE.value, message)
                raise RecordingUnavailable(message) from exc
            self._active[lesson_id] = _Active(recording, lead)
            self._status[lesson_id] = {"recording_id": None, "error": None}
            recording.set_stage(self._stage.get(lesson_id))
            self._reconcile(lesson_id)
            log.info("recording lesson %s into %s", lesson_id, recording.directory)
            return True

    async def stop(self, lesson_id: str) -> str | None:
        """Stop recording (idempotent): catalogue the session and queue its rendition.
        Returns the catalogue id, or None if the lesson was not recording."""
        async with self._lock(lesson_id):
            active = self._active.pop(lesson_id, None)
            if active is None:
                return None
            for consumer in active.consumers.values():
                consumer.close()
            active.consumers.clear()
            if active.pending:
                await asyncio.gather(*active.pending, return_exceptions=True)
            summary = await active.recording.finish()
            if active.error is None and active.recording.error is not None:
                error = active.recording.error  # the manifest could not be finalized
                active.error = (error["code"], error["message"])
            facts = await read_session_async(self.root, summary.directory)
            code, message = active.error or (None, None)
            row = await catalogue_session(self.db, facts, error_code=code, error_message=message)
            self._status[lesson_id] = {
                "recording_id": row.id,
                "error": None if code is None else {"code": code, "message": message},
            }
            self._submit(row)
            return row.id

    # -- start and shutdown ----------------------------------------------------------------

    def start_recovery(self) -> asyncio.Task[None]:
        """Repair a crash's leftovers and catalogue every session not yet in the library, in
        the background (``start`` waits for it)."""
        if self._recovery is None:
            self._recovery = asyncio.get_running_loop().create_task(self._recover())
        return self._recovery

    async def close(self) -> None:
        """Stop every recording (each is catalogued), then flush catalogue writes."""
        if self._recovery is not None and not self._recovery.done():
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
        for lesson_id in list(self._active):
            try:
                await self.stop(lesson_id)
            except Exception:
                log.exception("stopping the recording of %s failed", lesson_id)
        self._closed = True
        await self.flush()

    async def flush(self) -> None:
        """Wait until every rendition update has been written."""
        while self._writers or self._tasks:
            await asyncio.gather(*self._writers.values(), *self._tasks, return_exceptions=True)

    # -- rendition jobs --------------------------------------------------------------------

    def job_updated(self, job: RenditionJob) -> None:
        """RenditionRunner's on_update: the latest state is written, older ones coalesce."""
        directory = self._job_dirs.get(job.id)
        if directory is None:
            return
        self._dirty[job.id] = rendition_values(job, self.root, directory)
        if job.id not in self._writers:
            self._writers[job.id] = asyncio.get_running_loop().create_task(self._write(job.id))

    async def _write(self, job_id: str) -> None:
        try:
            while job_id in self._dirty:
                try:
                    await update_rendition(self.db, job_id, self._dirty.pop(job_id))
                except Exception:
                    log.exception("could not store rendition progress of %s", job_id)
        finally:
            self._writers.pop(job_id, None)

    def _submit(self, row: LibraryRecording) -> None:
        self._spawn(self._submit_async(row.id, row.directory, row), f"queueing rendition {row.id}")

    async def _submit_async(self, recording_id: str, directory: str, row: Any) -> None:
        self._job_dirs[recording_id] = directory
        try:
            spec = await asyncio.to_thread(
                rendition_spec, self.root / directory, title_card(row, self.title_seconds)
            )
            self.runner.submit(spec, recording_id)
        except Exception as exc:  # an unreadable folder or a closed runner
            log.warning("rendition of %s not queued: %s", recording_id, exc)
            await update_rendition(
                self.db,
                recording_id,
                {"rendition_state": JobState.FAILED.value, "rendition_error": str(exc)},
            )

    async def _recover(self) -> None:
        try:
            await self._recover_all()
        except Exception:  # recording must still work when the library cannot be repaired
            log.exception("crash repair of %s failed", self.root)

    async def _recover_all(self) -> None:
        repaired, sessions = await asyncio.to_thread(recover, self.root)
        if repaired or sessions:
            log.info("crash repair: %d tracks, %d sessions", len(repaired), len(sessions))
        async with self.db.sessions.begin() as session:
            known = set(await session.scalars(select(LibraryRecording.directory)))
            unfinished = list(
                await session.scalars(
                    select(LibraryRecording).where(
                        LibraryRecording.rendition_state.in_(UNFINISHED_JOBS)
                    )
                )
            )
        for folder in await asyncio.to_thread(find_sessions, self.root):
            relative = folder.relative_to(self.root).as_posix()
            if relative in known:
                continue
            try:
                facts = await asyncio.to_thread(read_session, self.root, folder)
            except ValueError as exc:
                log.warning("session %s skipped: %s", folder, exc)
                continue
            if facts.state == "recording":
                continue
            unfinished.append(await catalogue_session(self.db, facts))
        for row in unfinished:
            self._submit(row)

    # -- internals -------------------------------------------------------------------------

    def _lock(self, lesson_id: str) -> asyncio.Lock:
        return self._locks.setdefault(lesson_id, asyncio.Lock())

    def _spawn(self, coro: Any, what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._spawned_done)

    def _spawned_done(self, task: asyncio.Task[Any]) -> None:
        # A background step that failed is logged once here, never left unretrieved.
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %s", task.get_name(), task.exception())

    def _wanted(self, lesson_id: str, active: _Active) -> dict[str, tuple[ProducerInfo, str]]:
        peers = self._peers.get(lesson_id, {})
        stage = self._stage.get(lesson_id)
        wanted = {}
        producers = self.media.producers(lesson_id)
        # A source an ingest publishes (a 录播 host's camera: signaling/ingest.py) replaces
        # the classroom page's own, in the recording as for receivers.
        ingested = {
            (peers[i.peer_id][0], i.source)
            for i in producers
            if i.peer_id in peers and is_ingest_peer(i.peer_id)
        }
        for info in producers:
            who = peers.get(info.peer_id)
            if info.layer != "main" or who is None:
                continue
            classroom, role = who
            if (classroom, info.source) in ingested and not is_ingest_peer(info.peer_id):
                continue
            if role == "lead" or classroom == active.lead_classroom:
                wanted[info.id] = (info, classroom)
            elif role != "patrol" and stage is not None and classroom == stage:
                wanted[info.id] = (info, classroom)
        return wanted

    def _reconcile(self, lesson_id: str) -> None:
        """Consume what should be recorded now and drop what should not (synchronous)."""
        active = self._active.get(lesson_id)
        if active is None:
            return
        wanted = self._wanted(lesson_id, active)
        for producer_id in [p for p in active.consumers if p not in wanted]:
            self._drop(active, producer_id)
        router = self.media.router(lesson_id)
        for producer_id, (info, classroom) in wanted.items():
            if producer_id not in active.consumers and router is not None:
                self._add(active, router, info, classroom)

    def _add(self, active: _Active, router: Any, info: ProducerInfo, classroom: str) -> None:
        producer = self.media.producer(info.id)
        if producer is None or active.recording.track(info.id) is not None:
            return
        codec = dataclasses.replace(producer.params.codec, rtx_payload_type=None)
        params = RtpParameters(codec, ssrc=secrets.randbits(32) or 1)
        track: TrackRecorder = active.recording.add_track(
            info.id, codec, source=info.source, classroom=classroom, peer_id=info.peer_id
        )
        self._ids += 1
        try:
            consumer = router.create_consumer(
                f"rec-{self._ids}-{info.id}", info.id, params, track, layered=False
            )
        except Exception as exc:
            log.warning("cannot record producer %s: %s", info.id, exc)
            self._track_done(active, info.id)
            return
        track.set_key_frame_requester(consumer.receive_key_frame_request)
        active.consumers[info.id] = consumer

    def _drop(self, active: _Active, producer_id: str) -> None:
        consumer = active.consumers.pop(producer_id, None)
        if consumer is not None:
            consumer.close()
        self._track_done(active, producer_id)

    def _track_done(self, active: _Active, producer_id: str) -> None:
        task = asyncio.get_running_loop().create_task(active.recording.remove_track(producer_id))
        active.pending.add(task)
        task.add_done_callback(active.pending.discard)

    def _track_failed(self, lesson_id: str, code: str, message: str) -> None:
        """A track could not be written (disk full ...): stop the whole recording cleanly,
        keep what was written, and tell the lead."""
        active = self._active.get(lesson_id)
        if active is None or active.error is not None:
            return
        active.error = (code, message)
        log.error("recording of lesson %s stopped: %s %s", lesson_id, code, message)
        self._report(lesson_id, code, message)
        self._spawn(self.stop(lesson_id), f"stopping the recording of {lesson_id}")

    def _report(self, lesson_id: str, code: str, message: str) -> None:
        if self.on_error is not None:
            try:
                self.on_error(lesson_id, code, message)
            except Exception:
                log.exception("recording on_error handler failed")


class RecordingObserver:
    """Follows the SFU for the controller: who each publishing peer is, and its producers."""

    def __init__(self, controller: RecordingController) -> None:
        self._controller = controller

    def peer_seen(self, peer: PeerInfo) -> None:
        self._controller.set_peer_classroom(
            peer.lesson_id, peer.peer_id, peer.classroom_id or "", peer.role.value
        )

    def producer_added(self, info: ProducerInfo) -> None:
        self._controller.producer_added(info)

    def producer_removed(self, info: ProducerInfo) -> None:
        self._controller.producer_removed(info)

"""RtspSupervisor: while a lesson is live, the RTSP sources of its classrooms are pulled.

Every ``poll_s`` it compares what should run (enabled sources of classrooms in a live
lesson, from the database) with what runs, and starts or stops media/rtsp_ingest.py
pulls: a lesson that goes live gets its 录播 host's picture within a poll, one that ends
stops it, an edited or disabled source is restarted or stopped. Each pull publishes as the
classroom's ingest (signaling/ingest.py); its state goes to the lesson's lead and patrol
pages (``ingest_state``) and to the admin API (``status``).

It also starts, at its time, a timetable lesson (start_mode ``time``) led by a classroom with
an enabled RTSP camera: such a lesson's picture comes from the 录播 host, and its lead page
(which starts other ``time`` lessons) may never be opened. Receivers get the picture within
a poll of the scheduled start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from sqlalchemy import and_, or_, select

from media.rtsp_ingest import RtspIngest, RtspState, RtspStatus
from server.cluster.placement import PlacementError
from server.db.ingest_models import RtspSource
from server.db.models import Lesson, LessonStatus, lesson_receivers
from server.secrets_box import SecretsBox
from server.terminals import service_now
from signaling import ingest
from signaling.errors import ErrorCode, SignalingError
from signaling.grants import Source
from signaling.protocol import IngestState
from signaling.redis_bus import TRANSIENT

log = logging.getLogger(__name__)


def with_credentials(url: str, username: str, password: str) -> str:
    """``url`` with ``username:password@`` in it (percent-encoded), as FFmpeg takes them."""
    if not username:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True, slots=True)
class Wanted:
    """A source that should run now, and everything that would make it restart."""

    source_id: str
    lesson_id: str
    classroom_id: str
    source: str
    url: str
    username: str
    password_sealed: str
    transport: str


@dataclass(slots=True)
class Running:
    wanted: Wanted
    ingest: RtspIngest
    peer_id: str = ""


class RtspSupervisor:
    def __init__(
        self, state: Any, poll_s: float = 2.0, backoff_s: tuple[float, float] = (0.25, 2.0)
    ) -> None:
        self._state = state  # server.state.AppState: db, rooms, settings
        self._poll_s = poll_s
        self._backoff = backoff_s
        self._box = SecretsBox(state.settings.resolved_secret())
        self._running: dict[str, Running] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def box(self) -> SecretsBox:
        return self._box

    def status(self, source_id: str) -> RtspStatus | None:
        """The state of a source's pull (None while no lesson of its classroom is live)."""
        running = self._running.get(source_id)
        return None if running is None else running.ingest.status

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def poke(self) -> None:
        """A source was added, edited or removed: look again now."""
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for source_id in list(self._running):
            await self._stop(source_id)

    async def _run(self) -> None:
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("RTSP sources: reconciling failed; trying again")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()

    async def reconcile(self) -> None:
        await self.start_due()
        wanted = {w.source_id: w for w in await self._wanted() if await self._mine(w)}
        for source_id, running in list(self._running.items()):
            if wanted.get(source_id) != running.wanted:
                await self._stop(source_id)
        for source_id, want in wanted.items():
            if source_id not in self._running:
                self._begin(want)

    async def start_due(self) -> list[str]:
        """Starts the ``time`` lessons due now whose lead classroom has an enabled RTSP
        camera (as their lead page would); returns their ids."""
        now = service_now(self._state.settings)
        async with self._state.db.sessions.begin() as session:
            hosts = select(RtspSource.classroom_id).where(
                RtspSource.enabled, RtspSource.source == Source.CAMERA.value
            )
            due = (
                await session.scalars(
                    select(Lesson.id).where(
                        and_(
                            Lesson.state == LessonStatus.SCHEDULED.value,
                            Lesson.start_mode == "time",
                            Lesson.scheduled_start <= now,
                            Lesson.scheduled_end > now,
                            Lesson.lead_classroom_id.in_(hosts),
                        )
                    )
                )
            ).all()
        started = []
        for lesson_id in due:
            try:
                if await self._state.rooms.start_lesson(lesson_id):
                    started.append(lesson_id)
                    log.info("lesson %s started at its time (its lead classroom is a 录播 "
                             "host)", lesson_id)  # fmt: skip
            except SignalingError as exc:
                # wrong_node: another node holds its room (that node starts it); the others
                # (ended meanwhile, a full node) are tried again at the next poll.
                level = logging.DEBUG if exc.code is ErrorCode.WRONG_NODE else logging.WARNING
                log.log(level, "lesson %s not started at its time: %s", lesson_id, exc.message)
        return started

    async def _mine(self, want: Wanted) -> bool:
        """Many nodes: only the lesson's home pulls its sources (every node sees the lesson
        live in the database; the others' pulls would open the host only to be refused
        with wrong_node, over and over). A lesson with no home yet (no peer joined it) is
        placed first, here if this node may take it, so that two nodes never both open
        the host; the node it lands on pulls at its next poll."""
        cluster = getattr(self._state, "cluster", None)
        if cluster is None:
            return True
        try:
            home = await cluster.placement.place(want.lesson_id, prefer=cluster.node_id)
        except (PlacementError, *TRANSIENT):
            return want.source_id in self._running  # Redis away: keep what runs, start nothing
        return bool(home.id == cluster.node_id)

    async def _wanted(self) -> list[Wanted]:
        async with self._state.db.sessions.begin() as session:
            sources = (await session.scalars(select(RtspSource).where(RtspSource.enabled))).all()
            out = []
            for src in sources:
                received = select(lesson_receivers.c.lesson_id).where(
                    lesson_receivers.c.classroom_id == src.classroom_id
                )
                lesson_id = await session.scalar(
                    select(Lesson.id)
                    .where(
                        Lesson.state == LessonStatus.LIVE.value,
                        or_(
                            Lesson.lead_classroom_id == src.classroom_id,
                            Lesson.id.in_(received),
                        ),
                    )
                    .order_by(Lesson.started_at.desc())
                    .limit(1)
                )
                if lesson_id is not None:
                    out.append(
                        Wanted(
                            src.id,
                            lesson_id,
                            src.classroom_id,
                            src.source,
                            src.url,
                            src.username,
                            src.password_sealed,
                            src.transport,
                        )
                    )
            return out

    def _begin(self, want: Wanted) -> None:
        try:
            password = self._box.open(want.password_sealed)
        except ValueError:
            password = ""  # sealed under another secret key: the source will say unauthorized
        running: Running

        async def setup(tracks: list[Any]) -> list[Any]:
            peer_id, pairs = await ingest.attach_local(
                self._state.rooms, want.lesson_id, want.classroom_id, "rtsp", tracks,
                owner=want.source_id,
            )  # fmt: skip
            running.peer_id = peer_id
            return [producer for _, producer in pairs]

        def on_status(status: RtspStatus) -> None:
            self._tell(want, status)

        pull = RtspIngest(
            with_credentials(want.url, want.username, password),
            transport=want.transport,
            setup=setup,
            on_status=on_status,
            backoff_s=self._backoff,
            source=want.source,
        )
        running = Running(want, pull)
        self._running[want.source_id] = running
        self._tell(want, pull.status)
        pull.start()
        log.info("RTSP source %s of classroom %s: pulling for lesson %s", want.source_id,
                 want.classroom_id, want.lesson_id)  # fmt: skip

    async def _stop(self, source_id: str) -> None:
        running = self._running.pop(source_id, None)
        if running is None:
            return
        await running.ingest.close()
        if running.peer_id:
            ingest.detach(self._state.rooms, running.wanted.lesson_id, running.peer_id)
        self._tell(running.wanted, RtspStatus(RtspState.CLOSED))

    def _tell(self, want: Wanted, status: RtspStatus) -> None:
        if status.state is not RtspState.LIVE and status.code:
            log.warning("RTSP source %s of classroom %s: %s (%s)", want.source_id,
                        want.classroom_id, status.message, status.code)  # fmt: skip
        state = "stopped" if status.state is RtspState.CLOSED else status.state.value
        message = IngestState(
            classroom_id=want.classroom_id,
            source=Source(want.source),
            state=state,
            code=status.code,
            message=status.message,
            video=status.video,
            audio=status.audio,
            reconnects=status.reconnects,
        )
        ingest.tell_state(self._state.rooms, want.lesson_id, message)

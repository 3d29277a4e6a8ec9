"""Writes the rooms' attendance records in the order they were made, off the event loop's
critical path: the room hands a record over with a plain call, one task drains the queue in
batches (one transaction each), and a lesson's end waits until what came before is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import tzinfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.attendance import attendance_row
from server.db import Database
from server.db.attendance_models import AttendanceSpan, SpanEnd
from server.db.models import Classroom, Lesson, LessonStatus
from signaling.hooks import AttendanceRecord, PresenceEvent, QualitySummary

log = logging.getLogger("tongke.attendance")

# Records waiting while the database is slow or down; past it the oldest are dropped
# (one warning), so a dead database never grows the process without bound.
MAX_QUEUED = 50_000
# Records written in one transaction.
BATCH = 200


class AttendanceWriter:
    def __init__(self, db: Database, zone: tzinfo) -> None:
        self.db = db
        self.zone = zone
        self._queue: deque[AttendanceRecord | asyncio.Future[None]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._dropping = False

    def add(self, record: AttendanceRecord) -> None:
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            if not self._dropping:
                self._dropping = True
                log.warning("attendance records are not being written: dropping the oldest")
        self._queue.append(record)
        self._wake()

    async def written(self) -> None:
        """Returns once every record added before this call is written (or failed)."""
        marker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(marker)
        self._wake()
        await marker

    async def close(self) -> None:
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5.0)
            except TimeoutError:
                log.warning("attendance: %d records not written at shutdown", len(self._queue))
                self._task.cancel()

    def _wake(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="attendance writer")

    async def _drain(self) -> None:
        while self._queue:
            batch: list[AttendanceRecord] = []
            markers: list[asyncio.Future[None]] = []
            while self._queue and len(batch) < BATCH:
                item = self._queue.popleft()
                if isinstance(item, asyncio.Future):
                    markers.append(item)
                    break  # what follows the marker waits for the next batch
                batch.append(item)
            if batch:
                try:
                    async with self.db.sessions.begin() as session:
                        for record in batch:
                            await self._write(session, record)
                    self._dropping = False
                except Exception:
                    log.exception("attendance: %d records could not be written", len(batch))
            for marker in markers:
                if not marker.done():
                    marker.set_result(None)

    async def _write(self, session: AsyncSession, record: AttendanceRecord) -> None:
        lesson = await session.get(Lesson, record.lesson_id)
        if lesson is None:
            return
        if isinstance(record, QualitySummary):
            row = await attendance_row(session, lesson, record.classroom_id, self.zone)
            if row is not None:
                row.quality_samples = record.samples
                row.loss_p50, row.loss_p95 = record.loss_p50, record.loss_p95
                row.jitter_p50_ms, row.jitter_p95_ms = record.jitter_p50_ms, record.jitter_p95_ms
                row.rtt_p50_ms, row.rtt_p95_ms = record.rtt_p50_ms, record.rtt_p95_ms
            return
        if lesson.state == LessonStatus.ENDED.value:
            return  # the end closed every span; a late event changes nothing
        await self._presence(session, record)

    async def _presence(self, session: AsyncSession, event: PresenceEvent) -> None:
        open_span = await session.scalar(
            select(AttendanceSpan)
            .where(
                AttendanceSpan.lesson_id == event.lesson_id,
                AttendanceSpan.classroom_id == event.classroom_id,
                AttendanceSpan.left_at.is_(None),
            )
            .order_by(AttendanceSpan.joined_at.desc())
            .limit(1)
        )
        if event.kind in ("joined", "resumed"):
            if open_span is not None:
                # Left open by a server that stopped: it ends where this one begins.
                open_span.left_at = max(event.at, open_span.joined_at)
                open_span.ended = SpanEnd.INTERRUPTED.value
            if await session.get(Classroom, event.classroom_id) is None:
                return
            session.add(
                AttendanceSpan(
                    lesson_id=event.lesson_id,
                    classroom_id=event.classroom_id,
                    joined_at=event.at,
                    began=event.kind,
                )
            )
            await session.flush()
        elif open_span is not None:
            open_span.left_at = max(event.at, open_span.joined_at)
            open_span.ended = event.kind

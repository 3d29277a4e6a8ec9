"""Rendition jobs: bounded concurrency, one low-priority child process per running job.

``RenditionRunner`` lives on the event loop and never blocks it: each job waits for a
slot (``max_concurrent``), then runs ``recorder.rendition.render`` in a spawned child
process (``os.nice``), whose progress, result or error come back over a pipe that the
loop watches with ``add_reader``. State and progress per job are readable at any time
(``get``), and ``on_update(job)`` is called on every change.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from multiprocessing.connection import Connection
from typing import Any

from recorder.rendition import RenditionResult, RenditionSpec, render

logger = logging.getLogger(__name__)

# Error codes in RenditionJob.error_code.
RENDITION_FAILED = "rendition_failed"
RENDITION_CRASHED = "rendition_process_died"
RUNNER_CLOSED = "rendition_runner_closed"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


@dataclass
class RenditionJob:
    id: str
    spec: RenditionSpec
    state: JobState = JobState.QUEUED
    progress: float = 0.0
    result: RenditionResult | None = None
    error_code: str | None = None
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None


UpdateCallback = Callable[[RenditionJob], None]


class RenditionRunner:
    """Runs rendition jobs, at most ``max_concurrent`` at a time (create on the loop)."""

    def __init__(
        self, max_concurrent: int = 1, nice: int = 10, on_update: UpdateCallback | None = None
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1.")
        self._slots = asyncio.Semaphore(max_concurrent)
        self._nice = nice
        self._on_update = on_update
        self._jobs: dict[str, RenditionJob] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._processes: dict[str, multiprocessing.process.BaseProcess] = {}
        self._cancelled: set[str] = set()
        self._closed = False
        self._ctx = multiprocessing.get_context("spawn")  # never fork a threaded server

    def submit(self, spec: RenditionSpec, job_id: str | None = None) -> RenditionJob:
        if self._closed:
            raise RuntimeError("The rendition runner is closed.")
        job_id = job_id or uuid.uuid4().hex
        if job_id in self._jobs and self._jobs[job_id].state not in FINAL_STATES:
            raise ValueError(f"Rendition job {job_id} is already queued or running.")
        job = RenditionJob(job_id, spec)
        self._jobs[job_id] = job
        self._tasks[job_id] = asyncio.get_running_loop().create_task(self._run(job))
        self._emit(job)
        return job

    def get(self, job_id: str) -> RenditionJob | None:
        return self._jobs.get(job_id)

    def jobs(self) -> tuple[RenditionJob, ...]:
        return tuple(self._jobs.values())

    async def wait(self, job_id: str) -> RenditionJob:
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)
        return self._jobs[job_id]

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False if it is unknown or already over."""
        job = self._jobs.get(job_id)
        if job is None or job.state in FINAL_STATES:
            return False
        self._cancelled.add(job_id)
        process = self._processes.get(job_id)
        if process is not None:
            process.terminate()  # the pipe then closes and _run finishes the job
        else:
            self._tasks[job_id].cancel()
        return True

    async def close(self) -> None:
        """Cancel everything and wait for the child processes to go (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for job_id in list(self._jobs):
            self.cancel(job_id)
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # Internals. ------------------------------------------------------------------------------

    def _emit(self, job: RenditionJob) -> None:
        if self._on_update is None:
            return
        try:
            self._on_update(job)
        except Exception:
            logger.exception("rendition on_update listener failed")

    def _finish(
        self,
        job: RenditionJob,
        state: JobState,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        job.state = state
        job.error_code, job.error = code, message
        job.ended_at = time.time()
        if state == JobState.DONE:
            job.progress = 1.0
        self._emit(job)

    async def _run(self, job: RenditionJob) -> None:
        try:
            async with self._slots:
                await self._run_child(job)
        except asyncio.CancelledError:
            self._finish(job, JobState.CANCELLED, RUNNER_CLOSED if self._closed else None)
        finally:
            self._processes.pop(job.id, None)

    async def _run_child(self, job: RenditionJob) -> None:
        loop = asyncio.get_running_loop()
        receiver, sender = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_child_main, args=(job.spec, sender, self._nice), daemon=True
        )
        done: asyncio.Future[tuple[str, Any]] = loop.create_future()

        def readable() -> None:
            try:
                while receiver.poll():
                    kind, value = receiver.recv()
                    if kind == "progress":
                        job.progress = value
                        self._emit(job)
                    elif not done.done():
                        done.set_result((kind, value))
            except (EOFError, OSError):
                loop.remove_reader(receiver.fileno())
                if not done.done():
                    done.set_result(("exit", None))

        process.start()
        sender.close()  # the child holds the only writer, so its exit closes the pipe
        self._processes[job.id] = process
        job.state = JobState.RUNNING
        job.started_at = time.time()
        self._emit(job)
        loop.add_reader(receiver.fileno(), readable)
        try:
            kind, value = await done
        finally:
            loop.remove_reader(receiver.fileno())
            receiver.close()
            if not done.done():  # this task was cancelled: do not leave the child running
                process.terminate()
            await asyncio.to_thread(process.join)
        if job.id in self._cancelled:
            self._finish(job, JobState.CANCELLED, RUNNER_CLOSED if self._closed else None)
        elif kind == "done":
            job.result = value
            self._finish(job, JobState.DONE)
        elif kind == "error":
            self._finish(job, JobState.FAILED, RENDITION_FAILED, value)
        else:
            message = f"The rendition process exited with code {process.exitcode}."
            self._finish(job, JobState.FAILED, RENDITION_CRASHED, message)


def _child_main(spec: RenditionSpec, conn: Connection, nice: int) -> None:
    try:
        os.nice(nice)
    except OSError:
        pass
    try:
        result = render(spec, progress=lambda fraction: conn.send(("progress", fraction)))
        conn.send(("done", result))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()

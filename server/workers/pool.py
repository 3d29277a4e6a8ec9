"""The service's media workers: started, watched, restarted, stopped with the service.

Each worker is a ``python -m server.workers.worker`` child with its own node id
(``w{index}.{generation}``: a restarted worker is a new node, so nothing meant for the dead
one reaches it). It is ready when it has said hello on the hub's socket. When one exits
unexpectedly, ``on_gone`` runs at once (the service drops its relays and asks its peers to
join again: close 4301) and it is started again after a pause that grows while it keeps
dying. Stopping the service stops every worker (SIGTERM, then SIGKILL after
``STOP_GRACE_S``); a worker whose service died sees its socket close and exits by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.workers.ipc import IpcHub
from server.workers.worker import ENV

log = logging.getLogger("tongke.workers")

START_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0
RESTART_DELAYS_S = (0.2, 1.0, 2.0, 5.0)
# A worker that ran this long before dying starts again without delay.
STABLE_S = 30.0


class WorkerStartError(RuntimeError):
    """A worker that could not start: one line naming it and why."""


@dataclass(slots=True)
class Worker:
    index: int
    node_id: str
    process: asyncio.subprocess.Process
    started: float
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    last_line: str = ""
    pid: int = 0


class WorkerPool:
    def __init__(
        self,
        count: int,
        hub: IpcHub,
        config: dict[str, Any],
        on_gone: Callable[[set[str]], Awaitable[object]],
    ) -> None:
        self.count = count
        self.hub = hub
        self.config = config  # what every worker gets (ICE servers, media addresses, logs)
        self.on_gone = on_gone
        self.workers: dict[int, Worker] = {}
        self.restarts: dict[int, int] = dict.fromkeys(range(1, count + 1), 0)
        self._generations: dict[int, int] = dict.fromkeys(range(1, count + 1), 0)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        hub.on_hello = self._hello

    def live(self) -> list[str]:
        """Node ids of the workers that said hello and still run, in index order."""
        connected = self.hub.connected()
        return [
            w.node_id
            for _, w in sorted(self.workers.items())
            if w.ready.is_set() and w.process.returncode is None and w.node_id in connected
        ]

    def pid_of(self, node_id: str) -> int | None:
        for worker in self.workers.values():
            if worker.node_id == node_id and worker.process.returncode is None:
                return worker.process.pid
        return None

    async def start(self) -> None:
        """Starts every worker and waits until each said hello; raises WorkerStartError."""
        for index in range(1, self.count + 1):
            await self._spawn(index)
        for worker in list(self.workers.values()):
            await self._wait_ready(worker)

    async def _spawn(self, index: int) -> Worker:
        self._generations[index] += 1
        node_id = f"w{index}.{self._generations[index]}"
        env = {**os.environ, ENV: json.dumps({**self.config, "node_id": node_id})}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.workers.worker",
            env=env, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        worker = Worker(index, node_id, process, time.monotonic())
        self.workers[index] = worker
        self._spawn_task(self._relay_output(worker))
        self._spawn_task(self._watch(worker))
        return worker

    async def _wait_ready(self, worker: Worker) -> None:
        ready = asyncio.ensure_future(worker.ready.wait())
        exited = asyncio.ensure_future(worker.process.wait())
        try:
            await asyncio.wait({ready, exited}, timeout=START_TIMEOUT_S,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            ready.cancel()
            exited.cancel()
        if worker.ready.is_set():
            return
        await asyncio.sleep(0.1)  # the last line of its output may still be on its way
        why = worker.last_line or (
            f"exited with status {worker.process.returncode}"
            if worker.process.returncode is not None
            else f"no hello within {START_TIMEOUT_S:g}s"
        )
        raise WorkerStartError(f"media worker {worker.index} could not start: {why}")

    def _hello(self, node_id: str, pid: int) -> None:
        for worker in self.workers.values():
            if worker.node_id == node_id:
                worker.pid = pid
                worker.ready.set()
                log.info("media worker %s ready (pid %d)", node_id, pid)
                return
        log.warning("hello from unknown media worker %s; ignored", node_id)
        self.hub.drop(node_id)

    async def _relay_output(self, worker: Worker) -> None:
        """The worker's log lines go to the service's stderr; the last one is kept."""
        stream = worker.process.stderr
        if stream is None:
            return
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            if text:
                worker.last_line = text
                print(text, file=sys.stderr, flush=True)

    async def _watch(self, worker: Worker) -> None:
        code = await worker.process.wait()
        if self._closing or self.workers.get(worker.index) is not worker:
            return
        if not worker.ready.is_set():
            return  # a start that failed: start() or the restart loop reports it
        ran_s = time.monotonic() - worker.started
        self.hub.drop(worker.node_id)
        log.warning(
            "media worker %s (pid %d) exited with status %s after %.0fs; its classrooms "
            "rejoin on a live worker; restarting it",
            worker.node_id, worker.process.pid, code, ran_s,
        )  # fmt: skip
        try:
            await self.on_gone({worker.node_id})
        except Exception:
            log.exception("dropping what media worker %s served failed", worker.node_id)
        await self._restart(worker.index, 0 if ran_s >= STABLE_S else 1)

    async def _restart(self, index: int, attempt: int) -> None:
        while not self._closing:
            delay = RESTART_DELAYS_S[min(attempt, len(RESTART_DELAYS_S) - 1)]
            await asyncio.sleep(delay)
            if self._closing:
                return
            self.restarts[index] += 1
            worker = await self._spawn(index)
            try:
                await self._wait_ready(worker)
                return
            except WorkerStartError as exc:
                log.error("%s; trying again", exc)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                attempt += 1

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._closing = True
        running = [w for w in self.workers.values() if w.process.returncode is None]
        for worker in running:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        for worker in running:
            try:
                await asyncio.wait_for(worker.process.wait(), STOP_GRACE_S)
            except TimeoutError:
                log.warning("media worker %s did not stop; killed", worker.node_id)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()
        for task in tuple(self._tasks):
            task.cancel()
        for task in tuple(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def socket_path(directory: Path) -> Path:
    return directory / "media-workers.sock"

"""Run media/synthetic/rtsp_source.py (a GStreamer RTSP server standing in for a 录播 host)
under the system python3, on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

from gst_support import SYSTEM_PYTHON

SCRIPT = Path(__file__).parents[1] / "media" / "synthetic" / "rtsp_source.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspSourceProcess:
    """One RTSP server; ``url`` is where it serves. ``kill`` and ``start`` again on the same
    port stand for a 录播 host that reboots."""

    def __init__(self, *args: str, port: int | None = None, path: str = "/live/main") -> None:
        self.port = port or free_port()
        self.path = path
        self.args = args
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    async def start(self) -> RtspSourceProcess:
        self._process = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON, str(SCRIPT), "--port", str(self.port), "--path", self.path,
            *self.args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self._process.stdout is not None
        async with asyncio.timeout(15):
            line = await self._process.stdout.readline()
        if line.strip() != b"ready":
            err = await self._process.stderr.read() if self._process.stderr else b""
            raise AssertionError(f"the RTSP source did not start: {line!r} {err[-400:]!r}")
        return self

    async def kill(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
        self._process = None

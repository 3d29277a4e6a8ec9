"""Run media/synthetic/gst_terminal.py (GStreamer webrtcbin) as a subprocess of the system
python3 and follow what it reports (one JSON object per line)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).parents[1] / "media" / "synthetic" / "gst_terminal.py"
PROBE = """
import gi
gi.require_version("Gst", "1.0"); gi.require_version("GstWebRTC", "1.0")
from gi.repository import Gst
import websockets
Gst.init(None)
missing = [e for e in ("webrtcbin", "nicesrc", "vp8enc", "x264enc", "avdec_h264", "opusenc",
                       "rtpvp8pay", "rtph264pay") if Gst.ElementFactory.find(e) is None]
print(" ".join(missing))
"""


def require_gstreamer() -> None:
    """Skip (naming the fix) unless the system python3 has GStreamer webrtcbin and plugins."""
    try:
        done = subprocess.run(
            [SYSTEM_PYTHON, "-c", PROBE], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no system python3 for GStreamer: {exc}")
    if done.returncode != 0 or done.stdout.strip():
        pytest.skip(
            "GStreamer webrtcbin is not installed for the system python3 "
            f"({done.stdout.strip() or done.stderr.strip()[-200:]}); "
            "run scripts/ensure-system-deps.sh"
        )


class GstTerminalProcess:
    """One gst_terminal.py run; ``events`` holds every line it printed."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.events: list[dict[str, Any]] = []
        self.stderr = b""
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> GstTerminalProcess:
        self._process = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON,
            str(SCRIPT),
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                self.events.append(json.loads(line))

    @property
    def stats(self) -> dict[str, Any]:
        found = [e for e in self.events if e["event"] == "stats"]
        return found[-1] if found else {"video_frames": 0, "audio_buffers": 0, "decode_errors": 0}

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    async def wait_for(self, condition: Callable[[], bool], within: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not condition():
            if self._process is not None and self._process.returncode is not None:
                raise AssertionError(f"gst_terminal exited: {self.describe()}")
            if loop.time() > deadline:
                raise AssertionError(f"not met within {within}s: {self.describe()}")
            await asyncio.sleep(0.1)

    def describe(self) -> str:
        errors = [e for e in self.events if e["event"] in ("error", "gst_error")]
        return f"last stats {self.stats}, errors {errors}, stderr {self.stderr[-500:]!r}"

    async def close(self) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None and process.stdin is not None:
            process.stdin.close()  # the terminal leaves and stops when stdin closes
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        if process.stderr is not None:
            self.stderr = await process.stderr.read()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader

"""A full disk under a real `tongke serve` (issue 17, finding 10): the recording root is a
small tmpfs, nearly filled, and a synthetic lead records into it until the kernel answers
ENOSPC. Then the lead was told, the library row says failed with the reason, the lesson's
recording flag is off, no `*.json.tmp` is left, and the service logged no unretrieved task
exception and no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fs_support import fill, tmpfs
from sqlalchemy import select

from media.synthetic.terminal import SyntheticTerminal
from server.db import open_database
from server.db.models import JoinLink, Lesson, LibraryRecording
from server.demo import seed_demo
from server.settings import Settings

pytestmark = pytest.mark.timeout(240)

LOOPBACK = ["127.0.0.1"]
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(log: Path) -> str:
    return log.read_text()[-4000:]


@contextlib.asynccontextmanager
async def serve(data_dir: Path, recording_root: Path, log: Path) -> AsyncIterator[str]:
    """`tongke serve` of this checkout in a child process; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "TONGKE_MEDIA_ADDRESSES": "127.0.0.1",
        "TONGKE_RECORDING_ROOT": str(recording_root),
        "TONGKE_LOG_LEVEL": "info",
    }
    command = [
        sys.executable, "-m", "server.cli", "serve", "--data-dir", str(data_dir),
        "--host", "127.0.0.1", "--port", str(port), "--no-demo", "--workers", "1",
    ]  # fmt: skip
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=out, stderr=out, env=env, cwd=REPO
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(base_url=url, timeout=2) as http:
            while process.returncode is None and time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"tongke serve did not start:\n{tail(log)}")
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def seed(settings: Settings) -> str:
    """The demo district in a fresh database; returns the lead's join code."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_database(settings) as db:
        await seed_demo(db, settings)
        async with db.sessions.begin() as session:
            links = list(await session.scalars(select(JoinLink).where(JoinLink.role == "lead")))
    return links[0].code


async def test_a_full_disk_fails_the_recording_visibly_and_leaves_nothing_half_written(
    tmp_path: Path,
) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "service.log"
    settings = Settings(data_dir=data_dir, seed_demo=False)
    code = await seed(settings)
    with tmpfs(tmp_path / "recordings", "4m") as root:
        fill(root, leave_bytes=384 * 1024)  # a few seconds of the lead's camera
        async with serve(data_dir, root, log) as url:
            lead = SyntheticTerminal(url, code, host_addresses=LOOPBACK, codec="h264")
            try:
                await lead.start(start_lesson=True)
                await lead.request({"type": "set_recording", "on": True})
                await lead.wait_for("recording_changed", lambda m: m.get("on") is True)
                stopped = await lead.wait_for(
                    "recording_changed", lambda m: m.get("on") is False, within_s=90
                )
                lesson_id = lead.joined["lesson"]["id"]
            finally:
                await lead.close()
            await asyncio.sleep(1.0)  # the catalogue row and the lesson's flag are written
        leftovers = sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp"))
    assert stopped["reason"] == "recording_disk_full", stopped
    assert "No space left on device" in stopped["message"]
    assert leftovers == []
    async with open_database(settings) as db:
        async with db.sessions.begin() as session:
            lesson = await session.get(Lesson, lesson_id)
            rows = list(await session.scalars(select(LibraryRecording)))
    assert lesson is not None and lesson.recording is False
    assert [(r.state, r.error_code) for r in rows] == [("failed", "recording_disk_full")]
    assert rows[0].error_message and "No space left on device" in rows[0].error_message
    text = log.read_text()
    assert "never retrieved" not in text and "Traceback" not in text, text[-4000:]

"""SIGKILL of the real service (`tongke serve`, SQLite in a temp data folder) mid-recording.

A synthetic lead (H.264 camera + Opus mic) and a receiving classroom (VP8) join through the
real signaling; the lead starts the lesson, turns recording on and puts the classroom on
stage. After ~7 s of recording the whole service is killed with SIGKILL and started again
on the same data folder. Then, through the API only: the lesson is in the library marked
interrupted, every track file it lists is playable (PyAV decodes it), at most ~2 s before
the kill are missing, and the rendition job runs to the end after the restart. Then the
lead and the classroom join again: the live lesson carries on as it was, on stage and
recording (a new session, beside the interrupted one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from sqlalchemy import select

from media.synthetic.terminal import SyntheticTerminal
from server.db import open_database
from server.db.models import JoinLink
from server.demo import seed_demo
from server.settings import Settings

pytestmark = pytest.mark.timeout(400)

LOOPBACK = ["127.0.0.1"]
RECORD_S = 7.0
MAX_LOST_S = 2.0  # the promise in docs/recording.md


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command(data_dir: Path, port: int) -> list[str]:
    script = Path(sys.executable).with_name("tongke")  # the installed console script
    head = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    return [
        *head, "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
        "--port", str(port), "--no-demo",
    ]  # fmt: skip


class Service:
    """One `tongke serve` process in its own process group (so SIGKILL takes it all)."""

    def __init__(self, data_dir: Path, recording_root: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.recording_root = recording_root
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {
            **os.environ,
            "TONGKE_MEDIA_ADDRESSES": "127.0.0.1",
            "TONGKE_RECORDING_ROOT": str(self.recording_root),
            "TONGKE_LOG_LEVEL": "info",
        }
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *serve_command(self.data_dir, self.port),
                stdout=out, stderr=out, env=env, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    break
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise AssertionError(f"tongke serve did not start:\n{self.log.read_text()[-4000:]}")

    async def kill(self) -> float:
        """SIGKILL the service's process group; returns the wall-clock time of the kill."""
        assert self.process is not None
        killed_at = time.time()
        os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        return killed_at

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()


async def seed(settings: Settings) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The demo district in a fresh database: join codes by role, passwords by username."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_database(settings) as db:
        district = await seed_demo(db, settings)
        async with db.sessions.begin() as session:
            links = list(await session.scalars(select(JoinLink)))
    codes: dict[str, list[str]] = {}
    for link in links:
        codes.setdefault(link.role, []).append(link.code)
    return codes, {a.username: a.password for a in district.accounts}


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    value = Service(tmp_path / "data", tmp_path / "recordings", tmp_path / "service.log")
    try:
        yield value
    finally:
        await value.stop()


def decodes(path: Path) -> tuple[int, float]:
    """(frames decoded, media seconds covered) of a per-track file, via PyAV."""
    count, first, last = 0, None, 0.0
    with av.open(str(path)) as container:
        stream = container.streams[0]
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            first = frame.time if first is None else first
            last = frame.time
            count += 1
    return count, (last - first) if first is not None else 0.0


async def record_until_killed(service: Service, codes: dict[str, list[str]]) -> dict[str, Any]:
    """Lead + one classroom on stage, recording; SIGKILL after RECORD_S of media on disk."""
    lead = SyntheticTerminal(service.url, codes["lead"][0], host_addresses=LOOPBACK, codec="h264")
    room = SyntheticTerminal(service.url, codes["receiver"][0], host_addresses=LOOPBACK)
    try:
        await lead.start(start_lesson=True)
        await room.start()
        room_id = room.joined["you"]["classroom_id"]
        await lead.request({"type": "set_recording", "on": True})
        await lead.wait_for("recording_changed", lambda m: m.get("on") is True)
        await lead.request({"type": "set_stage", "classroom_id": room_id})
        # Wait (with a deadline) until all four tracks write: lead camera + mic, room's.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            files = [
                p for p in service.recording_root.glob("*/*/*") if p.suffix in (".mkv", ".webm")
            ]
            if len(files) >= 4 and all(p.stat().st_size > 4096 for p in files):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"tracks did not start: {files}")
        await asyncio.sleep(RECORD_S)
        killed_at = await service.kill()
    finally:
        await lead.close()
        await room.close()
    return {"killed_at": killed_at, "room": room_id}


async def test_a_sigkilled_service_leaves_an_interrupted_playable_lesson_that_renders(
    service: Service, tmp_path: Path
) -> None:
    settings = Settings(data_dir=service.data_dir, seed_demo=False)
    codes, passwords = await seed(settings)
    await service.start()
    run = await record_until_killed(service, codes)
    manifests = list(service.recording_root.glob("*/*/lesson.json"))
    assert len(manifests) == 1
    assert json.loads(manifests[0].read_text())["state"] == "recording"  # killed, not stopped

    await service.start()  # same data folder: repair + catalogue at start
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
        login = await http.post(
            "/api/auth/login",
            json={"username": "demo-inspector", "password": passwords["demo-inspector"]},
        )
        assert login.status_code == 200, login.text
        http.headers["Authorization"] = f"Bearer {login.json()['token']}"
        http.cookies.clear()

        deadline = time.monotonic() + 60
        while True:
            found = (await http.get("/api/library", params={"interrupted": "true"})).json()
            if found["total"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert found["total"] == 1, found
        item = found["items"][0]
        assert item["interrupted"] is True and item["state"] == "interrupted"
        assert item["title"] == "口算乘法" and item["teacher"] == "王老师"

        detail = (await http.get(f"/api/library/{item['id']}")).json()
        tracks = detail["tracks"]
        started = datetime_to_unix(detail["started_at"])
        kinds = sorted((t["classroom"] == run["room"], t["kind"]) for t in tracks)
        assert kinds == [(False, "audio"), (False, "video"), (True, "audio"), (True, "video")]
        recorded_s = run["killed_at"] - started
        assert recorded_s >= RECORD_S
        # At most ~2 s before the kill are missing: from the lesson's catalogue entry and
        # from every track, whose end is its start offset plus the media recovered.
        assert item["duration_s"] >= recorded_s - MAX_LOST_S, (item["duration_s"], recorded_s)
        for track in tracks:
            assert track["state"] == "interrupted"
            end = track["offset_s"] + track["duration_s"]
            assert end >= recorded_s - MAX_LOST_S, (track, recorded_s)
            # Playable: fetched through the API (as the replay page does) and decoded.
            response = await http.get(track["url"])
            assert response.status_code == 200
            local = tmp_path / Path(track["name"]).name
            local.write_bytes(response.content)
            frames, covered = decodes(local)
            assert frames > 0 and covered >= track["duration_s"] - 0.5, (track, covered)

        # The rendition job runs after the restart; its progress shows in the API.
        deadline = time.monotonic() + 240
        states = set()
        while time.monotonic() < deadline:
            entry = (await http.get(f"/api/library/{item['id']}")).json()
            states.add(entry["rendition_state"])
            if entry["rendition_state"] in ("done", "failed"):
                break
            await asyncio.sleep(0.5)
        assert entry["rendition_state"] == "done", (entry["rendition_error"], states)
        # Each track plays in browsers: the lead's H.264 camera as the job's MP4 copy (no
        # re-encoding), the classroom's VP8 camera and both Opus mics as WebM.
        served = sorted(
            (t["kind"], t["media_type"], Path(t["url"]).suffix) for t in entry["tracks"]
        )
        assert served == [
            ("audio", "audio/webm", ".webm"),
            ("audio", "audio/webm", ".webm"),
            ("video", "video/mp4", ".mp4"),
            ("video", "video/webm", ".webm"),
        ]
        lead_camera = next(t for t in entry["tracks"] if t["media_type"] == "video/mp4")
        assert lead_camera["mime_type"].lower() == "video/h264"
        assert lead_camera["original_url"].endswith(".mkv")
        copy = await http.get(lead_camera["url"], headers={"Range": "bytes=0-"})
        assert copy.status_code == 206 and copy.headers["content-type"] == "video/mp4"
        (tmp_path / "copy.mp4").write_bytes(copy.content)
        frames, covered = decodes(tmp_path / "copy.mp4")
        assert frames > 0 and abs(covered - lead_camera["duration_s"]) <= 0.5
        video = await http.get(entry["video_url"])
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        (tmp_path / "lesson.mp4").write_bytes(video.content)
        with av.open(str(tmp_path / "lesson.mp4")) as container:
            assert [s.codec_context.name for s in container.streams.video] == ["h264"]
            assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
            assert abs(container.duration / 1_000_000 - entry["duration_s"]) <= 0.5
            assert sum(1 for _ in container.decode(video=0)) > 0

        await carries_on_recording(service, codes, run["room"], http)


async def carries_on_recording(
    service: Service, codes: dict[str, list[str]], room_id: str, http: httpx.AsyncClient
) -> None:
    """The restarted service rebuilds the live lesson's room from the database: the stage
    stays and recording goes on into a new session without anybody switching it again."""
    lead = SyntheticTerminal(service.url, codes["lead"][0], host_addresses=LOOPBACK, codec="h264")
    room = SyntheticTerminal(service.url, codes["receiver"][0], host_addresses=LOOPBACK)
    try:
        await lead.start()
        await room.start()
        assert lead.joined["recording"] is True and lead.joined["stage"] == room_id
        lesson_id = lead.joined["lesson"]["id"]
        status = (await http.get(f"/api/library/recording-status/{lesson_id}")).json()
        assert status["recording"] is True, status
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            live = [
                m
                for m in service.recording_root.glob("*/*/lesson.json")
                if json.loads(m.read_text())["state"] == "recording"
            ]
            files = [p for m in live for p in m.parent.iterdir() if p.suffix in (".mkv", ".webm")]
            if len(files) >= 4 and all(p.stat().st_size > 4096 for p in files):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"the new session did not record all four tracks: {files}")
        assert len(live) == 1 and len(list(service.recording_root.glob("*/*/lesson.json"))) == 2
        assert room.joined["stage"] == room_id
    finally:
        await lead.close()
        await room.close()


def datetime_to_unix(value: str) -> float:
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()

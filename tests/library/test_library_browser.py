"""The library and replay pages in real Chromium: search results with a poster, the rendition
plays and seeks from an evaluation marker, and the per-track files play beside it: a VP8
WebM file as recorded, and an H.264 track from the MP4 copy the rendition job makes."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
import uvicorn
from library_support import PASSWORD, settings_for
from sqlalchemy import delete

from recorder.rendition import browser_copy
from server.accounts_cli import create_account
from server.app import create_app
from server.db.models import AccountRole, LibraryRecording

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"

FILES = {
    "video": "rendition/lesson.mp4",
    "poster": "rendition/lesson-poster.jpg",
    "tracks": {"002-board.mkv": "rendition/002-board.mp4"},
}
TRACK = {
    "name": "001-cam.webm",
    "kind": "video",
    "mime_type": "video/VP8",
    "source": "camera",
    "classroom": "room-a",
    "offset_s": 1.0,
    "duration_s": 3.0,
}
H264_TRACK = {
    "name": "002-board.mkv",
    "kind": "video",
    "mime_type": "video/H264",
    "source": "board",
    "classroom": "room-a",
    "offset_s": 0.5,
    "duration_s": 3.0,
}

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]


def write_video(
    path: Path,
    codec: str,
    container: str,
    seconds: float,
    audio: bool,
    options: dict[str, str] | None = None,
) -> None:
    """A small clip encoded with PyAV (moving gray level, a tone)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream(codec, rate=25, options=options or {})
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        sound = out.add_stream("aac", rate=48000) if audio else None
        for i in range(int(seconds * 25)):
            frame = av.VideoFrame(320, 240, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(i * 5) % 255]) * plane.buffer_size)
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            tone = bytes((i * 7) % 64 for i in range(2048))  # 1024 quiet s16 samples
            for start in range(0, int(48000 * seconds), 1024):
                frame = av.AudioFrame(format="s16", layout="mono", samples=1024)
                frame.planes[0].update(tone)
                frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)


class Server:
    def __init__(self, data_dir: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = settings_for(data_dir).model_copy(update={"port": self.port})
        asyncio.run(create_account(self.settings, "admin", PASSWORD, "管理员"))
        asyncio.run(create_account(self.settings, "t1", PASSWORD, "王老师", AccountRole.TEACHER))
        config = uvicorn.Config(create_app(self.settings), port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the service did not start")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    value = Server(tmp_path_factory.mktemp("library-web"))
    yield value
    value.server.should_exit = True
    value.thread.join(10)


@pytest.fixture(scope="module")
def page(server: Server) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        # The pages' CSP forbids eval, which Playwright's wait_for_function predicates use
        # (tests/web/test_security.py checks the pages under the CSP).
        page = browser.new_page(base_url=server.url, bypass_csp=True)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto("/login/?next=/library/")
        page.fill("#username", "t1")
        page.fill("#password", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_function("location.pathname === '/library/'")
        page.errors = errors  # type: ignore[attr-defined]
        yield page
        browser.close()


@pytest.fixture(scope="module")
def recording(server: Server) -> str:
    folder = server.settings.effective_recording_root / "lesson-web" / "20260901T010000Z"
    write_video(folder / "rendition" / "lesson.mp4", "libx264", "mp4", 4.0, audio=True)
    write_video(folder / "001-cam.webm", "libvpx", "webm", 3.0, audio=False)
    # An H.264 track as the recorder writes it (Matroska) and the job's MP4 copy of it.
    # WebRTC H.264 is constrained baseline: no B-frames, a keyframe now and then.
    baseline = {"bf": "0", "g": "25"}
    write_video(folder / "002-board.mkv", "libx264", "matroska", 3.0, False, baseline)
    browser_copy(folder / "002-board.mkv", folder / "rendition" / "002-board.mp4")
    (folder / "rendition" / "lesson-poster.jpg").write_bytes(b"")

    async def insert() -> str:
        from server.db import open_database

        async with open_database(server.settings) as db, db.sessions.begin() as session:
            await session.execute(delete(LibraryRecording))
            row = LibraryRecording(
                directory="lesson-web/20260901T010000Z", state="finished", title="圆的面积",
                subject="数学", grade="六年级", teacher="王老师", school="城关小学",
                started_at=datetime(2026, 9, 1, 1, tzinfo=UTC),
                duration_s=4.0, rendition_state="done", rendition_progress=1.0,
                rendition_files=FILES, tracks=[TRACK, H264_TRACK],
            )  # fmt: skip
            session.add(row)
        return row.id

    # Playwright's sync API keeps a loop running in this thread: use another one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, insert()).result()


def test_the_library_page_lists_the_recording_with_paging(page: Any, recording: str) -> None:
    page.goto("/library/?q=面积")
    page.wait_for_selector(f"[data-recording='{recording}']")
    assert "圆的面积" in page.inner_text("#results")
    assert "1" in page.inner_text("#page-info")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "library.png"), full_page=True)
    assert page.errors == []


def test_replay_plays_seeks_to_a_marker_and_plays_the_tracks_in_sync(
    page: Any, server: Server, recording: str
) -> None:
    token = page.context.cookies()
    assert token  # signed in by cookie: the media elements send it too
    with httpx.Client(base_url=server.url, cookies={c["name"]: c["value"] for c in token}) as c:
        made = c.post(f"/api/library/{recording}/evaluations", json={"t_s": 2.5, "text": "好"})
        assert made.status_code == 201, made.text
    page.goto(f"/replay/?id={recording}")
    page.wait_for_function("document.querySelector('#rendition')?.readyState >= 1", timeout=15000)
    duration = page.evaluate("document.querySelector('#rendition').duration")
    assert abs(duration - 4.0) < 0.2
    page.click(".timeline .marker")
    page.wait_for_function("Math.abs(document.querySelector('#rendition').currentTime - 2.5) < 0.1")
    page.click("#tracks >> xpath=..")  # open the multi-track view
    track = "document.querySelector('#tracks video')"
    page.wait_for_function(f"{track}.readyState >= 1", timeout=15000)
    assert page.evaluate(f"{track}.error") is None
    assert abs(page.evaluate(f"{track}.duration") - 3.0) < 0.2
    # Play from lesson time 2.5: the track (starting at 1.0) follows at 1.5 and advances.
    page.evaluate("document.querySelector('#rendition').play()")
    page.wait_for_function(f"{track}.currentTime > 1.7", timeout=10000)
    drift = page.evaluate(
        f"document.querySelector('#rendition').currentTime - 1.0 - {track}.currentTime"
    )
    assert abs(drift) < 0.5
    # The H.264 track plays from its MP4 copy (starting at 0.5: lesson time - 0.5).
    board = "document.querySelectorAll('#tracks video')[1]"
    assert page.evaluate(f"{board}.currentSrc").endswith("/files/rendition/002-board.mp4")
    page.wait_for_function(f"{board}.readyState >= 2 && {board}.currentTime > 2.2", timeout=10000)
    assert page.evaluate(f"{board}.error") is None
    assert page.evaluate(f"{board}.videoWidth") == 320
    board_drift = page.evaluate(
        f"document.querySelector('#rendition').currentTime - 0.5 - {board}.currentTime"
    )
    assert abs(board_drift) < 0.5
    page.screenshot(path=str(ARTIFACTS / "replay.png"), full_page=True)
    assert page.errors == []

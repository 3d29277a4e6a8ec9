"""The browser-test harness: the real service in a thread, a seeded district, watched pages."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from server.accounts_cli import create_account
from server.app import create_app
from server.db.models import AccountRole
from server.settings import Settings

CHROMIUM = os.environ.get("TONGKE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class District:
    """Accounts, schools and classrooms the tests sign in as and teach in; and one lesson."""

    teacher_id: str = ""
    inspector_id: str = ""
    lead: dict[str, Any] = field(default_factory=dict)
    receivers: list[dict[str, Any]] = field(default_factory=list)
    lesson: dict[str, Any] = field(default_factory=dict)
    # Join codes of `lesson` by "lead", "receiver1", "receiver2", "patrol".
    links: dict[str, str] = field(default_factory=dict)


class LiveServer:
    """uvicorn serving create_app(settings) in a thread."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(
            host="127.0.0.1",
            port=self.port,
            data_dir=data_dir,
            seed_demo=False,
            secret_key="browser-tests-secret-key-0123456789abcdef",
            heartbeat_interval_s=1.0,
            heartbeat_timeout_s=4.0,
            # The SFU gathers on loopback: Chromium and the server share this machine.
            media_addresses=["127.0.0.1"],
        )
        config = uvicorn.Config(
            create_app(self.settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws="websockets-sansio",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the service did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def account(self, username: str, role: AccountRole, name: str) -> str:
        # In a thread of its own: Playwright's sync API keeps an event loop in this one.
        coro = create_account(self.settings, username, PASSWORD, name, role)
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coro).result()

    def http(self, username: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=10)
        r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        r.raise_for_status()
        return client

    def post(self, client: httpx.Client, path: str, body: dict[str, Any]) -> Any:
        r = client.post(path, json=body)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def seed(self) -> District:
        """A district: admin, teacher, inspector, 1 lead + 2 receiving classrooms, one lesson."""
        self.account("admin", AccountRole.ADMIN, "管理员")
        district = District(
            teacher_id=self.account("teacher", AccountRole.TEACHER, "王老师"),
            inspector_id=self.account("inspector", AccountRole.INSPECTOR, "李督导"),
        )
        with closing(self.http("admin")) as admin:
            central = self.post(admin, "/api/schools", {"name": "城关中心校", "kind": "central"})
            point = self.post(
                admin, "/api/schools", {"name": "山口教学点", "kind": "teaching_point"}
            )

            def room(school: dict[str, Any], name: str, kind: str) -> Any:
                body = {"school_id": school["id"], "name": name, "kind": kind}
                return self.post(admin, "/api/classrooms", body)

            district.lead = room(central, "录播教室", "lead")
            district.receivers = [room(point, f"{n}年级教室", "receiving") for n in ("一", "二")]
        return self.new_lesson(district)

    def new_lesson(self, district: District, title: str = "分数的初步认识") -> District:
        """A new lesson of the district's classrooms with its join links (a copy of district)."""
        now = datetime.now(UTC)
        with closing(self.http("admin")) as admin:
            lesson = self.post(
                admin,
                "/api/lessons",
                {
                    "title": title,
                    "teacher_id": district.teacher_id,
                    "lead_classroom_id": district.lead["id"],
                    "receiver_classroom_ids": [r["id"] for r in district.receivers],
                    "scheduled_start": (now + timedelta(minutes=5)).isoformat(),
                    "scheduled_end": (now + timedelta(minutes=50)).isoformat(),
                    "subject": "数学",
                    "grade": "三年级",
                },
            )
            path = f"/api/lessons/{lesson['id']}/links"
            roster = self.post(admin, f"{path}/roster", {})
            patrol = self.post(admin, path, {"account_id": district.inspector_id})
        links = {"patrol": patrol["code"]}
        ids = [r["id"] for r in district.receivers]
        for link in roster:
            if link["role"] == "lead":
                links["lead"] = link["code"]
            else:
                links[f"receiver{ids.index(link['classroom_id']) + 1}"] = link["code"]
        return District(
            teacher_id=district.teacher_id,
            inspector_id=district.inspector_id,
            lead=district.lead,
            receivers=district.receivers,
            lesson=lesson,
            links=links,
        )


class PageWatch:
    """A page that records console errors and uncaught exceptions."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def sign_in(watch: PageWatch, username: str) -> None:
    page = watch.page
    page.goto("/login/")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_function("location.pathname === '/'", timeout=10_000)


def join_classroom(watch: PageWatch, code: str) -> PageWatch:
    """Opens a join link and waits until the classroom page has joined its lesson."""
    watch.page.goto(f"/join/?code={code}")
    watch.page.wait_for_selector("#conn-state[data-state=joined]", timeout=15_000)
    return watch


def wait_js(watch: PageWatch, expression: str, timeout_ms: int = 15_000) -> Any:
    """Polls a JavaScript expression (a promise is awaited) until it is truthy; returns it.

    page.wait_for_function does not await promises, so getStats checks need this loop.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        value = watch.page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_ms} ms: {expression}")
        watch.page.wait_for_timeout(200)

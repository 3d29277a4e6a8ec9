"""The browser-test harness: the real service in a thread, a seeded district, watched pages."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
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
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from server.accounts_cli import create_account
from server.app import create_app
from server.db.models import AccountRole
from server.settings import Settings
from server.tls import prepare_tls

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
# How long media may take to flow between pages through the SFU.
MEDIA_MS = 30_000


def spki_hash(cert_file: Path) -> str:
    """base64 SHA-256 of a certificate's public key, as Chromium's SPKI pin list takes it."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


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
    """uvicorn serving create_app(settings) in a thread.

    https=True serves TLS with the local CA of `tongke serve --https`; `hostname` is the name
    pages are opened at (`url`): a name other than 127.0.0.1 (mapped to it in Chromium by
    `chromium_flags()`) makes the page's origin a LAN-like one, not a secure localhost.
    The harness's own HTTP calls go to `api_url` (127.0.0.1, verified against the CA).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        https: bool = False,
        hostname: str = "127.0.0.1",
        **settings: Any,
    ) -> None:
        self.port = free_port()
        scheme = "https" if https else "http"
        self.hostname = hostname
        self.url = f"{scheme}://{hostname}:{self.port}"
        self.api_url = f"{scheme}://127.0.0.1:{self.port}"
        self.settings = Settings(
            host="127.0.0.1",
            port=self.port,
            data_dir=data_dir,
            seed_demo=False,
            secret_key="browser-tests-secret-key-0123456789abcdef",
            # The SFU gathers on loopback: Chromium and the server share this machine.
            media_addresses=["127.0.0.1"],
            https=https,
            tls_hostnames=[] if hostname == "127.0.0.1" else [hostname],
            # A test module's own settings win (the poor-network tests keep the defaults).
            **{"heartbeat_interval_s": 1.0, "heartbeat_timeout_s": 4.0, **settings},
        )
        self.tls = prepare_tls(self.settings)
        # httpx trusts the local CA as a classroom PC would, never "verify=False".
        self.verify: ssl.SSLContext | bool = True
        if self.tls is not None and self.tls.ca_file is not None:
            self.verify = ssl.create_default_context(cafile=str(self.tls.ca_file))
        config = uvicorn.Config(
            create_app(self.settings, self.tls),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws="websockets-sansio",
            ssl_certfile=self.tls.cert_file if self.tls is not None else None,
            ssl_keyfile=self.tls.key_file if self.tls is not None else None,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.api_url}/healthz", timeout=1, verify=self.verify)
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the service did not start")

    def chromium_flags(self) -> list[str]:
        """Flags that let Chromium reach `url`: its hostname mapped to the loopback address;
        without certutil, the server certificate's key pinned instead of the CA trusted."""
        flags = []
        if self.hostname != "127.0.0.1":
            flags.append(f"--host-resolver-rules=MAP {self.hostname} 127.0.0.1")
        if self.tls is not None and shutil.which("certutil") is None:
            flags.append(f"--ignore-certificate-errors-spki-list={spki_hash(self.tls.cert_file)}")
        return flags

    def chromium_env(self, home: Path) -> dict[str, str] | None:
        """With the local CA: an environment whose HOME holds an NSS database trusting it,
        as a classroom PC on UOS/Kylin has after following /ca/ once. None: no change."""
        if self.tls is None or self.tls.ca_file is None or shutil.which("certutil") is None:
            return None
        nssdb = home / ".pki" / "nssdb"
        nssdb.mkdir(parents=True, exist_ok=True)
        certutil = ["certutil", "-d", f"sql:{nssdb}"]
        subprocess.run([*certutil, "-N", "--empty-password"], check=True, capture_output=True)
        subprocess.run(
            [*certutil, "-A", "-n", "tongke local CA", "-t", "C,,", "-i", str(self.tls.ca_file)],
            check=True,
            capture_output=True,
        )
        return {**os.environ, "HOME": str(home)}

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def account(self, username: str, role: AccountRole, name: str) -> str:
        # In a thread of its own: Playwright's sync API keeps an event loop in this one.
        coro = create_account(self.settings, username, PASSWORD, name, role)
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coro).result()

    def http(self, username: str) -> httpx.Client:
        client = httpx.Client(base_url=self.api_url, timeout=10, verify=self.verify)
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
        start = _soon_today(datetime.now(UTC))
        with closing(self.http("admin")) as admin:
            lesson = self.post(
                admin,
                "/api/lessons",
                {
                    "title": title,
                    "teacher_id": district.teacher_id,
                    "lead_classroom_id": district.lead["id"],
                    "receiver_classroom_ids": [r["id"] for r in district.receivers],
                    "scheduled_start": start.isoformat(),
                    "scheduled_end": (start + timedelta(minutes=45)).isoformat(),
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


def _soon_today(now: datetime) -> datetime:
    """Five minutes from now, unless that is already tomorrow where the browser is (its clock
    and zone are this machine's): then a minute ago, so 今日课表 holds the lesson at any hour."""
    local = now.astimezone()
    soon = local + timedelta(minutes=5)
    return soon if soon.date() == local.date() else local - timedelta(minutes=1)


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


def frames(watch: PageWatch) -> int:
    return int(watch.page.evaluate("window.tongke.media.stats().then(s => s.framesDecoded)"))


def frames_rise(watch: PageWatch) -> None:
    """framesDecoded grows between two readings a second apart."""
    before = frames(watch)
    watch.page.wait_for_timeout(1000)
    assert frames(watch) > before


def video_plays(watch: PageWatch, selector: str) -> None:
    wait_js(watch, f"document.querySelector({selector!r})?.videoWidth > 0", MEDIA_MS)


def started(open_page: Any, lesson: District, *who: str) -> list[PageWatch]:
    """The classrooms `who` (keys of lesson.links) joined; the first, the lead, starts."""
    pages = [join_classroom(open_page(), lesson.links[w]) for w in who]
    pages[0].page.click("#start-lesson")
    return pages


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

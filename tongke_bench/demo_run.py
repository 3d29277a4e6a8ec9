"""`tongke demo`: the service with the demo district, plus a synthetic lead and receivers.

The peers join like any terminal: join link -> ``POST /api/join/{code}`` -> WebSocket ``join``
-> ``publish`` (client offer) and ``subscribe_offer`` / ``subscribe_answer`` (server offer).
A person then opens a receiver or patrol link in a browser and watches the lead's clip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from pathlib import Path

import uvicorn
from sqlalchemy import select

from media.synthetic.terminal import SyntheticTerminal, TerminalError
from server.settings import Settings

log = logging.getLogger("tongke.demo")

# Beside `make run` (port 8000, ./data): the demo takes its own port and data folder, so
# both run at once and the demo's synthetic lesson never lands in the real database.
DEMO_PORT = 8010
DEMO_DATA_DIR = Path("data-demo")


def port_holder(host: str, port: int) -> str | None:
    """None if `port` is free on `host`; else a few words naming what holds it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            pass
        else:
            return None
    return _process_on(port) or "another program"


def _process_on(port: int) -> str | None:
    """The process listening on a TCP port, from /proc (Linux); None elsewhere or unreadable."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # local address "0100007F:1F40", state 0A = LISTEN
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                    return f"process {pid} ({cmdline.decode(errors='replace').strip()[:80]})"
    return None


class DemoError(RuntimeError):
    """The demo could not start its synthetic peers."""


async def _demo_links(settings: Settings) -> dict[str, list[str]]:
    """Seed the demo district if the database is empty; return the demo lesson's codes by role."""
    from server.db import open_database
    from server.db.models import JoinLink
    from server.demo import database_is_empty, describe, seed_demo

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_database(settings) as db:
        if await database_is_empty(db):
            print(describe(await seed_demo(db, settings), settings), flush=True)
        async with db.sessions.begin() as session:
            links = (await session.scalars(select(JoinLink))).all()
    by_lesson: dict[str, dict[str, list[str]]] = {}
    for link in links:
        if link.revoked_at is None:
            by_lesson.setdefault(link.lesson_id, {}).setdefault(link.role, []).append(link.code)
    for codes in by_lesson.values():
        if codes.get("lead"):
            return codes
    raise DemoError("no lesson with a lead join link: run with an empty --data-dir")


async def _run(settings: Settings, receivers: int) -> None:
    from server.app import create_app

    codes = await _demo_links(settings)
    app = create_app(settings.model_copy(update={"seed_demo": False}))
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            raise DemoError("the service did not start")
        await asyncio.sleep(0.05)
    base = f"http://127.0.0.1:{settings.port}"
    addresses = settings.media_addresses or None
    peers = [SyntheticTerminal(base, codes["lead"][0], host_addresses=addresses)]
    for code in codes.get("receiver", []):
        peers.append(SyntheticTerminal(base, code, host_addresses=addresses))
    peers = peers[: receivers + 1]
    try:
        await peers[0].start(start_lesson=True)
        for peer in peers[1:]:
            await peer.start()
        print(
            f"demo: synthetic lead + {len(peers) - 1} receivers are live at "
            f"{settings.effective_public_url}/ (Ctrl-C stops)",
            flush=True,
        )
        url = settings.effective_public_url
        free = codes.get("receiver", [])[len(peers) - 1 :]
        for code in free:
            print(f"  a receiving classroom for you: {url}/join/{code}", flush=True)
        for code in codes.get("patrol", []):
            print(f"  patrol: {url}/patrol?link={code}", flush=True)
        while not serving.done():
            await asyncio.wait({serving}, timeout=10)
            log.info("video frames received per peer: %s", [p.frames() for p in peers])
    finally:
        for peer in peers:
            with contextlib.suppress(Exception):
                await peer.close()
        server.should_exit = True
        await serving


def run_demo(settings: Settings, receivers: int = 2) -> int:
    holder = port_holder(settings.host, settings.port)
    if holder is not None:
        print(
            f"error: port {settings.port} is taken by {holder}; "
            "choose another with `tongke demo --port N`",
            flush=True,
        )
        return 1
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        asyncio.run(_run(settings, receivers))
    except (DemoError, TerminalError) as exc:
        print(f"error: {exc}", flush=True)
        return 1
    except KeyboardInterrupt:
        pass
    return 0

"""`tongke demo`: the service with the demo district, plus a synthetic lead and receivers.

The peers join like any terminal: join link -> ``POST /api/join/{code}`` -> WebSocket ``join``
-> ``publish`` (client offer) and ``subscribe_offer`` / ``subscribe_answer`` (server offer).
A person then opens a receiver or patrol link in a browser and watches the lead's clip.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from typing import Any

import httpx
import uvicorn
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect

from media.synthetic.peers import SyntheticPublisher, SyntheticReceiver
from server.settings import Settings

log = logging.getLogger("tongke.demo")


class DemoError(RuntimeError):
    """The demo could not start its synthetic peers."""


class SignalingPeer:
    """One synthetic terminal on the real signaling protocol."""

    def __init__(self, base_url: str, code: str, addresses: list[str] | None) -> None:
        self.base_url = base_url
        self.code = code
        self.publisher = SyntheticPublisher(host_addresses=addresses)
        self.receiver = SyntheticReceiver(host_addresses=addresses)
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.joined: dict[str, Any] = {}

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._ws is not None
        ident = str(next(self._ids))
        future = self._waiting[ident] = asyncio.get_running_loop().create_future()
        await self._ws.send(json.dumps({**message, "id": ident}))
        reply = await asyncio.wait_for(future, 30)
        if reply["type"] == "error":
            raise DemoError(f"{message['type']} refused: {reply['code']}: {reply['message']}")
        return reply

    async def start(self, *, start_lesson: bool = False) -> None:
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            response = await http.post(f"/api/join/{self.code}")
        if response.status_code != 200:
            raise DemoError(f"join link refused: {response.text}")
        grant = response.json()
        ws_url = self.base_url.replace("http", "ws", 1) + grant["ws_url"]
        self._ws = await connect(ws_url, max_size=1 << 22)
        self._tasks.append(asyncio.create_task(self._read()))
        self.joined = await self.request({"type": "join", "version": 1, "token": grant["token"]})
        self._tasks.append(asyncio.create_task(self._ping(self.joined["heartbeat_interval_s"])))
        if start_lesson and self.joined["lesson"]["state"] != "live":
            await self.request({"type": "start_lesson"})
        publish = set(self.joined["you"]["publish"])
        offer = await self.publisher.create_offer()
        tracks = [
            {"mid": t.mid, "source": t.source, "layer": t.layer}
            for t in self.publisher.tracks
            if t.source in publish
        ]
        reply = await self.request({"type": "publish", "sdp": offer, "tracks": tracks})
        await self.publisher.accept_answer(reply["sdp"])

    async def _read(self) -> None:
        assert self._ws is not None
        async for frame in self._ws:
            message = json.loads(frame)
            ident = message.get("id")
            if ident is not None and ident in self._waiting:
                self._waiting.pop(ident).set_result(message)
            if message["type"] == "subscribe_offer":
                # Answered off the reader so replies to our own requests keep flowing.
                self._tasks.append(asyncio.create_task(self._answer(message["sdp"])))

    async def _answer(self, sdp: str) -> None:
        answer = await self.receiver.accept_offer(sdp)
        await self.request({"type": "subscribe_answer", "sdp": answer})

    async def _ping(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.request({"type": "ping"})

    def frames(self) -> int:
        return sum(s.frames for s in self.receiver.of_kind("video"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        await self.publisher.close()
        await self.receiver.close()


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
    peers = [SignalingPeer(base, codes["lead"][0], addresses)]
    peers += [SignalingPeer(base, code, addresses) for code in codes.get("receiver", [])]
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
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        asyncio.run(_run(settings, receivers))
    except DemoError as exc:
        print(f"error: {exc}", flush=True)
        return 1
    except KeyboardInterrupt:
        pass
    return 0

"""Two real `tongke serve` processes on one Redis and one SQLite database.

The lesson is placed on node A; a join grant opened on node B sends the receiver to A, which
then gets the lead's media; a WebSocket join on B is told where to go; SIGTERM drains a node
(no new lessons, its lesson goes on) and it leaves the registry when the lesson is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from cluster_support import (
    Node,
    admin_headers,
    codes,
    fresh_postgres_database,
    seed_district,
    start_node,
)
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from media.synthetic.terminal import SyntheticTerminal
from server.demo import DemoDistrict

pytestmark = [pytest.mark.redis, pytest.mark.timeout(240)]

LOOPBACK = ["127.0.0.1"]
# Quick resumes; a draining node waits for its lesson to end.
NODE_ENV = {"TONGKE_RESUME_WINDOW_S": "1", "TONGKE_DRAIN_TIMEOUT_S": "120"}


async def stop(node: Node, sig: int = signal.SIGINT) -> int:
    if node.proc.returncode is None:
        node.proc.send_signal(sig)
    return await asyncio.wait_for(node.proc.wait(), 60)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def district(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, DemoDistrict]]:
    """One database both nodes use, seeded once (cluster_support.seed_district)."""
    async with contextlib.AsyncExitStack() as stack:
        database_url = ""
        if request.param == "postgres":
            try:
                database_url = await stack.enter_async_context(fresh_postgres_database())
            except (OSError, asyncpg.PostgresError) as exc:
                pytest.skip(f"PostgreSQL is not reachable: {exc}")
        yield await seed_district(tmp_path, database_url)


async def test_a_receiver_sent_from_node_b_gets_the_lead_media_on_node_a(
    tmp_path: Path, district: tuple[str, DemoDistrict], prefix: str, redis: Redis
) -> None:
    database_url, demo = district
    links = codes(demo)
    a = await start_node("node-a", tmp_path, database_url, prefix, env=NODE_ENV)
    b = await start_node("node-b", tmp_path, database_url, prefix, env=NODE_ENV)
    terminals: list[SyntheticTerminal] = []
    try:
        auth = await admin_headers(b, demo)
        async with httpx.AsyncClient(base_url=b.url, headers=auth) as admin_b:
            view = (await admin_b.get("/api/cluster")).json()
            assert sorted(n["id"] for n in view["nodes"]) == ["node-a", "node-b"]
            assert view["node_id"] == "node-b"
            # B drains, so the lesson's first placement goes to A; then B takes lessons again.
            assert (await admin_b.post("/api/cluster/drain")).json()["draining"] is True
            lead = SyntheticTerminal(a.url, links["lead"][0], host_addresses=LOOPBACK)
            terminals.append(lead)
            await lead.start(start_lesson=True)
            assert (await admin_b.post("/api/cluster/undrain")).json()["draining"] is False
            view = (await admin_b.get("/api/cluster")).json()
            assert view["lessons"] == {demo.lesson_id: "node-a"}
            metrics = (await admin_b.get("/metrics")).text
            assert "tongke_bus_connected 1.0" in metrics and "tongke_node_draining 0.0" in metrics

        # The grant from B names A's WebSocket, absolute.
        async with httpx.AsyncClient(base_url=b.url) as http:
            grant = (await http.post(f"/api/join/{links['receiver'][0]}")).json()
        assert grant["ws_url"] == a.ws_url
        # A WebSocket join on B is refused with where to go.
        async with connect(b.ws_url) as ws:
            await ws.send(json.dumps({"type": "join", "version": 1, "token": grant["token"]}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["type"] == "error" and reply["code"] == "wrong_node"
        assert a.ws_url in reply["message"]

        # The receiver opens its link on B, is told to connect to A, and gets the media.
        receiver = SyntheticTerminal(
            b.url, links["receiver"][1], host_addresses=LOOPBACK, decode=True
        )
        terminals.append(receiver)
        await receiver.start()  # B would have refused it (wrong_node): it joined on A
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while receiver.frames("video") < 30 or receiver.receiver.decoded["video"] < 10:  # type: ignore[union-attr]
            assert loop.time() < deadline, f"video {receiver.frames('video')} frames"
            await asyncio.sleep(0.2)
        assert receiver.frames("audio") > 0

        # SIGTERM on A drains it: A stays up while its lesson goes on, and takes no new one.
        a.proc.send_signal(signal.SIGTERM)
        node_key = f"{prefix}node:node-a"
        while await redis.hget(node_key, "draining") != b"1":
            assert loop.time() < deadline + 30
            await asyncio.sleep(0.1)
        frames = receiver.frames("video")
        await asyncio.sleep(1.0)
        assert a.proc.returncode is None and receiver.frames("video") > frames
        async with httpx.AsyncClient(base_url=b.url, headers=auth) as admin_b:
            view = (await admin_b.get("/api/cluster")).json()
        assert {n["id"]: n["draining"] for n in view["nodes"]} == {"node-a": True, "node-b": False}
        # The lesson ends (everyone leaves): A finishes draining, leaves the registry, exits.
        for terminal in terminals:
            await terminal.close()
        terminals.clear()
        assert await asyncio.wait_for(a.proc.wait(), 60) == 0
        assert await redis.exists(node_key) == 0
        assert await redis.hget(f"{prefix}lesson:{demo.lesson_id}", "node") is None
        # B alone now: a new grant places the lesson on B.
        async with httpx.AsyncClient(base_url=b.url) as http:
            grant = (await http.post(f"/api/join/{links['receiver'][0]}")).json()
        assert grant["ws_url"] == "/ws"
        assert await stop(b, signal.SIGTERM) == 0, "no lesson on B: SIGTERM stops it at once"
        assert await redis.exists(f"{prefix}node:node-b") == 0
    finally:
        for terminal in terminals:
            await terminal.close()
        for node in (a, b):
            if node.proc.returncode is None:
                node.proc.kill()
                await node.proc.wait()

"""A 录播 host's lesson with many nodes: two real `tongke serve` processes on one Redis and
one database, no lead page. The lesson is started from the API on node B; it is placed on
one node, only that node pulls the host (the other, whose supervisor sees the same live
lesson in the database, leaves it alone instead of pulling it too and failing), and a
receiver whose link is opened on A is sent to the home and decodes the host's picture.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cluster_support import Node, admin_headers, codes, seed_district, start_node, until
from gst_support import require_gstreamer
from rtsp_support import RtspSourceProcess

from media.synthetic.terminal import SyntheticTerminal

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

LOOPBACK = ["127.0.0.1"]
ENV = {"TONGKE_RTSP_POLL_S": "0.5"}


@pytest.fixture
async def host() -> AsyncIterator[RtspSourceProcess]:
    require_gstreamer()
    source = await RtspSourceProcess("--gop", "30").start()
    try:
        yield source
    finally:
        await source.kill()


async def test_only_the_home_node_pulls_an_ingest_only_lesson(
    tmp_path: Path, prefix: str, host: RtspSourceProcess
) -> None:
    database_url, demo = await seed_district(tmp_path)
    links = codes(demo)
    a = await start_node("node-a", tmp_path, database_url, prefix, env=ENV)
    b = await start_node("node-b", tmp_path, database_url, prefix, env=ENV)
    nodes: list[Node] = [a, b]
    receiver: SyntheticTerminal | None = None
    try:
        auth_a, auth_b = await admin_headers(a, demo), await admin_headers(b, demo)
        async with (
            httpx.AsyncClient(base_url=a.url, headers=auth_a) as admin_a,
            httpx.AsyncClient(base_url=b.url, headers=auth_b) as admin_b,
        ):
            lesson = (await admin_b.get(f"/api/lessons/{demo.lesson_id}")).json()
            room = lesson["lead"]["id"]
            sources = f"/api/classrooms/{room}/rtsp-sources"
            made = await admin_b.post(sources, json={"url": host.url})
            assert made.status_code == 201, made.text
            started = await admin_b.post(f"/api/lessons/{demo.lesson_id}/start")
            assert started.status_code == 200, started.text

            async def status(admin: httpx.AsyncClient) -> object:
                return (await admin.get(sources)).json()[0]["status"]

            async def puller() -> str | None:
                for name, admin in (("node-a", admin_a), ("node-b", admin_b)):
                    state = await status(admin)
                    if isinstance(state, dict) and state["state"] == "live":
                        return name
                return None

            # B, where it was started, usually; A if its poll placed the lesson first.
            await until("one node pulls the host", puller, 15)
            home = await puller()
            view = (await admin_a.get("/api/cluster")).json()
            assert view["lessons"] == {demo.lesson_id: home}
            # The other node sees the lesson live too, over several polls, and never pulls.
            other = admin_a if home == "node-b" else admin_b
            for _ in range(6):
                assert await status(other) is None
                await asyncio.sleep(0.5)

        receiver = SyntheticTerminal(
            a.url, links["receiver"][0], host_addresses=LOOPBACK, decode=True, publish=False
        )
        await receiver.start()
        got = receiver.receiver
        assert got is not None
        await until("the receiver decodes the host", lambda: got.decoded["video"] >= 30, 20)
        assert got.decode_errors == 0 and got.video_sizes[-1] == (640, 360)
    finally:
        if receiver is not None:
            await receiver.close()
        for node in nodes:
            if node.proc.returncode is None:
                node.proc.kill()
                await node.proc.wait()

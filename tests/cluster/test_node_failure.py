"""Node failure and Redis restarts, with real `tongke serve` processes and synthetic classrooms.

- kill -9 the home node of a live lesson: once its heartbeat key expires (TTL 3 s here) the
  classrooms, which reconnect by themselves (auto_reconnect), open their join link on the
  surviving node, the lesson is placed there, and the receiver decodes the lead again;
- kill -9 an edge node serving a classroom's media: the home asks that classroom to join
  again (close 4301) and serves its media itself;
- a node that stalled past its TTL while its lesson was placed elsewhere closes its copy of
  the room (close 4301) when it wakes up, and its classrooms follow the link to the new home;
- a Redis restart (a private redis-server, not the shared one on 6379): media never stops,
  the directory comes back from the nodes' heartbeats, signaling goes on;
- the web page (Chromium) follows its join link to the new home when its home is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cluster_support import (
    REDIS_URL,
    MakeNode,
    Node,
    admin_headers,
    codes,
    free_port,
    gauge,
    seed_district,
    start_node,
    until,
)
from redis.asyncio import Redis

from media.synthetic.terminal import SyntheticTerminal
from server.demo import DemoDistrict
from signaling.redis_bus import TRANSIENT, connect_redis

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]

LOOPBACK = ["127.0.0.1"]
TTL_S = 3.0
NODE_ENV = {"TONGKE_NODE_TTL_S": str(TTL_S), "TONGKE_RESUME_WINDOW_S": "10"}
# What the "bounded time" is here: the heartbeat TTL (the dead home is noticed),
# the reconnect backoff (at most 2 s between tries), then a join, ICE and a keyframe.
FAILOVER_BOUND_S = 15.0


def decoded(terminal: SyntheticTerminal) -> int:
    return terminal.receiver.decoded["video"] if terminal.receiver is not None else 0


def on_node(terminal: SyntheticTerminal, node: Node, since: float = 0.0) -> bool:
    """The terminal's last join or resume is on `node` (and after `since`)."""
    return (
        bool(terminal.joins)
        and terminal.joins[-1][1] == node.ws_url
        and (terminal.joins[-1][0] > since)
    )


@pytest.fixture
async def district(tmp_path: Path) -> tuple[str, DemoDistrict]:
    return await seed_district(tmp_path)


class Cluster:
    """Nodes started on demand (the shared Redis by default) and the terminals of a test;
    whatever is left is closed or killed at the end."""

    def __init__(self, tmp: Path, database_url: str, prefix: str) -> None:
        self.tmp = tmp
        self.database_url = database_url
        self.prefix = prefix
        self.nodes: list[Node] = []
        self.terminals: list[SyntheticTerminal] = []

    async def __call__(
        self, name: str, redis_url: str = REDIS_URL, env: dict[str, str] | None = None
    ) -> Node:
        node = await start_node(
            name,
            self.tmp,
            self.database_url,
            self.prefix,
            redis_url=redis_url,
            env={**NODE_ENV, **(env or {})},
        )
        self.nodes.append(node)
        return node

    async def close(self) -> None:
        for terminal in self.terminals:
            with contextlib.suppress(Exception):
                await terminal.close()
        for node in self.nodes:
            if node.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    node.proc.send_signal(signal.SIGCONT)  # a stopped process dies too
                node.proc.kill()
                await node.proc.wait()


@pytest.fixture
async def cluster(
    tmp_path: Path, district: tuple[str, DemoDistrict], prefix: str
) -> AsyncIterator[Cluster]:
    started = Cluster(tmp_path, district[0], prefix)
    yield started
    await started.close()


async def lesson_on(
    cluster: Cluster,
    demo: DemoDistrict,
    home: Node,
    other: Node,
) -> tuple[SyntheticTerminal, SyntheticTerminal]:
    """A live lesson homed on `home`: the lead opens its link there, the receiver on `other`
    (sent to `home` by the grant); both reconnect by themselves and know both nodes."""
    links = codes(demo)
    headers = await admin_headers(other, demo)
    async with httpx.AsyncClient(base_url=other.url, headers=headers) as admin:
        # `other` drains for a moment so that the first placement goes to `home`.
        assert (await admin.post("/api/cluster/drain")).status_code == 200
        lead = SyntheticTerminal(
            home.url,
            links["lead"][0],
            host_addresses=LOOPBACK,
            auto_reconnect=True,
            fallback_urls=[other.url],
        )
        cluster.terminals.append(lead)
        await lead.start(start_lesson=True)
        assert (await admin.post("/api/cluster/undrain")).status_code == 200
    receiver = SyntheticTerminal(
        other.url,
        links["receiver"][0],
        host_addresses=LOOPBACK,
        decode=True,
        publish=False,
        auto_reconnect=True,
        fallback_urls=[home.url],
    )
    cluster.terminals.append(receiver)
    await receiver.start()
    assert on_node(lead, home) and on_node(receiver, home)
    await until("the receiver decodes the lead", lambda: decoded(receiver) >= 10, 60)
    return lead, receiver


async def test_a_heartbeat_that_finds_a_local_lesson_homed_elsewhere_reports_it(
    make_node: MakeNode, redis: Redis, prefix: str
) -> None:
    a = await make_node("node-a")
    await make_node("node-b")
    lost: list[str] = []

    async def on_lost(lesson_id: str) -> None:
        lost.append(lesson_id)

    a.node.on_lost = on_lost
    a.lessons.add("lesson-1")
    assert (await a.placement.place("lesson-1", prefer="node-a")).id == "node-a"
    await a.node._beat()
    assert lost == []
    # What node B's placement writes once A's heartbeat key has expired.
    await redis.hset(f"{prefix}lesson:lesson-1", "node", "node-b")  # type: ignore[misc]
    await a.node._beat()
    assert lost == ["lesson-1"] and a.node.lessons_moved_away == 1
    # Reported again while the room is still here; no longer once it is gone.
    await a.node._beat()
    a.lessons.clear()
    await a.node._beat()
    assert lost == ["lesson-1", "lesson-1"]
    assert await redis.hget(f"{prefix}lesson:lesson-1", "node") == b"node-b"


async def test_killing_the_home_node_moves_the_lesson_and_media_resumes(
    cluster: Cluster,
    district: tuple[str, DemoDistrict],
    prefix: str,
    redis: Redis,
) -> None:
    _, demo = district
    a = await cluster("node-a")
    b = await cluster("node-b")
    lead, receiver = await lesson_on(cluster, demo, a, b)
    lesson_key = f"{prefix}lesson:{demo.lesson_id}"
    assert await redis.hget(lesson_key, "node") == b"node-a"
    # A dropped connection to a live home is resumed there first: the same peer again.
    peer_id = receiver.joined["peer_id"]
    assert receiver._ws is not None
    receiver._ws.transport.abort()
    await until("the receiver resumed on A", lambda: receiver.reconnects == 1, 15)
    assert receiver.joins[-1][1:] == (a.ws_url, True) and receiver.joined["peer_id"] == peer_id

    a.proc.kill()  # SIGKILL: no goodbye, no release; its registry entry just stops beating
    killed = time.monotonic()
    await a.proc.wait()
    moved_s = await until(
        "both classrooms rejoined on node B",
        lambda: on_node(lead, b, killed) and on_node(receiver, b, killed),
        FAILOVER_BOUND_S,
    )
    await until(
        "the receiver decodes the lead again, on node B",
        lambda: decoded(receiver) >= 10,
        FAILOVER_BOUND_S - (time.monotonic() - killed),
    )
    media_s = time.monotonic() - killed
    print(f"kill -9 of the home: both rejoined on B in {moved_s:.1f}s, media in {media_s:.1f}s")
    assert await redis.hget(lesson_key, "node") == b"node-b"
    assert await redis.exists(f"{prefix}node:node-a") == 0
    assert lead.reconnects == 1 and receiver.reconnects == 2
    assert [code for _, code in receiver.drops] == [1006, 1006]  # no close frame: a dead node
    assert not receiver.joins[-1][2]  # a new peer on B (resume failed: A is gone)
    assert receiver.receiver is not None and receiver.receiver.decode_errors == 0

    # The database kept the lesson (live), and the room on B serves the lead's controls.
    headers = await admin_headers(b, demo)
    async with httpx.AsyncClient(base_url=b.url, headers=headers) as admin:
        lesson = (await admin.get(f"/api/lessons/{demo.lesson_id}")).json()
    assert lesson["state"] == "live", lesson
    classroom = receiver.joined["you"]["classroom_id"]
    mark = len(receiver.events)
    await lead.request({"type": "set_stage", "classroom_id": classroom})
    await receiver.wait_for(
        "stage_changed", lambda m: m["classroom_id"] == classroom, within_s=10, since=mark
    )


async def test_killing_the_edge_node_serving_a_classroom_brings_its_media_home(
    cluster: Cluster, district: tuple[str, DemoDistrict]
) -> None:
    """A's lesson, the receiver's media served by B (cascade): B dies. Once B's heartbeat
    key has gone (two registry reads), A asks the receiver to join again (close 4301); it
    does, and its media is now served by A, which is the only node left."""
    _, demo = district
    a = await cluster("node-a", env={"TONGKE_CASCADE_AFTER_PEERS": "1"})
    b = await cluster("node-b")
    lead, receiver = await lesson_on(cluster, demo, a, b)
    assert await gauge(a, "tongke_cascade_remote_peers") == 1  # the receiver's media: B
    assert await gauge(b, "tongke_media_peers") == 1
    b.proc.kill()
    killed = time.monotonic()
    await b.proc.wait()
    frames = decoded(receiver)
    asked_s = await until(
        "A asked the receiver to join again",
        lambda: any(code == 4301 for _, code in receiver.drops),
        4 * TTL_S + 5,
    )
    await until(
        "the receiver decodes the lead again, its media on A",
        lambda: decoded(receiver) >= frames + 10 and on_node(receiver, a, killed),
        FAILOVER_BOUND_S,
    )
    media_s = time.monotonic() - killed
    print(f"kill -9 of the edge: 4301 after {asked_s:.1f}s, media from A after {media_s:.1f}s")
    assert await gauge(a, "tongke_cascade_remote_peers") == 0
    assert await gauge(a, "tongke_media_peers") == 2  # the lead and the receiver
    assert lead.reconnects == 0  # the lead's media was on A all along
    assert receiver.receiver is not None and receiver.receiver.decode_errors == 0


async def test_a_node_that_missed_its_heartbeats_hands_its_room_to_the_new_home(
    cluster: Cluster,
    district: tuple[str, DemoDistrict],
    prefix: str,
    redis: Redis,
) -> None:
    _, demo = district
    # A stalls for about its TTL (3 s). Its peers' quick silence check (3 s of silence on
    # signaling and media) would race the heartbeat on waking and may close them 4408
    # first; that is another test's subject: here A's sessions wait the full 6 s.
    a = await cluster("node-a", env={"TONGKE_SILENCE_TIMEOUT_S": "0"})
    b = await cluster("node-b")
    lead, receiver = await lesson_on(cluster, demo, a, b)
    await lead.request({"type": "set_recording", "on": True})
    headers = await admin_headers(a, demo)
    status_url = f"{a.url}/api/library/recording-status/{demo.lesson_id}"
    async with httpx.AsyncClient(headers=headers) as http:
        assert (await http.get(status_url)).json()["recording"] is True
    await asyncio.sleep(1.0)  # a second of the lesson recorded on A

    # A stalls (SIGSTOP) past its TTL: to the cluster it is dead, so the next join link
    # opened places the lesson on B. Then A wakes up with its room and peers still there.
    a.proc.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        while await redis.exists(f"{prefix}node:node-a"):
            assert time.monotonic() - stopped < 10, "A's entry did not expire"
            await asyncio.sleep(0.1)
        async with httpx.AsyncClient(base_url=b.url) as http:
            grant = (await http.post(f"/api/join/{codes(demo)['receiver'][1]}")).json()
        assert grant["ws_url"] == "/ws", "the lesson is placed again, on B"
    finally:
        a.proc.send_signal(signal.SIGCONT)
    woke = time.monotonic()

    # A's next heartbeat finds the lesson homed on B: A closes its room (4301) and the
    # classrooms follow their join links to B.
    await until(
        "both classrooms moved to node B",
        lambda: on_node(lead, b, woke) and on_node(receiver, b, woke),
        FAILOVER_BOUND_S,
    )
    await until("media again, on B", lambda: decoded(receiver) >= 10, FAILOVER_BOUND_S)
    print(f"the stalled home handed its room over in {time.monotonic() - woke:.1f}s")
    assert await gauge(a, "tongke_lessons_moved_away_total") == 1
    # Closed with 4301 (the lesson moved), so they went straight to the link, not resume.
    assert [code for _, code in lead.drops] == [4301] and not lead.joins[-1][2]
    assert [code for _, code in receiver.drops] == [4301] and not receiver.joins[-1][2]
    assert await gauge(a, "tongke_live_lessons") == 0
    assert await redis.hget(f"{prefix}lesson:{demo.lesson_id}", "node") == b"node-b"
    assert a.proc.returncode is None  # A itself lives on and takes other lessons
    # A's part of the recording was stopped and catalogued (the library keeps it).
    async with httpx.AsyncClient(headers=headers) as http:
        status = (await http.get(status_url)).json()
    assert status["recording"] is False and status["recording_id"] is not None, status
    # The new home rebuilt the room from the database: it records on (a new session there).
    assert lead.joins[-1][1] == b.ws_url and lead.joined["recording"] is True
    status_b = f"{b.url}/api/library/recording-status/{demo.lesson_id}"
    headers_b = await admin_headers(b, demo)
    async with httpx.AsyncClient(headers=headers_b) as http:

        async def recording_on_b() -> bool:
            return bool((await http.get(status_b)).json()["recording"])

        await until("the new home records", recording_on_b, 10)


class PrivateRedis:
    """A redis-server of this test's own (no persistence), restartable without disturbing the
    shared one on 6379 that other tests use."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.tmp),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        client = connect_redis(self.url)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    await client.ping()
                    return
                except TRANSIENT:
                    assert time.monotonic() < deadline, "redis-server did not start"
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()  # as a crash: nothing saved (there is no persistence anyway)
            await self.proc.wait()


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    await server.start()
    yield server
    await server.stop()


async def test_a_redis_restart_keeps_media_flowing_and_signaling_recovers(
    cluster: Cluster,
    district: tuple[str, DemoDistrict],
    prefix: str,
    private_redis: PrivateRedis,
) -> None:
    _, demo = district
    a = await cluster("node-a", private_redis.url)
    b = await cluster("node-b", private_redis.url)
    lead, receiver = await lesson_on(cluster, demo, a, b)
    redis = connect_redis(private_redis.url, socket_timeout=2.0)
    try:
        await private_redis.stop()
        down = time.monotonic()
        # Redis is away for longer than the heartbeat TTL: media goes on, frame after frame.
        samples = [decoded(receiver)]
        async with httpx.AsyncClient(base_url=a.url) as http:
            while time.monotonic() - down < TTL_S + 1:
                await asyncio.sleep(1.0)
                samples.append(decoded(receiver))
            ready = await http.get("/readyz")
        assert ready.status_code == 503, ready.text  # readiness tells Redis is away
        assert all(later > earlier for earlier, later in itertools.pairwise(samples)), samples

        await private_redis.start()  # empty: every key is gone
        back = time.monotonic()

        async def restored() -> bool:
            with contextlib.suppress(*TRANSIENT):
                home = await redis.hget(f"{prefix}lesson:{demo.lesson_id}", "node")
                members = await redis.smembers(f"{prefix}nodes")  # type: ignore[misc]
                return home == b"node-a" and members == {b"node-a", b"node-b"}
            return False

        while not await restored():
            assert time.monotonic() - back < 10, "the directory was not restored"
            await asyncio.sleep(0.1)
        restored_s = time.monotonic() - back
        frames = decoded(receiver)
        # Signaling: a stage change reaches the receiver, and a join link opened on B
        # names A again (the directory the heartbeats rewrote).
        classroom = receiver.joined["you"]["classroom_id"]
        mark = len(receiver.events)
        await lead.request({"type": "set_stage", "classroom_id": classroom})
        await receiver.wait_for(
            "stage_changed", lambda m: m["classroom_id"] == classroom, within_s=10, since=mark
        )
        async with httpx.AsyncClient(base_url=b.url) as http:
            grant = (await http.post(f"/api/join/{codes(demo)['receiver'][1]}")).json()
            ready = await http.get("/readyz")
        assert grant["ws_url"] == a.ws_url
        assert ready.status_code == 200, ready.text
        await until("media goes on", lambda: decoded(receiver) > frames + 10, 10)
        # Nobody had to reconnect: Redis is not on the media or the signaling path.
        assert lead.reconnects == 0 and receiver.reconnects == 0
        assert len(lead.joins) == 1 and len(receiver.joins) == 1
        print(f"Redis restart: directory restored {restored_s:.1f}s after Redis was back")
    finally:
        await redis.aclose()


CHROMIUM = os.environ.get("TONGKE_CHROMIUM", "/usr/bin/chromium")


@pytest.mark.browser
async def test_the_page_follows_its_join_link_when_the_home_node_dies(
    cluster: Cluster, district: tuple[str, DemoDistrict]
) -> None:
    """web/js/client.js: a socket to the dead home never opens again, so the page opens its
    join link again (on the node that served the page) and lands on the new home."""
    async_api = pytest.importorskip("playwright.async_api")
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    _, demo = district
    a = await cluster("node-a")
    b = await cluster("node-b")
    headers = await admin_headers(b, demo)
    flags = ["--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
             "--use-fake-ui-for-media-stream", "--disable-background-networking"]  # fmt: skip
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            context = await browser.new_context(  # bypass_csp: Playwright predicates eval
                base_url=b.url,
                locale="zh-CN",
                permissions=["camera", "microphone"],
                bypass_csp=True,
            )
            page = await context.new_page()
            async with httpx.AsyncClient(base_url=b.url, headers=headers) as admin:
                await admin.post("/api/cluster/drain")  # the lesson is placed on A
                await page.goto(f"/join/?code={codes(demo)['receiver'][0]}")
                await page.wait_for_selector("#conn-state[data-state=joined]", timeout=30_000)
                await admin.post("/api/cluster/undrain")
            assert await page.evaluate("window.tongke.client.url") == a.ws_url

            a.proc.kill()
            killed = time.monotonic()
            await page.wait_for_selector("#conn-state[data-state=reconnecting]", timeout=10_000)
            assert "重新连接" in await page.inner_text("#conn-banner")
            await page.wait_for_function(
                f"window.tongke.client.state === 'joined' && "
                f"window.tongke.client.url === {b.ws_url!r}",
                timeout=30_000,
            )
            print(f"the page rejoined on node B {time.monotonic() - killed:.1f}s after the kill")
            await context.close()
        finally:
            await browser.close()

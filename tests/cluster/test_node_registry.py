"""The node registry on the real Redis: register, heartbeat TTL, load, draining, leaving."""

from __future__ import annotations

import asyncio
import time

import pytest
from cluster_support import MakeNode
from fault_proxy import FaultProxy
from redis.asyncio import Redis

from server.cluster import Load
from server.cluster.registry import CpuMeter, ws_url_of

pytestmark = pytest.mark.redis


async def eventually(check, within_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not await check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_node_registers_its_address_and_load_with_a_ttl(
    make_node: MakeNode, redis: Redis
) -> None:
    a = await make_node("a", url="https://a.tk.example.cn/", cpu=0.25, peers=7, ttl_s=5)
    [info] = await a.nodes()
    assert (info.id, info.url, info.ws_url) == (
        "a",
        "https://a.tk.example.cn",
        "wss://a.tk.example.cn/ws",
    )
    assert (info.cpu, info.peers, info.max_peers, info.draining) == (0.25, 7, 100, False)
    ttl = await redis.pttl(a.registry.node_key("a"))
    assert 0 < ttl <= 5000
    a.load = Load(cpu=0.5, peers=9, streams=40, lessons=2)
    await a.registry.heartbeat()
    info = await a.registry.node("a")
    assert info is not None and (info.cpu, info.peers, info.streams, info.lessons) == (
        0.5,
        9,
        40,
        2,
    )


async def test_the_heartbeat_keeps_a_node_alive_and_silence_lets_it_expire(
    make_node: MakeNode,
) -> None:
    a = await make_node("a", ttl_s=0.6)  # beats every 0.2 s
    b = await make_node("b", ttl_s=0.6, start=False)
    await b.registry.register()  # registered once, never beats again
    await asyncio.sleep(1.2)  # two TTLs
    assert [n.id for n in await a.nodes()] == ["a"], "b expired, a is kept alive"
    assert await a.registry.redis.smembers(a.registry.nodes_key) == {b"a"}, "b pruned"
    assert a.registry.heartbeats >= 4


async def test_leaving_removes_the_node_at_once_and_draining_is_visible(
    make_node: MakeNode,
) -> None:
    a, b = await make_node("a"), await make_node("b")
    await b.drain()
    assert {n.id: n.draining for n in await a.nodes()} == {"a": False, "b": True}
    await b.undrain()
    assert not (await a.registry.node("b")).draining  # type: ignore[union-attr]
    await b.close()
    assert [n.id for n in await a.nodes()] == ["a"]


async def test_origins_of_every_node_are_learnt_from_the_heartbeat(make_node: MakeNode) -> None:
    a = await make_node("a", url="http://10.0.0.1:8000", ttl_s=0.6)
    await make_node("b", url="http://10.0.0.2:8000")

    async def both() -> bool:
        return a.origins == {"http://10.0.0.1:8000", "http://10.0.0.2:8000"}

    await eventually(both)


async def test_waiting_for_a_drain_ends_when_the_last_lesson_here_ends(
    make_node: MakeNode,
) -> None:
    a = await make_node("a")
    a.lessons.add("lesson-1")
    assert not await a.wait_drained(0.2, poll_s=0.05)
    asyncio.get_running_loop().call_later(0.2, a.lessons.clear)
    assert await a.wait_drained(5, poll_s=0.05)


async def test_heartbeats_resume_after_a_redis_outage(
    make_node: MakeNode, proxy: FaultProxy
) -> None:
    a = await make_node("a", ttl_s=0.6, redis_url=proxy.url)
    watcher = await make_node("w")
    proxy.down()

    async def failing() -> bool:
        return a.registry.heartbeat_failures >= 2

    await eventually(failing)

    async def gone() -> bool:
        return [n.id for n in await watcher.nodes()] == ["w"]

    await eventually(gone)
    proxy.up()

    async def back() -> bool:
        return sorted(n.id for n in await watcher.nodes()) == ["a", "w"]

    await eventually(back)
    assert a.registry.heartbeat_failures == 0


def test_ws_url_and_cpu_meter() -> None:
    assert ws_url_of("http://127.0.0.1:8001/") == "ws://127.0.0.1:8001/ws"
    assert ws_url_of("https://tk.example.cn") == "wss://tk.example.cn/ws"
    meter = CpuMeter()
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    assert meter.read() > 0.2

"""Lesson placement on the real Redis: by load, under a lock, agreed by racers, re-placed
when the home's heartbeat expires; the directory every node reads."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from cluster_support import REDIS_URL, MakeNode
from redis.asyncio import Redis

from server.cluster import Load, PlacementError
from signaling.errors import ErrorCode, SignalingError

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


async def test_a_lesson_goes_to_the_least_loaded_node_and_stays_there(
    make_node: MakeNode,
) -> None:
    a = await make_node("a", cpu=0.9, peers=40)
    b = await make_node("b", cpu=0.2, peers=10)
    home = await a.placement.place("l1")
    assert home.id == "b"
    # Every node reads the same answer; the load changing later does not move a live lesson.
    b.load = Load(cpu=1.5, peers=90)
    await b.registry.heartbeat()
    assert (await a.placement.place("l1")).id == "b"
    assert (await b.placement.home_of("l1")).id == "b"  # type: ignore[union-attr]
    assert await a.placement.lessons() == {"l1": "b"}


async def test_placements_spread_over_equally_loaded_nodes(make_node: MakeNode) -> None:
    nodes = [await make_node(name) for name in ("a", "b", "c")]
    homes = [(await nodes[0].placement.place(f"l{n}")).id for n in range(9)]
    assert Counter(homes) == {"a": 3, "b": 3, "c": 3}


async def test_draining_and_full_nodes_get_no_new_lesson(make_node: MakeNode) -> None:
    a = await make_node("a")
    b = await make_node("b", peers=100, max_peers=100)
    c = await make_node("c", cpu=1.5)
    assert (await a.placement.place("before")).id == "a"
    await a.drain()
    assert (await b.placement.place("l1")).id == "c", "a drains, b is full: c, however busy"
    assert (await b.placement.place("before")).id == "a", "a keeps the lesson it has"
    await c.drain()
    with pytest.raises(PlacementError) as refused:
        await b.placement.place("l2")
    assert refused.value.code == "no_node_available"


async def test_two_nodes_racing_to_place_one_lesson_agree(make_node: MakeNode) -> None:
    a, b = await make_node("a"), await make_node("b")
    for n in range(20):
        lesson = f"race-{n}"
        # Each prefers itself, the worst case for agreeing.
        first, second = await asyncio.gather(
            a.placement.place(lesson, prefer="a"), b.placement.place(lesson, prefer="b")
        )
        assert first.id == second.id == await a.placement.home_id(lesson)
    assert a.placement.placements + b.placement.placements == 20, "one placement per lesson"


RACER = """
import asyncio, json, sys
from server.cluster import ClusterNode
from signaling.redis_bus import connect_redis

async def main(prefix, node_id, lessons):
    redis = connect_redis(sys.argv[4])
    node = ClusterNode(redis, prefix=prefix, node_id=node_id, url=f"http://{node_id}:1",
                       max_peers=100, load=lambda: __import__("server.cluster").cluster.Load())
    await node.registry.register()
    print("ready", flush=True)
    sys.stdin.readline()  # both start placing at the same moment
    homes = await asyncio.gather(*(node.placement.place(l, prefer=node_id) for l in lessons))
    print(json.dumps([h.id for h in homes]), flush=True)
    await redis.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3].split(",")))
"""


async def test_two_processes_racing_to_place_lessons_agree(prefix: str, redis: Redis) -> None:
    lessons = [f"proc-{uuid.uuid4().hex[:6]}" for _ in range(30)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            RACER,
            prefix,
            node,
            ",".join(lessons),
            REDIS_URL,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for node in ("p1", "p2")
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    results = []
    for proc in procs:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0
        results.append(json.loads(out.decode().splitlines()[-1]))
    assert results[0] == results[1], "both processes name the same home for every lesson"
    for lesson, home in zip(lessons, results[0], strict=True):
        assert await redis.hget(f"{prefix}lesson:{lesson}", "node") == home.encode()


async def test_a_dead_homes_lessons_are_placed_again_elsewhere(make_node: MakeNode) -> None:
    a = await make_node("a", ttl_s=0.5)
    b = await make_node("b", cpu=0.5)
    assert (await b.placement.place("l1")).id == "a"
    # a stops beating (a crash, not a clean leave): its entry expires with the TTL.
    assert a.node._task is not None
    a.node._task.cancel()
    await asyncio.sleep(0.8)
    assert await b.placement.home_of("l1") is None
    assert (await b.placement.place("l1")).id == "b"
    # a comes back (a long pause, say): it learns the lesson is no longer its own.
    await a.registry.register()
    refreshed = await a.placement.refresh({"l1"})
    assert refreshed.lost == ["l1"]
    assert (await a.placement.place("l1")).id == "b"


async def test_claim_on_a_websocket_join_keeps_here_or_names_the_home(make_node: MakeNode) -> None:
    a = await make_node("a", url="http://127.0.0.1:9001")
    b = await make_node("b", url="http://127.0.0.1:9002")
    assert await b.placement.claim("l1") == "b", "no home yet: the node the peer is on"
    assert await b.placement.claim("l1") == "b"
    with pytest.raises(SignalingError) as wrong:
        await a.placement.claim("l1")
    assert wrong.value.code is ErrorCode.WRONG_NODE
    assert "ws://127.0.0.1:9002/ws" in wrong.value.message
    assert await a.ws_url_for("l1") == "ws://127.0.0.1:9002/ws"
    assert await b.ws_url_for("l1") == "/ws"
    await b.drain()
    with pytest.raises(SignalingError) as moved:
        await b.placement.claim("l2")  # b drains: a new lesson goes to a, the peer is told
    assert moved.value.code is ErrorCode.WRONG_NODE and "9001" in moved.value.message
    await a.drain()
    with pytest.raises(SignalingError) as full:
        await a.placement.claim("l3")
    assert full.value.code is ErrorCode.CAPACITY


async def test_only_the_home_releases_a_lesson_and_leaving_releases_all(
    make_node: MakeNode,
) -> None:
    a, b = await make_node("a"), await make_node("b", cpu=0.5)
    for lesson in ("l1", "l2"):
        assert (await a.placement.place(lesson)).id == "a"
    await b.placement.release("l1")
    assert await b.placement.home_id("l1") == "a", "b is not the home: nothing released"
    await a.placement.release("l1")
    assert await b.placement.home_id("l1") is None
    await a.close()
    assert await b.placement.lessons() == {}
    assert (await b.placement.place("l2")).id == "b"


async def test_the_lock_is_released_only_by_its_holder_and_fences_stale_writes(
    make_node: MakeNode, redis: Redis
) -> None:
    a = await make_node("a")
    lock = a.placement.lock_key("l1")
    await redis.set(lock, "someone-else", px=5000)
    await a.placement._unlock(keys=[lock], args=["not-the-token"])
    assert await redis.get(lock) == b"someone-else", "compare-and-delete left it"
    keys = [lock, a.placement.lesson_key("l1"), a.placement.homed_key("a"), ""]
    written = await a.placement._place(keys=keys, args=["not-the-token", "l1", "a", 0, 60000, ""])
    assert written == 0 and await a.placement.home_id("l1") is None
    a.placement.lock_wait_s = 0.3
    with pytest.raises(PlacementError) as busy:
        await a.placement.place("l1")
    assert busy.value.code == "placement_busy"
    await redis.delete(lock)
    assert (await a.placement.place("l1")).id == "a"
    assert await redis.exists(lock) == 0


async def test_a_lesson_placed_but_never_joined_is_released_after_the_idle_time(
    make_node: MakeNode,
) -> None:
    a = await make_node("a", idle_release_s=0.3)
    await a.placement.place("joined")
    await a.placement.place("never")
    a.lessons.add("joined")
    await asyncio.sleep(0.4)
    refreshed = await a.placement.refresh(a.lessons)
    assert refreshed.idle == ["never"] and refreshed.lost == []
    assert await a.placement.lessons() == {"joined": "a"}


async def test_a_home_restores_the_entry_of_its_live_lesson_after_redis_lost_it(
    make_node: MakeNode, redis: Redis
) -> None:
    a, b = await make_node("a"), await make_node("b", cpu=0.5)
    assert (await a.placement.place("l1")).id == "a"
    a.lessons.add("l1")
    await redis.delete(a.placement.lesson_key("l1"), a.placement.homed_key("a"))  # a flush
    assert await b.placement.home_id("l1") is None
    refreshed = await a.placement.refresh(a.lessons)
    assert refreshed.lost == [] and await b.placement.home_id("l1") == "a"
    assert (await b.placement.place("l1")).id == "a"

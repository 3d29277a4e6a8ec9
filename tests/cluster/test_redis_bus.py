"""The Redis bus: ordered delivery with sequence numbers, hiccups, gaps, overflow."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cluster_support import REDIS_URL, MakeBus
from fault_proxy import FaultProxy
from redis.asyncio import Redis

from signaling.bus import GAP_TYPE, LocalBus, open_bus
from signaling.redis_bus import BusUnavailable, RedisBus, RedisSubscription

pytestmark = pytest.mark.redis


async def take(sub: RedisSubscription, n: int, within_s: float = 10.0) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [await sub.get() for _ in range(n)]

    return await asyncio.wait_for(collect(), within_s)


async def wait_until(predicate: Any, within_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_messages_cross_nodes_in_order_with_consecutive_sequence_numbers(
    make_bus: MakeBus,
) -> None:
    a, b = await make_bus(node_id="a"), await make_bus(node_id="b")
    sub_b, other = b.subscribe("lesson:1"), b.subscribe("lesson:2")
    sub_a = a.subscribe("lesson:1")  # the publisher's own node hears it too
    seqs = [await a.publish("lesson:1", {"n": n, "text": "上课"}) for n in range(50)]
    assert seqs == list(range(1, 51))
    got = await take(sub_b, 50)
    assert [m["n"] for m in got] == list(range(50)) and got[0]["text"] == "上课"
    assert sub_b.last_seq == 50 and sub_b.gaps == 0
    assert [m["n"] for m in await take(sub_a, 50)] == list(range(50))
    assert other.queue.empty()


async def test_a_subscription_starts_now_and_a_closed_one_gets_nothing(make_bus: MakeBus) -> None:
    bus = await make_bus()
    await bus.publish("c", {"n": "before"})
    await asyncio.sleep(0.3)
    sub, gone = bus.subscribe("c"), bus.subscribe("c")
    gone.close()
    await bus.publish("c", {"n": "after"})
    assert await take(sub, 1) == [{"n": "after"}]
    await asyncio.sleep(0.1)
    assert sub.queue.empty() and gone.queue.empty()


async def test_what_is_published_during_a_hiccup_arrives_after_it_in_order(
    make_bus: MakeBus, proxy: FaultProxy
) -> None:
    publisher = await make_bus()
    subscriber = await make_bus(proxy.url)
    sub = subscriber.subscribe("c")
    await publisher.publish("c", {"n": -1})
    assert await take(sub, 1) == [{"n": -1}]
    proxy.down()
    await wait_until(lambda: not subscriber.connected)
    for n in range(20):
        await publisher.publish("c", {"n": n})
    await asyncio.sleep(0.3)  # it keeps trying (and failing) to reconnect meanwhile
    proxy.up()
    got = await take(sub, 20)
    assert [m["n"] for m in got] == list(range(20)), "nothing lost, nothing reordered"
    assert sub.gaps == 0 and subscriber.reconnects >= 1 and subscriber.connected


async def test_messages_trimmed_away_during_a_hiccup_are_reported_as_a_gap(
    make_bus: MakeBus, proxy: FaultProxy
) -> None:
    publisher = await make_bus(stream_maxlen=10)
    subscriber = await make_bus(proxy.url)
    sub = subscriber.subscribe("c")
    await publisher.publish("c", {"n": 0})
    assert await take(sub, 1) == [{"n": 0}]
    proxy.down()
    await wait_until(lambda: not subscriber.connected)
    for n in range(1, 601):  # MAXLEN ~ trims whole stream nodes (100 entries) at a time
        await publisher.publish("c", {"n": n})
    proxy.up()
    gap = await take(sub, 1)
    first_kept = await take(sub, 1)
    assert gap[0]["type"] == GAP_TYPE and gap[0]["reason"] == "trimmed" and not gap[0]["reset"]
    assert gap[0]["missed"] == first_kept[0]["n"] - 1 > 0
    rest = await take(sub, 600 - first_kept[0]["n"])
    assert [m["n"] for m in rest] == list(range(first_kept[0]["n"] + 1, 601))


async def test_a_sequence_reset_such_as_a_redis_restart_is_reported(
    make_bus: MakeBus, redis: Redis
) -> None:
    bus = await make_bus()
    sub = bus.subscribe("c")
    for n in range(3):
        await bus.publish("c", {"n": n})
    assert len(await take(sub, 3)) == 3
    # What a restart without persistence does to the counter.
    await redis.delete(bus.stream_key("c") + ":seq")
    assert await bus.publish("c", {"n": "again"}) == 1
    gap, message = await take(sub, 2)
    assert gap["type"] == GAP_TYPE and gap["reset"] and message == {"n": "again"}


async def test_a_full_subscriber_drops_and_then_reports_a_gap(make_bus: MakeBus) -> None:
    bus = await make_bus()
    sub = bus.subscribe("c", maxsize=3)
    for n in range(10):
        await bus.publish("c", {"n": n})
    await wait_until(lambda: sub.dropped > 0)
    await asyncio.sleep(0.1)
    first = await take(sub, 3)
    assert [m["n"] for m in first] == [0, 1, 2]
    await bus.publish("c", {"n": 10})
    gap, message = await take(sub, 2)
    assert gap["type"] == GAP_TYPE and gap["reason"] == "overflow"
    assert gap["missed"] == 7 == sub.dropped and message == {"n": 10}


async def test_a_publish_rides_out_a_brief_outage_and_fails_loudly_on_a_long_one(
    make_bus: MakeBus, proxy: FaultProxy
) -> None:
    listener = await make_bus()
    sub = listener.subscribe("c")
    bus = await make_bus(proxy.url, publish_timeout_s=1.5)
    proxy.down()
    loop = asyncio.get_running_loop()
    loop.call_later(0.4, proxy.up)
    assert await bus.publish("c", {"n": "late"}) == 1
    assert await take(sub, 1) == [{"n": "late"}]
    proxy.down()
    started = loop.time()
    with pytest.raises(BusUnavailable, match=r"within 1\.5s"):
        await bus.publish("c", {"n": "lost"})
    assert loop.time() - started < 5


async def test_subscribing_while_a_read_is_blocked_is_served_at_once(make_bus: MakeBus) -> None:
    bus = await make_bus(block_ms=5000)
    first = bus.subscribe("one")
    await asyncio.sleep(0.2)  # the reader now blocks in XREAD on "one" only
    second = bus.subscribe("two")
    await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    await bus.publish("two", {"n": 1})
    assert await take(second, 1, within_s=2.0) == [{"n": 1}]
    assert asyncio.get_running_loop().time() - started < 2.0
    assert first.queue.empty()


async def test_open_bus_chooses_by_url_and_refuses_an_unreachable_redis(prefix: str) -> None:
    async with open_bus("", node_id="solo") as local:
        assert isinstance(local, LocalBus) and local.node_id == "solo"
    async with open_bus(REDIS_URL, node_id="n1", prefix=prefix) as bus:
        assert isinstance(bus, RedisBus) and bus.node_id == "n1"
        await bus.ping()
    with pytest.raises(RuntimeError, match="does not answer"):
        async with open_bus("redis://127.0.0.1:1/0", prefix=prefix):
            pass

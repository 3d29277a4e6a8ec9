"""The in-process bus and directory."""

from __future__ import annotations

import pytest

from signaling.bus import LocalBus, open_bus


async def test_a_published_message_reaches_every_subscriber_of_the_channel() -> None:
    bus = LocalBus()
    a, b, other = bus.subscribe("lesson:1"), bus.subscribe("lesson:1"), bus.subscribe("x")
    await bus.publish("lesson:1", {"type": "stage_changed"})
    assert await a.get() == {"type": "stage_changed"}
    assert await b.get() == {"type": "stage_changed"}
    assert other.queue.empty()


async def test_a_full_subscriber_drops_instead_of_blocking_the_publisher() -> None:
    bus = LocalBus()
    sub = bus.subscribe("c", maxsize=1)
    await bus.publish("c", {"n": 1})
    await bus.publish("c", {"n": 2})
    assert sub.dropped == 1 and await sub.get() == {"n": 1}


async def test_a_closed_subscription_gets_nothing_more() -> None:
    bus = LocalBus()
    sub = bus.subscribe("c")
    sub.close()
    await bus.publish("c", {"n": 1})
    assert sub.queue.empty()


async def test_one_node_is_the_home_of_every_lesson_it_claims() -> None:
    bus = LocalBus("node-a")
    assert await bus.claim_lesson("l1") == "node-a"
    await bus.release_lesson("l1")
    assert await bus.claim_lesson("l1") == "node-a"


async def test_open_bus_without_redis_is_local_and_refuses_an_unreachable_redis() -> None:
    async with open_bus("") as bus:
        await bus.ping()
        assert isinstance(bus, LocalBus)
    # The Redis bus itself is tested against the real Redis in tests/cluster/.
    with pytest.raises(RuntimeError, match="TONGKE_REDIS_URL"):
        async with open_bus("redis://127.0.0.1:1/0"):
            pass

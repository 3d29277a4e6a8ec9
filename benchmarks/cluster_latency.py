"""Many nodes: Redis bus delivery latency and lesson placement time, against a real Redis.

Two RedisBuses (as two nodes would have) on one channel; then three registered nodes
placing 300 new lessons in turn. Keys live under a fresh prefix and are removed afterwards.
Run:  .venv/bin/python benchmarks/cluster_latency.py [redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid

from server.cluster import ClusterNode
from signaling.bus import open_bus
from signaling.redis_bus import RedisBus, connect_redis


async def main(url: str) -> None:
    prefix = f"tongke-bench:{uuid.uuid4().hex[:8]}:"
    async with (
        open_bus(url, node_id="a", prefix=prefix) as a,
        open_bus(url, node_id="b", prefix=prefix) as b,
    ):
        assert isinstance(a, RedisBus) and isinstance(b, RedisBus)
        sub = b.subscribe("lesson:x")
        await asyncio.sleep(0.1)
        latencies = []
        for n in range(500):
            started = time.perf_counter()
            await a.publish("lesson:x", {"n": n})
            await sub.get()
            latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
        print(
            f"bus publish -> receive on another bus: median {statistics.median(latencies):.2f} ms,"
            f" p99 {latencies[int(len(latencies) * 0.99)]:.2f} ms (n=500)"
        )
    redis = connect_redis(url)
    try:
        nodes = [
            ClusterNode(redis, prefix=prefix, node_id=n, url=f"http://{n}:8000", max_peers=100)
            for n in ("a", "b", "c")
        ]
        for node in nodes:
            await node.registry.register()
        started = time.perf_counter()
        for n in range(300):
            await nodes[n % 3].placement.place(f"lesson-{n}")
        each = (time.perf_counter() - started) * 1000 / 300
        print(f"placing a new lesson (3 nodes: lock, read loads, choose, write): {each:.2f} ms")
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"))

"""Micro-benchmark of the forwarding hot path: one VP8 producer fanned out to 50 consumers.

No sockets: the Router, Producer and LayeredConsumers of media/ with counting sinks, fed
6000 packets. Run:  .venv/bin/python benchmarks/fanout_micro.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "media"))

from core_support import Clock, params, video

from media.router import Router

CONSUMERS = 50
PACKETS = 6000


class CountingSink:
    def __init__(self) -> None:
        self.sent = 0

    def send_rtp(self, data: bytes) -> None:
        self.sent += 1

    def send_rtcp(self, data: bytes) -> None:
        return None


def main() -> None:
    clock = Clock()
    router = Router("bench", clock=clock)
    producer = router.create_producer("p", "video", "camera", "main", params(), CountingSink())
    sinks = [CountingSink() for _ in range(CONSUMERS)]
    for i, sink in enumerate(sinks):
        router.create_consumer(f"c{i}", "p", params(ssrc=5000 + i), sink)
    packets = [video(i, i * 3000, key=(i % 300 == 0), marker=True) for i in range(1, PACKETS + 1)]
    start = time.perf_counter()
    for packet in packets:
        producer.receive_rtp(packet, clock.advance(1))
    elapsed = time.perf_counter() - start
    sent = sum(sink.sent for sink in sinks)
    print(
        f"{sent} packets sent to {CONSUMERS} consumers: "
        f"{elapsed * 1e6 / sent:.2f} µs per packet per consumer"
    )


if __name__ == "__main__":
    main()

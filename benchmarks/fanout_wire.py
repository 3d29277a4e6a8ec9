"""The whole per-copy path of one forwarded packet, without ICE/DTLS set-up costs.

One VP8 producer (1,150-byte payloads, as the 1 Mbit/s camera sends) fanned out to 50
LayeredConsumers whose sinks are the product's ``SrtpLink``s: a real SRTP session each
(AES-256-GCM, what two aiortc peers negotiate) and a real UDP socket each on loopback, sent
through the event loop's datagram transport as on the server (uvloop when installed). The
receiving sockets are drained outside the timed section. Run:

    .venv/bin/python benchmarks/fanout_wire.py

It prints the time of one packet's whole fan-out and per copy; ``tongke bench`` reports the
same handling time as ``handling`` under the forwarding delay.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "media"))

from aiortc.rtcdtlstransport import SRTP_AEAD_AES_256_GCM
from core_support import VP8_DELTA, VP8_KEY, Clock, params, video
from pylibsrtp import Policy, Session

from media.aiortc_hooks import SrtpLink
from media.router import Router

CONSUMERS = 50
PACKETS = 3000
FILLER = os.urandom(1140)


def srtp_session() -> Session:
    profile = SRTP_AEAD_AES_256_GCM
    key = os.urandom(profile.key_length + profile.salt_length)
    policy = Policy(
        key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile.libsrtp_profile
    )
    return Session(policy=policy)


async def link_to(receiver: socket.socket) -> SrtpLink:
    """An SrtpLink whose nominated pair sends from its own socket to ``receiver``."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    pair = SimpleNamespace(
        protocol=SimpleNamespace(transport=transport), remote_addr=receiver.getsockname()
    )
    connection = SimpleNamespace(_nominated={1: pair}, _queue=asyncio.Queue())
    dtls = SimpleNamespace(
        transport=SimpleNamespace(_connection=connection), _tx_srtp=srtp_session(), _rx_srtp=None
    )
    return SrtpLink(dtls)  # type: ignore[arg-type]


def drain(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        try:
            while True:
                sock.recv(2048)
        except BlockingIOError:
            pass


async def main() -> None:
    receivers = []
    for _ in range(CONSUMERS):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        receivers.append(sock)
    links = [await link_to(sock) for sock in receivers]
    clock = Clock()
    router = Router("bench", clock=clock)
    # The lead's camera: main and low copies, as the synthetic and web leads publish it.
    producer = router.create_producer(
        "p", "video", "camera", "main", params(), links[0], group="cam"
    )
    low = params(ssrc=3000, rtx_ssrc=3001)
    router.create_producer("q", "video", "camera", "low", low, links[0], group="cam")
    for i, link in enumerate(links):
        router.create_consumer(f"c{i}", "p", params(ssrc=5000 + i), link)
    packets = [
        video(i, i * 3000, marker=True, payload=(VP8_KEY if i % 300 == 1 else VP8_DELTA) + FILLER)
        for i in range(1, PACKETS + 1)
    ]
    took: list[float] = []
    for i, packet in enumerate(packets):
        arrival = clock.advance(1)
        start = time.perf_counter()
        producer.receive_rtp(packet, arrival)
        took.append(time.perf_counter() - start)
        if i % 4 == 3:
            drain(receivers)
    sent = sum(c.stats().packets_sent for c in router.consumers.values())
    if sent < CONSUMERS * (PACKETS - 300):
        raise SystemExit(f"only {sent} copies were sent: the consumers did not start")
    took = took[300:]  # from the second keyframe on: every consumer is forwarding
    fanout_us = statistics.median(took) * 1e6
    print(
        f"{type(asyncio.get_running_loop()).__module__} loop, {CONSUMERS} consumers: one packet's "
        f"fan-out p50 {fanout_us:.0f} µs, p99 {statistics.quantiles(took, n=100)[98] * 1e6:.0f} µs,"
        f" {fanout_us / CONSUMERS:.2f} µs per copy"
    )


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())

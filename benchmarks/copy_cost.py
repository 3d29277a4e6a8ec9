"""The two fixed costs of one forwarded copy, in isolation: SRTP protect and a UDP send.

    .venv/bin/python benchmarks/copy_cost.py

Compare with the per-copy CPU `tongke bench` reports (handling CPU / N at a point): what
exceeds the sum of these two and the rewrite (benchmarks/fanout_micro.py) is the product's
own per-copy path.
"""

from __future__ import annotations

import os
import socket
import time

from pylibsrtp import Policy, Session

PACKETS = 20_000
PAYLOAD = 1100  # a full VP8 packet of the 1 Mbit/s camera


def rtp_packet(seq: int, payload: bytes) -> bytes:
    header = bytes([0x80, 96]) + seq.to_bytes(2, "big") + bytes(4) + (1234).to_bytes(4, "big")
    return header + payload


def protect_us() -> float:
    session = Session(policy=Policy(key=os.urandom(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    payload = os.urandom(PAYLOAD)
    packets = [rtp_packet(i, payload) for i in range(PACKETS)]
    start = time.perf_counter()
    for packet in packets:
        session.protect(packet)
    return (time.perf_counter() - start) / PACKETS * 1e6


def sendto_us() -> float:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        tx.setblocking(False)
        address = rx.getsockname()
        data = rtp_packet(0, os.urandom(PAYLOAD + 10))
        start = time.perf_counter()
        for i in range(PACKETS):
            try:
                tx.sendto(data, address)
            except BlockingIOError:
                pass
            if i % 200 == 0:  # keep the receiver's buffer from filling (counted in the time)
                try:
                    while True:
                        rx.recv(2048)
                except BlockingIOError:
                    pass
        return (time.perf_counter() - start) / PACKETS * 1e6


if __name__ == "__main__":
    print(f"SRTP protect: {protect_us():.1f} µs per packet")
    print(f"loopback sendto: {sendto_us():.1f} µs per packet")

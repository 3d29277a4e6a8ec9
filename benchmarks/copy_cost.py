"""The two fixed costs of one forwarded copy, in isolation: SRTP protect and a UDP send.

SRTP is timed with AES-CM (libsrtp's default policy) and with AES-256-GCM, what two aiortc
peers negotiate, both through pylibsrtp's public ``protect`` and through the product's
``RtpProtector`` (media/aiortc_hooks.py), which skips its per-call allocation.

    .venv/bin/python benchmarks/copy_cost.py

Compare with the per-copy CPU `tongke bench` reports (handling CPU / N at a point): what
exceeds the sum of these two and the rewrite (benchmarks/fanout_micro.py) is the product's
own per-copy path.
"""

from __future__ import annotations

import os
import socket
import time

from aiortc.rtcdtlstransport import SRTP_AEAD_AES_256_GCM
from pylibsrtp import Policy, Session

from media.aiortc_hooks import RtpProtector

PACKETS = 20_000
PAYLOAD = 1100  # a full VP8 packet of the 1 Mbit/s camera


def rtp_packet(seq: int, payload: bytes) -> bytes:
    header = bytes([0x80, 96]) + seq.to_bytes(2, "big") + bytes(4) + (1234).to_bytes(4, "big")
    return header + payload


def protect_us(gcm: bool = False, protector: bool = False) -> float:
    outbound = Policy.SSRC_ANY_OUTBOUND
    if gcm:
        profile = SRTP_AEAD_AES_256_GCM
        key = os.urandom(profile.key_length + profile.salt_length)
        policy = Policy(key=key, ssrc_type=outbound, srtp_profile=profile.libsrtp_profile)
    else:
        policy = Policy(key=os.urandom(30), ssrc_type=outbound)
    session = Session(policy=policy)
    protect = RtpProtector(session).protect if protector else session.protect
    payload = os.urandom(PAYLOAD)
    packets = [rtp_packet(i, payload) for i in range(PACKETS)]
    start = time.perf_counter()
    for packet in packets:
        protect(packet)
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
    print(f"SRTP protect, AES-256-GCM: {protect_us(gcm=True):.2f} µs per packet")
    print(f"  the same through RtpProtector: {protect_us(gcm=True, protector=True):.2f} µs")
    print(f"loopback sendto: {sendto_us():.1f} µs per packet")

"""The bench's forwarding-delay probe: kernel socket stamps, sampling, and off by default."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from aiortc import RTCPeerConnection

from media import aiortc_hooks as hooks
from media.forward_probe import ForwardProbe

WATCHED = 0x11223344


def rtp(ssrc: int, seq: int) -> bytes:
    return bytes([0x80, 96]) + seq.to_bytes(2, "big") + bytes(4) + ssrc.to_bytes(4, "big") + b"x"


@pytest.fixture
def udp() -> Iterator[tuple[socket.socket, socket.socket]]:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield server, client
    server.close()
    client.close()


def primed(udp: tuple[socket.socket, socket.socket], capacity: int, every: int) -> ForwardProbe:
    """A probe watching WATCHED, with the socket's kernel timestamps on and a moment given
    to the kernel: until then a datagram may carry no stamp (the probe counts that sample
    as an error, and the bench drops its warm-up samples)."""
    server, client = udp
    probe = ForwardProbe(capacity=capacity, every=every)
    probe.watch([WATCHED])
    probe.enable_timestamps(server.fileno())
    time.sleep(0.05)
    client.sendto(b"warm-up", server.getsockname())
    server.recv(2048)
    time.sleep(0.05)
    return probe


def test_delay_counts_the_wait_in_the_socket_buffer_and_the_handling(
    udp: tuple[socket.socket, socket.socket],
) -> None:
    server, client = udp
    probe = primed(udp, capacity=8, every=1)
    handled: list[bytes] = []

    def handle(data: bytes, component: int) -> None:
        handled.append(data)
        time.sleep(0.005)  # the fan-out

    probed = probe.wrap(handle, server.fileno)
    for seq in range(4):
        client.sendto(rtp(WATCHED, seq), server.getsockname())
        time.sleep(0.02)  # the event loop was busy: the datagram waits in the socket buffer
        probed(server.recv(2048), 1)
    assert len(handled) == 4
    summary = probe.summary()
    assert summary["samples"] == 4 and summary["errors"] == 0
    assert summary["socket_wait_ms"]["p50"] >= 19
    assert summary["handling_ms"]["p50"] >= 4.9
    assert summary["total_ms"]["p50"] >= 24
    assert summary["total_ms"]["max"] < 1000


def test_copies_sent_while_sampling_give_the_mean_copy_delay(
    udp: tuple[socket.socket, socket.socket],
) -> None:
    server, client = udp
    probe = primed(udp, capacity=8, every=1)
    sent: list[bytes] = []
    send = probe.wrap_send(lambda data, addr: sent.append(data))

    def fan_out(data: bytes, component: int) -> None:
        send(b"first copy", None)
        time.sleep(0.02)
        send(b"second copy", None)

    probed = probe.wrap(fan_out, server.fileno)
    for seq in range(3):
        client.sendto(rtp(WATCHED, seq), server.getsockname())
        probed(server.recv(2048), 1)
    send(b"outside a sampled packet", None)  # sent, not stamped
    assert len(sent) == 7
    summary = probe.summary()
    assert summary["samples"] == 3
    # The average copy left about half-way through the 20 ms fan-out; the last at its end.
    assert 9 <= summary["mean_copy_ms"]["p50"] < summary["total_ms"]["p50"]
    assert summary["total_ms"]["p50"] >= 19


def test_only_watched_rtp_is_sampled_one_in_every(
    udp: tuple[socket.socket, socket.socket],
) -> None:
    server, client = udp
    probe = primed(udp, capacity=4, every=3)
    handled: list[bytes] = []
    probed = probe.wrap(lambda data, component: handled.append(data), server.fileno)
    rtcp = bytes([0x80, 200]) + bytes(6) + WATCHED.to_bytes(4, "big")
    for packet in [
        rtp(WATCHED, 0),
        rtp(7, 1),
        rtcp,
        b"\x16dtls",
        *(rtp(WATCHED, s) for s in range(12)),
    ]:
        client.sendto(packet, server.getsockname())
        probed(server.recv(2048), 1)
    assert len(handled) == 16  # every datagram is still handled
    # 13 watched RTP packets, one in three sampled.
    assert probe.summary()["samples"] == 4 and probe.errors == 0
    probe.reset()
    assert probe.summary()["samples"] == 0 and probe.summary()["total_ms"] is None


async def test_the_product_installs_the_plain_callback_without_a_probe() -> None:
    assert hooks.forward_probe is None
    pc = RTCPeerConnection()
    pc.addTransceiver("video")
    dtls = hooks.dtls_transport_of(pc)
    assert dtls is not None
    link = hooks.SrtpLink(dtls)
    link.attach(lambda data, ms: None, lambda data: None)
    connection = dtls.transport._connection
    assert connection.data_received.__name__ == "data_received"
    probe = ForwardProbe()
    hooks.forward_probe = probe
    try:
        hooks.SrtpLink(dtls).attach(lambda data, ms: None, lambda data: None)
        assert connection.data_received.__name__ == "probed"
    finally:
        hooks.forward_probe = None
        await pc.close()

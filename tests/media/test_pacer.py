"""VideoPacer: a synthetic publisher's video leaves spread in time, as a browser's pacer sends."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

import pytest

from media.aiortc_hooks import VideoPacer

VIDEO, RTX, AUDIO = 1111, 1112, 2222


def rtp(ssrc: int, size: int = 1200, seq: int = 0) -> bytes:
    header = bytes([0x80, 96]) + seq.to_bytes(2, "big") + bytes(4) + ssrc.to_bytes(4, "big")
    return header + bytes(size - 12)


def transport() -> tuple[SimpleNamespace, list[tuple[float, bytes]]]:
    """A stand-in for RTCDtlsTransport: only ``_send_rtp`` is used, and recorded here."""
    sent: list[tuple[float, bytes]] = []

    async def send_rtp(data: bytes) -> None:
        sent.append((asyncio.get_running_loop().time(), data))

    return SimpleNamespace(_send_rtp=send_rtp), sent


async def test_a_frame_leaves_at_the_pacing_rate_in_order() -> None:
    dtls, sent = transport()
    pacer = VideoPacer(dtls, {VIDEO, RTX}, rate_bps=960_000)  # 1200 B every 10 ms
    assert dtls._send_rtp == pacer.send
    start = asyncio.get_running_loop().time()
    for seq in range(8):  # aiortc awaits each packet of a frame in turn
        await dtls._send_rtp(rtp(VIDEO, seq=seq))
    times = [t for t, _ in sent]
    assert [int.from_bytes(d[2:4], "big") for _, d in sent] == list(range(8))
    assert times[0] - start < 0.005  # the first goes at once
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.009 and times[-1] - times[0] >= 0.069


async def test_audio_and_rtcp_are_never_held_behind_video() -> None:
    dtls, sent = transport()
    VideoPacer(dtls, {VIDEO}, rate_bps=96_000)  # 100 ms per video packet
    frame = asyncio.ensure_future(
        asyncio.gather(*(dtls._send_rtp(rtp(VIDEO, seq=s)) for s in range(3)))
    )
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    before = loop.time()
    await dtls._send_rtp(rtp(AUDIO, 200))
    rr = bytes([0x80, 201, 0, 1]) + (5).to_bytes(4, "big")
    await dtls._send_rtp(rr)
    assert loop.time() - before < 0.005
    assert [d for _, d in sent][-2:] == [rtp(AUDIO, 200), rr]
    await frame
    assert len(sent) == 5


async def test_disabled_pacer_sends_bursts_at_once() -> None:
    dtls, sent = transport()
    pacer = VideoPacer(dtls, {VIDEO}, rate_bps=96_000)
    pacer.enabled = False
    loop = asyncio.get_running_loop()
    before = loop.time()
    for seq in range(5):
        await dtls._send_rtp(rtp(VIDEO, seq=seq))
    assert loop.time() - before < 0.005 and len(sent) == 5


def test_a_pacer_needs_a_rate() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        VideoPacer(transport()[0], {VIDEO}, rate_bps=0)  # type: ignore[arg-type]

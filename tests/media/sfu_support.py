"""Shared helpers for the SFU integration tests (real aiortc peers on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from media.sfu import MediaService, ProducerInfo, TrackSpec
from media.synthetic.peers import SyntheticPublisher, SyntheticReceiver

LOOPBACK = ["127.0.0.1"]


async def wait_for(predicate: Callable[[], bool], within: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def publish(
    service: MediaService,
    lesson: str,
    peer: str,
    cache: Path,
    layers: Sequence[str] = ("main",),
    codec: str = "vp8",
) -> tuple[SyntheticPublisher, list[ProducerInfo]]:
    publisher = SyntheticPublisher(
        host_addresses=LOOPBACK, layers=layers, cache_dir=cache, codec=codec
    )
    offer = await publisher.create_offer()
    specs = [TrackSpec(t.mid, t.source, t.layer) for t in publisher.tracks]
    result = await service.publish(lesson, peer, offer, specs)
    await publisher.accept_answer(result.sdp)
    return publisher, list(result.producers)


async def subscribe(
    service: MediaService,
    lesson: str,
    peer: str,
    producer_ids: Sequence[str],
    receiver: SyntheticReceiver | None = None,
    layers: dict[str, str] | None = None,
) -> SyntheticReceiver:
    receiver = receiver or SyntheticReceiver(host_addresses=LOOPBACK, decode=True)
    result = await service.subscribe(lesson, peer, producer_ids, layers)
    while result is not None:
        answer = await receiver.accept_offer(result.sdp)
        result = await service.answer(peer, answer)
    return receiver


def video_ssrc(service: MediaService, peer: str) -> int:
    for info in service.consumers(peer):
        if info.kind == "video":
            consumer = service.consumer(peer, info.producer_id)
            return consumer.params.ssrc
    raise AssertionError("no video consumer")

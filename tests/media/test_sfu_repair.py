"""Loss repair and layer switching through the SFU, over real ICE/DTLS/SRTP on loopback."""

from __future__ import annotations

import pytest
from sfu_support import LOOPBACK, publish, subscribe, video_ssrc, wait_for

from media.faults import NO_FAULTS, FaultInjector
from media.sfu import MediaService


@pytest.fixture
async def service():  # type: ignore[no-untyped-def]
    svc = MediaService(host_addresses=LOOPBACK)
    yield svc
    await svc.close()


async def test_five_percent_loss_toward_one_subscriber_is_repaired_by_nack(
    service, clip_cache
) -> None:
    lead, producers = await publish(service, "L1", "lead", clip_cache)
    ids = [p.id for p in producers]
    lossy = await subscribe(service, "L1", "lossy", ids)
    clean = await subscribe(service, "L1", "clean", ids)
    try:
        await wait_for(lambda: lossy.decoded["video"] >= 10)
        faults = FaultInjector(drop_rate=0.05, seed=11)
        service.set_faults("lossy", faults)
        start = lossy.decoded["video"]
        await wait_for(lambda: lossy.decoded["video"] >= start + 90, within=20)
        service.set_faults("lossy", NO_FAULTS)
        await wait_for(lambda: lossy.decoded["video"] >= start + 100)
        assert faults.dropped > 10
        consumer = service.consumer("lossy", producers[0].id)
        assert consumer.stats().packets_retransmitted > 0
        assert lossy.decode_errors == 0 and clean.decode_errors == 0
        (video,) = lossy.of_kind("video")
        assert video.retransmissions > 0
        assert video.lost <= 2  # what is still missing is at most the newest, in flight
        assert service.consumer("clean", producers[0].id).stats().packets_retransmitted == 0
        assert video_ssrc(service, "lossy") in lossy.streams
    finally:
        await lossy.close()
        await clean.close()
        await lead.close()


async def test_switching_between_main_and_low_layers_never_breaks_decoding(
    service, clip_cache
) -> None:
    lead, producers = await publish(service, "L2", "lead", clip_cache, layers=("main", "low"))
    main, low, audio = producers
    assert (main.layer, low.layer) == ("main", "low")
    receiver = await subscribe(service, "L2", "r", [main.id, audio.id], layers={main.id: "low"})
    try:
        assert [c.kind for c in service.consumers("r")] == ["video", "audio"]  # one video m-line
        await wait_for(lambda: receiver.decoded["video"] >= 15)
        assert receiver.video_sizes == [(320, 240)]
        service.set_layer("r", main.id, "main")
        await wait_for(lambda: (640, 480) in receiver.video_sizes)
        count = receiver.decoded["video"]
        await wait_for(lambda: receiver.decoded["video"] >= count + 10)
        service.set_layer("r", low.id, "low")
        await wait_for(lambda: receiver.video_sizes[-1] == (320, 240))
        count = receiver.decoded["video"]
        await wait_for(lambda: receiver.decoded["video"] >= count + 10)
        assert receiver.video_sizes == [(320, 240), (640, 480), (320, 240)]
        assert receiver.decode_errors == 0
        (video,) = receiver.of_kind("video")
        assert video.lost == 0  # seq stays continuous across switches
        consumer = service.consumer("r", main.id)
        assert consumer.stats().layer_switches >= 2
    finally:
        await receiver.close()
        await lead.close()


async def test_a_bandwidth_cap_moves_the_subscriber_to_the_low_layer_cleanly(
    service, clip_cache
) -> None:
    from media.rtcp import RtcpRembPacket

    lead, producers = await publish(service, "L3", "lead", clip_cache, layers=("main", "low"))
    main = producers[0]
    receiver = await subscribe(service, "L3", "r", [main.id])
    try:
        await wait_for(lambda: receiver.decoded["video"] >= 15)
        assert receiver.video_sizes == [(640, 480)]
        ssrc = video_ssrc(service, "r")
        cap = bytes(RtcpRembPacket(sender_ssrc=1, bitrate=150_000, ssrcs=[ssrc]))
        await receiver.send_rtcp(cap)
        await wait_for(lambda: receiver.video_sizes[-1] == (320, 240))
        count = receiver.decoded["video"]
        await wait_for(lambda: receiver.decoded["video"] >= count + 10)
        assert receiver.decode_errors == 0
        assert service.consumer("r", main.id).current_layer == "low"
    finally:
        await receiver.close()
        await lead.close()


async def test_subscribing_again_at_another_layer_switches_the_existing_consumer(
    service, clip_cache
) -> None:
    # A patrol's thumbnail (low) clicked to the main picture: the same producers wanted again
    # with another layer keep their consumer, and that consumer must follow the new layer.
    lead, producers = await publish(service, "L4", "lead", clip_cache, layers=("main", "low"))
    main, low, audio = producers
    receiver = await subscribe(service, "L4", "r", [main.id, audio.id], layers={main.id: "low"})
    try:
        await wait_for(lambda: receiver.decoded["video"] >= 15)
        assert receiver.video_sizes == [(320, 240)]
        consumer = service.consumer("r", main.id)
        again = await service.subscribe("L4", "r", [main.id, audio.id], {main.id: "main"})
        assert again is None  # same m-lines: no renegotiation
        await wait_for(lambda: receiver.video_sizes[-1] == (640, 480))
        assert service.consumer("r", main.id) is consumer
        assert consumer.current_layer == "main"
        await service.subscribe("L4", "r", [low.id, audio.id], {low.id: "low"})
        await wait_for(lambda: receiver.video_sizes[-1] == (320, 240))
        assert receiver.decode_errors == 0
    finally:
        await receiver.close()
        await lead.close()

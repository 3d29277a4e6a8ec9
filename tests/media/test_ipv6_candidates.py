"""The SFU gathers IPv6 host candidates: `media_addresses` may name IPv6 addresses."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection

from media.aiortc_hooks import use_host_addresses


async def test_an_ipv6_media_address_becomes_a_host_candidate() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("video", direction="recvonly")
        use_host_addresses(pc, ["::1", "127.0.0.1"])
        await pc.setLocalDescription(await pc.createOffer())
        candidates = [
            line for line in pc.localDescription.sdp.splitlines() if "a=candidate:" in line
        ]
        assert any(" ::1 " in line and " typ host" in line for line in candidates), candidates
        assert any(" 127.0.0.1 " in line for line in candidates), candidates
    finally:
        await pc.close()

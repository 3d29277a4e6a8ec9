"""Guard: fails loudly when an aiortc/aioice upgrade moves an internal that the hooks use."""

import inspect

import aioice.ice
import aiortc
import pylibsrtp
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport

from media import aiortc_hooks as hooks


def params(fn: object) -> list[str]:
    return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]


def test_aiortc_is_the_pinned_version() -> None:
    assert aiortc.__version__ == hooks.AIORTC_VERSION == "1.16.0"
    hooks.check_version()


def test_dtls_transport_keeps_the_attributes_the_raw_path_uses() -> None:
    source = inspect.getsource(RTCDtlsTransport)
    for name in (
        "self._rx_srtp",
        "self._tx_srtp",
        "self._handle_rtp_data(",
        "self.transport._recv()",
    ):
        assert name in source, name
    assert params(RTCDtlsTransport._handle_rtp_data) == ["self", "data", "arrival_time_ms"]
    assert params(RTCDtlsTransport._handle_rtcp_data) == ["self", "data"]
    assert hasattr(pylibsrtp.Session, "protect") and hasattr(pylibsrtp.Session, "protect_rtcp")
    assert hasattr(pylibsrtp.Session, "unprotect") and hasattr(pylibsrtp.Session, "unprotect_rtcp")


def test_aioice_connection_keeps_queue_nomination_and_gathering_internals() -> None:
    init = inspect.getsource(aioice.ice.Connection.__init__)
    for name in ("self._queue", "self._nominated", "self._components", "self._local_candidates"):
        assert name in init, name
    assert params(aioice.ice.Connection.data_received) == ["self", "data", "component"]
    assert "self._queue.put_nowait((data, component))" in inspect.getsource(
        aioice.ice.Connection.data_received
    )
    gather = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "_local_candidates_start" in gather and "_local_candidates_end" in gather
    assert params(aioice.ice.Connection.get_component_candidates)[:3] == [
        "self",
        "component",
        "addresses",
    ]
    assert '!= "127.0.0.1"' in inspect.getsource(aioice.ice.get_host_addresses)
    assert "self.receiver.data_received(data" in inspect.getsource(
        aioice.ice.StunProtocol.datagram_received
    )
    assert "active_pair.protocol.send_data(data, active_pair.remote_addr)" in inspect.getsource(
        aioice.ice.Connection.sendto
    )
    assert "self.transport.sendto(data, addr)" in inspect.getsource(
        aioice.ice.StunProtocol.send_data
    )


def test_sender_receiver_and_transceiver_keep_the_hooked_members() -> None:
    assert params(RTCRtpSender.send) == ["self", "parameters"]
    assert params(RTCRtpReceiver.receive) == ["self", "parameters"]
    assert params(RTCRtpSender._handle_rtcp_packet) == ["self", "packet"]
    sender_init = inspect.getsource(RTCRtpSender.__init__)
    assert "self._ssrc" in sender_init and "self._rtx_ssrc" in sender_init
    assert "self.__decoder_thread" in inspect.getsource(RTCRtpReceiver.__init__)
    assert "failed to decode" in inspect.getsource(aiortc.rtcrtpreceiver.decoder_worker)
    transceiver_init = inspect.getsource(RTCRtpTransceiver.__init__)
    assert "self._codecs" in transceiver_init and "self._headerExtensions" in transceiver_init
    run_rtp = inspect.getsource(RTCRtpSender._run_rtp)
    assert "enc_frame = await self._next_encoded_frame(codec)" in run_rtp
    assert "packet.extensions.audio_level = (False, -enc_frame.audio_level)" in run_rtp
    # pack() of a pre-encoded av.Packet is the pass-through path synthetic publishers use.
    assert "self.__encoder.pack(data)" in inspect.getsource(RTCRtpSender._next_encoded_frame)


async def test_peer_connection_exposes_ice_connection_per_transceiver() -> None:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video", direction="sendonly")
    connection = transceiver.receiver.transport.transport.iceGatherer._connection
    assert isinstance(connection, aioice.ice.Connection)
    hooks.use_host_addresses(pc, ["127.0.0.1"])
    await pc.setLocalDescription(await pc.createOffer())
    hosts = {c.host for c in connection.local_candidates}
    assert hosts == {"127.0.0.1"}
    await pc.close()


async def _wait_for(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_raw_rtp_flows_through_the_hooks_without_decoding(clip_cache) -> None:  # type: ignore[no-untyped-def]
    """Publisher -> hooked pc (raw SRTP in) -> hooked pc (raw SRTP out) -> decoding receiver."""
    from aiortc import RTCSessionDescription

    from media.synthetic.peers import (
        SyntheticPublisher,
        SyntheticReceiver,
        _payload_offset,
        make_peer_connection,
        vp8_starts_keyframe,
    )

    loopback = ["127.0.0.1"]
    publisher = SyntheticPublisher(
        host_addresses=loopback, layers=("main",), audio=False, cache_dir=clip_cache
    )
    receiver = SyntheticReceiver(host_addresses=loopback, decode=True)
    inbound = make_peer_connection()
    outbound = make_peer_connection()
    try:
        await inbound.setRemoteDescription(
            RTCSessionDescription(await publisher.create_offer(), "offer")
        )
        for t in inbound.getTransceivers():
            hooks.neutralize_transceiver(t)
        hooks.use_host_addresses(inbound, loopback)
        link_in = hooks.SrtpLink(hooks.dtls_transport_of(inbound))
        await inbound.setLocalDescription(await inbound.createAnswer())
        await publisher.accept_answer(inbound.localDescription.sdp)

        out_t = outbound.addTransceiver("video", direction="sendonly")
        vp8 = [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType in ("video/VP8", "video/rtx")
        ]
        out_t.setCodecPreferences(vp8)
        hooks.neutralize_transceiver(out_t)
        hooks.use_host_addresses(outbound, loopback)
        link_out = hooks.SrtpLink(hooks.dtls_transport_of(outbound))
        await outbound.setLocalDescription(await outbound.createOffer())
        answer = await receiver.accept_offer(outbound.localDescription.sdp)
        await outbound.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        out_pt = hooks.negotiated_codecs(out_t)[0].payloadType
        out_ssrc, _ = hooks.sender_ssrcs(out_t.sender)

        offered_ssrcs, _ = hooks.media_ssrcs(
            hooks.parse_sdp(inbound.remoteDescription.sdp).media[0]
        )
        seen: list[int] = []
        rtcp_in: list[bytes] = []

        started = []

        def forward(data: bytes, arrival_ms: int) -> None:
            seen.append(int.from_bytes(data[8:12], "big"))
            if not started:  # the decoder needs a keyframe first
                if not (link_out.connected and vp8_starts_keyframe(data[_payload_offset(data) :])):
                    return
                started.append(True)
            packet = bytearray(data)
            packet[1] = (packet[1] & 0x80) | out_pt
            packet[8:12] = out_ssrc.to_bytes(4, "big")
            link_out.send_rtp(bytes(packet))

        link_in.attach(forward, rtcp_in.append)
        link_out.attach(lambda data, ms: None, lambda data: None)

        await _wait_for(lambda: receiver.decoded["video"] >= 30, within=15)
        # aiortc's first SR leaves 0.5-1.5 s after the start: it may trail 30 frames.
        await _wait_for(lambda: bool(rtcp_in), within=5)
        assert set(seen) == set(offered_ssrcs)
        assert receiver.decode_errors == 0
        assert receiver.streams[out_ssrc].first_frame_keyframe is True
        assert link_in.unprotect_errors == 0 and link_in.handler_errors == 0
        assert rtcp_in  # the publisher's SR/SDES came in raw too
    finally:
        await publisher.close()
        await receiver.close()
        await inbound.close()
        await outbound.close()


def test_candidate_pair_sdp_and_msid_internals_are_where_the_hooks_expect() -> None:
    assert isinstance(aioice.ice.CandidatePair.remote_addr, property)
    assert "self.protocol = protocol" in inspect.getsource(aioice.ice.CandidatePair.__init__)
    describe = inspect.getsource(aiortc.rtcpeerconnection.create_media_description_for_transceiver)
    assert "transceiver.sender._stream_id} {transceiver.sender._track_id" in describe
    assert "fmt=[c.payloadType for c in transceiver._codecs]" in describe
    media = aiortc.sdp.MediaDescription("video", 9, "UDP/TLS/RTP/SAVPF", [96])
    assert media.ssrc == [] and media.ssrc_group == []
    assert params(RTCDtlsTransport._send_rtp) == ["self", "data"]
    assert aiortc.rtcicetransport.parse_stun_turn_uri("stun:127.0.0.1:3478")["port"] == 3478
    assert "self.__cname" in inspect.getsource(aiortc.RTCPeerConnection.__init__)
    assert "cname=self.__cname" in inspect.getsource(aiortc.RTCPeerConnection.createOffer)
    assert "transceiver._codecs = common" in inspect.getsource(
        aiortc.RTCPeerConnection.setRemoteDescription
    )


def test_red_fmtp_without_a_key_survives_aiortcs_sdp_round_trip() -> None:
    # offer_red writes RED's fmtp as a bare key; negotiation reads an answer's the same way.
    assert aiortc.sdp.parameters_from_sdp("96/96") == {"96/96": None}
    assert aiortc.sdp.parameters_to_sdp({"96/96": None}) == "96/96"
    assert "audio/red" not in {c.mimeType.lower() for c in aiortc.codecs.CODECS["audio"]}


def test_rtp_protector_matches_pylibsrtp_and_its_pinned_internals() -> None:
    """RtpProtector calls libsrtp on pylibsrtp's session internals: same bytes as protect()."""
    import importlib.metadata
    import os

    from aiortc.rtcdtlstransport import SRTP_AEAD_AES_256_GCM as PROFILE
    from pylibsrtp import Policy, Session

    assert importlib.metadata.version("pylibsrtp") == hooks.PYLIBSRTP_VERSION == "1.0.0"
    key = os.urandom(PROFILE.key_length + PROFILE.salt_length)

    def session(direction: int) -> Session:
        return Session(Policy(key=key, ssrc_type=direction, srtp_profile=PROFILE.libsrtp_profile))

    ours, theirs = session(Policy.SSRC_ANY_OUTBOUND), session(Policy.SSRC_ANY_OUTBOUND)
    receiver = session(Policy.SSRC_ANY_INBOUND)
    protector = hooks.RtpProtector(ours)
    for seq in range(1, 200):
        plain = bytes([0x80, 96]) + seq.to_bytes(2, "big") + bytes(4) + b"\x00\x00\x04\xd2"
        plain += os.urandom(seq * 6)
        protected = protector.protect(plain)
        assert protected == theirs.protect(plain)
        assert receiver.unprotect(protected) == plain
    with pytest.raises(ValueError, match="too long"):
        protector.protect(bytes(1500))


async def test_the_dtls_interop_hooks_find_what_they_wrap() -> None:
    from aiortc.rtcdtlstransport import SRTP_PROFILES, RTCCertificate
    from OpenSSL import SSL

    pc = RTCPeerConnection()
    try:
        hooks.accept_rsa_peers(pc)
        (certificate,) = pc._RTCPeerConnection__certificates  # type: ignore[attr-defined]
        assert params(RTCCertificate._create_ssl_context) == ["self", "srtp_profiles"]
        context = certificate._create_ssl_context(srtp_profiles=SRTP_PROFILES)
        ciphers = SSL.Connection(context).get_cipher_list()
        tls12 = [c for c in ciphers if c.startswith("ECDHE-")]  # TLS 1.3 suites come first
        assert "ECDHE-RSA-AES128-GCM-SHA256" in tls12 and tls12[0].startswith("ECDHE-ECDSA")
        pc.addTransceiver("video")
        dtls = hooks.dtls_transport_of(pc)
        assert dtls is not None and dtls._role == "auto" and hooks.dtls_role(pc) == "auto"
        assert callable(dtls._RTCDtlsTransport__log_debug)  # type: ignore[attr-defined]
        source = inspect.getsource(RTCDtlsTransport)
        assert 'self.__log_debug("x DTLS handshake failed' in source
        assert 'if dtlsTransport._role == "auto"' in inspect.getsource(RTCPeerConnection)
    finally:
        await pc.close()

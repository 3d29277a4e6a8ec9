"""WebRtcTransport: one peer's WebRTC connection, on aiortc's RTCPeerConnection for ICE/DTLS/SDP.

A *send* transport receives what a peer publishes (the client offers, we answer recvonly); a
*receive* transport carries consumers to a peer (we offer sendonly m-lines, renegotiated as
subscriptions change; the client answers). aiortc's own media stack never runs: every
transceiver is neutralized and raw SRTP goes through :class:`media.aiortc_hooks.SrtpLink`.

Incoming RTP is parsed once and routed by SSRC (media or RTX) to its producer;
incoming RTCP is parsed and dispatched by SSRC (STYLE rule 9: dispatch, nothing more). The
transport is the RtpSink/RtcpSink of its consumers and producers: ``send_rtp``/``send_rtcp``
are plain synchronous calls (SRTP protect + sendto).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy

from media import aiortc_hooks as hooks
from media import rtcp, sdp_compat
from media.codecs import SDES_MID, CodecInfo, RtpParameters
from media.faults import NO_FAULTS, AnyFaults
from media.negotiation import (
    RED_PAYLOAD_TYPE,
    UNKNOWN_SSRC,
    IncomingTrack,
    NegotiationError,
    OutgoingTrack,
    capabilities_for,
    check_answer,
    check_publisher_offer,
    codec_info,
    describe_codec,
    incoming_tracks,
)
from media.rtp import RtpPacket

__all__ = [
    "IncomingTrack",
    "OutgoingTrack",
    "TransportError",
    "TransportState",
    "WebRtcTransport",
]

logger = logging.getLogger(__name__)

PC_CLOSE_S = 10.0  # the most closing a transport's RTCPeerConnection may take

# What ``WebRtcTransport.stats`` counts: packets that could not be used, and why.
TRANSPORT_COUNTERS = (
    "rtp_parse_errors",
    "rtcp_parse_errors",
    "unknown_ssrc_packets",
    "dropped_not_connected",
    "dropped_before_keys",
    "unprotect_errors",
    "handler_errors",
)


def add_counts(totals: dict[str, int], transport: WebRtcTransport) -> None:
    """Adds ``transport``'s packet counters to ``totals`` (kept when it closes)."""
    for key, value in transport.stats().items():
        totals[key] = totals.get(key, 0) + value


RTCP_INTERVAL_S = 1.0


TransportError = NegotiationError  # one error type for negotiation and transport calls


class TransportState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


class RtpStreamIn(Protocol):
    """What the transport calls on a producer (media/producer.py implements it)."""

    def receive_rtp(self, packet: RtpPacket, arrival_ms: int) -> None: ...
    def bind_ssrc(self, ssrc: int) -> None: ...
    def bind_rtx_ssrc(self, ssrc: int) -> None: ...
    def receive_sender_report(self, report: Any, arrival_ms: int) -> None: ...
    def get_rtcp(self, now_ms: int) -> list[bytes]: ...


class RtpStreamOut(Protocol):
    """What the transport calls on a consumer (media/consumer.py implements it)."""

    kind: str

    def receive_nack(self, seqs: Sequence[int]) -> None: ...
    def receive_key_frame_request(self) -> None: ...
    def receive_remb(self, bitrate_bps: int) -> None: ...
    def receive_receiver_report(self, block: Any) -> None: ...
    def get_rtcp(self, now_ms: int) -> list[bytes]: ...


class WebRtcTransport:
    """One WebRTC connection of a peer; ``direction`` is ``"send"`` (publishes) or ``"recv"``."""

    def __init__(
        self,
        transport_id: str,
        direction: str,
        *,
        ice_servers: Sequence[RTCIceServer] = (),
        host_addresses: Sequence[str] | None = None,
        on_state: Callable[[WebRtcTransport, TransportState], None] | None = None,
    ) -> None:
        if direction not in ("send", "recv"):
            raise ValueError(f"Transport direction must be 'send' or 'recv', got {direction!r}.")
        self.id = transport_id
        self.direction = direction
        self._pc = RTCPeerConnection(
            RTCConfiguration(iceServers=list(ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        hooks.accept_rsa_peers(self._pc)
        self._host_addresses = host_addresses
        self._on_state = on_state
        # Why the transport failed, in a sentence (empty until it does).
        self.failure_reason = ""
        self._state = TransportState.NEW
        self._link: hooks.SrtpLink | None = None
        # Fault injection (tests, drills): toward the peer and from it; NO_FAULTS costs nothing.
        self._to_faults: AnyFaults = NO_FAULTS
        self._from_faults: AnyFaults = NO_FAULTS
        # Monotonic ms of the last RTP/RTCP from the peer (-1: none yet): liveness for signaling.
        self.last_rx_ms = -1
        self._producers_by_ssrc: dict[int, RtpStreamIn] = {}
        self._consumers_by_ssrc: dict[int, RtpStreamOut] = {}
        self._producers: tuple[RtpStreamIn, ...] = ()
        # Producers of m-lines without a=ssrc (or without an RTX SSRC) until their first
        # packet names it: (producer, params, media bound, RTX bound).
        self._unbound: list[list[Any]] = []
        self._consumers: tuple[RtpStreamOut, ...] = ()
        self._video_consumers = 0
        self._outgoing: list[OutgoingTrack] = []
        self._connected_waiters: list[Callable[[], None]] = []
        self._timer: asyncio.Task[None] | None = None
        self.rtp_parse_errors = 0
        self.rtcp_parse_errors = 0
        self.unknown_ssrc_packets = 0
        # Sinks: rebound when connected and when faults change; drop until then.
        self.send_rtp: Callable[[bytes], None] = self._not_connected
        self.send_rtcp: Callable[[bytes], None] = self._not_connected
        self.dropped_not_connected = 0
        self._pc.on("connectionstatechange", self._on_pc_state)

    # -- state -------------------------------------------------------------------------------

    @property
    def state(self) -> TransportState:
        return self._state

    @property
    def closed(self) -> bool:
        return self._state is TransportState.CLOSED

    def _set_state(self, state: TransportState) -> None:
        if state is self._state:
            return
        self._state = state
        if state is TransportState.CONNECTED:
            self._bind_sinks()
            if self._timer is None:
                self._timer = asyncio.ensure_future(self._run_rtcp())
            waiters, self._connected_waiters = self._connected_waiters, []
            for waiter in waiters:
                self._call_safely(waiter)
        if self._on_state is not None:
            self._call_safely(lambda: self._on_state(self, state))  # type: ignore[misc]

    @staticmethod
    def _call_safely(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:
            logger.exception("transport listener failed")

    def _on_pc_state(self) -> None:
        if self._state is TransportState.CLOSED:
            return
        mapping = {
            "connecting": TransportState.CONNECTING,
            "connected": TransportState.CONNECTED,
            "failed": TransportState.FAILED,
            "closed": TransportState.FAILED,
        }
        state = mapping.get(self._pc.connectionState)
        if state is TransportState.FAILED and not self.failure_reason:
            dtls = hooks.dtls_transport_of(self._pc)
            ice_failed = dtls is not None and dtls.transport.state == "failed"
            self.failure_reason = (
                "ICE failed: no candidate pair answered (a firewall, or ICE servers missing)"
                if ice_failed
                else "the connection failed"
            )
        if state is not None:
            self._set_state(state)

    def _dtls_failed(self, reason: str) -> None:
        self.failure_reason = reason

    def when_connected(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once connected (now if already); never after close."""
        if self._state is TransportState.CONNECTED:
            self._call_safely(callback)
        elif self._state is not TransportState.CLOSED:
            self._connected_waiters.append(callback)

    # -- sinks -------------------------------------------------------------------------------

    def _not_connected(self, data: bytes) -> None:
        self.dropped_not_connected += 1

    def _bind_sinks(self) -> None:
        if self._link is None or self._state is not TransportState.CONNECTED:
            return
        faults = self._to_faults
        # Audio and RTCP go first through a capped link (audio keeps priority over video).
        self.send_rtp = faults.wrap(self._link.send_rtp, self._is_audio_rtp)
        self.send_rtcp = faults.wrap(self._link.send_rtcp, True)

    def _is_audio_rtp(self, data: bytes) -> bool:
        consumer = self._consumers_by_ssrc.get(int.from_bytes(data[8:12], "big"))
        return consumer is not None and consumer.kind == "audio"

    def set_faults(self, to_peer: AnyFaults, from_peer: AnyFaults = NO_FAULTS) -> None:
        """Tests and drills: route what is sent toward the peer through ``to_peer`` and what
        arrives from it through ``from_peer`` (NO_FAULTS restores the plain path).

        Consumers hold this transport as their sink and call ``send_rtp`` through it, so the
        change applies to them at once.
        """
        self._to_faults = to_peer
        self._from_faults = from_peer
        self._bind_sinks()
        if self._link is not None:
            self._attach_link(self._link)

    def _ensure_link(self) -> None:
        if self._link is not None:
            return
        dtls = hooks.dtls_transport_of(self._pc)
        if dtls is None:
            return
        self._link = hooks.SrtpLink(dtls)
        hooks.on_dtls_failure(dtls, self._dtls_failed)
        self._attach_link(self._link)

    def _attach_link(self, link: hooks.SrtpLink) -> None:
        faults = self._from_faults
        if not faults.active:
            link.attach(self._on_rtp, self._on_rtcp)
            return
        # Faulty path only: arrival is stamped when the packet leaves the injector.
        rtp_in = faults.wrap(lambda data: self._on_rtp(data, hooks.now_ms()), self._is_audio_in)
        rtcp_in = faults.wrap(self._on_rtcp, True)
        link.attach(lambda data, arrival_ms: rtp_in(data), rtcp_in)

    def _is_audio_in(self, data: bytes) -> bool:
        producer = self._producers_by_ssrc.get(int.from_bytes(data[8:12], "big"))
        return producer is not None and getattr(producer, "kind", "") == "audio"

    def _prepare_transceivers(self) -> None:
        for transceiver in self._pc.getTransceivers():
            hooks.neutralize_transceiver(transceiver)
        if self._host_addresses is not None:
            hooks.use_host_addresses(self._pc, self._host_addresses)
        self._ensure_link()

    # -- send transport: the client offers ------------------------------------------------

    async def accept_offer(
        self, sdp: str, *, allow_inactive: bool = False
    ) -> tuple[str, list[IncomingTrack]]:
        """Answer a publisher's offer; returns the answer SDP and one IncomingTrack per m-line.

        ``allow_inactive``: inactive m-lines are accepted (a cascade relay ends tracks so)."""
        self._check_open()
        if self.direction != "send":
            raise TransportError("bad_offer", "A receive transport does not take offers.")
        sdp = sdp_compat.normalize(sdp)
        try:
            description = hooks.parse_sdp(sdp)
        except (ValueError, IndexError, KeyError) as exc:
            raise TransportError("bad_sdp", f"The offer is not valid SDP: {exc}.") from exc
        check_publisher_offer(description, allow_inactive=allow_inactive)
        sdp_compat.check_transport_features(description, what="offer", code="bad_offer")
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            tracks = incoming_tracks(description, self._pc.getTransceivers())
            # The DTLS server, as standard stacks expect when the offer says actpass.
            hooks.answer_as_dtls_server(self._pc, description)
            self._prepare_transceivers()
            await self._pc.setLocalDescription(await self._pc.createAnswer())
        except TransportError:
            raise
        except Exception as exc:
            # aiortc applies what it can of an odd offer (an m-line it gives no transport,
            # say) and fails a step later; either way the offer is what was wrong.
            logger.debug("transport %s: offer refused", self.id, exc_info=True)
            raise TransportError("bad_offer", f"The offer was refused: {exc}.") from exc
        return self._pc.localDescription.sdp, tracks

    def attach_producer(self, producer: RtpStreamIn, params: RtpParameters) -> None:
        """Route incoming packets of ``params.ssrc`` and ``params.rtx_ssrc`` to ``producer``.

        An SSRC the offer did not announce (``UNKNOWN_SSRC``, or no RTX SSRC while RTX was
        negotiated) is bound to the first packet that names the m-line's MID in the
        sdes:mid header extension or, without one, carries its (RTX) payload type."""
        if params.ssrc != UNKNOWN_SSRC:
            self._producers_by_ssrc[params.ssrc] = producer
        if params.rtx_ssrc:
            self._producers_by_ssrc[params.rtx_ssrc] = producer
        rtx_open = params.codec.rtx_payload_type is not None and not params.rtx_ssrc
        if params.ssrc == UNKNOWN_SSRC or rtx_open:
            self._unbound.append([producer, params, params.ssrc != UNKNOWN_SSRC, not rtx_open])
        self._producers = (*self._producers, producer)

    def detach_producer(self, producer: RtpStreamIn) -> None:
        for ssrc in [s for s, p in self._producers_by_ssrc.items() if p is producer]:
            del self._producers_by_ssrc[ssrc]
        self._unbound = [entry for entry in self._unbound if entry[0] is not producer]
        self._producers = tuple(p for p in self._producers if p is not producer)

    def _bind_unknown(self, packet: RtpPacket) -> RtpStreamIn | None:
        """The producer an unannounced SSRC belongs to, bound from now on (None: no m-line
        claims it). Runs once per new SSRC, never on the steady path."""
        pt = packet.payload_type
        named: list[tuple[list[Any], bool]] = []  # the packet's MID names the m-line
        by_type: list[tuple[list[Any], bool]] = []  # no MID in the packet: payload type only
        for entry in self._unbound:
            _, params, media_bound, rtx_bound = entry
            codec = params.codec
            if not media_bound and pt == codec.payload_type:
                is_rtx = False
            elif not rtx_bound and pt == codec.rtx_payload_type:
                is_rtx = True
            else:
                continue
            mid_id = params.extension_id(SDES_MID)
            value = packet.get_extension(mid_id) if mid_id else None
            if value is None:
                by_type.append((entry, is_rtx))
            elif value == params.mid.encode():
                named.append((entry, is_rtx))
        matches = named or by_type
        if len(matches) != 1:
            return None  # nothing, or ambiguous without a MID: wait for a telling packet
        entry, is_rtx = matches[0]
        producer = entry[0]
        self._producers_by_ssrc[packet.ssrc] = producer
        if is_rtx:
            producer.bind_rtx_ssrc(packet.ssrc)
            entry[3] = True
        else:
            producer.bind_ssrc(packet.ssrc)
            entry[2] = True
        if entry[2] and entry[3]:
            self._unbound.remove(entry)
        return producer

    # -- receive transport: the server offers ----------------------------------------------

    def add_outgoing(
        self, codec: CodecInfo, stream_id: str, track_id: str, *, red: bool = False
    ) -> OutgoingTrack:
        """Add a sendonly m-line for ``codec`` (negotiated on the next ``create_offer``).

        ``red``: an Opus m-line is offered with RED (RFC 2198) too (media/negotiation.py)."""
        self._check_open()
        if self.direction != "recv":
            raise TransportError("bad_offer", "A send transport does not offer media.")
        offer = capabilities_for(codec)
        transceiver = self._pc.addTransceiver(codec.kind, direction="sendonly")
        transceiver.setCodecPreferences(offer.capabilities)
        if offer.fmtp is not None:  # H.264: the producer's exact profile-level-id
            hooks.fix_codec_parameters(transceiver, offer.applies, offer.fmtp)
        if red and codec.name == "OPUS":
            hooks.offer_red(transceiver, RED_PAYLOAD_TYPE)
        hooks.set_msid(transceiver.sender, stream_id, track_id)
        track = OutgoingTrack(kind=codec.kind, codec=codec, transceiver=transceiver)
        self._outgoing.append(track)
        self._prepare_transceivers()
        return track

    def remove_outgoing(self, track: OutgoingTrack) -> None:
        """Mark an m-line inactive (takes effect on the next offer); its consumer must be gone."""
        track.active = False
        track.transceiver.direction = "inactive"
        if track.params is not None:
            self._consumers_by_ssrc.pop(track.params.ssrc, None)

    async def create_offer(self) -> str:
        """A (re)offer with every outgoing m-line; fills each new track's mid and params."""
        self._check_open()
        await self._pc.setLocalDescription(await self._pc.createOffer())
        for track in self._outgoing:
            if track.params is not None or not track.active:
                continue
            transceiver = track.transceiver
            ssrc, rtx_ssrc = hooks.sender_ssrcs(transceiver.sender)
            codecs = hooks.negotiated_codecs(transceiver)
            info = codec_info(codecs)
            track.mid = str(transceiver.mid)
            track.params = RtpParameters(
                codec=info,
                ssrc=ssrc,
                rtx_ssrc=rtx_ssrc if info.rtx_payload_type is not None else None,
                header_extensions={
                    e.uri: e.id for e in hooks.negotiated_header_extensions(transceiver)
                },
                mid=track.mid,
                cname=hooks.local_cname(self._pc),
            )
        return self._pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> list[OutgoingTrack]:
        """Apply a subscriber's answer; returns the m-lines it refused this time.

        An m-line the answer rejects (port 0) or answers without a codec it was offered
        (H.264: packetization-mode=1) is ``refused``: it goes inactive and carries nothing;
        the rest of the answer applies. Each newly answered m-line's ``params`` name the
        codec the answer kept (for H.264 the producer's profile when the receiver kept it)."""
        self._check_open()
        if self._pc.signalingState != "have-local-offer":
            raise TransportError("bad_answer", "No offer is waiting for an answer.")
        sdp = sdp_compat.normalize(sdp)
        try:
            description = hooks.parse_sdp(sdp)
        except ValueError as exc:
            raise TransportError("bad_answer", f"The answer is not valid SDP: {exc}.") from exc
        sdp_compat.check_transport_features(description, what="answer", code="bad_answer")
        decided = check_answer(description, self._outgoing)
        offered = {t.mid: hooks.negotiated_codecs(t.transceiver) for t in self._outgoing if t.mid}
        refusing = [mid for mid, outcome in decided.items() if isinstance(outcome, str)]
        applied = sdp_compat.accept_rejected(description, offered, refusing)
        try:
            await self._pc.setRemoteDescription(
                RTCSessionDescription(sdp=applied or sdp, type="answer")
            )
        except Exception as exc:
            raise TransportError("bad_answer", f"The answer was refused: {exc}.") from exc
        refused: list[OutgoingTrack] = []
        for track in self._outgoing:
            outcome = decided.get(track.mid) if track.mid is not None else None
            if outcome is None or track.params is None:
                continue
            track.answered = True
            if isinstance(outcome, str):
                track.refused = outcome
                self.remove_outgoing(track)
                refused.append(track)
                continue
            info = codec_info(outcome)
            if info.payload_type != track.params.codec.payload_type:
                logger.info(
                    "transport %s: m-line %s answered %s for %s (forwarded as it is)",
                    self.id, track.mid, describe_codec(info), describe_codec(track.codec),
                )  # fmt: skip
            track.params = replace(
                track.params,
                codec=info,
                rtx_ssrc=(
                    hooks.sender_ssrcs(track.transceiver.sender)[1]
                    if info.rtx_payload_type is not None
                    else None
                ),
            )
        return refused

    @property
    def awaiting_answer(self) -> bool:
        return self._pc.signalingState == "have-local-offer"

    def attach_consumer(self, consumer: RtpStreamOut, params: RtpParameters) -> None:
        """Dispatch RTCP feedback about ``params.ssrc`` (and its RTX) to ``consumer``."""
        self._consumers_by_ssrc[params.ssrc] = consumer
        if params.rtx_ssrc:
            self._consumers_by_ssrc[params.rtx_ssrc] = consumer
        self._consumers = (*self._consumers, consumer)
        self._count_video()

    def detach_consumer(self, consumer: RtpStreamOut) -> None:
        for ssrc in [s for s, c in self._consumers_by_ssrc.items() if c is consumer]:
            del self._consumers_by_ssrc[ssrc]
        self._consumers = tuple(c for c in self._consumers if c is not consumer)
        self._count_video()

    def _count_video(self) -> None:
        self._video_consumers = sum(1 for c in self._consumers if c.kind == "video")

    # -- incoming packets (hot path) ----------------------------------------------------------

    def _on_rtp(self, data: bytes, arrival_ms: int) -> None:
        self.last_rx_ms = arrival_ms
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            self.rtp_parse_errors += 1
            return
        # The producer tells media from RTX packets itself (both SSRCs map to it).
        producer = self._producers_by_ssrc.get(packet.ssrc)
        if producer is None and self._unbound:
            producer = self._bind_unknown(packet)
        if producer is not None:
            producer.receive_rtp(packet, arrival_ms)
        else:
            self.unknown_ssrc_packets += 1

    def _on_rtcp(self, data: bytes) -> None:
        try:
            packets = rtcp.parse_compound(data)
        except ValueError:
            self.rtcp_parse_errors += 1
            return
        now = self.last_rx_ms = hooks.now_ms()
        consumers = self._consumers_by_ssrc
        for packet in packets:
            if isinstance(packet, rtcp.RtcpNackPacket):
                consumer = consumers.get(packet.media_ssrc)
                if consumer is not None:
                    consumer.receive_nack(packet.lost)
            elif isinstance(packet, rtcp.RtcpPliPacket):
                consumer = consumers.get(packet.media_ssrc)
                if consumer is not None:
                    consumer.receive_key_frame_request()
            elif isinstance(packet, rtcp.RtcpFirPacket):
                for ssrc, _ in packet.entries:
                    consumer = consumers.get(ssrc)
                    if consumer is not None:
                        consumer.receive_key_frame_request()
            elif isinstance(packet, rtcp.RtcpRembPacket):
                # REMB is the whole transport's budget: each video consumer gets its share.
                share = packet.bitrate // max(1, self._video_consumers)
                told: list[RtpStreamOut] = []
                for ssrc in packet.ssrcs:
                    consumer = consumers.get(ssrc)
                    if consumer is not None and consumer not in told:
                        told.append(consumer)
                        consumer.receive_remb(share)
            elif isinstance(packet, (rtcp.RtcpRrPacket, rtcp.RtcpSrPacket)):
                for block in packet.reports:
                    consumer = consumers.get(block.ssrc)
                    if consumer is not None:
                        consumer.receive_receiver_report(block)
                if isinstance(packet, rtcp.RtcpSrPacket):
                    producer = self._producers_by_ssrc.get(packet.ssrc)
                    if producer is not None:
                        producer.receive_sender_report(packet, now)

    # -- periodic RTCP ---------------------------------------------------------------------

    async def _run_rtcp(self) -> None:
        # Receiver reports upstream and sender reports downstream, about once a second.
        # (Producers send NACKs and keyframe requests themselves as packets arrive.)
        try:
            while True:
                await asyncio.sleep(RTCP_INTERVAL_S * (0.75 + random.random() / 2))
                now = hooks.now_ms()
                send = self.send_rtcp
                for stream in (*self._producers, *self._consumers):
                    for data in stream.get_rtcp(now):
                        send(data)
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("RTCP timer of transport %s stopped", self.id)

    # -- lifecycle ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state is TransportState.CLOSED:
            raise TransportError("transport_closed", f"Transport {self.id} is closed.")

    def stats(self) -> dict[str, int]:
        """The packet counters (``TRANSPORT_COUNTERS``) since this transport was made."""
        link = self._link
        return {
            "rtp_parse_errors": self.rtp_parse_errors,
            "rtcp_parse_errors": self.rtcp_parse_errors,
            "unknown_ssrc_packets": self.unknown_ssrc_packets,
            "dropped_not_connected": self.dropped_not_connected
            + (link.dropped_not_connected if link else 0),
            "dropped_before_keys": link.dropped_early if link else 0,
            "unprotect_errors": link.unprotect_errors if link else 0,
            "handler_errors": link.handler_errors if link else 0,
        }

    async def close(self) -> None:
        """Idempotent: stop the RTCP timer and the peer connection; sinks drop from now on."""
        if self._state is TransportState.CLOSED:
            return
        self.send_rtp = self._not_connected
        self.send_rtcp = self._not_connected
        self._connected_waiters.clear()
        self._set_state(TransportState.CLOSED)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._producers_by_ssrc.clear()
        self._consumers_by_ssrc.clear()
        self._producers = ()
        self._consumers = ()
        # aiortc's close can hang on a peer that vanished mid-handshake (aiortc#283,
        # aioice#12); one such peer must not hold up a leave, a lesson's end or shutdown.
        try:
            async with asyncio.timeout(PC_CLOSE_S):
                await self._pc.close()
        except TimeoutError:
            logger.warning("transport %s: the peer connection did not close in %.0f s",
                           self.id, PC_CLOSE_S)  # fmt: skip
        except Exception:
            # A remote description aiortc half-applied (a refused malformed offer) leaves
            # transceivers without a transport; aiortc's close then fails on them. The
            # transport is closed for us either way.
            logger.debug("transport %s: aiortc failed while closing", self.id, exc_info=True)

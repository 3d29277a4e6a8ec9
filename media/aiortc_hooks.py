"""Every private aiortc/aioice hook tongke relies on, in one place.

aiortc is pinned to 1.16.0 (pyproject.toml). tests/media/test_aiortc_hooks.py fails loudly if
an upgrade moves any attribute used here; fix this module, nowhere else.

What is hooked, and why:
- aioice ``Connection.data_received(data, component)`` (instance attribute): once the DTLS
  handshake has produced SRTP keys, SRTP/SRTCP datagrams are unprotected and handed to plain
  callbacks right inside the datagram callback. Nothing is depayloaded, jitter-buffered or
  decoded, and no per-packet await or queue hop happens. DTLS datagrams still go to aioice's
  queue, so aiortc's DTLS loop keeps working (handshake, close alerts). SRTP that arrives
  before this side's handshake has produced the keys is held (aiortc would drop it) and
  handed over, in order, ahead of the first packet after the keys exist.
- Sending: ``RTCDtlsTransport._tx_srtp`` and the nominated candidate pair's datagram transport
  (``Connection._nominated[1].protocol.transport.sendto``), all sync. RTP is protected through
  pylibsrtp's session internals (``_srtp``, ``_cdata``, ``_buffer``; pylibsrtp pinned too):
  its public ``protect`` allocates and checks per call, a third of its cost per copy.
- ``RTCRtpSender.send`` / ``RTCRtpReceiver.receive`` (instance attributes) are replaced so the
  server never starts aiortc's encode/decode loops nor its own SR/RR for those streams.
- ``aiortc.codecs.CODECS["video"]`` gains H.264 Main, Constrained High and High
  (:func:`register_h264_profiles`, at import), and a subscriber's transceiver may be made
  an ``_FmtpTransceiver`` (:func:`fix_codec_parameters`) whose ``_codecs`` carry the
  producer's own H.264 fmtp (profile-level-id) in every offer, or RED over its Opus
  (:func:`offer_red`; aiortc has no RED codec of its own).
- Synthetic publishers only: ``RTCDtlsTransport._send_rtp`` of their send transport is wrapped
  by :class:`VideoPacer` (video leaves paced, as a browser sends it).
- aioice skips 127.0.0.1 when gathering host candidates (``aioice.ice.get_host_addresses``);
  :func:`use_host_addresses` makes a peer connection gather on the addresses it is given, which
  is how tests run ICE on loopback only, with ``RTCConfiguration(iceServers=[])``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiortc
import pylibsrtp
from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc import codecs as aiortc_codecs
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
)
from aiortc.sdp import MediaDescription, SessionDescription
from pylibsrtp._binding import ffi as srtp_ffi
from pylibsrtp._binding import lib as srtp_lib

logger = logging.getLogger(__name__)

AIORTC_VERSION = "1.16.0"
PYLIBSRTP_VERSION = "1.0.0"

RtpHandler = Callable[[bytes, int], None]
RtcpHandler = Callable[[bytes], None]


def check_version() -> None:
    """Raise RuntimeError unless the installed aiortc is the version these hooks target."""
    if aiortc.__version__ != AIORTC_VERSION:
        raise RuntimeError(
            f"tongke's media hooks need aiortc {AIORTC_VERSION}, found {aiortc.__version__}."
        )
    found = importlib.metadata.version("pylibsrtp")
    if found != PYLIBSRTP_VERSION:
        raise RuntimeError(
            f"tongke's media hooks need pylibsrtp {PYLIBSRTP_VERSION}, found {found}."
        )


def now_ms() -> int:
    """Monotonic milliseconds: the clock every arrival time in media/ uses."""
    return time.monotonic_ns() // 1_000_000


def dtls_transport_of(pc: RTCPeerConnection) -> RTCDtlsTransport | None:
    """The bundled DTLS transport of a peer connection (first transceiver's), if any."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return None
    return transceivers[0].receiver.transport


def nominated_candidate_types(pc: RTCPeerConnection) -> tuple[str, str] | None:
    """(local, remote) candidate types (host, srflx, prflx, relay) of the pair ICE nominated
    for ``pc``'s bundled transport, or None before nomination. aiortc exposes no selected
    pair; this reads aioice ``Connection._nominated[1]`` (tests prove media went via TURN)."""
    dtls = dtls_transport_of(pc)
    if dtls is None:
        return None
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        return None
    return str(pair.local_candidate.type), str(pair.remote_candidate.type)


def use_host_addresses(pc: RTCPeerConnection, addresses: Sequence[str]) -> None:
    """Make every not-yet-gathered ICE connection of ``pc`` gather host candidates on ``addresses``.

    Call after transceivers exist and before ``setLocalDescription``. aioice's own gathering
    skips 127.0.0.1, so loopback-only tests pass ``["127.0.0.1"]`` here.
    """
    wanted = list(addresses)
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        if getattr(connection, "_tongke_addresses", None) is not None:
            continue
        connection._tongke_addresses = wanted
        connection.gather_candidates = _gather_on(connection, wanted)


def _gather_on(connection: Any, addresses: list[str]) -> Callable[[], Any]:
    async def gather_candidates() -> None:
        # Mirrors aioice Connection.gather_candidates with our addresses instead of its list.
        if connection._local_candidates_start:
            return
        connection._local_candidates_start = True
        for component in connection._components:
            connection._local_candidates += await connection.get_component_candidates(
                component=component, addresses=addresses
            )
        connection._local_candidates_end = True

    return gather_candidates


def neutralize_transceiver(transceiver: RTCRtpTransceiver) -> None:
    """Stop aiortc from ever starting this transceiver's encode/decode and RTCP loops."""

    async def no_send(parameters: object) -> None:
        return None

    async def no_receive(parameters: object) -> None:
        return None

    transceiver.sender.send = no_send  # type: ignore[method-assign]
    transceiver.receiver.receive = no_receive  # type: ignore[method-assign]


# aiortc offers only ECDHE-ECDSA suites: as the DTLS client of a peer whose certificate is
# RSA (GStreamer's webrtcbin, many classroom terminals) it fails with "no shared cipher".
# The RSA suites are added after the ECDSA ones; a server with an ECDSA certificate still
# picks ECDSA.
DTLS_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)


def accept_rsa_peers(pc: RTCPeerConnection) -> None:
    """Let ``pc``'s DTLS handshakes use the RSA suites of :data:`DTLS_CIPHERS` too.

    Call right after making ``pc``: it wraps ``RTCCertificate._create_ssl_context`` of the
    certificates aiortc generated for it (``RTCPeerConnection.__certificates``)."""
    for certificate in pc._RTCPeerConnection__certificates:  # type: ignore[attr-defined]
        original = certificate._create_ssl_context

        def create_ssl_context(srtp_profiles: Any, _original: Any = original) -> Any:
            context = _original(srtp_profiles=srtp_profiles)
            context.set_cipher_list(DTLS_CIPHERS)
            return context

        certificate._create_ssl_context = create_ssl_context


def use_certificate(pc: RTCPeerConnection, certificate: Any) -> None:
    """Tests: make ``pc`` (before any transceiver exists) present ``certificate`` (an
    ``RTCCertificate``, e.g. RSA as GStreamer's) in its DTLS handshakes."""
    if pc.getTransceivers():
        raise ValueError("Set the certificate before adding transceivers.")
    pc._RTCPeerConnection__certificates = [certificate]  # type: ignore[attr-defined]


def answer_as_dtls_server(pc: RTCPeerConnection, offer: SessionDescription) -> None:
    """After an ``a=setup:actpass`` offer was applied: answer ``a=setup:passive``.

    aiortc answers ``active`` (it becomes the DTLS client) whenever the offer allows either;
    standard stacks and other SFUs answer ``passive``. createAnswer keeps a role already set
    on the transport (``RTCDtlsTransport._role``). An offer that chose (``active`` or
    ``passive``) is left to aiortc, which answers the other role."""
    if any(media.dtls is None or media.dtls.role != "auto" for media in offer.media):
        return
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if dtls is not None and dtls._role == "auto":
            dtls._set_role("server")


def dtls_role(pc: RTCPeerConnection) -> str:
    """``client``, ``server`` or ``auto``: the bundled DTLS transport's role."""
    dtls = dtls_transport_of(pc)
    return "auto" if dtls is None else str(dtls._role)


def on_dtls_failure(dtls: RTCDtlsTransport, callback: Callable[[str], None]) -> None:
    """Call ``callback(reason)`` when ``dtls``'s handshake fails, with OpenSSL's reason
    ("no shared cipher" ...). aiortc only writes it to its debug log, through the instance's
    private ``__log_debug``; this wraps that call."""
    original = dtls._RTCDtlsTransport__log_debug  # type: ignore[attr-defined]

    def log_debug(msg: str, *args: object) -> None:
        if msg.startswith("x DTLS handshake failed"):
            try:
                callback(msg[2:] % args)
            except Exception:
                logger.exception("DTLS failure listener failed")
        original(msg, *args)

    dtls._RTCDtlsTransport__log_debug = log_debug  # type: ignore[attr-defined]


def local_cname(pc: RTCPeerConnection) -> str:
    """The CNAME aiortc writes in this peer connection's a=ssrc lines."""
    return str(pc._RTCPeerConnection__cname)  # type: ignore[attr-defined]


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """The (media, RTX) SSRCs aiortc put in the SDP for this sender."""
    return sender._ssrc, sender._rtx_ssrc


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """Codecs aiortc negotiated for the transceiver (primary first, RTX included)."""
    return list(transceiver._codecs)


def keep_codecs(transceiver: RTCRtpTransceiver, codecs: Sequence[RTCRtpCodecParameters]) -> None:
    """Narrow what the next answer lists for this transceiver (after setRemoteDescription).

    The SFU answers one codec (+ its RTX) per published track so the publisher's choice is
    deterministic; createAnswer reads ``transceiver._codecs``.
    """
    transceiver._codecs = list(codecs)


# H.264 profiles aiortc 1.16 knows only as Baseline and Constrained Baseline (42001f,
# 42e01f). A 录播 host, OBS or GStreamer sends Main or High; aiortc refuses an offer or an
# answer whose H.264 profile none of its codecs shares, so these join its list. A codec's
# level is not compared (aiortc matches profile and packetization-mode only).
EXTRA_H264_PROFILE_LEVEL_IDS = ("4d001f", "640c1f", "64001f")  # Main, Constrained High, High


def register_h264_profiles() -> None:
    """Add Main, Constrained High and High (packetization-mode 1) to aiortc's video codecs,
    each with its RTX, on payload types after aiortc's own. Idempotent; every aiortc peer
    of this process (the SFU's and the synthetic ones) offers and accepts them from then on,
    after the codecs aiortc had (so an unpreferring aiortc offer still leads with VP8)."""
    video = aiortc_codecs.CODECS["video"]
    known = {
        str(c.parameters.get("profile-level-id"))
        for c in video
        if c.mimeType.lower() == "video/h264"
    }
    for profile_level_id in EXTRA_H264_PROFILE_LEVEL_IDS:
        if profile_level_id in known:
            continue
        pt = max(c.payloadType for c in video) + 1
        if pt + 1 > 127:
            raise RuntimeError("aiortc's dynamic payload types are used up.")
        video.append(
            RTCRtpCodecParameters(
                mimeType="video/H264",
                clockRate=90_000,
                payloadType=pt,
                rtcpFeedback=[
                    RTCRtcpFeedback(type="nack"),
                    RTCRtcpFeedback(type="nack", parameter="pli"),
                    RTCRtcpFeedback(type="goog-remb"),
                ],
                parameters={
                    "level-asymmetry-allowed": "1",
                    "packetization-mode": "1",
                    "profile-level-id": profile_level_id,
                },
            )
        )
        video.append(
            RTCRtpCodecParameters(
                mimeType="video/rtx", clockRate=90_000, payloadType=pt + 1, parameters={"apt": pt}
            )
        )


register_h264_profiles()


class _FmtpTransceiver(RTCRtpTransceiver):
    """A transceiver whose codecs of one MIME type carry fixed fmtp parameters, or whose
    Opus is offered with RED over it.

    aiortc rebuilds ``_codecs`` on every createOffer and setRemoteDescription from its global
    codec list (shared objects, only their payload types vary), so parameters set on them
    once would be lost or would change every peer connection. This property hands aiortc a
    copy with the parameters applied (and RED added) each time it assigns the list."""

    @property  # type: ignore[override]
    def _codecs(self) -> list[RTCRtpCodecParameters]:
        return self.__dict__["_codecs"]  # type: ignore[no-any-return]

    @_codecs.setter
    def _codecs(self, codecs: list[RTCRtpCodecParameters]) -> None:
        fixed: tuple[Callable[[RTCRtpCodecParameters], bool], dict[str, Any]] | None
        fixed = self.__dict__.get("_tongke_fmtp")
        if fixed is not None:
            applies, parameters = fixed
            codecs = [
                dataclasses.replace(c, parameters=dict(parameters)) if applies(c) else c
                for c in codecs
            ]
        red: int | None = self.__dict__.get("_tongke_red")
        if red is not None:
            codecs = _with_red(codecs, red)
        self.__dict__["_codecs"] = codecs


def _with_red(
    codecs: list[RTCRtpCodecParameters], payload_type: int
) -> list[RTCRtpCodecParameters]:
    """``codecs`` with ``red/48000/2`` over their Opus after it (fmtp ``<opus>/<opus>``)."""
    opus = next((c for c in codecs if c.mimeType.lower() == "audio/opus"), None)
    if opus is None or any(c.mimeType.lower() == "audio/red" for c in codecs):
        return codecs
    red = RTCRtpCodecParameters(
        mimeType="audio/red",
        clockRate=opus.clockRate,
        channels=opus.channels,
        payloadType=payload_type,
        parameters={f"{opus.payloadType}/{opus.payloadType}": None},
    )
    return [*codecs, red]


def fix_codec_parameters(
    transceiver: RTCRtpTransceiver,
    applies: Callable[[RTCRtpCodecParameters], bool],
    parameters: dict[str, Any],
) -> None:
    """Make every codec of ``transceiver`` that ``applies`` to carry ``parameters`` (its
    a=fmtp) in the offers and answers aiortc writes from now on, e.g. an H.264 codec the
    producer's exact profile-level-id. Call before createOffer."""
    transceiver.__class__ = _FmtpTransceiver
    transceiver.__dict__["_tongke_fmtp"] = (applies, dict(parameters))
    transceiver._codecs = list(transceiver.__dict__["_codecs"])


def offer_red(transceiver: RTCRtpTransceiver, payload_type: int) -> None:
    """Make the offers aiortc writes for ``transceiver`` list ``red/48000/2`` (RFC 2198) on
    ``payload_type`` after its Opus, with fmtp ``<opus pt>/<opus pt>``. aiortc knows no
    RED codec: it drops RED from what it reads of an answer, which is harmless on a
    neutralized transceiver (media/negotiation.py reads the answer itself). Call before
    createOffer."""
    transceiver.__class__ = _FmtpTransceiver
    transceiver.__dict__["_tongke_red"] = payload_type
    transceiver._codecs = list(transceiver.__dict__["_codecs"])


def set_msid(sender: RTCRtpSender, stream_id: str, track_id: str) -> None:
    """Set the ``a=msid`` aiortc writes for this sender in the next offer."""
    sender._stream_id = stream_id
    sender._track_id = track_id


def negotiated_header_extensions(
    transceiver: RTCRtpTransceiver,
) -> list[RTCRtpHeaderExtensionParameters]:
    return list(transceiver._headerExtensions)


def parse_sdp(text: str) -> SessionDescription:
    """aiortc's SDP parser; ValueError on malformed text, whatever aiortc raised.

    aiortc asserts on some input (a payload type >= 256, a negative port) and raises
    IndexError, KeyError or TypeError on others; peers send any text, so every parser
    failure is one ValueError with a sentence the client can read."""
    try:
        return SessionDescription.parse(text)
    except Exception as exc:
        raise ValueError(str(exc) or f"the SDP parser refused it ({type(exc).__name__})") from exc


def media_ssrcs(media: MediaDescription) -> tuple[list[int], dict[int, int]]:
    """SSRCs a remote m-section announces and its RTX pairs ({rtx_ssrc: media_ssrc} from FID)."""
    ssrcs = [s.ssrc for s in media.ssrc]
    rtx: dict[int, int] = {}
    for group in media.ssrc_group:
        if group.semantic == "FID" and len(group.items) == 2:
            rtx[int(group.items[1])] = int(group.items[0])
    primary = [s for s in ssrcs if s not in rtx]
    return primary, rtx


# Bench only: a media.forward_probe.ForwardProbe that ``SrtpLink.attach`` wraps around its
# datagram callback (tongke_bench/host.py sets it before any transport exists). None in the
# product, where the plain callback is installed.
forward_probe: Any = None


# SRTP datagrams a link keeps while its DTLS handshake finishes (about 2 s of one camera).
EARLY_PACKETS = 512


def _no_sendto(data: bytes, addr: Any) -> None:
    return None


class RtpProtector:
    """``protect`` of one outgoing pylibsrtp Session without its per-call allocation.

    pylibsrtp's ``Session.protect`` builds a new ``int *`` and checks its argument on every
    call; on the fan-out path that is ~0.6 of ~1.9 µs per copy. This keeps one length cell and
    calls libsrtp on the session's own buffer (the session is used only by this event loop's
    thread, one call at a time, as pylibsrtp itself requires).
    """

    __slots__ = ("_buffer", "_cdata", "_length", "_room", "_srtp", "session")

    def __init__(self, session: pylibsrtp.Session) -> None:
        self.session = session
        self._srtp = session._srtp[0]  # type: ignore[attr-defined]
        self._cdata = session._cdata  # type: ignore[attr-defined]
        self._buffer = session._buffer  # type: ignore[attr-defined]
        self._room = len(self._buffer) - pylibsrtp.SRTP_MAX_TRAILER_LEN  # tag and MKI
        self._length = srtp_ffi.new("int *")

    def protect(self, data: bytes) -> bytes:
        n = len(data)
        if n > self._room:
            raise ValueError("RTP packet is too long to protect.")
        buffer = self._buffer
        buffer[0:n] = data
        length = self._length
        length[0] = n
        status = srtp_lib.srtp_protect(self._srtp, self._cdata, length)
        if status:
            raise pylibsrtp.Error(f"srtp_protect failed with status {status}.")
        return buffer[0 : length[0]]


class SrtpLink:
    """Raw SRTP in and out of one bundled RTCDtlsTransport, bypassing aiortc's media stack.

    ``attach`` takes over the receive side; ``send_rtp``/``send_rtcp`` are synchronous:
    protect, then ``sendto`` on the nominated pair. Before DTLS completes (or after the pair
    is gone) sends are counted as ``dropped_not_connected`` and nothing raises.
    """

    __slots__ = (
        "_addr",
        "_connection",
        "_dtls",
        "_early",
        "_nominated",
        "_pair",
        "_protector",
        "_sendto",
        "dropped_early",
        "dropped_not_connected",
        "handler_errors",
        "unprotect_errors",
    )

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = dtls
        self._connection = dtls.transport._connection
        self._nominated: dict[int, Any] = self._connection._nominated
        self._pair: Any = None
        self._protector: RtpProtector | None = None
        self._sendto: Callable[[bytes, Any], None] = _no_sendto
        self._addr: tuple[str, int] = ("", 0)
        self.dropped_not_connected = 0
        self._early: list[tuple[bytes, int]] = []  # SRTP before the keys: (datagram, arrival)
        self.dropped_early = 0
        self.unprotect_errors = 0
        self.handler_errors = 0

    @property
    def dtls(self) -> RTCDtlsTransport:
        return self._dtls

    @property
    def connected(self) -> bool:
        return self._dtls._tx_srtp is not None and 1 in self._nominated

    def attach(self, on_rtp: RtpHandler, on_rtcp: RtcpHandler) -> None:
        """Deliver decrypted RTP as ``on_rtp(data, arrival_ms)`` and RTCP as ``on_rtcp(data)``."""
        connection = self._connection
        queue = connection._queue
        dtls = self._dtls
        early = self._early

        def data_received(data: bytes, component: int) -> None:
            rx = dtls._rx_srtp
            first = data[0]
            if first < 128 or first > 191:
                queue.put_nowait((data, component))  # DTLS and anything else: aiortc's path
                return
            if rx is None:
                self._hold(data)
                return
            if early:
                self._release(rx, on_rtp, on_rtcp)
            try:
                if 192 <= data[1] <= 208:
                    plain = rx.unprotect_rtcp(data)
                    on_rtcp(plain)
                else:
                    plain = rx.unprotect(data)
                    on_rtp(plain, time.monotonic_ns() // 1_000_000)
            except pylibsrtp.Error:
                self.unprotect_errors += 1
            except Exception:
                self.handler_errors += 1
                logger.exception("media handler failed on an incoming packet")

        probe = forward_probe
        if probe is None:
            connection.data_received = data_received
        else:  # bench only: nothing is checked per packet when no probe is installed
            connection.data_received = probe.wrap(data_received, self._socket_fd)

    def _hold(self, data: bytes) -> None:
        """Keep SRTP that came before this side's keys exist, in arrival order.

        The side that finishes the DTLS handshake first (the SFU as DTLS server of a receive
        transport, a publisher as server of its send transport) sends SRTP at once, while
        this side may still be processing the last handshake flight. aiortc would drop
        those packets, and they are the keyframe a new consumer waited for.
        """
        if len(self._early) < EARLY_PACKETS:
            self._early.append((data, time.monotonic_ns() // 1_000_000))
        else:
            self.dropped_early += 1

    def _release(self, rx: Any, on_rtp: RtpHandler, on_rtcp: RtcpHandler) -> None:
        """The keys exist: hand the held packets over before the one that just arrived."""
        held = self._early[:]
        self._early.clear()
        for data, arrival_ms in held:
            try:
                if 192 <= data[1] <= 208:
                    on_rtcp(rx.unprotect_rtcp(data))
                else:
                    on_rtp(rx.unprotect(data), arrival_ms)
            except pylibsrtp.Error:
                self.unprotect_errors += 1
            except Exception:
                self.handler_errors += 1
                logger.exception("media handler failed on an incoming packet")

    def _socket_fd(self) -> int:
        """The nominated pair's UDP socket (media arrives there), or -1 before nomination."""
        pair = self._nominated.get(1)
        sock = None if pair is None else pair.protocol.transport.get_extra_info("socket")
        return -1 if sock is None else int(sock.fileno())

    def _route(self) -> tuple[Callable[[bytes, Any], None], tuple[str, int]] | None:
        # The nominated pair rarely changes: cache its sendto and address per pair object.
        pair = self._nominated.get(1)
        if pair is None:
            return None
        if pair is not self._pair:
            self._pair = pair
            self._sendto = pair.protocol.transport.sendto
            if forward_probe is not None:  # bench only: stamps copies while it samples
                self._sendto = forward_probe.wrap_send(self._sendto)
            self._addr = pair.remote_addr
        return self._sendto, self._addr

    def send_rtp(self, data: bytes) -> None:
        tx = self._dtls._tx_srtp
        pair = self._nominated.get(1)
        if tx is None or pair is None:
            self.dropped_not_connected += 1
            return
        if pair is not self._pair:
            self._route()
        protector = self._protector
        if protector is None or protector.session is not tx:
            protector = self._protector = RtpProtector(tx)
        self._sendto(protector.protect(data), self._addr)

    def send_rtcp(self, data: bytes) -> None:
        tx = self._dtls._tx_srtp
        pair = self._nominated.get(1)
        if tx is None or pair is None:
            self.dropped_not_connected += 1
            return
        if pair is not self._pair:
            self._route()
        self._sendto(tx.protect_rtcp(data), self._addr)


def tap_incoming_rtp(dtls: RTCDtlsTransport, on_rtp: Callable[[bytes], None]) -> None:
    """Show every decrypted incoming RTP packet to ``on_rtp`` and then let aiortc handle it.

    Used by synthetic receivers to count packets while aiortc still sends NACK/PLI and decodes.
    """
    original = dtls._handle_rtp_data

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        on_rtp(data)
        await original(data, arrival_time_ms)

    dtls._handle_rtp_data = handle_rtp_data  # type: ignore[method-assign]


def count_srtp_headers(dtls: RTCDtlsTransport, on_rtp: Callable[[bytes], None]) -> None:
    """Show every incoming SRTP packet, still encrypted, to ``on_rtp`` and drop it; DTLS
    still reaches aiortc. SRTP leaves the RTP header in clear (version, marker, payload type,
    sequence number, timestamp, SSRC), so a load generator counts frames and losses of
    hundreds of receivers without decrypting anything. Incoming RTCP is dropped."""
    connection = dtls.transport._connection
    queue = connection._queue

    def data_received(data: bytes, component: int) -> None:
        first = data[0]
        if first < 128 or first > 191:
            queue.put_nowait((data, component))  # DTLS (and STUN-less leftovers): aiortc
        elif not 192 <= data[1] <= 208:
            on_rtp(data)

    connection.data_received = data_received


def tap_sender_rtcp(sender: RTCRtpSender, on_rtcp: Callable[[object], None]) -> None:
    """Show every RTCP packet routed to ``sender`` (aiortc's parsed objects) to ``on_rtcp``."""
    original = sender._handle_rtcp_packet

    async def handle_rtcp_packet(packet: Any) -> None:
        on_rtcp(packet)
        await original(packet)

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]


def resume_at_keyframes(receiver: Any, starts_keyframe: Callable[[bytes], bool]) -> None:
    """Browser-like recovery for a decoding aiortc video receiver: a keyframe drops the
    incomplete frames queued before it.

    aiortc's video jitter buffer waits on its first missing packet until 512 packets later
    (~15 s of low-layer video) and its NACKs go out only when a new gap appears, so one packet
    lost for good (a capped link's first second) stalls it; a browser resumes at the next
    keyframe. ``starts_keyframe(payload)`` tells a keyframe's first packet (RTP payload).
    """
    buffer = receiver._RTCRtpReceiver__jitter_buffer
    original = buffer.add
    size = buffer.capacity

    def add(packet: Any) -> Any:
        origin = buffer._origin
        if origin is not None and starts_keyframe(packet.payload):
            delta = (packet.sequence_number - origin) & 0xFFFF
            slots = buffer._packets
            if 0 < delta < size and any(slots[(origin + i) % size] is None for i in range(delta)):
                buffer.remove(delta)  # origin moves to this keyframe
        return original(packet)

    buffer.add = add


class DecodeErrorCounter(logging.Handler):
    """Counts aiortc's "failed to decode" warnings per decoder thread.

    aiortc decodes in one thread per RTCRtpReceiver and only logs its decode errors; the
    thread's ident tells which receiver failed (see :func:`decoder_thread_ident`).
    """

    _installed: DecodeErrorCounter | None = None

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.by_thread: dict[int, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if "failed to decode" in record.getMessage() and record.thread is not None:
            self.by_thread[record.thread] = self.by_thread.get(record.thread, 0) + 1

    @classmethod
    def install(cls) -> DecodeErrorCounter:
        if cls._installed is None:
            cls._installed = cls()
            logging.getLogger("aiortc.rtcrtpreceiver").addHandler(cls._installed)
        return cls._installed


def decoder_thread_ident(receiver: Any) -> int | None:
    """Ident of the thread aiortc decodes this RTCRtpReceiver's frames in (None before start)."""
    thread = receiver._RTCRtpReceiver__decoder_thread
    return None if thread is None else thread.ident


def set_audio_level_source(sender: RTCRtpSender, level_dbov: Callable[[], int]) -> None:
    """Stamp ssrc-audio-level on pre-encoded audio: aiortc only measures decoded frames.

    ``level_dbov()`` returns the level in dBov (0 loudest, -127 silence) for each packet.
    """
    original = sender._next_encoded_frame

    async def next_encoded_frame(codec: Any) -> Any:
        frame = await original(codec)
        if frame is not None and frame.audio_level is None:
            frame.audio_level = level_dbov()
        return frame

    sender._next_encoded_frame = next_encoded_frame  # type: ignore[method-assign]


async def send_raw_rtcp(dtls: RTCDtlsTransport, data: bytes) -> None:
    """Send hand-made RTCP (e.g. a PLI or REMB from a synthetic receiver) through aiortc's DTLS."""
    await dtls._send_rtp(data)


class VideoPacer:
    """Spreads a publisher's video packets in time, as a browser's pacer does.

    libwebrtc never sends a frame's packets back to back: its pacer releases them at a
    multiple (2.5) of the target bitrate, so a 15 KB keyframe at 1 Mbit/s leaves over ~50 ms.
    aiortc sends every packet of a frame at once. Synthetic publishers standing in for a
    browser install this on their send transport (``RTCDtlsTransport._send_rtp``); audio and
    RTCP are never held. ``enabled = False`` sends video at once again (aiortc's bursts).
    """

    def __init__(self, dtls: RTCDtlsTransport, video_ssrcs: set[int], rate_bps: float) -> None:
        if rate_bps <= 0:
            raise ValueError("A pacer needs a positive rate.")
        self.enabled = True
        self._ssrcs = frozenset(video_ssrcs)
        self._bytes_per_s = rate_bps / 8
        self._next = 0.0  # loop time the next video packet may leave
        self._lock = asyncio.Lock()  # one queue: packets leave in the order they were given
        self._send = dtls._send_rtp
        dtls._send_rtp = self.send  # type: ignore[method-assign]

    async def send(self, data: bytes) -> None:
        if (
            not self.enabled
            or len(data) < 12
            or 192 <= data[1] <= 208  # RTCP
            or int.from_bytes(data[8:12], "big") not in self._ssrcs
        ):
            await self._send(data)
            return
        async with self._lock:
            loop = asyncio.get_running_loop()
            wait = self._next - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next = max(self._next, loop.time()) + len(data) / self._bytes_per_s
            await self._send(data)

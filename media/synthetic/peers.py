"""Synthetic WebRTC peers (aiortc) for tests, demo and bench.

``SyntheticPublisher`` sends the pre-encoded clip (media/synthetic/clip.py) over a real
RTCPeerConnection: its tracks hand aiortc ``av.Packet`` objects, which RTCRtpSender only
packetizes (no encoding). A PLI/FIR makes the video tracks jump to the clip's next keyframe.

``SyntheticReceiver`` answers the SFU's offers and counts what arrives per SSRC (packets,
bytes, frames, loss repaired or not, whether the first frame was a keyframe, when the first
packet came). By default it takes the raw path (aiortc's receivers never start: no decode,
no NACK, no RTCP) so many receivers fit on one machine for the bench; with ``decode=True``
aiortc's full pipeline runs (NACK, PLI, decode in a thread) and decoded frames and decode
errors are counted, to prove the forwarded media is valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from media import aiortc_hooks as hooks
from media.rtp import keyframe_detector
from media.synthetic import clip

VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000


def make_peer_connection(
    ice_servers: Sequence[RTCIceServer] = (), bundle: bool = True, relay_only: bool = False
) -> RTCPeerConnection:
    """A peer connection with explicit ICE servers (never aiortc's default public STUN).

    ``relay_only`` is the browser's ``iceTransportPolicy: "relay"`` (aiortc 1.16 has it in
    RTCConfiguration): only TURN relay candidates are gathered, as behind a firewall that lets
    nothing but the TURN server through."""
    from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

    policy = RTCBundlePolicy.MAX_BUNDLE if bundle else RTCBundlePolicy.BALANCED
    transport = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCPeerConnection(
        RTCConfiguration(
            iceServers=list(ice_servers), bundlePolicy=policy, iceTransportPolicy=transport
        )
    )


class ClipVideoTrack(MediaStreamTrack):
    """Yields the clip's VP8 frames as ``av.Packet`` at the clip's frame rate, looping."""

    kind = "video"

    def __init__(self, frames: list[clip.EncodedFrame], fps: int) -> None:
        super().__init__()
        self._frames = frames
        self._fps = fps
        self._index = 0
        self._sent = 0
        self._start: float | None = None
        self._want_keyframe = False
        self.keyframes_sent = 0

    def request_keyframe(self) -> None:
        self._want_keyframe = True

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            delay = self._start + self._sent / self._fps - now
            if delay > 0:
                await asyncio.sleep(delay)
        frames = self._frames
        if self._want_keyframe and not frames[self._index].keyframe:
            # Jump forward to the next keyframe: the picture skips, the decoder stays clean.
            index = self._index
            while not frames[index].keyframe:
                index = (index + 1) % len(frames)
            self._index = index
        self._want_keyframe = False
        frame = frames[self._index]
        if frame.keyframe:
            self.keyframes_sent += 1
        self._index = (self._index + 1) % len(frames)
        packet = av.Packet(frame.data)
        packet.pts = self._sent * (VIDEO_CLOCK // self._fps)
        packet.time_base = Fraction(1, VIDEO_CLOCK)
        self._sent += 1
        return packet


class ClipAudioTrack(MediaStreamTrack):
    """Yields the clip's Opus packets (20 ms each) in real time, looping.

    ``speaking`` sets the audio level the publisher stamps (the tone is about -20 dBov; a
    silent classroom is -127), so active-speaker detection can be driven without decoding.
    """

    kind = "audio"

    def __init__(self, packets: list[clip.EncodedFrame], speaking: bool = True) -> None:
        super().__init__()
        self.speaking = speaking
        self._packets = packets
        self._sent = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            delay = self._start + self._sent * 0.02 - now
            if delay > 0:
                await asyncio.sleep(delay)
        packet = av.Packet(self._packets[self._sent % len(self._packets)].data)
        packet.pts = self._sent * 960
        packet.time_base = Fraction(1, AUDIO_CLOCK)
        self._sent += 1
        return packet

    def level_dbov(self) -> int:
        return -20 if self.speaking else -127


def _video_preferences(codec: str) -> list[Any]:
    """Offer only the clip's codec (+ RTX): its frames can only be packetized, not re-encoded."""
    caps = RTCRtpSender.getCapabilities("video").codecs
    if codec == "h264":
        chosen = [
            c
            for c in caps
            if c.mimeType == "video/H264" and c.parameters.get("profile-level-id") == "42e01f"
        ]
    else:
        chosen = [c for c in caps if c.mimeType == "video/VP8"]
    return chosen + [c for c in caps if c.mimeType == "video/rtx"]


@dataclass(frozen=True, slots=True)
class PublishedTrack:
    mid: str
    kind: str
    source: str
    layer: str


class SyntheticPublisher:
    """A lead (or receiving classroom) publishing the clip: camera main (+ low) and mic."""

    def __init__(
        self,
        *,
        ice_servers: Sequence[RTCIceServer] = (),
        host_addresses: Sequence[str] | None = None,
        layers: Sequence[str] = ("main", "low"),
        audio: bool = True,
        cache_dir: Path | None = None,
        codec: str = "vp8",
        speaking: bool = True,
        relay_only: bool = False,
        pacing_factor: float = 2.5,
        certificate: Any = None,
    ) -> None:
        """``certificate``: an aiortc ``RTCCertificate`` to present instead of aiortc's ECDSA
        one (an RSA one stands in for GStreamer and many classroom terminals)."""
        if codec not in ("vp8", "h264"):
            raise ValueError(f"Synthetic publisher codec must be vp8 or h264, got {codec!r}.")
        self.pc = make_peer_connection(ice_servers, relay_only=relay_only)
        if certificate is not None:
            hooks.use_certificate(self.pc, certificate)
            hooks.accept_rsa_peers(self.pc)
        # Host addresses would add host candidates; relay-only gathers TURN candidates alone.
        self._host_addresses = None if relay_only else host_addresses
        self.video_tracks: dict[str, ClipVideoTrack] = {}
        self._senders: list[tuple[RTCRtpSender, str, str, str]] = []
        self.keyframe_requests = 0
        self.nacks_received = 0
        specs = {"vp8": (clip.MAIN, clip.LOW), "h264": (clip.H264_MAIN, clip.H264_LOW)}[codec]
        for layer in layers:
            spec = specs[0] if layer == "main" else specs[1]
            track = ClipVideoTrack(clip.load_video(spec, cache_dir), spec.fps)
            self.video_tracks[layer] = track
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(_video_preferences(codec))
            sender = transceiver.sender
            self._senders.append((sender, "video", "camera", layer))
            hooks.tap_sender_rtcp(sender, self._sender_rtcp(track))
        self.audio_track: ClipAudioTrack | None = None
        if audio:
            atrack = self.audio_track = ClipAudioTrack(clip.load_audio(10, cache_dir), speaking)
            sender = self.pc.addTransceiver(atrack, direction="sendonly").sender
            hooks.set_audio_level_source(sender, atrack.level_dbov)
            self._senders.append((sender, "audio", "mic", "main"))
        self.tracks: list[PublishedTrack] = []
        # Like a browser, video leaves at pacing_factor x its bitrate (0: aiortc's bursts).
        self._pacing_bps = pacing_factor * sum(
            (specs[0] if layer == "main" else specs[1]).bitrate for layer in layers
        )
        self.pacer: hooks.VideoPacer | None = None

    def _sender_rtcp(self, track: ClipVideoTrack):  # type: ignore[no-untyped-def]
        from aiortc.rtp import (
            RTCP_PSFB_FIR,
            RTCP_PSFB_PLI,
            RTCP_RTPFB_NACK,
            RtcpPsfbPacket,
            RtcpRtpfbPacket,
        )

        def on_rtcp(packet: object) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                self.keyframe_requests += 1
                track.request_keyframe()
            elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                self.nacks_received += len(packet.lost)

        return on_rtcp

    async def create_offer(self) -> str:
        if self._host_addresses is not None:
            hooks.use_host_addresses(self.pc, self._host_addresses)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.tracks = []
        for transceiver in self.pc.getTransceivers():
            for sender, kind, source, layer in self._senders:
                if transceiver.sender is sender:
                    self.tracks.append(PublishedTrack(str(transceiver.mid), kind, source, layer))
        return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        dtls = hooks.dtls_transport_of(self.pc)
        if self._pacing_bps and self.pacer is None and dtls is not None:
            video = [sender for sender, kind, *_ in self._senders if kind == "video"]
            ssrcs = {ssrc for sender in video for ssrc in hooks.sender_ssrcs(sender)}
            self.pacer = hooks.VideoPacer(dtls, ssrcs, self._pacing_bps)

    async def close(self) -> None:
        await self.pc.close()


@dataclass(slots=True)
class StreamCounters:
    """What one incoming SSRC delivered (before aiortc's jitter buffer)."""

    kind: str = ""
    payload_type: int = -1
    packets: int = 0
    bytes: int = 0
    frames: int = 0  # marker bits seen
    first_frame_keyframe: bool | None = None
    keyframes: int = 0
    highest_seq: int | None = None
    first_seq: int | None = None
    cycles: int = 0
    seqs: set[int] = field(default_factory=set)  # extended seqs received (RTX repairs included)
    retransmissions: int = 0
    first_packet_ms: int = -1  # monotonic ms (media.aiortc_hooks.now_ms) of the first packet
    # When the first complete keyframe arrived (now_ms): every packet from the one that began
    # it to its marker bit is in ``seqs``, so it can be decoded. A keyframe with a packet lost
    # for good (the raw path never NACKs) does not count; the next one may.
    first_frame_ms: int = -1
    key_start: int = -1  # extended seq of the last packet that began a keyframe

    @property
    def expected(self) -> int:
        if self.first_seq is None or self.highest_seq is None:
            return 0
        return self.cycles * 65536 + self.highest_seq - self.first_seq + 1

    @property
    def lost(self) -> int:
        return max(0, self.expected - len(self.seqs))


def _payload_offset(data: bytes) -> int:
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    return offset


def vp8_starts_keyframe(payload: bytes) -> bool:
    """True when a VP8 RTP payload begins a keyframe (RFC 7741 descriptor, then frame tag)."""
    if not payload:
        return False
    b0 = payload[0]
    if not (b0 & 0x10) or (b0 & 0x07):  # S bit, partition 0
        return False
    pos = 1
    if b0 & 0x80:
        x = payload[1]
        pos = 2
        if x & 0x80:
            pos += 2 if payload[pos] & 0x80 else 1
        if x & 0x40:
            pos += 1
        if x & 0x30:
            pos += 1
    return pos < len(payload) and (payload[pos] & 0x01) == 0


def _ignore(data: bytes) -> None:
    return None


class SyntheticReceiver:
    """A subscriber that answers the SFU's offers and counts what it receives."""

    def __init__(
        self,
        *,
        ice_servers: Sequence[RTCIceServer] = (),
        host_addresses: Sequence[str] | None = None,
        decode: bool = False,
        relay_only: bool = False,
        header_only: bool = False,
    ) -> None:
        self.pc = make_peer_connection(ice_servers, relay_only=relay_only)
        # Count from the clear RTP header of SRTP, never decrypting (load generation: no
        # keyframe detection, no first-frame time, no RTCP): hundreds per process.
        self._header_only = header_only and not decode
        # Host addresses would add host candidates; relay-only gathers TURN candidates alone.
        self._host_addresses = None if relay_only else host_addresses
        self._decode = decode
        self._tapped = False
        self._link: hooks.SrtpLink | None = None
        self.streams: dict[int, StreamCounters] = {}
        self._rtx: dict[int, int] = {}  # rtx ssrc -> media ssrc
        self._kinds: dict[int, str] = {}
        self._detectors: dict[int, Callable[[bytes], bool]] = {}
        self.decoded: dict[str, int] = {"audio": 0, "video": 0}
        self.first_decoded_ms: dict[str, int] = {"audio": -1, "video": -1}  # now_ms()
        self.video_sizes: list[tuple[int, int]] = []
        self._receivers: list[RTCRtpReceiver] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._errors = hooks.DecodeErrorCounter.install()
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if self._decode:
            self._tasks.append(asyncio.ensure_future(self._drain(track)))

    async def _drain(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.decoded[track.kind] += 1
                if self.first_decoded_ms[track.kind] < 0:
                    self.first_decoded_ms[track.kind] = hooks.now_ms()
                if track.kind == "video":
                    size = (frame.width, frame.height)  # type: ignore[union-attr]
                    if not self.video_sizes or self.video_sizes[-1] != size:
                        self.video_sizes.append(size)

    async def accept_offer(self, sdp: str) -> str:
        """Apply an offer from the SFU (first or renegotiated) and return the answer SDP."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        for media in hooks.parse_sdp(sdp).media:
            primary, rtx = hooks.media_ssrcs(media)
            self._rtx.update(rtx)
            mime = media.rtp.codecs[0].mimeType if media.rtp.codecs else ""
            for ssrc in primary:
                self._kinds[ssrc] = media.kind
                self._detectors[ssrc] = keyframe_detector(mime)
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver not in self._receivers:
                self._receivers.append(transceiver.receiver)
                if self._decode and transceiver.kind == "video":
                    # Resume at the next keyframe after a packet lost for good, as browsers do.
                    hooks.resume_at_keyframes(transceiver.receiver, vp8_starts_keyframe)
        if self._host_addresses is not None:
            hooks.use_host_addresses(self.pc, self._host_addresses)
        if not self._decode:
            for transceiver in self.pc.getTransceivers():
                hooks.neutralize_transceiver(transceiver)
        dtls = hooks.dtls_transport_of(self.pc)
        if dtls is not None and not self._tapped:
            if self._decode:
                hooks.tap_incoming_rtp(dtls, self._count)
            elif self._header_only:
                hooks.count_srtp_headers(dtls, self._count_header)
            else:
                self._link = hooks.SrtpLink(dtls)
                self._link.attach(lambda data, arrival_ms: self._count(data), _ignore)
            self._tapped = True
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    def _count(self, data: bytes) -> None:
        if len(data) < 12:
            return
        ssrc = int.from_bytes(data[8:12], "big")
        seq = int.from_bytes(data[2:4], "big")
        media_ssrc = self._rtx.get(ssrc)
        offset = _payload_offset(data)
        if media_ssrc is not None:
            stats = self.streams.get(media_ssrc)
            if stats is not None and len(data) >= offset + 2:
                stats.retransmissions += 1
                self._add_seq(stats, int.from_bytes(data[offset : offset + 2], "big"))
            return
        stats = self.streams.get(ssrc)
        if stats is None:
            stats = self.streams[ssrc] = StreamCounters(kind=self._kinds.get(ssrc, ""))
        stats.payload_type = data[1] & 0x7F
        if not stats.packets:
            stats.first_packet_ms = hooks.now_ms()
        stats.packets += 1
        stats.bytes += len(data)
        key = False
        if stats.kind == "video":
            key = self._detectors.get(ssrc, vp8_starts_keyframe)(data[offset:])
            stats.keyframes += key
            if stats.first_frame_keyframe is None:
                stats.first_frame_keyframe = key
        marker = bool(data[1] & 0x80)
        if marker:
            stats.frames += 1
        self._add_seq(stats, seq)
        if stats.first_frame_ms < 0 and (key or stats.key_start >= 0):
            self._check_first_frame(stats, seq, key, marker)

    def _count_header(self, data: bytes) -> None:
        """``_count`` from the clear header of an SRTP packet (its payload is encrypted)."""
        if len(data) < 12:
            return
        ssrc = int.from_bytes(data[8:12], "big")
        if ssrc in self._rtx:
            return  # the repaired sequence number is in the encrypted payload
        stats = self.streams.get(ssrc)
        if stats is None:
            stats = self.streams[ssrc] = StreamCounters(kind=self._kinds.get(ssrc, ""))
            stats.payload_type = data[1] & 0x7F
            stats.first_packet_ms = hooks.now_ms()
        stats.packets += 1
        stats.bytes += len(data)
        if data[1] & 0x80:
            stats.frames += 1
        self._add_seq(stats, int.from_bytes(data[2:4], "big"))

    @staticmethod
    def _check_first_frame(stats: StreamCounters, seq: int, key: bool, marker: bool) -> None:
        extended = stats.cycles * 65536 + seq  # as _add_seq just stored it
        if key:
            stats.key_start = extended
        if marker and all(s in stats.seqs for s in range(stats.key_start, extended + 1)):
            stats.first_frame_ms = hooks.now_ms()

    @staticmethod
    def _add_seq(stats: StreamCounters, seq: int) -> None:
        if stats.first_seq is None or stats.highest_seq is None:
            stats.first_seq = stats.highest_seq = seq
            stats.seqs.add(seq)
            return
        diff = (seq - stats.highest_seq) & 0xFFFF
        if diff and diff < 0x8000:
            if seq < stats.highest_seq:
                stats.cycles += 1
            stats.highest_seq = seq
            stats.seqs.add(stats.cycles * 65536 + seq)
        else:
            cycles = stats.cycles - 1 if seq > stats.highest_seq and diff else stats.cycles
            stats.seqs.add(cycles * 65536 + seq)

    async def send_rtcp(self, data: bytes) -> None:
        """Send hand-made RTCP (PLI, REMB ...) to the SFU, as a browser would."""
        dtls = hooks.dtls_transport_of(self.pc)
        if dtls is not None:
            await hooks.send_raw_rtcp(dtls, data)

    def of_kind(self, kind: str) -> list[StreamCounters]:
        return [s for s in self.streams.values() if s.kind == kind]

    @property
    def decode_errors(self) -> int:
        total = 0
        for receiver in self._receivers:
            ident = hooks.decoder_thread_ident(receiver)
            if ident is not None:
                total += self._errors.by_thread.get(ident, 0)
        return total

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

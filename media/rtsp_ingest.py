"""RtspIngest: one RTSP source (a 录播 host's camera) pulled into a lesson's producers.

A thread pulls the source with FFmpeg (PyAV: RTSP over TCP or UDP, Basic/Digest auth, RTP
depacketizing) and never decodes video: each H.264 access unit is packetized again for
WebRTC (media/h264_packetizer.py: STAP-A/FU-A, SPS/PPS before every IDR) and handed to
the video producer on the event loop. Audio (AAC, G.711 ...) becomes 20 ms Opus
(media/opus_transcoder.py). A keyframe request cannot reach a 录播 host: a receiver that
needs one waits for the source's next IDR (its GOP, 1-2 s on a well-set host).

The source dropping (network, reboot) is retried with backoff; the state (``connecting``,
``live``, ``retrying``, ``failed``) and a sentence go to ``on_status``. H.265 and other
codecs browsers cannot take are ``failed`` with code ``unsupported_codec`` (checked again
slowly: the admin may change the host's setting).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import av

from media.codecs import CodecInfo
from media.events import monotonic_ms
from media.h264_packetizer import H264Packetizer, profile_level_id, split_nal_units
from media.negotiation import describe_h264, h264_playable
from media.opus_transcoder import OPUS_RATE, OpusTranscoder
from media.rtp import RtpPacket
from media.sfu_types import LocalTrack

logger = logging.getLogger(__name__)

VIDEO_PT = 102
AUDIO_PT = 111
OPEN_TIMEOUT_S = 5.0  # connecting, and the longest silence before the source counts as gone
# A frame's last slice goes out (with the marker bit) after this much quiet: the slices of
# one frame reach FFmpeg together, the next frame comes a frame interval later. A keyframe
# waits longer: FFmpeg hands a multi-slice IDR's later slices over only when the source's
# next packet arrives (measured: 33 ms after its first slice at 30 fps), once per GOP.
FRAME_END_S = 0.004
KEYFRAME_END_S = 0.045
FAILED_RETRY_S = 30.0  # a source that cannot work (H.265) is looked at again this often


class RtspState(enum.Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    RETRYING = "retrying"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class RtspStatus:
    state: RtspState
    code: str = ""  # why not live: unreachable, unauthorized, not_found, unsupported_codec ...
    message: str = ""
    video: str = ""  # what the source sends, e.g. "H.264 1920x1080 Main 25 fps"
    audio: str = ""  # e.g. "AAC 44100 Hz -> Opus"
    reconnects: int = 0


class SourceError(Exception):
    def __init__(self, code: str, message: str, final: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.final = final  # retrying soon will not help


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a connected source sends, for the producers."""

    profile_level_id: str
    video: str
    audio: str
    has_audio: bool


# Producers are made on the first connection (their codec is then known):
# setup(info) -> (video producer, audio producer or None).
Setup = Callable[[list[LocalTrack]], Awaitable[list[Any]]]


class _Sink:
    """Where the producers' upstream RTCP goes: keyframe requests are counted (the next IDR
    answers them), the rest has nowhere to go."""

    def __init__(self) -> None:
        self.messages = 0

    def send_rtcp(self, data: bytes) -> None:
        self.messages += 1


def classify(exc: BaseException) -> SourceError:
    """An FFmpeg failure as a stable code and a sentence an admin can act on."""
    if isinstance(exc, SourceError):
        return exc
    text = str(exc)
    if isinstance(exc, av.error.HTTPUnauthorizedError) or "401" in text:
        return SourceError("unauthorized", "The RTSP source refused the user name or password.")
    if isinstance(exc, av.error.HTTPNotFoundError) or "404" in text:
        return SourceError("not_found", "The RTSP source has no stream at that path.")
    if isinstance(exc, ConnectionRefusedError | av.error.ConnectionRefusedError):
        return SourceError("unreachable", "Nothing answers at that address and port.")
    if isinstance(exc, TimeoutError | OSError | av.error.ExitError | av.error.EOFError):
        return SourceError("unreachable", "The RTSP source stopped sending (timeout or end).")
    return SourceError("source_error", f"The RTSP source failed: {text}")


class RtspIngest:
    """Pulls ``url`` (credentials inside it) while started; ``transport`` is tcp or udp."""

    def __init__(
        self,
        url: str,
        *,
        transport: str = "tcp",
        setup: Setup,
        on_status: Callable[[RtspStatus], None],
        backoff_s: tuple[float, float] = (0.25, 2.0),
        source: str = "camera",
    ) -> None:
        if transport not in ("tcp", "udp"):
            raise ValueError(f"RTSP transport must be tcp or udp, not {transport!r}.")
        self._url = url
        self._transport = transport
        self._setup = setup
        self._on_status = on_status
        self._backoff = backoff_s
        self._source = source
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._video: Any = None
        self._audio: Any = None
        self._sink = _Sink()
        self._packetizer = H264Packetizer(VIDEO_PT, random.randrange(1, 1 << 32))
        self._audio_ssrc = random.randrange(1, 1 << 32)
        self._audio_seq = random.randrange(1 << 16)
        self._audio_ts = random.randrange(1 << 32)
        self._transcoder: OpusTranscoder | None = None
        self._video_ts_next = random.randrange(1 << 32)  # RTP ts the next connection starts at
        self._held_units: list[bytes] = []  # non-VCL NAL units waiting for their frame
        self._part: tuple[list[bytes], int] | None = None  # a frame's latest part (loop)
        self._part_timer: asyncio.TimerHandle | None = None
        self.status = RtspStatus(RtspState.CONNECTING)
        self.video_packets = 0
        self.access_units = 0
        self.audio_packets = 0
        # Bench: (RTP ts, monotonic seconds it was read from the source, is a keyframe).
        self.on_access_unit: Callable[[int, float, bool], None] | None = None

    # -- control (event loop) ----------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="rtsp-ingest", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Stop pulling (idempotent); the producers are closed by whoever made them."""
        self._stop.set()
        if self._part_timer is not None:
            self._part_timer.cancel()
        thread = self._thread
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, OPEN_TIMEOUT_S + 2)
        self._set_status(RtspStatus(RtspState.CLOSED, reconnects=self.status.reconnects))

    # -- the pull thread -----------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                self._pull()
                attempt = 0  # a clean end of stream: come back at once
                error = SourceError("unreachable", "The RTSP source ended the stream.")
            except Exception as exc:  # every failure is retried; the code says why
                error = classify(exc)
            if self._stop.is_set():
                return
            attempt += 1
            if error.final:
                state, delay = RtspState.FAILED, FAILED_RETRY_S
            else:
                state = RtspState.RETRYING
                delay = min(self._backoff[1], self._backoff[0] * 2 ** (attempt - 1))
            now = self.status
            reconnects = now.reconnects + (now.state is RtspState.LIVE)
            status = RtspStatus(state, error.code, error.message, now.video, now.audio, reconnects)
            self._post_status(status)
            self._stop.wait(delay * random.uniform(0.9, 1.1))

    def _open(self) -> Any:
        options = {
            "rtsp_transport": self._transport,
            "timeout": str(int(OPEN_TIMEOUT_S * 1_000_000)),  # socket I/O, microseconds
            "fflags": "nobuffer",
            "flags": "low_delay",
            "analyzeduration": "500000",
            "max_delay": "100000" if self._transport == "udp" else "0",
            "reorder_queue_size": "64" if self._transport == "udp" else "0",
        }
        return av.open(self._url, options=options, timeout=OPEN_TIMEOUT_S)

    def _pull(self) -> None:
        container = self._open()
        try:
            video, audio, info = self._streams(container)
            if self._video is None:
                self._create_producers(info)
            if audio is not None and self._audio is not None:
                self._transcoder = self._transcoder or OpusTranscoder()
                self._transcoder.start(audio)
            self._post_status(RtspStatus(RtspState.LIVE, "", "", info.video, info.audio,
                                         self.status.reconnects))  # fmt: skip
            streams = [video] if audio is None or self._audio is None else [video, audio]
            first_pts: int | None = None
            base = self._video_ts_next
            scale = float(video.time_base) * 90_000
            for packet in container.demux(streams):
                if self._stop.is_set():
                    return
                if packet.size == 0:
                    continue
                if packet.stream is video:
                    pts = packet.pts if packet.pts is not None else packet.dts
                    if pts is None:
                        continue
                    if first_pts is None:
                        first_pts = pts
                    ts = base + int((pts - first_pts) * scale)
                    self._video_ts_next = ts + 3000  # a reconnect goes on one frame later
                    self._send_video(bytes(packet), ts)
                else:
                    self._send_audio(packet)
        finally:
            container.close()

    def _streams(self, container: Any) -> tuple[Any, Any, SourceInfo]:
        videos = container.streams.video
        if not videos:
            raise SourceError("no_video", "The RTSP source sends no video.", final=True)
        video = videos[0]
        codec = video.codec_context.name
        if codec != "h264":
            name = {"hevc": "H.265 (HEVC)", "mjpeg": "MJPEG"}.get(codec, codec)
            raise SourceError(
                "unsupported_codec",
                f"The source sends {name}: browsers cannot play it without transcoding. "
                "Set the 录播 host's stream (main or sub) to H.264.",
                final=True,
            )
        units = split_nal_units(video.codec_context.extradata or b"\x00\x00\x00\x01")
        self._packetizer.set_parameter_sets([u for u in units if u])
        plid = profile_level_id(self._packetizer.sps) if self._packetizer.sps else "42e01f"
        if not h264_playable(plid):
            raise SourceError(
                "unsupported_codec",
                f"The source sends {describe_h264(plid)}: browsers cannot play that profile "
                "(10-bit or not 4:2:0) without transcoding. Set the 录播 host's stream to "
                "H.264 High, Main or Baseline.",
                final=True,
            )
        context = video.codec_context
        size = f" {context.width}x{context.height}" if context.width else ""
        rate = f" {float(video.average_rate):.0f} fps" if video.average_rate else ""
        audio = container.streams.audio[0] if container.streams.audio else None
        described = ""
        if audio is not None:
            described = (
                f"{audio.codec_context.name.upper()} {audio.codec_context.sample_rate} Hz -> Opus"
            )
        return video, audio, SourceInfo(plid, f"H.264{size}{rate} ({plid})", described,
                                        audio is not None)  # fmt: skip

    def _create_producers(self, info: SourceInfo) -> None:
        assert self._loop is not None
        video = CodecInfo(
            mime_type="video/H264",
            clock_rate=90_000,
            payload_type=VIDEO_PT,
            parameters={
                "packetization-mode": "1",
                "level-asymmetry-allowed": "1",
                "profile-level-id": info.profile_level_id,
            },
            rtcp_feedback=("nack", "nack pli"),
        )
        tracks = [LocalTrack(self._source, video, self._packetizer.ssrc, self._sink)]
        if info.has_audio:
            opus = CodecInfo("audio/opus", OPUS_RATE, AUDIO_PT, channels=2,
                             parameters={"minptime": "10", "useinbandfec": "1"})  # fmt: skip
            tracks.append(LocalTrack("mic", opus, self._audio_ssrc, self._sink))
        made = asyncio.run_coroutine_threadsafe(self._setup(tracks), self._loop)
        producers = made.result(timeout=30)
        self._video = producers[0]
        self._audio = producers[1] if len(producers) > 1 else None

    def _send_video(self, data: bytes, ts: int) -> None:
        try:
            units = split_nal_units(data)
        except ValueError:
            return
        if not any(1 <= u[0] & 0x1F <= 5 for u in units if u):
            # Parameter sets (SPS/PPS/SEI) FFmpeg hands over on their own, with the next
            # frame's timestamp: they go out with that frame, under one marker bit.
            self._held_units.extend(units)
            return
        if self._held_units:
            units = [*self._held_units, *units]
            self._held_units = []
        if self.on_access_unit is not None:
            key = any(u[0] & 0x1F == 5 for u in units)
            self.on_access_unit(ts & 0xFFFFFFFF, time.monotonic(), key)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._frame_part, units, ts)

    # -- frames (event loop) -----------------------------------------------------------

    def _frame_part(self, units: list[bytes], ts: int) -> None:
        """One FFmpeg packet of video: a whole frame, or one slice of a multi-slice frame
        (FFmpeg hands slices over one by one and hides the source's marker bit). A part
        is held until the next one shows whether its frame goes on; a frame's last part
        goes out with the marker when the next frame starts or after FRAME_END_S of quiet
        (slices of one frame arrive together; frames 33 ms apart)."""
        held = self._part
        if held is not None:
            self._flush(end_of_frame=held[1] != ts)
        self._part = (units, ts)
        if self._part_timer is not None:
            self._part_timer.cancel()
        assert self._loop is not None
        idr = any(u[0] & 0x1F == 5 for u in units if u)
        self._part_timer = self._loop.call_later(
            KEYFRAME_END_S if idr else FRAME_END_S, self._flush, True
        )

    def _flush(self, end_of_frame: bool) -> None:
        held, self._part = self._part, None
        if held is None:
            return
        packets = self._packetizer.packetize(held[0], held[1], end_of_frame)
        if end_of_frame:
            self.access_units += 1
        self.video_packets += len(packets)
        _deliver(self._video, packets)

    def _send_audio(self, packet: Any) -> None:
        if self._transcoder is None or self._audio is None:
            return
        packets = []
        for opus in self._transcoder.transcode(packet):
            packets.append(
                RtpPacket(
                    payload_type=AUDIO_PT,
                    sequence_number=self._audio_seq,
                    timestamp=self._audio_ts,
                    ssrc=self._audio_ssrc,
                    marker=False,
                    payload=opus.payload,
                )
            )
            self._audio_seq = (self._audio_seq + 1) & 0xFFFF
            self._audio_ts = (self._audio_ts + opus.samples) & 0xFFFFFFFF
        if packets:
            self.audio_packets += len(packets)
            assert self._loop is not None
            self._loop.call_soon_threadsafe(_deliver, self._audio, packets)

    # -- status ------------------------------------------------------------------------

    def _post_status(self, status: RtspStatus) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._set_status, status)

    def _set_status(self, status: RtspStatus) -> None:
        if status == self.status:
            return
        if self.status.state is RtspState.CLOSED:
            return  # closed: nothing after that
        self.status = status
        try:
            self._on_status(status)
        except Exception:
            logger.exception("RTSP status listener failed")


def _deliver(producer: Any, packets: list[RtpPacket]) -> None:
    """On the event loop: hand one access unit's (or audio frame's) packets over."""
    now = monotonic_ms()
    for packet in packets:
        producer.receive_rtp(packet, now)

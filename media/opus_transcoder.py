"""Audio from an RTSP source (AAC, often; G.711 on some cameras) to Opus for WebRTC.

Decoding AAC and encoding Opus is cheap (a few per cent of a core for one stereo stream);
video is never decoded. Runs in the RTSP pull thread, off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
from av.audio.resampler import AudioResampler

OPUS_RATE = 48_000
OPUS_FRAME = 960  # 20 ms at 48 kHz: what browsers expect (ptime 20)


@dataclass(frozen=True, slots=True)
class OpusPacket:
    payload: bytes
    samples: int  # its duration at 48 kHz


class OpusTranscoder:
    """Decodes one source's audio packets (any codec FFmpeg decodes) into 20 ms Opus."""

    def __init__(self, bitrate: int = 48_000) -> None:
        self._decoder: av.CodecContext | None = None
        self._codec_name = ""
        self._resampler = AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE)
        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate = OPUS_RATE
        encoder.layout = "stereo"  # type: ignore[attr-defined]
        encoder.format = av.AudioFormat("s16")  # type: ignore[attr-defined]
        encoder.bit_rate = bitrate
        encoder.options = {"application": "audio", "frame_duration": "20"}
        encoder.open()
        self._encoder = encoder
        self.decode_errors = 0

    def start(self, stream: av.audio.stream.AudioStream) -> None:
        """A new connection to the source: decode what its audio stream says it is."""
        context = stream.codec_context
        if self._decoder is None or context.name != self._codec_name:
            self._decoder = av.CodecContext.create(context.name, "r")
            if context.extradata:
                self._decoder.extradata = context.extradata
            self._decoder.sample_rate = context.sample_rate  # type: ignore[attr-defined]
            self._codec_name = context.name
            self._resampler = AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE)

    def transcode(self, packet: av.Packet) -> list[OpusPacket]:
        if self._decoder is None:
            return []
        out: list[OpusPacket] = []
        try:
            frames = self._decoder.decode(packet)
        except av.error.FFmpegError:
            self.decode_errors += 1
            return out
        for frame in frames:
            for resampled in self._resampler.resample(frame):
                resampled.pts = None
                for encoded in self._encoder.encode(resampled):
                    out.append(OpusPacket(bytes(encoded), OPUS_FRAME))
        return out

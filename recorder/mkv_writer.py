"""Muxes encoded frames of one track into a Matroska/WebM file with PyAV (no decoding).

Used by ``TrackRecorder``'s writer thread. The container is opened on the first frame
(for video a keyframe, so the picture size and H.264 parameter sets are known). VP8 and
Opus go into WebM (the Matroska subset browsers play), H.264 into Matroska. Clusters
close every ``cluster_ms`` of media and each write reaches the kernel at once
(``flush_packets``): that bounds what a SIGKILL can lose. ``fsync`` every
``sync_interval_s`` of arrival time (and when the stream goes idle) bounds what a power
loss can lose; it runs here, in the writer thread, never on the event loop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av

from recorder.depacketize import Frame, vp8_dimensions
from recorder.h264_sps import access_unit_dimensions
from recorder.sidecar import fsync_path

logger = logging.getLogger(__name__)

MUX_CODECS = {"video/vp8": "vp8", "video/h264": "h264", "audio/opus": "opus"}
# Codecs WebM allows: their tracks are written as WebM (DocType "webm"), the rest Matroska.
WEBM_CODECS = frozenset({"video/vp8", "audio/opus"})


def track_suffix(mime_type: str) -> str:
    """The file suffix of a track file for this codec: ``.webm`` or ``.mkv``."""
    return ".webm" if mime_type.lower() in WEBM_CODECS else ".mkv"


def container_format(mime_type: str) -> str:
    """The FFmpeg muxer for a track file of this codec: ``webm`` or ``matroska``."""
    return "webm" if mime_type.lower() in WEBM_CODECS else "matroska"


class CodecLike(Protocol):
    """What the recorder needs of a codec (media.codecs.CodecInfo fits)."""

    @property
    def mime_type(self) -> str: ...
    @property
    def clock_rate(self) -> int: ...
    @property
    def payload_type(self) -> int: ...


class WriterStats(Protocol):
    frames_written: int
    frames_out_of_order: int
    frames_invalid: int
    bytes_written: int
    syncs: int


class MkvWriter:
    """One track file; ``write`` frames in order, then ``close`` (or ``abandon``)."""

    def __init__(
        self,
        path: Path,
        codec: CodecLike,
        title: str,
        cluster_ms: int,
        stats: WriterStats,
        on_started: Callable[[float], None],
        sync_interval_s: float = 1.0,
    ) -> None:
        self._path = path
        self._mime = codec.mime_type.lower()
        self._clock_rate = codec.clock_rate
        self._title = title
        self._cluster_ms = cluster_ms
        self._stats = stats
        self._on_started = on_started
        self._container: av.container.OutputContainer | None = None
        self._stream: av.stream.Stream | None = None
        self._time_base = Fraction(1, codec.clock_rate)
        self._ext_ts = 0
        self._last_ts: int | None = None
        self._last_pts = -1
        self._sync_interval = sync_interval_s
        self._sync_fd: int | None = None
        self._synced_at = 0.0  # arrival time of the last frame covered by an fsync
        self._unsynced = False
        self.duration_s = 0.0

    def write(self, frame: Frame) -> None:
        stats = self._stats
        if self._last_ts is None:
            try:
                self._open(frame)
            except ValueError:
                stats.frames_invalid += 1  # wait for a keyframe whose header we can read
                return
            self._last_ts = frame.timestamp
        else:
            # Unwrap the 32-bit RTP timestamp relative to the first frame.
            delta = (frame.timestamp - self._last_ts) & 0xFFFFFFFF
            if delta >= 0x80000000:
                delta -= 0x100000000
            self._ext_ts += delta
            self._last_ts = frame.timestamp
        pts = self._ext_ts
        if pts <= self._last_pts:
            stats.frames_out_of_order += 1
            return
        packet = av.Packet(frame.data)
        packet.stream = self._stream
        packet.pts = packet.dts = pts
        packet.time_base = self._time_base
        packet.is_keyframe = frame.keyframe
        assert self._container is not None
        self._container.mux(packet)
        self._last_pts = pts
        stats.frames_written += 1
        stats.bytes_written += len(frame.data)
        self.duration_s = float(pts * self._time_base)
        self._unsynced = True
        if self._sync_interval <= 0:
            return
        if self._sync_fd is None:
            # PyAV creates the file with its first packet. A second descriptor only for
            # fsync (PyAV owns the writing one); fsync of the folder makes the name durable.
            self._sync_fd = os.open(self._path, os.O_RDONLY)
            fsync_path(self._path.parent, directory=True)
        if frame.arrival - self._synced_at >= self._sync_interval:
            self.sync(frame.arrival)

    def sync(self, arrival: float | None = None) -> None:
        """fsync what was written so far, if anything new (blocking: writer thread only).
        ``arrival`` is the newest frame's arrival time (the cadence's clock)."""
        if self._sync_fd is None or not self._unsynced:
            return
        os.fsync(self._sync_fd)
        self._unsynced = False
        if arrival is not None:
            self._synced_at = arrival
        self._stats.syncs += 1

    def _open(self, frame: Frame) -> None:
        kwargs: dict[str, object] = {}
        if self._mime == "video/vp8":
            width, height = vp8_dimensions(frame.data)
            kwargs = {"width": width, "height": height}
        elif self._mime == "video/h264":
            width, height = access_unit_dimensions(frame.data)
            kwargs = {"width": width, "height": height}
        options = {"cluster_time_limit": str(self._cluster_ms), "flush_packets": "1"}
        kind = container_format(self._mime)
        self._container = av.open(str(self._path), "w", format=kind, options=options)
        self._synced_at = frame.arrival
        rate = self._clock_rate if self._mime.startswith("audio/") else None
        self._stream = self._container.add_mux_stream(MUX_CODECS[self._mime], rate=rate, **kwargs)
        self._stream.time_base = self._time_base
        self._container.metadata["title"] = self._title
        self._on_started(frame.arrival)

    def close(self) -> None:
        if self._container is not None:
            container, self._container = self._container, None
            container.close()
            self._unsynced = True  # the trailer (cues, duration) was just written
            self.sync()
        self._close_sync_fd()

    def _close_sync_fd(self) -> None:
        if self._sync_fd is not None:
            fd, self._sync_fd = self._sync_fd, None
            os.close(fd)

    def abandon(self) -> None:
        """After a write error: release the file without trying to finish it twice."""
        try:
            self.close()
        except Exception as exc:
            logger.debug("closing failed recording: %s", exc)
        finally:
            self._close_sync_fd()

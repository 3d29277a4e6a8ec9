"""One producer's recording: RTP in, a Matroska file out, written as it goes.

``TrackRecorder`` is the RtpSink of the recorder's internal consumer. ``send_rtp`` runs
on the event loop in the forwarding path, so it only stamps the arrival time and puts the
packet into a bounded queue (on overflow it drops and counts, never waits). A writer
thread depacketizes and muxes the frames with PyAV (no decoding, no encoding) into a
WebM (VP8, Opus) or Matroska (H.264) file whose clusters are closed every ``cluster_ms`` of
media and flushed to the kernel at once, so a SIGKILL loses at most about that much plus
what is still queued; the same thread fsyncs the file every ``sync_interval_s`` (and when
the stream goes idle), so a power loss loses at most about ``cluster_ms`` + that.

Next to ``<name>.webm`` / ``<name>.mkv`` a JSON sidecar ``<name>.json`` says what the file
is and whether it was finished (see ``recorder.sidecar``); ``recorder.repair`` fixes files
left in the ``recording`` state by a crash. A write error (disk full...) stops the recording
cleanly: the file keeps what was written, the sidecar says ``failed`` with the error, and
``on_error`` is called on the event loop.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recorder.depacketize import create_depacketizer
from recorder.mkv_writer import MUX_CODECS, CodecLike, MkvWriter
from recorder.sidecar import RecordingState, TrackInfo, file_sha256, write_sidecar

logger = logging.getLogger(__name__)

_STOP = object()
KEY_FRAME_RETRY_S = 1.0
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

# Error codes reported through on_error and written to the sidecar.
DISK_FULL = "recording_disk_full"
WRITE_FAILED = "recording_write_failed"


@dataclass(slots=True)
class RecorderStats:
    packets: int = 0
    rtcp: int = 0
    queue_dropped: int = 0  # queue full: the writer fell behind
    frames_written: int = 0
    frames_out_of_order: int = 0  # timestamp not after the previous frame's
    bytes_written: int = 0
    frames_invalid: int = 0  # a first keyframe whose header could not be read
    key_frame_requests: int = 0
    syncs: int = 0  # fsyncs of the track file (about one per second while media flows)


@dataclass(frozen=True, slots=True)
class RecordingSummary:
    """What a finished (or failed) recording left on disk."""

    path: Path
    sidecar: Path
    state: RecordingState
    started_at: float | None
    duration_s: float
    frames: int
    size: int
    sha256: str
    error: dict[str, str] | None = field(default=None)


ErrorCallback = Callable[["TrackRecorder", str, str], None]


class TrackRecorder:
    """Records one producer's RTP stream into ``path`` (``.webm``/``.mkv``), sidecar beside it.

    ``on_error(recorder, code, message)`` runs on the event loop that created the recorder
    when writing fails. ``clock`` gives the wall-clock arrival time (tests may fix it).
    ``sync_interval_s`` is the fsync cadence in seconds of arrival time (0: never fsync).
    """

    def __init__(
        self,
        path: Path,
        codec: CodecLike,
        info: TrackInfo,
        *,
        on_error: ErrorCallback | None = None,
        queue_size: int = 4096,
        cluster_ms: int = 1000,
        reorder_window: int = 64,
        on_key_frame_needed: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        sync_interval_s: float = 1.0,
    ) -> None:
        mime = codec.mime_type.lower()
        if mime not in MUX_CODECS:
            raise ValueError(f"Recording codec {codec.mime_type} is not supported.")
        self.path = Path(path)
        self.sidecar = self.path.with_suffix(".json")
        self.codec = codec
        self.info = info
        self.stats = RecorderStats()
        self.state = RecordingState.RECORDING
        self.error: dict[str, str] | None = None
        self._on_error = on_error
        self._on_key_frame_needed = on_key_frame_needed
        self._last_key_request: float | None = None
        self._was_waiting = False
        self._clock = clock
        self._cluster_ms = cluster_ms
        self._sync_interval = sync_interval_s
        self._depacketizer = create_depacketizer(mime, reorder_window)
        self._queue: queue.Queue[object] = queue.Queue(queue_size)
        self._accepting = True
        self._stopping = threading.Event()
        self._summary: RecordingSummary | None = None
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._sidecar_data = {
            "format": 1,
            "kind": "track",
            "state": RecordingState.RECORDING.value,
            "file": self.path.name,
            **info.as_dict(),
            "codec": {
                "mime_type": codec.mime_type,
                "clock_rate": codec.clock_rate,
                "payload_type": codec.payload_type,
            },
            "created_at": clock(),
            "started_at": None,
            "duration_s": 0.0,
            "frames": 0,
            "size": 0,
            "sha256": None,
            "error": None,
        }
        self._thread = threading.Thread(
            target=self._run, name=f"recorder-{info.producer_id}", daemon=True
        )
        self._thread.start()

    def set_key_frame_requester(self, callback: Callable[[], None] | None) -> None:
        """Who to ask for a keyframe (the recorder's consumer, created after its sink)."""
        self._on_key_frame_needed = callback

    # RtpSink: called on the event loop, never blocks. --------------------------------------

    def send_rtp(self, data: bytes) -> None:
        if not self._accepting:
            return
        self.stats.packets += 1
        try:
            self._queue.put_nowait((data, self._clock()))
        except queue.Full:
            self.stats.queue_dropped += 1

    def send_rtcp(self, data: bytes) -> None:
        # Nothing to do with sender reports: the arrival clock places the track in time.
        self.stats.rtcp += 1

    # Lifecycle. ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop accepting packets and let the writer finish the file in the background
        (idempotent, never blocks; ``finish`` waits for the result)."""
        if self._stopping.is_set():
            return
        self._accepting = False
        self._stopping.set()
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:
            pass  # the writer sees _stopping once it has emptied the queue

    async def finish(self) -> RecordingSummary:
        """Close and wait (off the loop) until the file and sidecar are final."""
        await asyncio.to_thread(self._finish_blocking)
        assert self._summary is not None
        return self._summary

    def finish_sync(self) -> RecordingSummary:
        """``finish`` for callers without an event loop (tests, child processes)."""
        self._finish_blocking()
        assert self._summary is not None
        return self._summary

    def _finish_blocking(self) -> None:
        self.close()
        self._thread.join()

    # Writer thread. ------------------------------------------------------------------------

    def _run(self) -> None:
        writer = MkvWriter(
            self.path,
            self.codec,
            self.info.producer_id,
            self._cluster_ms,
            self.stats,
            self._started,
            self._sync_interval,
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_sidecar(self.sidecar, self._sidecar_data)
            while True:
                try:
                    item = self._queue.get(timeout=0.25)
                except queue.Empty:
                    if self._stopping.is_set():
                        break
                    writer.sync()  # idle: make what was written durable now
                    continue
                if item is _STOP:
                    break
                data, arrival = item  # type: ignore[misc]
                for frame in self._depacketizer.push(data, arrival):
                    writer.write(frame)
                self._check_key_frame(arrival)
            for frame in self._depacketizer.flush():
                writer.write(frame)
            writer.close()
            self._complete(RecordingState.FINISHED, writer)
        except Exception as exc:  # any muxer failure must stop cleanly, never kill the loop
            self._accepting = False
            code = DISK_FULL if getattr(exc, "errno", None) in DISK_FULL_ERRNOS else WRITE_FAILED
            self.error = {"code": code, "message": f"Writing {self.path.name} failed: {exc}"}
            logger.warning("recording %s stopped: %s", self.path, exc)
            writer.abandon()
            self._drain_queue()
            self._complete(RecordingState.FAILED, writer)
            self._report_error(code, self.error["message"])

    def _check_key_frame(self, arrival: float) -> None:
        # Video that lost a frame shows nothing until the next keyframe, and browsers send
        # one only when asked: ask at once, then every KEY_FRAME_RETRY_S while waiting.
        if self._last_key_request is None:
            self._last_key_request = arrival
        if not self._depacketizer.waiting_for_keyframe:
            self._was_waiting = False
            return
        if (not self._was_waiting and self.stats.frames_written) or (
            arrival - self._last_key_request >= KEY_FRAME_RETRY_S
        ):
            self._last_key_request = arrival
            self.stats.key_frame_requests += 1
            if self._on_key_frame_needed is not None:
                self._call_on_loop(self._on_key_frame_needed)
        self._was_waiting = True

    def _call_on_loop(self, callback: Callable[..., None], *args: object) -> None:
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(_safely, callback, *args)
                return
            except RuntimeError:
                pass  # the loop closed meanwhile
        _safely(callback, *args)

    def _drain_queue(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _complete(self, state: RecordingState, writer: MkvWriter) -> None:
        self.state = state
        try:
            size = self.path.stat().st_size if self.path.exists() else 0
            digest = file_sha256(self.path) if size else ""
        except OSError:
            size, digest = 0, ""
        data = self._sidecar_data
        data.update(
            state=state.value,
            ended_at=self._clock(),
            duration_s=round(writer.duration_s, 3),
            frames=self.stats.frames_written,
            size=size,
            sha256=digest,
            error=self.error,
            depacketizer=_stats_dict(self._depacketizer.stats),
            queue_dropped=self.stats.queue_dropped,
            syncs=self.stats.syncs,
        )
        try:
            write_sidecar(self.sidecar, data)
        except OSError as exc:
            logger.warning("sidecar %s not written: %s", self.sidecar, exc)
        self._summary = RecordingSummary(
            self.path,
            self.sidecar,
            state,
            data["started_at"],  # type: ignore[arg-type]
            writer.duration_s,
            self.stats.frames_written,
            size,
            digest,
            self.error,
        )

    def _report_error(self, code: str, message: str) -> None:
        if self._on_error is not None:
            self._call_on_loop(self._on_error, self, code, message)

    def _started(self, started_at: float) -> None:
        self._sidecar_data["started_at"] = started_at
        write_sidecar(self.sidecar, self._sidecar_data)


def _safely(callback: Callable[..., None], *args: object) -> None:
    try:
        callback(*args)
    except Exception:
        logger.exception("recorder listener %r failed", callback)


def _stats_dict(stats: object) -> dict[str, int]:
    return {name: getattr(stats, name) for name in stats.__slots__}  # type: ignore[attr-defined]


__all__ = [
    "DISK_FULL",
    "WRITE_FAILED",
    "CodecLike",
    "RecorderStats",
    "RecordingSummary",
    "TrackRecorder",
]

"""Repair of recordings left behind by a crash (run on the next start, off the loop).

A track file whose sidecar still says ``recording`` was being written when the process
died: its last cluster is cut short and it has no index (cues) or duration. ``repair``
remuxes every packet that can still be read into a clean file (no decoding), replaces the
partial file with it, and marks the sidecar ``interrupted`` with the duration recovered.
A file with nothing readable is kept as it was and marked ``interrupted`` with duration 0.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import av

from recorder.mkv_writer import container_format
from recorder.sidecar import (
    RecordingState,
    file_sha256,
    fsync_path,
    read_sidecar,
    write_sidecar,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RepairResult:
    path: Path
    sidecar: Path
    duration_s: float
    packets: int
    size: int
    error: str | None = None  # why nothing could be recovered, if so


def find_partial(root: Path, skip: Collection[Path] = ()) -> list[Path]:
    """Sidecars under ``root`` (any depth) without a finished marker, oldest first; those
    in a folder of ``skip`` (sessions being recorded now) are left out."""
    found = []
    for sidecar in Path(root).rglob("*.json"):
        if sidecar.parent in skip:
            continue
        try:
            data = read_sidecar(sidecar)
        except ValueError:
            continue  # not ours (a rendition's files, say)
        if data.get("kind") == "track" and data["state"] == RecordingState.RECORDING:
            found.append(sidecar)
    return sorted(found, key=lambda p: p.stat().st_mtime)


def repair(sidecar: Path) -> RepairResult:
    """Remux the readable part of the track file described by ``sidecar``; idempotent."""
    data = read_sidecar(sidecar)
    path = sidecar.with_name(data["file"])
    tmp = path.with_name(path.stem + ".repair" + path.suffix)
    packets, duration, error = 0, 0.0, None
    kind = container_format(str((data.get("codec") or {}).get("mime_type", "")))
    if path.exists() and path.stat().st_size > 0:
        try:
            packets, duration = _remux(path, tmp, kind)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("repair of %s failed: %s", path, exc)
        if packets:
            fsync_path(tmp)  # durable before it replaces the partial file
            os.replace(tmp, path)
            fsync_path(path.parent, directory=True)
        else:
            tmp.unlink(missing_ok=True)
            error = error or "no readable media"
    else:
        error = "the file is missing or empty"
    size = path.stat().st_size if path.exists() else 0
    data.update(
        state=RecordingState.INTERRUPTED.value,
        duration_s=round(duration, 3),
        frames=packets,
        size=size,
        sha256=file_sha256(path) if size else "",
        repaired_at=time.time(),
        repair_error=error,
    )
    write_sidecar(sidecar, data)
    return RepairResult(path, sidecar, duration, packets, size, error)


def repair_all(root: Path, skip: Collection[Path] = ()) -> list[RepairResult]:
    """Repair every partial recording under ``root`` but those in ``skip`` (call via
    ``asyncio.to_thread``)."""
    results = []
    for sidecar in find_partial(root, skip):
        try:
            results.append(repair(sidecar))
        except (OSError, ValueError) as exc:
            logger.warning("cannot repair %s: %s", sidecar, exc)
    return results


def _remux(source: Path, target: Path, kind: str) -> tuple[int, float]:
    packets = 0
    end = 0.0
    with av.open(str(source)) as inp:
        if not inp.streams:
            return 0, 0.0
        in_stream = inp.streams[0]
        with av.open(str(target), "w", format=kind) as out:
            out_stream = out.add_stream_from_template(in_stream)
            try:
                for packet in inp.demux(in_stream):
                    if packet.pts is None or packet.size == 0:
                        continue
                    packet.stream = out_stream
                    out.mux(packet)
                    packets += 1
                    end = max(end, float(packet.pts * packet.time_base))
            except (av.error.InvalidDataError, av.error.EOFError) as exc:
                logger.info("repair of %s stops at the damage: %s", source, exc)
            if packets == 0:
                return 0, 0.0
    return packets, end

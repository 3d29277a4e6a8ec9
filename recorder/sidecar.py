"""The JSON sidecar written next to every track file, and the recording states.

A sidecar is replaced atomically (write a temporary file, fsync it, ``os.replace``, fsync
the folder), so after a crash, power loss included, it holds either the previous or the new
content. Blocking: write sidecars from the writer thread or via ``asyncio.to_thread``.
``state`` is the "finished" marker: a sidecar still saying ``recording`` when the service
starts means the process died during the lesson, and ``recorder.repair`` takes over.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

SIDECAR_FORMAT = 1


class RecordingState(StrEnum):
    RECORDING = "recording"  # being written, or the writer died (no finished marker)
    FINISHED = "finished"  # closed normally
    FAILED = "failed"  # stopped by a write error; the file keeps what was written
    INTERRUPTED = "interrupted"  # the process died; repaired on the next start


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """Who and what a track file records (copied into the sidecar)."""

    producer_id: str
    source: str  # e.g. "camera", "board", "screen", "microphone"
    classroom: str  # classroom id of the publisher
    lesson_id: str = ""
    peer_id: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def fsync_path(path: Path, *, directory: bool = False) -> None:
    """fsync a file, or a folder (so that names created or replaced in it are durable)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_sidecar(path: Path, data: dict[str, Any]) -> None:
    """Atomically and durably replace ``path`` with ``data`` as JSON."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(json.dumps(data, ensure_ascii=False, indent=1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:  # a full disk: the old sidecar stays whole, no empty .tmp is left
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent, directory=True)


def read_sidecar(path: Path) -> dict[str, Any]:
    """Read a sidecar; ValueError with the file name when it is not a sidecar we wrote."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"Recording sidecar {path.name} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"Recording sidecar {path.name} has an unknown format.")
    if data.get("state") not in {s.value for s in RecordingState}:
        raise ValueError(f"Recording sidecar {path.name} has an unknown state.")
    return data


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (call off the event loop)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

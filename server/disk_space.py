"""Free disk space of the folders the service writes: the data folder and the recording root.

Read by /readyz (below `min_free_disk_mb` the node is not ready: a restart onto a full disk
must not look healthy), by /metrics (`tongke_disk_free_bytes`) and by the lead's recording
status (`space_low`, so the page warns before the disk runs out mid-lesson). statvfs on a
local filesystem answers in microseconds; callers on the event loop may call it directly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from server.settings import Settings

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FolderSpace:
    folder: str  # "data" | "recordings"
    path: Path
    free_bytes: int | None  # None: the folder cannot be read (missing, not mounted)
    reason: str | None = None

    def low(self, min_free_bytes: int) -> bool:
        return self.free_bytes is None or self.free_bytes < min_free_bytes


def folder_space(folder: str, path: Path) -> FolderSpace:
    # A folder made on first use (the recording root) lives on its nearest existing parent.
    existing = next((p for p in (path, *path.parents) if p.exists()), path)
    try:
        return FolderSpace(folder, path, shutil.disk_usage(existing).free)
    except OSError as exc:
        return FolderSpace(folder, path, None, exc.strerror or type(exc).__name__)


def service_folders(settings: Settings) -> list[FolderSpace]:
    return [
        folder_space("data", settings.data_dir),
        folder_space("recordings", settings.effective_recording_root),
    ]


def min_free_bytes(settings: Settings) -> int:
    return settings.min_free_disk_mb * MIB


def space_problem(space: FolderSpace, settings: Settings) -> str | None:
    """One sentence when the folder is below the threshold or unreadable, else None."""
    if space.free_bytes is None:
        return f"{space.path} cannot be read: {space.reason}"
    if space.low(min_free_bytes(settings)):
        return (
            f"{space.path} has {space.free_bytes / MIB:.0f} MiB free, "
            f"below min_free_disk_mb ({settings.min_free_disk_mb} MiB)"
        )
    return None


class DiskSpaceCollector(Collector):
    """tongke_disk_free_bytes{folder}, read at scrape time."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        free = GaugeMetricFamily(
            "tongke_disk_free_bytes", "Free bytes where the service writes", labels=["folder"]
        )
        for space in service_folders(self._settings):
            if space.free_bytes is not None:
                free.add_metric([space.folder], space.free_bytes)
        yield free
        threshold = GaugeMetricFamily(
            "tongke_disk_min_free_bytes", "Free space below which the node is not ready"
        )
        threshold.add_metric([], min_free_bytes(self._settings))
        yield threshold

"""Real small or read-only filesystems for failure tests: a tmpfs mounted for the test.

Mounting needs root (CAP_SYS_ADMIN); without it the test is skipped with the reason, never
faked. A full disk and a read-only root are the kernel's own ENOSPC and EROFS.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m", *, readonly: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of `size` on `path` (made if missing) for the block's duration."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if readonly else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave_bytes: int = 0) -> None:
    """Fill the filesystem holding `path` until at most `leave_bytes` remain free."""
    chunk = b"\0" * 65536
    with open(path / "filler.bin", "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    if leave_bytes:
        size = (path / "filler.bin").stat().st_size
        with open(path / "filler.bin", "r+b") as f:
            f.truncate(max(0, size - leave_bytes))

"""Before `tongke serve` starts: can a media worker start here? One line when it cannot."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from server.preflight import ExitCode, StartupError
from server.settings import Settings
from server.workers.wiring import worker_config, worker_count
from server.workers.worker import ENV

CHECK_TIMEOUT_S = 60.0


def check_workers(settings: Settings) -> None:
    """Runs one worker with ``--check`` (it builds its media service and exits); raises
    StartupError with the worker's last line when it fails."""
    if worker_count(settings) == 0:
        return
    env = {**os.environ, ENV: json.dumps({**worker_config(settings), "node_id": "check"})}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "server.workers.worker", "--check"],
            env=env, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StartupError(ExitCode.WORKERS, f"media worker could not start: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1] if lines else f"exited with status {done.returncode}"
        raise StartupError(ExitCode.WORKERS, f"media worker could not start: {why}")

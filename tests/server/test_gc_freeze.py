"""The service freezes what start-up built out of the cyclic collector's view, once a process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_first_start_freezes_startup_objects_once(tmp_path: Path) -> None:
    # A fresh interpreter: the freeze is per process, and this one may have frozen already.
    script = textwrap.dedent(
        f"""
        import gc
        from fastapi.testclient import TestClient
        from server.app import create_app, freeze_startup_objects
        from server.settings import Settings

        settings = Settings(data_dir={str(tmp_path)!r}, seed_demo=False,
                            secret_key="test-secret-0123456789abcdef0123456789abcdef")
        assert gc.get_freeze_count() == 0
        with TestClient(create_app(settings)) as client:
            assert client.get("/healthz").status_code == 200
            frozen = gc.get_freeze_count()
        assert frozen > 10_000, frozen  # modules, classes, the app
        # A second start in the same process freezes nothing more (frozen objects may still
        # be freed by reference counting: the count can only fall).
        garbage = [[] for _ in range(1000)]
        freeze_startup_objects()
        assert gc.get_freeze_count() <= frozen
        del garbage
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"

"""`tongke demo` beside a running service: its own port and data folder, or one clear line."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from server.cli import main
from tongke_bench import demo_run


def test_the_demo_defaults_to_its_own_port_and_data_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    def fake_run(settings: Any, receivers: int = 2) -> int:
        seen.update(port=settings.port, data_dir=settings.data_dir, receivers=receivers)
        return 0

    monkeypatch.delenv("TONGKE_PORT", raising=False)
    monkeypatch.delenv("TONGKE_DATA_DIR", raising=False)
    monkeypatch.setattr(demo_run, "run_demo", fake_run)
    assert main(["demo"]) == 0
    assert seen["port"] == demo_run.DEMO_PORT != 8000
    assert Path(seen["data_dir"]).name == "data-demo"
    assert main(["demo", "--port", "8123", "--data-dir", "elsewhere"]) == 0
    assert (seen["port"], Path(seen["data_dir"]).name) == (8123, "elsewhere")


def test_a_taken_port_stops_the_demo_with_one_line_naming_the_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = main(
            ["demo", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path)]
        )
    assert code == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"error: port {port} is taken by process {os.getpid()} (")
    assert "--port" in out[0]
    assert not (tmp_path / "tongke.db").exists()  # nothing was seeded


def test_a_free_port_has_no_holder() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert demo_run.port_holder("127.0.0.1", port) is None

"""`tongke doctor` as an operator runs it (issue 17): a real process against a real
database, Redis, folders and sockets; a good setup passes, a broken one names each failure
and exits 1. The table comes in Chinese (default) or English."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def doctor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TONGKE_")}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "doctor", *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def foreign_listener() -> Iterator[int]:
    """A port another program holds."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def row(output: str, label: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(label)]
    assert len(lines) == 1, output
    return lines[0]


def test_a_good_setup_passes(tmp_path: Path) -> None:
    env = {
        "TONGKE_DATA_DIR": str(tmp_path / "data"),
        "TONGKE_TURN_URLS": "turn:turn.example.cn:3478?transport=udp",
        "TONGKE_TURN_SECRET": "s3cret",
        "TONGKE_MIN_FREE_DISK_MB": "1",
    }
    done = doctor("--port", str(free_port()), "--lang", "en", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "All checks passed." in out
    for label in ("settings", "database read/write", "data folder", "recording root", "port"):
        assert " ok " in row(out, label), label
    assert "skipped" in row(out, "Redis") and "skipped" in row(out, "clock skew")
    assert "s3cret" not in out  # the secret is never shown
    chinese = doctor("--port", str(free_port()), env={**env, "LANG": "zh_CN.UTF-8"})
    assert chinese.returncode == 0
    assert "同课 tongke 运行环境检查" in chinese.stdout and "全部检查通过。" in chinese.stdout
    assert "通过" in row(chinese.stdout, "数据库读写")


@pytest.mark.postgres
def test_postgres_redis_and_the_clock_are_checked(tmp_path: Path) -> None:
    env = {
        "TONGKE_DATA_DIR": str(tmp_path / "data"),
        "TONGKE_DATABASE_URL": "postgresql+asyncpg://127.0.0.1:5432/test",
        "TONGKE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "TONGKE_MIN_FREE_DISK_MB": "1",
    }
    done = doctor("--port", str(free_port()), "--lang", "en", env=env)
    out = done.stdout
    assert " ok " in row(out, "database read/write"), out
    assert " ok " in row(out, "Redis") and "PING answered" in out
    clock = row(out, "clock skew")
    assert " ok " in clock and "the database server" in clock


def test_a_broken_setup_names_each_failure(tmp_path: Path, foreign_listener: int) -> None:
    not_a_folder = tmp_path / "recordings-is-a-file"
    not_a_folder.write_text("")
    closed = free_port()
    env = {
        "TONGKE_DATA_DIR": str(tmp_path / "data"),
        "TONGKE_DATABASE_URL": f"postgresql+asyncpg://127.0.0.1:{closed}/tongke",
        "TONGKE_REDIS_URL": f"redis://127.0.0.1:{closed}/0",
        "TONGKE_RECORDING_ROOT": str(not_a_folder),
        "TONGKE_TLS_CERT": str(tmp_path / "missing.crt"),
        "TONGKE_TLS_KEY": str(tmp_path / "missing.key"),
        "TONGKE_TURN_URLS": "turn:turn.example.cn:3478",
        "TONGKE_MIN_FREE_DISK_MB": str(1 << 40),  # more than any disk here
    }
    done = doctor("--port", str(foreign_listener), "--lang", "en", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "Traceback" not in out + done.stderr
    failures = {
        "database read/write": f"127.0.0.1:{closed}/tongke cannot be used",
        "Redis": f"redis://127.0.0.1:{closed}/0 cannot be reached",
        "data folder": "below min_free_disk_mb",
        "recording root": f"{not_a_folder} is not writable",
        "TLS certificate": "missing.crt",
        "TURN / ICE": "turn_secret is empty",
        "port": f"127.0.0.1:{foreign_listener} cannot be used: in use by another program",
        "clock skew": "cannot read the database's clock",
    }
    for label, reason in failures.items():
        line = row(out, label)
        assert "FAILED" in line and reason in line, line
    assert "8 check(s) failed" in out


def test_a_missing_config_file_is_a_failed_settings_row(tmp_path: Path) -> None:
    done = doctor("--config", str(tmp_path / "typo.toml"), "--lang", "zh-CN", env={})
    assert done.returncode == 1
    line = row(done.stdout, "设置")
    assert "失败" in line and "typo.toml does not exist" in line
    env = {"TONGKE_DATA_DIR": str(tmp_path), "TONGKE_MIN_FREE_DISK_MB": "-5"}
    bad = doctor("--lang", "en", env=env)
    assert bad.returncode == 1
    line = row(bad.stdout, "settings")
    assert "FAILED" in line and "min_free_disk_mb" in line, line

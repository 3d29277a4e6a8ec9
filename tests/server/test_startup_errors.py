"""`tongke serve` that cannot start says why in one line, with its own exit status
(issue 17, findings 8 and 11). Each case used to start on defaults or print a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import main


def _serve(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["serve", "--no-demo", "--port", "1", *args])
    err = capsys.readouterr().err
    return code, err


def test_a_missing_config_file_stops_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo.toml"
    code, err = _serve(capsys, "--config", str(missing), "--data-dir", str(tmp_path))
    assert code == 2
    assert err == f"error: config file {missing} does not exist\n"
    assert not (tmp_path / "tongke.db").exists()  # nothing seeded, nothing started


def test_a_missing_config_file_named_by_the_environment_stops_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TONGKE_CONFIG", str(tmp_path / "nope.toml"))
    code, err = _serve(capsys, "--data-dir", str(tmp_path))
    assert (code, err.count("\n")) == (2, 1) and "nope.toml does not exist" in err


def test_an_unwritable_data_folder_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, err = _serve(capsys, "--data-dir", str(blocker / "data"))
    assert code == 3
    assert err.startswith(f"error: data folder {blocker / 'data'} is not writable")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.postgres
def test_a_missing_postgres_database_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/tongke_no_such_database"
    code, err = _serve(capsys, "--data-dir", str(tmp_path), "--database-url", url)
    assert code == 4
    assert err == (
        f'error: database {url} cannot be used: database "tongke_no_such_database" does not exist\n'
    )


def test_an_unreachable_database_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:9/test"  # discard: nothing listens
    code, err = _serve(capsys, "--data-dir", str(tmp_path), "--database-url", url)
    assert code == 4
    assert err.startswith(f"error: database {url} cannot be used: ")
    assert err.count("\n") == 1


def test_redis_down_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _serve(capsys, "--data-dir", str(tmp_path), "--redis-url", "redis://127.0.0.1:9/0")
    assert code == 5
    assert err.startswith("error: Redis redis://127.0.0.1:9/0 cannot be reached: ")
    assert err.count("\n") == 1


def test_debug_adds_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _serve(
        capsys, "--debug", "--data-dir", str(tmp_path), "--redis-url", "redis://127.0.0.1:9/0"
    )
    assert code == 5 and "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("error: Redis redis://127.0.0.1:9/0")

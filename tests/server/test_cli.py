"""`tongke db upgrade`, `tongke admin create` and `tongke seed-demo`."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.cli import main
from server.settings import Settings


def test_db_upgrade_creates_the_schema_in_the_data_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "new"
    assert main(["db", "upgrade", "--data-dir", str(data)]) == 0
    assert (data / "tongke.db").exists()
    assert "latest schema" in capsys.readouterr().out


def test_admin_create_makes_an_admin_who_can_sign_in(tmp_path: Path) -> None:
    args = ["admin", "create", "--data-dir", str(tmp_path), "--username", "root"]
    assert main([*args, "--password", "long enough", "--display-name", "管理员"]) == 0
    settings = Settings(data_dir=tmp_path, seed_demo=False, secret_key="k" * 32)
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/api/auth/login", json={"username": "root", "password": "long enough"}
        )
        account = response.json()["account"]
    assert (account["role"], account["display_name"]) == ("admin", "管理员")


def test_admin_create_refuses_a_taken_username_and_a_short_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["admin", "create", "--data-dir", str(tmp_path), "--username", "root"]
    assert main([*args, "--password", "long enough"]) == 0
    assert main([*args, "--password", "long enough"]) == 1
    assert "taken" in capsys.readouterr().err
    assert main([*args[:-1], "other", "--password", "short"]) == 1
    assert "at least 8" in capsys.readouterr().err


def test_admin_create_prompts_for_the_password_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["long enough", "different"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    args = ["admin", "create", "--data-dir", str(tmp_path), "--username", "root"]
    assert main(args) == 1
    assert "differ" in capsys.readouterr().err


def test_seed_demo_prints_links_once_and_then_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["seed-demo", "--data-dir", str(tmp_path), "--public-url", "http://10.0.0.5:8000"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("http://10.0.0.5:8000/join/") == 4
    assert out.count("http://10.0.0.5:8000/patrol?link=") == 1
    assert main(args) == 1
    assert "not empty" in capsys.readouterr().err

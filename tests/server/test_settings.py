"""Settings: defaults < TOML file < environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.addresses import lan_addresses
from server.settings import CONFIG_ENV, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("TONGKE_PORT", "TONGKE_DATABASE_URL", "TONGKE_ICE_SERVERS", CONFIG_ENV):
        monkeypatch.delenv(key, raising=False)


def test_embedded_defaults_use_sqlite_in_the_data_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/tongke.db"
    assert settings.redis_url == ""
    assert settings.effective_public_url == "http://127.0.0.1:8000"


def test_toml_file_is_overridden_by_environment_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "tongke.toml"
    config.write_text('port = 9000\nhost = "0.0.0.0"\nice_servers = ["stun:a.example.cn:3478"]\n')
    assert load_settings(config_file=config).port == 9000
    monkeypatch.setenv("TONGKE_PORT", "9100")
    assert load_settings(config_file=config).port == 9100
    settings = load_settings(config_file=config, port=9200)
    assert settings.port == 9200
    assert settings.ice_servers == ["stun:a.example.cn:3478"]
    # Listening on every interface: the first LAN address, never a loopback one.
    first = (lan_addresses(ipv6=False) or ["127.0.0.1"])[0]
    assert settings.effective_public_url == f"http://{first}:9200"


def test_ice_servers_from_the_environment_are_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TONGKE_ICE_SERVERS", "stun:a.example.cn:3478, turn:u:p@b.example.cn:3478")
    assert Settings().ice_servers == ["stun:a.example.cn:3478", "turn:u:p@b.example.cn:3478"]


def test_unknown_setting_in_the_toml_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "tongke.toml"
    config.write_text("prot = 9000\n")
    with pytest.raises(ValueError, match="prot"):
        load_settings(config_file=config)


def test_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).resolved_secret()
    assert len(first) >= 40
    assert Settings(data_dir=tmp_path).resolved_secret() == first
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


def test_websocket_origins_include_public_url_and_extras() -> None:
    settings = Settings(
        public_url="https://tk.example.cn/", allowed_origins=["https://b.example.cn"]
    )
    assert "https://tk.example.cn" in settings.origins
    assert "https://b.example.cn" in settings.origins
    assert "http://127.0.0.1:8000" in settings.origins

"""docker/compose.yaml, checked without a Docker engine: every TONGKE_* variable it sets is a
setting the service knows and accepts, and its services, ports and volumes fit together.

(Named test_docker_compose.py: tests/recorder/test_compose.py has the other basename.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
NODES = ("node-a", "node-b")


def interpolate(value: Any) -> Any:
    """Compose's ${NAME:-default} and ${NAME}, with the defaults (no environment)."""
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # yaml.safe_load resolves the x-node anchors and `<<` merges as Compose does.
    return interpolate(yaml.safe_load(COMPOSE.read_text()))


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: str(v) for k, v in raw.items()}


def tongke_settings(service: dict[str, Any]) -> dict[str, str]:
    return {
        k.removeprefix("TONGKE_").lower(): v
        for k, v in env(service).items()
        if k.startswith("TONGKE_")
    }


def test_the_file_has_two_nodes_redis_postgres_and_coturn(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "postgres", "coturn", *NODES} <= set(services)
    for name in NODES:
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file()


@pytest.mark.parametrize("name", [*NODES, "migrate"])
def test_every_tongke_variable_is_a_setting_with_a_valid_value(
    compose: dict[str, Any], name: str
) -> None:
    values = tongke_settings(compose["services"][name])
    assert values, f"{name} sets no TONGKE_* variable"
    unknown = set(values) - set(Settings.model_fields)
    assert not unknown, f"{name} sets variables the service does not know: {unknown}"
    # The service's own validation (types, ranges, production without faults).
    settings = Settings(**values)  # type: ignore[arg-type]
    if name in NODES:
        assert settings.redis_url and settings.database_url.startswith("postgresql+asyncpg://")
        assert settings.production and not settings.seed_demo


def test_the_nodes_share_what_a_cluster_shares_and_differ_where_they_must(
    compose: dict[str, Any],
) -> None:
    nodes = [tongke_settings(compose["services"][name]) for name in NODES]
    for shared in ("redis_url", "redis_prefix", "database_url", "secret_key", "turn_secret"):
        assert len({n[shared] for n in nodes}) == 1, f"{shared} differs between nodes"
    for own in ("node_id", "port", "public_url"):
        assert len({n[own] for n in nodes}) == len(nodes), f"{own} must differ between nodes"
    migrate = tongke_settings(compose["services"]["migrate"])
    assert migrate["database_url"] == nodes[0]["database_url"]


def caddy_sites() -> dict[str, str]:
    """docker/Caddyfile: site name -> the upstream its reverse_proxy sends to."""
    text = (COMPOSE.parent / "Caddyfile").read_text()
    sites = re.findall(r"^([\w.-]+) \{\n\treverse_proxy (\S+)", text, flags=re.MULTILINE)
    return dict(sites)


def test_each_node_health_check_uses_its_port_and_the_tls_front_serves_its_public_url(
    compose: dict[str, Any],
) -> None:
    sites = caddy_sites()
    for name in NODES:
        service = compose["services"][name]
        values = tongke_settings(service)
        assert service["network_mode"] == "host", "media needs the host network"
        assert f"127.0.0.1:{values['port']}/readyz" in " ".join(service["healthcheck"]["test"])
        assert values["host"] == "0.0.0.0"
        # Browsers reach the node over HTTPS at the front, which proxies to the node's port.
        public = urlsplit(values["public_url"])
        assert public.scheme == "https" and public.port is None
        assert sites[public.hostname or ""] == f"127.0.0.1:{values['port']}"
        # The front's forwarded headers are believed, and only from this machine.
        assert Settings(trusted_proxies=values["trusted_proxies"]).trusted_proxies == [  # type: ignore[arg-type]
            "127.0.0.1",
            "::1",
        ]


def test_the_tls_front_mounts_the_caddyfile_and_keeps_its_certificates(
    compose: dict[str, Any],
) -> None:
    front = compose["services"]["tls-front"]
    assert front["image"].startswith("caddy:2")
    assert front["network_mode"] == "host"  # reaches the nodes on 127.0.0.1
    mounts = dict(str(v).split(":")[:2] for v in front["volumes"])
    assert mounts["./Caddyfile"] == "/etc/caddy/Caddyfile"
    assert (COMPOSE.parent / "Caddyfile").is_file()
    assert mounts["caddy-data"] == "/data"


def published(service: dict[str, Any]) -> dict[int, str]:
    """container port -> the host address:port it is published on ("IP:HOST:CONTAINER")."""
    out = {}
    for spec in service.get("ports", []):
        host_ip, host_port, container = str(spec).split(":")
        out[int(container)] = f"{host_ip}:{host_port}"
    return out


def test_redis_and_postgres_urls_reach_the_services_compose_runs(compose: dict[str, Any]) -> None:
    services = compose["services"]
    node = tongke_settings(services["node-a"])
    redis = urlsplit(node["redis_url"])
    assert published(services["redis"])[6379] == f"{redis.hostname}:{redis.port}"
    db = urlsplit(node["database_url"])
    postgres = env(services["postgres"])
    assert published(services["postgres"])[5432] == f"{db.hostname}:{db.port}"
    assert (db.username, db.password, db.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    for name in NODES:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["tongke", "db", "upgrade"]


def test_turn_settings_match_the_coturn_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    node = tongke_settings(services["node-a"])
    flags = dict(
        arg.removeprefix("--").split("=", 1) if "=" in arg else (arg.removeprefix("--"), "")
        for arg in services["coturn"]["command"]
    )
    assert "use-auth-secret" in flags
    assert flags["static-auth-secret"] == node["turn_secret"]
    for url in Settings(turn_urls=node["turn_urls"]).turn_urls:  # type: ignore[arg-type]
        assert url.split("?")[0].rsplit(":", 1)[1] == flags["listening-port"]


def test_volumes_are_declared_used_and_the_library_is_shared(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared = set(compose.get("volumes") or {})
    used: set[str] = set()
    mounts: dict[str, dict[str, str]] = {}
    for name, service in services.items():
        for spec in service.get("volumes", []):
            source, target = str(spec).split(":")[:2]
            if not source.startswith((".", "/")):
                used.add(source)
                mounts.setdefault(name, {})[source] = target
    assert used == declared, "every named volume declared once and used"
    for name in NODES:
        root = tongke_settings(services[name])["recording_root"]
        target = mounts[name]["library"]
        assert root.startswith(target), f"{name} records outside the shared library volume"
    assert mounts["postgres"]["pgdata"] == "/var/lib/postgresql/data"


def test_docker_waits_for_a_draining_node(compose: dict[str, Any]) -> None:
    units = {"s": 1, "m": 60, "h": 3600}
    for name in NODES:
        service = compose["services"][name]
        grace = re.fullmatch(r"(\d+)([smh])", service["stop_grace_period"])
        assert grace is not None
        seconds = int(grace.group(1)) * units[grace.group(2)]
        assert seconds > float(tongke_settings(service)["drain_timeout_s"])

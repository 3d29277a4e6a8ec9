"""TURN: time-limited credentials in the join reply, and media through a real coturn.

coturn (Debian's ``turnserver``) is started per test on loopback with a temporary config in
the form docs/operations.md shows (use-auth-secret + static-auth-secret). The e2e test joins a
lesson through the real service: a lead publishes on loopback host candidates, a receiving
classroom restricted to relay candidates (iceTransportPolicy relay) receives its media
through TURN over UDP, over TCP and over TLS (``turns:``, coturn's certificate signed by a
throwaway test CA that the classroom trusts).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from aioice import Connection, TransportPolicy
from sqlalchemy import select

from media import aiortc_hooks as hooks
from media.synthetic.terminal import SyntheticTerminal
from server.app import create_app
from server.settings import Settings
from server.turn import IceServerIssuer, TurnConfigError, turn_credentials

SECRET = "turn-test-secret-never-shown-7f3a9c"
REALM = "tongke.test"
LOOPBACK = ["127.0.0.1"]


def _free_port() -> int:
    """A port free for both UDP and TCP on loopback (coturn listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


@dataclass
class Coturn:
    port: int
    tls_port: int
    ca_file: Path  # the test CA that signed coturn's certificate (for 127.0.0.1)
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, transport: str) -> str:
        """``udp`` and ``tcp``: plain TURN; ``tls``: TURN over TLS (``turns:``, as on 443)."""
        if transport == "tls":
            return f"turns:127.0.0.1:{self.tls_port}?transport=tcp"
        return f"turn:127.0.0.1:{self.port}?transport={transport}"


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it: (ca, cert, key) PEMs."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: x509.Name | None, key: object, signer: object, ca: bool):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())  # type: ignore[attr-defined]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("tongke test CA", None, ca_key, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("127.0.0.1", ca_cert.subject, key, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "turn-cert.pem", folder / "turn-key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def _turnserver() -> str:
    binary = shutil.which("turnserver")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("turnserver (Debian coturn) is missing in CI: run ensure-system-deps.sh")
        pytest.skip("turnserver (Debian coturn) is not installed: apt-get install coturn")
    return binary


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    binary = _turnserver()
    port = _free_port()
    tls_port = _free_port()
    ca, cert, key = _tls_files(tmp_path)
    relay_low = 40000 + (port * 7) % 20000  # a spread-out relay range, unlikely to collide
    config = tmp_path / "turnserver.conf"
    config.write_text(
        "\n".join(
            [
                "listening-ip=127.0.0.1",
                "relay-ip=127.0.0.1",
                f"listening-port={port}",
                f"min-port={relay_low}",
                f"max-port={relay_low + 200}",
                "use-auth-secret",
                f"static-auth-secret={SECRET}",
                f"realm={REALM}",
                "fingerprint",
                f"tls-listening-port={tls_port}",
                f"cert={cert}",
                f"pkey={key}",
                "no-dtls",
                "no-cli",
                # The SFU's candidates are on 127.0.0.1 here; never in production.
                "allow-loopback-peers",
                f"pidfile={tmp_path / 'turnserver.pid'}",
                f"userdb={tmp_path / 'turndb'}",
                "log-file=stdout",
                "simple-log",
                "",
            ]
        )
    )
    log = tmp_path / "turnserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen([binary, "-c", str(config)], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"turnserver did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield Coturn(port, tls_port, ca, process, log)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Credentials ---------------------------------------------------------------------------


def test_credentials_follow_the_turn_rest_api_scheme() -> None:
    username, credential = turn_credentials("s3cret", "classroom-7", 3600, now=1_800_000_000.7)
    assert username == "1800003600:classroom-7"
    expected = base64.b64encode(hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest())
    assert credential == expected.decode()


def test_each_peer_gets_static_servers_and_its_own_turn_entry() -> None:
    issuer = IceServerIssuer(
        static=["stun:stun.example.cn:3478"],
        turn_urls=[
            "turn:turn.example.cn:3478?transport=udp",
            "turn:turn.example.cn:3478?transport=tcp",
            "turns:turn.example.cn:443?transport=tcp",
        ],
        turn_secret="s3cret",
        ttl_s=600,
        clock=lambda: 1000.0,
    )
    stun, turn = issuer.for_user("room-a")
    assert stun.urls == ["stun:stun.example.cn:3478"] and stun.username is None
    assert turn.urls == [
        "turn:turn.example.cn:3478?transport=udp",
        "turn:turn.example.cn:3478?transport=tcp",
        "turns:turn.example.cn:443?transport=tcp",
    ]
    assert turn.username == "1600:room-a"
    assert turn.credential == turn_credentials("s3cret", "room-a", 600, 1000.0)[1]
    assert "s3cret" not in repr(issuer)
    # Without TURN settings: only the static list, credentials included as configured.
    (plain,) = IceServerIssuer(static=["turn:u:p@turn.example.cn:3478"]).for_user("x")
    assert (plain.urls, plain.username, plain.credential) == (
        ["turn:turn.example.cn:3478"],
        "u",
        "p",
    )


@pytest.mark.parametrize(
    ("urls", "secret", "ttl", "fragment"),
    [
        (["turn:t.example.cn:3478"], "", 600, "turn_secret is empty"),
        ([], "s3cret-value", 600, "turn_urls is empty"),
        (["stun:t.example.cn:3478"], "s3cret-value", 600, "turn: or turns:"),
        (["turn:u:p@t.example.cn:3478"], "s3cret-value", 600, "without credentials"),
        (["turn:t.example.cn:3478?transport=sctp"], "s3cret-value", 600, "unsupported transport"),
        (["turns:t.example.cn:443?transport=udp"], "s3cret-value", 600, "unsupported transport"),
        (["turn:t.example.cn:x"], "s3cret-value", 600, "is invalid"),
        (["turn:t.example.cn:3478"], "s3cret-value", 5, "at least 60"),
    ],
)
def test_inconsistent_turn_settings_stop_the_start_without_showing_the_secret(
    urls: list[str], secret: str, ttl: int, fragment: str
) -> None:
    with pytest.raises(TurnConfigError) as caught:
        IceServerIssuer(turn_urls=urls, turn_secret=secret, ttl_s=ttl)
    assert fragment in str(caught.value)
    assert "s3cret-value" not in str(caught.value)


def test_the_app_refuses_to_start_with_half_a_turn_setup(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, turn_urls=["stun:t.example.cn:3478"], turn_secret="s3cret-value"
    )
    with pytest.raises(TurnConfigError) as caught:
        create_app(settings)
    assert "s3cret-value" not in str(caught.value)
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in str(settings)
    assert "s3cret-value" not in settings.model_dump_json()


def test_turn_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TONGKE_TURN_URLS",
        "turn:t.example.cn:3478?transport=udp,turns:t.example.cn:443?transport=tcp",
    )
    monkeypatch.setenv("TONGKE_TURN_SECRET", "from-env")
    monkeypatch.setenv("TONGKE_TURN_TTL_S", "7200")
    settings = Settings()
    assert settings.turn_urls == [
        "turn:t.example.cn:3478?transport=udp",
        "turns:t.example.cn:443?transport=tcp",
    ]
    assert settings.turn_secret.get_secret_value() == "from-env"
    assert settings.turn_ttl_s == 7200


async def _relay_candidates(coturn: Coturn, username: str, credential: str) -> list[str]:
    """Allocate on coturn with these credentials; the relay candidates it granted."""
    connection = Connection(
        ice_controlling=True,
        turn_server=("127.0.0.1", coturn.port),
        turn_username=username,
        turn_password=credential,
        turn_transport="udp",
        transport_policy=TransportPolicy.RELAY,
    )
    try:
        await connection.gather_candidates()
        return [c.type for c in connection.local_candidates]
    finally:
        await connection.close()


async def test_coturn_accepts_minted_credentials_and_refuses_expired_or_forged_ones(
    coturn: Coturn,
) -> None:
    now = time.time()
    good = turn_credentials(SECRET, "room-a", 600, now)
    assert await _relay_candidates(coturn, *good) == ["relay"]
    expired = turn_credentials(SECRET, "room-a", -60, now)
    assert await _relay_candidates(coturn, *expired) == []
    forged = turn_credentials("another-secret", "room-a", 600, now)
    assert await _relay_candidates(coturn, *forged) == []


# Media through TURN --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[str]:
    """The whole service (uvicorn, this event loop) on a free loopback port."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            raise RuntimeError("the service did not start")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def _demo_codes(settings: Settings) -> dict[str, list[str]]:
    from server.db import open_database
    from server.db.models import JoinLink
    from server.demo import seed_demo

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_database(settings) as db:
        await seed_demo(db, settings)
        async with db.sessions.begin() as session:
            links = (await session.scalars(select(JoinLink))).all()
    codes: dict[str, list[str]] = {}
    for link in links:
        codes.setdefault(link.role, []).append(link.code)
    return codes


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_a_relay_only_classroom_receives_the_lead_through_turn(
    transport: str,
    coturn: Coturn,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """UDP, TCP, and TLS (``turns:``, the way through a school firewall that opens only 443):
    the classroom's TURN client checks coturn's certificate against the test CA."""
    caplog.set_level(logging.DEBUG, logger="tongke")
    other = "tcp" if transport == "udp" else "udp"
    monkeypatch.setenv("SSL_CERT_FILE", str(coturn.ca_file))  # OpenSSL's default trust
    settings = Settings(
        data_dir=tmp_path / "data",
        seed_demo=False,
        secret_key="test-secret-0123456789abcdef0123456789abcdef",
        media_addresses=LOOPBACK,
        # coturn answers STUN too (a dead STUN address would stall every gathering 5 s).
        ice_servers=[f"stun:127.0.0.1:{coturn.port}"],
        # aiortc uses the first TURN URL it can; browsers try them all.
        turn_urls=[coturn.url(transport), coturn.url(other)],
        turn_secret=SECRET,
        turn_ttl_s=900,
    )
    codes = await _demo_codes(settings)
    async with _service(settings) as base:
        lead = SyntheticTerminal(base, codes["lead"][0], host_addresses=LOOPBACK)
        school = SyntheticTerminal(base, codes["receiver"][0], relay_only=True)
        try:
            await lead.start(start_lesson=True)
            joined_at = time.time()
            await school.start()
            # The join reply: the configured STUN server, then this classroom's TURN entry.
            stun, turn = school.joined["ice_servers"]
            assert stun == {
                "urls": [f"stun:127.0.0.1:{coturn.port}"],
                "username": None,
                "credential": None,
            }
            assert turn["urls"] == [coturn.url(transport), coturn.url(other)]
            expiry, user = turn["username"].split(":", 1)
            assert user == school.joined["you"]["classroom_id"]
            assert abs(int(expiry) - (joined_at + 900)) < 5
            mac = hmac.new(SECRET.encode(), turn["username"].encode(), hashlib.sha1).digest()
            assert turn["credential"] == base64.b64encode(mac).decode()
            # Each classroom's credentials are its own.
            assert lead.joined["ice_servers"][1]["username"].endswith(
                ":" + lead.joined["you"]["classroom_id"]
            )

            deadline = asyncio.get_running_loop().time() + 20
            while school.frames("video") < 25 or school.frames("audio") < 25:
                assert asyncio.get_running_loop().time() < deadline, (
                    f"through TURN/{transport}: video {school.frames('video')}, "
                    f"audio {school.frames('audio')} frames"
                )
                await asyncio.sleep(0.1)
            assert school.receiver is not None
            local, _remote = hooks.nominated_candidate_types(school.receiver.pc) or ("", "")
            assert local == "relay"
            assert school.receiver.pc.iceConnectionState == "completed"
            # The lead, unrestricted, stays on loopback host candidates.
            assert lead.publisher is not None
            assert hooks.nominated_candidate_types(lead.publisher.pc) == ("host", "host")

            async with httpx.AsyncClient(base_url=base) as http:
                metrics = (await http.get("/metrics")).text
                ready = (await http.get("/readyz")).text
            assert SECRET not in metrics and SECRET not in ready
        finally:
            await school.close()
            await lead.close()
    assert SECRET not in caplog.text

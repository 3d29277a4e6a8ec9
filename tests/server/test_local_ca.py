"""`tongke serve --https`: the local CA and the server certificate it signs (server/local_ca.py)."""

from __future__ import annotations

import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from server.local_ca import RENEW_BEFORE, SERVER_LIFETIME, ensure_local_tls
from server.settings import Settings
from server.tls import load_certificate

LAN = ["192.168.1.10", "2001:db8::10"]


def settings_for(data_dir: Path, **extra: object) -> Settings:
    return Settings(data_dir=data_dir, https=True, **extra)  # type: ignore[arg-type]


def sans(path: Path) -> tuple[set[str], set[str]]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        set(san.get_values_for_type(x509.DNSName)),
        {str(a) for a in san.get_values_for_type(x509.IPAddress)},
    )


def handshake(cert: Path, key: Path, ca: Path, host: str) -> None:
    """A TLS handshake in memory: a client trusting `ca` dials `host`, the server answers."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(ca))
    pipes = [ssl.MemoryBIO() for _ in range(4)]
    client = client_ctx.wrap_bio(pipes[0], pipes[1], server_hostname=host)
    server = server_ctx.wrap_bio(pipes[2], pipes[3], server_side=True)
    done = {client: False, server: False}
    for _ in range(10):
        for end in (client, server):
            if not done[end]:
                try:
                    end.do_handshake()
                    done[end] = True
                except ssl.SSLWantReadError:
                    pass
        pipes[2].write(pipes[1].read())  # client -> server
        pipes[0].write(pipes[3].read())  # server -> client
        if all(done.values()):
            return
    raise AssertionError("the handshake did not finish")


def test_the_server_certificate_names_localhost_loopback_every_lan_address_and_hostnames(
    tmp_path: Path,
) -> None:
    settings = settings_for(
        tmp_path, tls_hostnames=["tk.school.cn"], public_url="https://school.test:8443"
    )
    tls = ensure_local_tls(settings, addresses=LAN)
    dns, ips = sans(tls.cert_file)
    assert {"localhost", "tk.school.cn", "school.test"} <= dns
    assert ips == {"127.0.0.1", "::1", "192.168.1.10", "2001:db8::10"}
    for host in ("192.168.1.10", "[2001:db8::10]", "::1", "school.test", "localhost"):
        assert tls.cert.covers(host), host
    assert not tls.cert.covers("192.168.1.11")


def test_the_server_certificate_is_signed_by_the_ca_and_serves_tls_for_a_lan_address(
    tmp_path: Path,
) -> None:
    tls = ensure_local_tls(settings_for(tmp_path), addresses=LAN)
    assert tls.ca_file is not None
    ca = x509.load_pem_x509_certificate(tls.ca_file.read_bytes())
    server = x509.load_pem_x509_certificate(tls.cert_file.read_bytes())
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert tls.ca_pem == tls.ca_file.read_bytes()
    assert tls.ca_fingerprint == ca.fingerprint(hashes.SHA256()).hex(":").upper()
    load_certificate(tls.cert_file, tls.key_file)  # key and certificate belong together
    # What a browser that trusts the CA checks: the chain, and the name it dialled.
    for host in ("192.168.1.10", "2001:db8::10", "localhost"):
        handshake(tls.cert_file, tls.key_file, tls.ca_file, host)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tls.cert_file, tls.key_file, tls.ca_file, "192.168.1.99")


def test_private_keys_are_owner_only_and_the_folder_too(tmp_path: Path) -> None:
    tls = ensure_local_tls(settings_for(tmp_path), addresses=LAN)
    folder = tls.cert_file.parent
    for key in (folder / "ca.key", tls.key_file):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_restart_with_the_same_addresses_reuses_ca_and_certificate(tmp_path: Path) -> None:
    first = ensure_local_tls(settings_for(tmp_path), addresses=LAN)
    cert, key = first.cert_file.read_bytes(), first.key_file.read_bytes()
    again = ensure_local_tls(settings_for(tmp_path), addresses=list(reversed(LAN)))
    assert again.ca_fingerprint == first.ca_fingerprint
    assert again.cert.fingerprint == first.cert.fingerprint
    assert (again.cert_file.read_bytes(), again.key_file.read_bytes()) == (cert, key)


def test_a_new_address_gets_a_new_certificate_from_the_same_ca(tmp_path: Path) -> None:
    first = ensure_local_tls(settings_for(tmp_path), addresses=LAN)
    moved = ensure_local_tls(settings_for(tmp_path), addresses=["10.20.0.7"])
    assert moved.ca_fingerprint == first.ca_fingerprint
    assert moved.cert.fingerprint != first.cert.fingerprint
    assert "10.20.0.7" in sans(moved.cert_file)[1]


def test_a_new_hostname_gets_a_new_certificate(tmp_path: Path) -> None:
    first = ensure_local_tls(settings_for(tmp_path), addresses=LAN)
    named = ensure_local_tls(settings_for(tmp_path, tls_hostnames=["tk.x.cn"]), addresses=LAN)
    assert named.cert.fingerprint != first.cert.fingerprint
    assert named.cert.covers("tk.x.cn")


def test_a_certificate_near_its_end_is_renewed_at_start(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    first = ensure_local_tls(settings_for(tmp_path), now=now, addresses=LAN)
    assert first.cert.not_after - now > SERVER_LIFETIME - timedelta(days=1)
    # Still more than RENEW_BEFORE left: kept.
    later = now + SERVER_LIFETIME - RENEW_BEFORE - timedelta(days=2)
    kept = ensure_local_tls(settings_for(tmp_path), now=later, addresses=LAN)
    assert kept.cert.fingerprint == first.cert.fingerprint
    near = now + SERVER_LIFETIME - RENEW_BEFORE + timedelta(days=1)
    renewed = ensure_local_tls(settings_for(tmp_path), now=near, addresses=LAN)
    assert renewed.cert.fingerprint != first.cert.fingerprint
    assert renewed.cert.not_after > first.cert.not_after
    assert renewed.ca_fingerprint == first.ca_fingerprint


def test_a_certificate_from_another_ca_or_a_broken_file_is_replaced(tmp_path: Path) -> None:
    first = ensure_local_tls(settings_for(tmp_path), addresses=LAN)
    other = ensure_local_tls(settings_for(tmp_path / "other"), addresses=LAN)
    first.cert_file.write_bytes(other.cert_file.read_bytes())
    first.key_file.write_bytes(other.key_file.read_bytes())
    fixed = ensure_local_tls(settings_for(tmp_path), addresses=LAN)
    assert fixed.cert.fingerprint not in (first.cert.fingerprint, other.cert.fingerprint)
    x509.load_pem_x509_certificate(fixed.cert_file.read_bytes()).verify_directly_issued_by(
        x509.load_pem_x509_certificate((tmp_path / "tls" / "ca.crt").read_bytes())
    )
    fixed.cert_file.write_text("garbage")
    assert ensure_local_tls(settings_for(tmp_path), addresses=LAN).cert.covers("192.168.1.10")

"""TLS checks before serving (server/tls.py): bad input is one line naming the file, never a
traceback; expiry and a public_url the certificate does not name are warned about; /ca.crt
and /api/tls say what a classroom PC must trust."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from server.app import create_app
from server.local_ca import ensure_local_tls
from server.settings import Settings
from server.tls import TlsError, load_certificate, prepare_tls

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """A real certificate and key (from the local CA) copied out as a district's would be."""
    tls = ensure_local_tls(Settings(data_dir=tmp_path / "ca", https=True), addresses=[])
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_bytes(tls.cert_file.read_bytes() + tls.ca_pem)  # leaf, then the chain
    key.write_bytes(tls.key_file.read_bytes())
    return cert, key


def serve_fails(*args: str) -> str:
    """`tongke serve ARGS` in a child process: must exit non-zero at once; its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--no-demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_certificate_with_its_chain_and_key_is_accepted(pair: tuple[Path, Path]) -> None:
    cert, key = pair
    tls = load_certificate(cert, key)
    assert tls.cert.covers("localhost") and tls.ca_file is None


def test_a_missing_certificate_is_named(pair: tuple[Path, Path], tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(TlsError, match=f"cannot read TLS certificate {missing}: No such file"):
        load_certificate(missing, pair[1])


def test_a_file_without_a_certificate_is_named(pair: tuple[Path, Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(TlsError, match=f"TLS certificate {junk} holds no PEM certificate"):
        load_certificate(junk, pair[1])
    with pytest.raises(TlsError, match=f"TLS key {junk} holds no PEM private key"):
        load_certificate(pair[0], junk)


def test_a_key_of_another_certificate_is_refused(pair: tuple[Path, Path], tmp_path: Path) -> None:
    other = ensure_local_tls(Settings(data_dir=tmp_path / "b", https=True), addresses=[])
    with pytest.raises(TlsError, match=f"TLS key {other.key_file} does not belong to"):
        load_certificate(pair[0], other.key_file)


def test_an_encrypted_key_is_refused(pair: tuple[Path, Path], tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pair[1].read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TlsError, match=f"TLS key {locked} is encrypted"):
        load_certificate(pair[0], locked)


def test_a_key_without_a_certificate_and_https_with_files_are_refused(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    with pytest.raises(TlsError, match=f"TLS key {key} given without a certificate"):
        prepare_tls(Settings(data_dir=tmp_path, tls_key=key))
    with pytest.raises(TlsError, match="leave out --tls-cert and --tls-key"):
        prepare_tls(Settings(data_dir=tmp_path, https=True, tls_cert=key, tls_key=key))
    assert prepare_tls(Settings(data_dir=tmp_path)) is None


def test_serve_with_bad_tls_files_exits_with_one_line_naming_the_file(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    missing = tmp_path / "missing.pem"
    line = serve_fails(*data, "--tls-cert", str(missing), "--tls-key", str(pair[1]))
    assert line.startswith("error: cannot read TLS certificate") and str(missing) in line
    line = serve_fails(*data, "--tls-key", str(pair[1]))
    assert str(pair[1]) in line and "without a certificate" in line
    other = ensure_local_tls(Settings(data_dir=tmp_path / "b", https=True), addresses=[])
    line = serve_fails(*data, "--tls-cert", str(pair[0]), "--tls-key", str(other.key_file))
    assert "does not belong" in line and str(other.key_file) in line


def test_serve_with_a_bad_trusted_proxy_exits_with_one_line(tmp_path: Path) -> None:
    line = serve_fails("--data-dir", str(tmp_path), "--trusted-proxy", "proxy.lan")
    assert "trusted_proxies" in line and "proxy.lan" in line


def test_an_expiring_or_expired_certificate_is_warned_about(pair: tuple[Path, Path]) -> None:
    tls = load_certificate(*pair)
    end = tls.cert.not_after
    assert tls.warnings(now=end - timedelta(days=60)) == []
    (soon,) = tls.warnings(now=end - timedelta(days=5, hours=1))
    assert soon.startswith(f"TLS certificate {pair[0]} expires in 5 days")
    (gone,) = tls.warnings(now=end + timedelta(days=1))
    assert gone == f"TLS certificate {pair[0]} expired on {end:%Y-%m-%d}"


def test_a_public_url_the_certificate_does_not_name_is_warned_about(
    pair: tuple[Path, Path],
) -> None:
    tls = load_certificate(*pair)
    now = datetime.now(UTC)
    assert tls.warnings("https://localhost:8443", now) == []
    (warning,) = tls.warnings("https://tk.example.cn", now)
    assert "public_url host tk.example.cn is not named by TLS certificate" in warning


def test_wildcard_names_cover_one_label() -> None:
    tls_cert = x509.DNSName("*.school.cn")
    from server.tls import CertInfo

    info = CertInfo(Path("c"), datetime.now(UTC), frozenset({tls_cert.value}), frozenset(), "")
    assert info.covers("tk.school.cn") and info.covers("TK.School.cn.")
    assert not info.covers("school.cn") and not info.covers("a.tk.school.cn")


def test_ca_crt_serves_the_ca_certificate_and_api_tls_its_fingerprint(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, https=True, seed_demo=False, secret_key="k" * 40)
    tls = prepare_tls(settings)
    assert tls is not None and tls.ca_file is not None
    with TestClient(create_app(settings, tls)) as client:
        response = client.get("/ca.crt")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-x509-ca-cert"
        assert response.content == tls.ca_file.read_bytes()
        assert b"PRIVATE KEY" not in response.content
        x509.load_pem_x509_certificate(response.content)
        info = client.get("/api/tls").json()
        assert info["mode"] == "local_ca" and info["ca_url"] == "/ca.crt"
        assert info["ca_fingerprint_sha256"] == tls.ca_fingerprint
        assert len(info["ca_fingerprint_sha256"].split(":")) == 32
        # The keys are nowhere under the web root or the API.
        for path in ("/tls/ca.key", "/ca.key", "/server.key", "/tls/server.key"):
            assert client.get(path).status_code == 404
        ready = client.get("/readyz").json()
        assert ready["ready"] and ready["tls"]["warnings"] == []
        assert ready["tls"]["not_after"] == tls.cert.not_after.isoformat()


def test_without_https_there_is_no_ca_to_download(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, seed_demo=False, secret_key="k" * 40)
    with TestClient(create_app(settings)) as client:
        response = client.get("/ca.crt")
        assert (response.status_code, response.json()["error"]["code"]) == (404, "no_local_ca")
        assert client.get("/api/tls").json()["mode"] == "off"
        assert "tls" not in client.get("/readyz").json()


def test_readyz_carries_the_tls_warnings(pair: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = pair
    settings = Settings(
        data_dir=tmp_path,
        tls_cert=cert,
        tls_key=key,
        public_url="https://tk.example.cn",
        seed_demo=False,
        secret_key="k" * 40,
    )
    with TestClient(create_app(settings, prepare_tls(settings))) as client:
        ready = client.get("/readyz").json()
    assert ready["ready"] is True
    assert any("tk.example.cn" in w for w in ready["tls"]["warnings"])

"""`tongke serve --https`: a local certificate authority for one school's LAN.

Made once under <data_dir>/tls/: the CA (ca.key, ca.crt), which each classroom PC trusts
once (served at /ca.crt, explained at /ca/), and a server certificate it signs
(server.key, server.crt) naming localhost, this machine's hostname, the configured
tls_hostnames and public_url host, and every interface address, IPv4 and IPv6. At every
start the server certificate is kept when it still names all of those and has more than
RENEW_BEFORE left; otherwise (a new address from DHCP, a new name, near its end) the CA
signs a new one, and classroom PCs notice nothing: they trust the CA, not the certificate.

Keys are written 0600 and never served. Certificates are made with the `cryptography`
package (no openssl on the machine needed).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from server.addresses import WILDCARD_HOSTS, lan_addresses
from server.settings import Settings
from server.tls import ServingTls, TlsError, cert_info, fingerprint

log = logging.getLogger("tongke.tls")

# The CA is trusted by hand on every classroom PC, so it lasts: 10 years.
CA_LIFETIME = timedelta(days=3650)
# Apple refuses server certificates valid for more than 825 days even under a private CA;
# 397 also fits the public CAs' rule, which some browsers may one day apply to all.
SERVER_LIFETIME = timedelta(days=397)
# Renewed at a start this close to its end (well before tls.EXPIRY_WARNING would warn).
RENEW_BEFORE = timedelta(days=30)
# Classroom PCs with a slow clock must not see a certificate "not yet valid".
BACKDATE = timedelta(days=1)
_DNS_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def tls_dir(settings: Settings) -> Path:
    return settings.data_dir / "tls"


def wanted_names(
    settings: Settings, addresses: list[str] | None = None
) -> tuple[set[str], set[str]]:
    """(DNS names, IP addresses) the server certificate must name."""
    dns = {"localhost"}
    hostname = socket.gethostname()
    if hostname and all(_DNS_LABEL.match(label) for label in hostname.split(".")):
        dns.add(hostname.lower())
    ips = {"127.0.0.1", "::1", *(lan_addresses() if addresses is None else addresses)}
    extra = [*settings.tls_hostnames]
    if settings.public_url:
        extra.append(urlsplit(settings.public_url).hostname or "")
    if settings.host not in WILDCARD_HOSTS:
        extra.append(settings.host)
    for name in filter(None, (n.strip().strip("[]").lower() for n in extra)):
        try:
            ips.add(str(ipaddress.ip_address(name)))
        except ValueError:
            dns.add(name.rstrip("."))
    return dns, {str(ipaddress.ip_address(a)) for a in ips}


def write_private(path: Path, data: bytes, mode: int) -> None:
    """Write `path` whole with `mode` from the first byte (a key is never briefly readable)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)
    path.chmod(mode)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_pair(
    key_file: Path, cert_file: Path
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None:
    """A key and certificate we wrote before; None when absent, unreadable or mismatched."""
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    key_file.chmod(0o600)  # a key copied in by hand with a loose mode
    return key, cert


def _new_ca(now: datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    # The hostname in the name tells one school's CA from another's in a trust store.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tongke 同课"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"tongke local CA {socket.gethostname()}"[:64]),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _new_server_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    dns: set[str],
    ips: set[str],
    now: datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    first = sorted(dns)[0] if dns else "localhost"
    san: list[x509.GeneralName] = [x509.DNSName(n) for n in sorted(dns)]
    san += [x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(ips)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + SERVER_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _server_cert_fits(
    cert: x509.Certificate, ca_cert: x509.Certificate, dns: set[str], ips: set[str], now: datetime
) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):  # signed by another CA
        return False
    info = cert_info(Path(), cert)
    return (
        info.not_after - now > RENEW_BEFORE and dns <= info.dns_names and ips <= info.ip_addresses
    )


def ensure_local_tls(
    settings: Settings, now: datetime | None = None, addresses: list[str] | None = None
) -> ServingTls:
    """The local CA and a server certificate fit for this start, made or renewed as needed.

    `addresses` replaces the interface addresses (tests)."""
    now = now or datetime.now(UTC)
    folder = tls_dir(settings)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    except OSError as exc:
        raise TlsError(f"cannot create the TLS folder {folder}: {exc.strerror or exc}") from None
    ca_key_file, ca_file = folder / "ca.key", folder / "ca.crt"
    key_file, cert_file = folder / "server.key", folder / "server.crt"
    dns, ips = wanted_names(settings, addresses)
    try:
        ca = _load_pair(ca_key_file, ca_file)
        if ca is None or ca[1].not_valid_after_utc - now < SERVER_LIFETIME:
            ca = _new_ca(now)
            write_private(ca_key_file, _key_pem(ca[0]), 0o600)
            write_private(ca_file, ca[1].public_bytes(serialization.Encoding.PEM), 0o644)
            log.warning(
                "made a new local certificate authority %s: every classroom PC must trust it "
                "once (open /ca/ on it)",
                ca_file,
            )
        ca_key, ca_cert = ca
        server = _load_pair(key_file, cert_file)
        if server is None or not _server_cert_fits(server[1], ca_cert, dns, ips, now):
            server = _new_server_cert(ca_key, ca_cert, dns, ips, now)
            write_private(key_file, _key_pem(server[0]), 0o600)
            write_private(cert_file, server[1].public_bytes(serialization.Encoding.PEM), 0o644)
            log.info(
                "issued the server certificate %s for %s",
                cert_file,
                ", ".join(sorted(dns) + sorted(ips)),
            )
    except OSError as exc:
        raise TlsError(f"cannot write in the TLS folder {folder}: {exc.strerror or exc}") from None
    return ServingTls(
        cert_file=cert_file,
        key_file=key_file,
        cert=cert_info(cert_file, server[1]),
        ca_file=ca_file,
        ca_fingerprint=fingerprint(ca_cert),
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
    )

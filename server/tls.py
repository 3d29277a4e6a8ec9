"""TLS for `tongke serve`: check the certificate and key before uvicorn sees them, and say
what is wrong in one line naming the file.

Two ways in (docs/operations.md "HTTPS"): `--tls-cert/--tls-key` (a district's own
certificate, PEM, chain allowed) or `--https` (a local CA under the data dir, server/local_ca.py).
Either way the start-up gets a `ServingTls`: the files uvicorn loads and what the
certificate covers, for the warnings (expiry, a public_url it does not name) and /readyz.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from server.settings import Settings

# Warn this long before the certificate ends: time to renew it before a lesson fails.
EXPIRY_WARNING = timedelta(days=21)


class TlsError(Exception):
    """A certificate or key that cannot serve: the message is one line naming the file."""


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What a server certificate covers and until when."""

    path: Path
    not_after: datetime
    dns_names: frozenset[str]
    ip_addresses: frozenset[str]
    # SHA-256 of the DER certificate, "AB:CD:..." as browsers and OSes show it.
    fingerprint: str

    def covers(self, host: str) -> bool:
        """Whether a browser reaching `host` accepts this certificate (RFC 6125 names)."""
        host = host.strip("[]").lower().rstrip(".")
        try:
            return str(ipaddress.ip_address(host)) in self.ip_addresses
        except ValueError:
            pass
        for name in self.dns_names:
            if name == host:
                return True
            # A wildcard covers exactly one label: *.example.cn covers a.example.cn only.
            if name.startswith("*.") and host.partition(".")[2] == name[2:]:
                return True
        return False

    def expiry_warning(self, now: datetime | None = None) -> str | None:
        now = now or datetime.now(UTC)
        if self.not_after <= now:
            return f"TLS certificate {self.path} expired on {self.not_after:%Y-%m-%d}"
        left = self.not_after - now
        if left <= EXPIRY_WARNING:
            return (
                f"TLS certificate {self.path} expires in {left.days} days "
                f"({self.not_after:%Y-%m-%d}): renew it"
            )
        return None


@dataclass(frozen=True, slots=True)
class ServingTls:
    """The files uvicorn serves with, and the local CA when --https made one."""

    cert_file: Path
    key_file: Path
    cert: CertInfo
    ca_file: Path | None = None
    ca_fingerprint: str | None = None
    # The CA certificate as served at /ca.crt (read once: no file IO per request).
    ca_pem: bytes = b""

    def warnings(self, public_url: str = "", now: datetime | None = None) -> list[str]:
        found = []
        expiry = self.cert.expiry_warning(now)
        if expiry is not None:
            found.append(expiry)
        host = urlsplit(public_url).hostname if public_url else None
        if host and not self.cert.covers(host):
            found.append(
                f"public_url host {host} is not named by TLS certificate {self.cert.path}: "
                "browsers will refuse it"
            )
        return found


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def cert_info(path: Path, cert: x509.Certificate) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    return CertInfo(
        path=path,
        not_after=cert.not_valid_after_utc,
        dns_names=frozenset(n.lower() for n in san.get_values_for_type(x509.DNSName)),
        ip_addresses=frozenset(str(a) for a in san.get_values_for_type(x509.IPAddress)),
        fingerprint=fingerprint(cert),
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def read_certificates(path: Path) -> list[x509.Certificate]:
    """The PEM certificates in `path`, leaf first."""
    data = _read(path, "TLS certificate")
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsError(f"TLS certificate {path} holds no PEM certificate") from None
    return chain


def read_private_key(path: Path) -> PrivateKeyTypes:
    data = _read(path, "TLS key")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsError(f"TLS key {path} is encrypted: give the key without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsError(f"TLS key {path} holds no PEM private key") from None


def _public_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_certificate(cert_file: Path, key_file: Path) -> ServingTls:
    """Check a certificate (chain allowed) and its key as uvicorn will load them."""
    chain = read_certificates(cert_file)
    key = read_private_key(key_file)
    if _public_der(key.public_key()) != _public_der(chain[0].public_key()):
        raise TlsError(f"TLS key {key_file} does not belong to the certificate {cert_file}")
    try:
        # What uvicorn does next; any refusal left (an unusable key type) is said here.
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        raise TlsError(f"TLS certificate {cert_file} with key {key_file}: {exc.reason}") from None
    return ServingTls(cert_file=cert_file, key_file=key_file, cert=cert_info(cert_file, chain[0]))


def prepare_tls(settings: Settings) -> ServingTls | None:
    """The TLS the settings ask for, made or checked now (before the event loop starts);
    None for plain HTTP. Raises TlsError for anything that cannot serve."""
    if settings.https and (settings.tls_cert or settings.tls_key):
        raise TlsError("--https makes its own certificate: leave out --tls-cert and --tls-key")
    if settings.tls_key is not None and settings.tls_cert is None:
        raise TlsError(f"TLS key {settings.tls_key} given without a certificate (--tls-cert)")
    if settings.tls_cert is not None and settings.tls_key is None:
        raise TlsError(f"TLS certificate {settings.tls_cert} given without its key (--tls-key)")
    if settings.tls_cert is not None and settings.tls_key is not None:
        return load_certificate(settings.tls_cert, settings.tls_key)
    if settings.https:
        from server.local_ca import ensure_local_tls

        return ensure_local_tls(settings)
    return None

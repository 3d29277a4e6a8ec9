"""/ca.crt and /api/tls: what a classroom PC needs to trust this service once.

With `--https` the local CA's certificate (never a key) is served for download, and
/api/tls gives its SHA-256 fingerprint for the /ca/ page to show, so a person can compare
what their PC installed with what the server holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel

from server.api.access import access
from server.api.errors import ApiError, ErrorResponse
from server.state import AppState, get_state

# The CA and the TLS status are what a new device needs before it can sign in.
tls_router = APIRouter(dependencies=[access(None, why="a new device trusts the CA first")])

# The media type browsers and mobile OSes offer to install as a CA (iOS, Android).
CA_MEDIA_TYPE = "application/x-x509-ca-cert"


class TlsOut(BaseModel):
    # off: plain HTTP (or TLS ends at a proxy); certificate: --tls-cert; local_ca: --https.
    mode: Literal["off", "certificate", "local_ca"]
    # With local_ca: where to download the CA and its SHA-256 fingerprint (AB:CD:…).
    ca_url: str | None = None
    ca_fingerprint_sha256: str | None = None
    # The server certificate's end and the names it covers (DNS names, then addresses).
    not_after: datetime | None = None
    names: list[str] = []


@tls_router.get("/ca.crt", include_in_schema=False, responses={404: {"model": ErrorResponse}})
async def ca_certificate(state: Annotated[AppState, Depends(get_state)]) -> Response:
    tls = state.tls
    if tls is None or tls.ca_file is None:
        raise ApiError(
            404, "no_local_ca", "This service has no local CA (it runs without --https)."
        )
    return Response(
        tls.ca_pem,
        media_type=CA_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="tongke-ca.crt"'},
    )


@tls_router.get("/api/tls", tags=["tls"])
async def tls_status(state: Annotated[AppState, Depends(get_state)]) -> TlsOut:
    """How this service serves TLS; with `--https`, the local CA to trust and its fingerprint."""
    tls = state.tls
    if tls is None:
        return TlsOut(mode="off")
    cert = tls.cert
    names = sorted(cert.dns_names) + sorted(cert.ip_addresses)
    if tls.ca_file is None:
        return TlsOut(mode="certificate", not_after=cert.not_after, names=names)
    return TlsOut(
        mode="local_ca",
        ca_url="/ca.crt",
        ca_fingerprint_sha256=tls.ca_fingerprint,
        not_after=cert.not_after,
        names=names,
    )

"""ICE servers for the join reply, with time-limited TURN credentials.

The TURN REST API scheme as coturn implements it (``use-auth-secret`` +
``static-auth-secret``): tongke and the TURN server share one secret; for each join the
service mints ``username = "<expiry unix time>:<classroom or peer id>"`` and
``credential = base64(HMAC-SHA1(secret, username))``. coturn recomputes the HMAC and refuses
the username once its expiry has passed, so nothing per user is stored on either side and a
leaked credential dies by itself. docs/operations.md ("TURN") has the matching coturn config.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence

from media.sfu_types import MediaError, ice_servers_from
from server.settings import Settings
from signaling.peer import Peer
from signaling.protocol import IceServer


class TurnConfigError(ValueError):
    """The TURN settings are inconsistent; the message never contains the secret."""


def turn_credentials(secret: str, user: str, ttl_s: int, now: float) -> tuple[str, str]:
    """(username, credential) valid until ``now + ttl_s``, as coturn's use-auth-secret checks."""
    username = f"{int(now) + ttl_s}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def _validated(urls: Sequence[str], what: str) -> list[IceServer]:
    """Static servers as protocol models; bad URLs fail at startup, not in a browser."""
    try:
        parsed = ice_servers_from(list(urls))
    except MediaError as exc:
        raise TurnConfigError(f"{what}: {exc.message}") from None
    out = []
    for server in parsed:
        urls_ = server.urls if isinstance(server.urls, list) else [server.urls]
        out.append(IceServer(urls=urls_, username=server.username, credential=server.credential))
    return out


class IceServerIssuer:
    """Builds each peer's ``joined.ice_servers``: the static list plus, when a TURN secret is
    configured, one TURN entry (all TURN URLs) with credentials minted for that peer."""

    def __init__(
        self,
        static: Sequence[str] = (),
        turn_urls: Sequence[str] = (),
        turn_secret: str = "",
        ttl_s: int = 6 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if turn_urls and not turn_secret:
            raise TurnConfigError("turn_urls are set but turn_secret is empty; set both.")
        if turn_secret and not turn_urls:
            raise TurnConfigError("turn_secret is set but turn_urls is empty; set both.")
        for url in turn_urls:
            if not url.startswith(("turn:", "turns:")) or "@" in url:
                raise TurnConfigError(
                    f"turn_urls take turn: or turns: URLs without credentials, got {url!r}."
                )
        for url in turn_urls:
            # What browsers and aiortc accept: turn over udp or tcp, turns (TLS) over tcp.
            transport = url.partition("?transport=")[2] or ("tcp" if url[4] == "s" else "udp")
            if transport not in ("udp", "tcp") or (url.startswith("turns:") and transport != "tcp"):
                raise TurnConfigError(f"turn_urls: {url!r} has an unsupported transport.")
        if ttl_s < 60:
            raise TurnConfigError("turn_ttl_s must be at least 60 seconds.")
        self._static = _validated(static, "ice_servers")
        self._turn_urls = [u for s in _validated(turn_urls, "turn_urls") for u in s.urls]
        self._secret = turn_secret
        self.ttl_s = ttl_s
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> IceServerIssuer:
        return cls(
            settings.ice_servers,
            settings.turn_urls,
            settings.turn_secret.get_secret_value(),
            settings.turn_ttl_s,
        )

    def for_user(self, user: str) -> list[IceServer]:
        servers = list(self._static)
        if self._turn_urls:
            username, credential = turn_credentials(self._secret, user, self.ttl_s, self._clock())
            servers.append(
                IceServer(urls=list(self._turn_urls), username=username, credential=credential)
            )
        return servers

    def for_peer(self, peer: Peer) -> list[IceServer]:
        # The classroom id names the school's relay use in coturn's logs; patrols have none.
        return self.for_user(peer.classroom_id or peer.peer_id)

    def __repr__(self) -> str:  # never the secret
        return f"IceServerIssuer(static={len(self._static)}, turn_urls={self._turn_urls!r})"

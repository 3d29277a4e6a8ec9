"""The typed state the lifespan builds and every request handler receives."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from media.sfu import MediaService
from server.cluster.node import ClusterNode
from server.db import Database
from server.login_throttle import LoginThrottle
from server.metrics import Metrics
from server.recording import RecordingController
from server.settings import Settings
from server.tls import ServingTls
from server.tokens import JoinTokens
from signaling.bus import Bus
from signaling.rooms import RoomManager


@dataclass(frozen=True, slots=True)
class AppState:
    """Everything a request handler may use, built once by the lifespan."""

    settings: Settings
    db: Database
    tokens: JoinTokens
    bus: Bus
    rooms: RoomManager
    media: MediaService
    metrics: Metrics
    # Recording and the library catalogue (None only in states built by hand).
    recording: RecordingController | None = None
    # Many nodes (TONGKE_REDIS_URL): this node's registry entry and lesson placement.
    cluster: ClusterNode | None = None
    # TLS served by this process (--tls-cert/--tls-key or --https); None: plain HTTP or a
    # proxy in front.
    tls: ServingTls | None = None
    # Wrong passwords per account and per address (sign-in throttling).
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)

    def revocations_changed(self) -> None:
        """A link was revoked or an account's standing changed: joins read them afresh."""
        self.rooms.hooks.revocations_changed()


def get_state(request: Request) -> AppState:
    """FastAPI dependency: the state the lifespan built (Starlette copies it per request)."""
    return request.state.app

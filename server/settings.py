"""Service settings: defaults < TOML file < environment (TONGKE_*) < command-line flags."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from contextvars import ContextVar
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from server.addresses import base_url, listen_urls
from server.district_time import load_zone

CONFIG_ENV = "TONGKE_CONFIG"
_config_file: ContextVar[str | None] = ContextVar("tongke_config_file", default=None)


class Settings(BaseSettings):
    """Everything a district IT person may change. Embedded defaults need nothing installed."""

    model_config = SettingsConfigDict(env_prefix="TONGKE_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    # Empty means SQLite at <data_dir>/tongke.db.
    database_url: str = ""
    # A request waits at most this long for a pooled database connection, then gets 503
    # `busy` (retry) instead of hanging: SQLAlchemy's own default is 30 s.
    database_pool_timeout_s: float = Field(default=10.0, gt=0)
    # Empty means one node with the in-process bus. Set (redis://host:6379/0): many nodes.
    redis_url: str = ""
    # Many nodes (docs/operations.md "Many nodes"): every key under this prefix; nodes that
    # share it are one cluster.
    redis_prefix: str = "tongke:"
    # This node's id in the cluster. Empty: <hostname>-<port>-<random>, new at each start.
    node_id: str = ""
    # A node silent (no heartbeat) this long is gone: its lessons are placed again.
    node_ttl_s: float = Field(default=10.0, gt=0)
    # SIGTERM on a cluster node drains it (no new lessons) and waits at most this long for
    # its lessons to end before shutting down. A second SIGTERM or Ctrl-C stops at once.
    drain_timeout_s: float = Field(default=3600.0, ge=0)
    # Where browsers reach this service (e.g. "https://tk.example.cn"); join links, QR codes
    # and the start-up print use it. Empty: each link uses the scheme, host and port the
    # request arrived on, so a classroom is sent back to the address it already reached.
    public_url: str = ""
    # TLS in the service itself (docs/operations.md "HTTPS"): HTTP and the WebSocket over TLS
    # on `port`. Either a certificate and its key (PEM; the certificate file may hold the
    # chain after the leaf) ...
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # ... or https = true: a local certificate authority made once under
    # <data_dir>/tls/, served at /ca.crt for classroom PCs to trust, and a server
    # certificate it signs for every LAN address (renewed by itself).
    https: bool = False
    # With https: DNS names the server certificate covers besides this machine's hostname,
    # localhost and every interface address, e.g. ["tk.school.cn"].
    tls_hostnames: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Reverse proxies (addresses or networks, e.g. ["127.0.0.1", "10.0.0.0/8"]) whose
    # X-Forwarded-Proto and X-Forwarded-Host are believed; from any other peer they are
    # ignored. Empty: no proxy is trusted.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # ICE servers handed to clients and used by the SFU, e.g. "stun:stun.example.cn:3478"
    # or "turn:user:pass@turn.example.cn:3478?transport=udp". Empty: host candidates only.
    ice_servers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # TURN with time-limited credentials (coturn use-auth-secret; docs/operations.md "TURN"):
    # URLs without credentials, e.g. "turn:turn.example.cn:3478?transport=udp",
    # "turn:turn.example.cn:3478?transport=tcp", "turns:turn.example.cn:443?transport=tcp";
    # the secret shared with coturn's static-auth-secret; how long a credential lasts.
    turn_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    turn_secret: SecretStr = SecretStr("")
    turn_ttl_s: int = Field(default=6 * 3600, ge=60)
    # Addresses the SFU gathers ICE host candidates on. Empty: every interface.
    # ["127.0.0.1"] keeps media on loopback (tests, a single demo machine).
    media_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Secret for JWTs and session cookies. Empty: generated once into <data_dir>/secret.key.
    secret_key: str = ""
    # Short-lived join tokens; a join link (revocable, in the database) mints a fresh one.
    join_token_ttl_s: int = 600
    session_ttl_s: int = 12 * 3600
    # Sign-in throttling (docs/api.md "Sign-in throttling"): wrong passwords counted over a
    # sliding window of login_window_s; past login_max_failures_per_account for one
    # username, or login_max_failures_per_address from one client address (a school's NAT
    # holds many teachers: keep it well above the per-account limit), sign-in answers 429
    # login_throttled with Retry-After until the oldest counted failure leaves the window.
    login_window_s: int = Field(default=900, ge=1)
    login_max_failures_per_account: int = Field(default=10, ge=1)
    login_max_failures_per_address: int = Field(default=100, ge=1)
    seed_demo: bool = True
    # Extra Origins allowed on the WebSocket besides the page's own origin (same-origin is
    # always allowed), public_url and this host:port.
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Signaling limits. A frame over ws_max_message_bytes is answered `message_too_large`
    # and the connection kept; one over ws_max_frame_bytes is not even read (close 1009):
    # that bound is what a connection may cost in memory.
    ws_max_message_bytes: int = 64 * 1024
    ws_max_frame_bytes: int = Field(default=1024 * 1024, ge=1024)
    ws_rate_per_s: float = 20.0
    ws_rate_burst: int = 60
    # HTTP (server/http_guard.py): a request's line and headers must arrive within
    # http_header_timeout_s, its body within http_body_timeout_s after them, so half-sent
    # requests (slowloris) cannot hold sockets; at most http_max_connections connections
    # (0: half the process's open-file limit), a new one past it closes the oldest
    # connection still sending its request.
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    http_body_timeout_s: float = Field(default=60.0, gt=0)
    http_max_connections: int = Field(default=0, ge=0)
    heartbeat_interval_s: float = 2.0
    heartbeat_timeout_s: float = 6.0
    # Lost: this long with neither a message nor media (RTP/RTCP) from the peer; 4 s so a
    # 3 s blip on a rural line never shows as lost. 0: heartbeats only.
    silence_timeout_s: float = Field(default=4.0, ge=0)
    # RTSP sources (录播 hosts): how often live lessons are matched with their classrooms'
    # sources (a lesson that goes live gets its picture within this), and the longest wait
    # between two attempts to reach a source that dropped (backoff from 0.25 s up to it).
    rtsp_poll_s: float = Field(default=2.0, gt=0, le=60)
    rtsp_backoff_max_s: float = Field(default=2.0, ge=0.25, le=60)
    resume_window_s: float = 30.0
    # Capacity of this node in peers; past it joins get the capacity error.
    max_peers: int = 500
    # Receiving classrooms one lesson may name (POST/PATCH /api/lessons): 名师课堂 and
    # 名校课堂 broadcast one teacher to hundreds of schools. More is refused roster_too_large.
    max_receiving_classrooms: int = Field(default=1000, ge=1, le=10_000)
    # Media worker processes on this machine (docs/operations.md "Media workers"): the
    # service's process keeps signaling, the lead's media and the recorder, the workers
    # serve the classrooms' media. 1: none, everything in one process; 0: one per core.
    # `tongke serve` uses one per core unless --workers or this setting says otherwise.
    # Not with redis_url (one media process per node) or faults (drills act in-process).
    workers: int = Field(default=1, ge=0, le=256)
    # A lesson whose classrooms' media passes this many peers on one worker spreads to
    # another worker (the lead's streams are relayed once to each worker it uses).
    worker_lesson_peers: int = Field(default=200, ge=1)
    # Cascade (docs/architecture.md "Cascade relay"; many nodes only): once this node serves
    # media to this many peers, further non-lead peers of lessons homed here get their media
    # from the least loaded other node, relayed there once per node. 0: never.
    cascade_after_peers: int = Field(default=0, ge=0)
    # Classrooms whose media a given node serves (a county edge node), as JSON:
    # {"<classroom id>": "<node id>"}. Signaling stays on the lesson's home node.
    cascade_edges: dict[str, str] = Field(default_factory=dict)
    # Production refuses test-only features such as fault injection.
    production: bool = False
    # Fault drills (docs/operations.md "Fault drills"): the admin API may inject loss, delay,
    # reordering and bitrate caps on a peer's media and signaling. Refused with production.
    faults: bool = False
    # With faults on: a lossy/laggy bus (fraction of bus messages lost, delay of the rest).
    faults_bus_drop: float = Field(default=0.0, ge=0, le=1)
    faults_bus_delay_ms: float = Field(default=0.0, ge=0, le=10_000)
    # The district's time zone (IANA name): lesson days, library date filters and the term
    # timetable are counted on its wall clock; everything is stored in UTC.
    timezone: str = "Asia/Shanghai"
    # A receiving classroom not connected this long after its lesson went live is flagged
    # to the lead and patrol as missing (attendance_flags), and recorded as late if it comes.
    attendance_late_after_s: float = Field(default=120.0, ge=0, le=3600)
    # Classroom terminals (docs/api.md "Classroom terminals"): an enrollment code works this
    # long and once; a receiving classroom's terminal joins (a lead's opens its ready
    # screen) this long before a lesson's start; a terminal whose own clock differs from
    # the service's by more than terminal_clock_warn_s says so on screen.
    terminal_enroll_ttl_s: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)
    terminal_join_before_s: int = Field(default=300, ge=0, le=3600)
    terminal_clock_warn_s: int = Field(default=120, ge=5, le=24 * 3600)
    # Tests and drills only: the service's clock for the terminal schedule (its "now", which
    # day is today, server_time) runs this many seconds ahead of the machine's (negative:
    # behind), so a test reaches a lesson's start without waiting. Refused with production.
    clock_offset_s: float = 0.0
    # 督导 reports (docs/api.md "Reports"): a lesson started no later than this after its
    # scheduled start counts as on time.
    report_on_time_grace_s: float = Field(default=300.0, ge=0, le=3600)
    # The plan's exemplary-lesson target (示范课例): this many within this many years from
    # exemplary_target_start (a district day); reports show progress toward it.
    exemplary_target: int = Field(default=1000, ge=1, le=1_000_000)
    exemplary_target_years: int = Field(default=4, ge=1, le=20)
    exemplary_target_start: date = date(2026, 1, 1)
    log_level: str = "info"
    # Where recordings are written. Empty: <data_dir>/recordings.
    recording_root: Path | None = None
    # Free space the data folder and the recording root each need (MiB; an hour of a
    # lesson's tracks is about 1 GiB). Below it /readyz says not ready and the lead's
    # recording status says space_low, so the page warns before recording.
    min_free_disk_mb: int = Field(default=1024, ge=0)
    # Library renditions (MP4) run in child processes: how many at once, at what nice level.
    rendition_concurrency: int = Field(default=1, ge=1)
    rendition_nice: int = Field(default=10, ge=0, le=19)
    # The pages; default: web/ beside the packages (a source checkout or the Docker image).
    web_dir: Path = Path(__file__).resolve().parent.parent / "web"

    @field_validator(
        "ice_servers",
        "turn_urls",
        "allowed_origins",
        "media_addresses",
        "tls_hostnames",
        "trusted_proxies",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            # A comma-separated environment variable; a JSON list is accepted too.
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an address or network "
                    "(e.g. 127.0.0.1 or 10.0.0.0/8)"
                ) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        load_zone(value)
        return value

    @model_validator(mode="after")
    def _no_clock_offset_in_production(self) -> Settings:
        if self.production and self.clock_offset_s:
            raise ValueError(
                "clock_offset_s (TONGKE_CLOCK_OFFSET_S) cannot be set in production: "
                "it is for tests and drills."
            )
        return self

    @model_validator(mode="after")
    def _no_faults_in_production(self) -> Settings:
        if self.production and self.faults:
            raise ValueError(
                "faults (TONGKE_FAULTS) cannot be on in production (TONGKE_PRODUCTION): "
                "fault drills run on a test or staging node."
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get() or os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    # Derived values -------------------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tongke.db').resolve()}"

    @property
    def effective_recording_root(self) -> Path:
        return self.recording_root or self.data_dir / "recordings"

    @property
    def zone(self) -> ZoneInfo:
        """The district's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def tls_on(self) -> bool:
        return self.https or self.tls_cert is not None or self.tls_key is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_on else "http"

    @property
    def effective_public_url(self) -> str:
        """public_url, else this node's first address (for what no request tells: the
        cluster registry, a request without a Host header)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return listen_urls(self.scheme, self.host, self.port)[0]

    @property
    def origins(self) -> frozenset[str]:
        """Origins a browser may open the signaling WebSocket from, besides the page's own
        (server/ws.py accepts same-origin always)."""
        scheme, port = self.scheme, self.port
        base = {self.effective_public_url, base_url(scheme, self.host or "127.0.0.1", port)}
        if self.host in ("127.0.0.1", "0.0.0.0", "localhost", "::", "::1"):
            base |= {base_url(scheme, h, port) for h in ("127.0.0.1", "localhost", "::1")}
        return frozenset(base | {o.rstrip("/") for o in self.allowed_origins})

    def resolved_secret(self) -> str:
        """The signing secret; generated and kept in the data folder when not configured."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        path.write_text(secret)
        path.chmod(0o600)
        return secret


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; flags given as overrides win over environment and the TOML file.

    `config_file` (the --config flag) wins over TONGKE_CONFIG; it is passed through a context
    variable so the process environment is left as it was."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    token = _config_file.set(str(config_file) if config_file is not None else None)
    try:
        return Settings(**clean)
    finally:
        _config_file.reset(token)

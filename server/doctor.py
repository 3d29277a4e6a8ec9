"""`tongke doctor`: everything `tongke serve` needs, checked at once and shown as a table.

District IT runs it before a term starts. It runs serve's own start-up probes
(server/preflight.py), the readiness disk check (server/disk_space.py), the TLS and TURN
validation serve does, and what only shows later: the port, and the clock against the
database server's. It never stops at the first failure; exit status 1 when any check
failed (warnings do not fail).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from server.disk_space import MIB, folder_space, min_free_bytes, space_problem
from server.preflight import (
    PROBE_TIMEOUT_S,
    StartupError,
    probe_database,
    probe_redis,
    reason_of,
    writable_folder,
)
from server.settings import Settings

# Clock skew against the database server: join tokens, TURN credentials and the timetable
# all read the clock. A warning from here, a failure past CLOCK_FAIL_S.
CLOCK_WARN_S = 2.0
CLOCK_FAIL_S = 30.0


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # key of LABELS
    status: Status
    detail: str  # English or a path/driver message; zh keeps paths and drivers' words


LABELS: dict[str, tuple[str, str]] = {
    "settings": ("设置", "settings"),
    "database": ("数据库读写", "database read/write"),
    "redis": ("Redis", "Redis"),
    "data_dir": ("数据目录", "data folder"),
    "recording_root": ("录制目录", "recording root"),
    "tls": ("TLS 证书", "TLS certificate"),
    "turn": ("TURN / ICE", "TURN / ICE"),
    "port": ("端口", "port"),
    "clock": ("时钟偏差", "clock skew"),
}

WORDS: dict[str, tuple[str, str]] = {
    "title": ("同课 tongke 运行环境检查", "tongke doctor"),
    "check": ("检查项", "check"),
    "result": ("结果", "result"),
    "detail": ("说明", "detail"),
    Status.OK: ("通过", "ok"),
    Status.WARN: ("注意", "warning"),
    Status.FAIL: ("失败", "FAILED"),
    Status.SKIP: ("跳过", "skipped"),
    "summary_ok": ("全部检查通过。", "All checks passed."),
    "summary_fail": (
        "{n} 项检查失败，请先处理后再启动服务。",
        "{n} check(s) failed; fix them before serving.",
    ),
}


def language(requested: str | None) -> int:
    """0 for zh-CN, 1 for English: --lang, else the locale (LC_ALL, LC_MESSAGES, LANG),
    Chinese unless the locale names another language."""
    value = requested or next(
        (os.environ[v] for v in ("LC_ALL", "LC_MESSAGES", "LANG") if os.environ.get(v)), ""
    )
    value = value.lower()
    if value.startswith("zh") or value in ("", "c", "posix") or value.startswith("c."):
        return 0
    return 1


# Checks -----------------------------------------------------------------------------


def check_folder(settings: Settings, key: str) -> Finding:
    path = settings.data_dir if key == "data_dir" else settings.effective_recording_root
    what = "data folder" if key == "data_dir" else "recording root"
    try:
        writable_folder(path, what)
    except StartupError as exc:
        return Finding(key, Status.FAIL, exc.message)
    space = folder_space(key, path)
    problem = space_problem(space, settings)
    if problem is not None:
        return Finding(key, Status.FAIL, problem)
    free = (space.free_bytes or 0) / MIB
    need = min_free_bytes(settings) / MIB
    return Finding(key, Status.OK, f"{path}: writable, {free:.0f} MiB free (min {need:.0f} MiB)")


async def check_database(settings: Settings) -> Finding:
    try:
        await probe_database(settings, write=True)
    except StartupError as exc:
        return Finding("database", Status.FAIL, exc.message)
    return Finding("database", Status.OK, "connected, wrote and rolled back a row")


async def check_redis(settings: Settings) -> Finding:
    if not settings.redis_url:
        return Finding("redis", Status.SKIP, "not configured (one node, in-process bus)")
    try:
        await probe_redis(settings.redis_url)
    except StartupError as exc:
        return Finding("redis", Status.FAIL, exc.message)
    return Finding("redis", Status.OK, "PING answered")


def check_tls(settings: Settings) -> Finding:
    from server.tls import TlsError, prepare_tls

    try:
        tls = prepare_tls(settings)
    except TlsError as exc:
        return Finding("tls", Status.FAIL, str(exc))
    if tls is None:
        return Finding("tls", Status.SKIP, "plain HTTP (no --tls-cert/--https; a proxy may do TLS)")
    warnings = tls.warnings(settings.public_url)
    if warnings:
        return Finding("tls", Status.WARN, "; ".join(warnings))
    return Finding("tls", Status.OK, f"{tls.cert.path} valid until {tls.cert.not_after:%Y-%m-%d}")


def check_turn(settings: Settings) -> Finding:
    from server.turn import IceServerIssuer, TurnConfigError

    try:
        IceServerIssuer.from_settings(settings)
    except TurnConfigError as exc:
        return Finding("turn", Status.FAIL, str(exc))
    if not settings.turn_urls:
        servers = len(settings.ice_servers)
        return Finding(
            "turn",
            Status.WARN if not servers else Status.OK,
            f"no TURN; {servers} static ICE server(s): classrooms behind strict NAT may not connect"
            if not servers
            else f"no TURN; {servers} static ICE server(s)",
        )
    return Finding("turn", Status.OK, f"{len(settings.turn_urls)} TURN URL(s) with a shared secret")


def _is_tongke(settings: Settings) -> bool:
    """Whether what listens on the port answers /readyz as tongke does."""
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.tls_cert or settings.https else "http"
    context = None
    if scheme == "https":
        # Only whether tongke answers is asked here; the TLS row judges the certificate.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        url = f"{scheme}://{host}:{settings.port}/readyz"
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S, context=context) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as exc:  # 503: tongke, not ready
        try:
            body = json.loads(exc.read())
        except ValueError:
            return False
    except (OSError, ValueError):
        return False
    return isinstance(body, dict) and isinstance(body.get("checks"), dict)


def check_port(settings: Settings) -> Finding:
    where = f"{settings.host}:{settings.port}"
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((settings.host, settings.port))
        except OSError as exc:
            in_use = exc.errno == 98 or "in use" in str(exc).lower()
            if in_use and _is_tongke(settings):
                return Finding("port", Status.OK, f"{where} is served by tongke (running)")
            reason = "in use by another program" if in_use else (exc.strerror or str(exc))
            return Finding("port", Status.FAIL, f"{where} cannot be used: {reason}")
    return Finding("port", Status.OK, f"{where} is free")


async def check_clock(settings: Settings) -> Finding:
    from sqlalchemy import text

    from server.db import make_engine

    url = settings.effective_database_url
    if url.startswith("sqlite"):
        return Finding("clock", Status.SKIP, "SQLite: the database uses this machine's clock")
    engine = make_engine(url, settings.database_pool_timeout_s)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S), engine.connect() as connection:
            before = time.time()
            theirs: datetime = await connection.scalar(text("SELECT CURRENT_TIMESTAMP"))
            ours = (before + time.time()) / 2
    except Exception as exc:
        return Finding("clock", Status.FAIL, f"cannot read the database's clock: {reason_of(exc)}")
    finally:
        await engine.dispose()
    skew = ours - theirs.timestamp()
    side = "ahead of" if skew >= 0 else "behind"
    detail = f"this machine is {abs(skew):.1f} s {side} the database server"
    if abs(skew) > CLOCK_FAIL_S:
        return Finding("clock", Status.FAIL, detail + " (set up NTP)")
    if abs(skew) > CLOCK_WARN_S:
        return Finding("clock", Status.WARN, detail + " (set up NTP)")
    return Finding("clock", Status.OK, detail)


async def _guarded(key: str, probe: Callable[[], Awaitable[Finding]]) -> Finding:
    """A check that raised is a failure with its reason, never a traceback."""
    try:
        return await probe()
    except Exception as exc:
        return Finding(key, Status.FAIL, reason_of(exc))


async def run_checks(settings: Settings) -> list[Finding]:
    """Every check in the order an operator would fix them; slow file and socket work in
    threads."""
    probes: list[tuple[str, Callable[[], Awaitable[Finding]]]] = [
        # The folders first, as serve does: SQLite's file lives in the data folder.
        ("data_dir", lambda: asyncio.to_thread(check_folder, settings, "data_dir")),
        ("recording_root", lambda: asyncio.to_thread(check_folder, settings, "recording_root")),
        ("database", lambda: check_database(settings)),
        ("redis", lambda: check_redis(settings)),
        ("tls", lambda: asyncio.to_thread(check_tls, settings)),
        ("turn", lambda: asyncio.to_thread(check_turn, settings)),
        ("port", lambda: asyncio.to_thread(check_port, settings)),
        ("clock", lambda: check_clock(settings)),
    ]
    findings = [Finding("settings", Status.OK, "loaded and valid")]
    for key, probe in probes:
        findings.append(await _guarded(key, probe))
    return findings


# The table ------------------------------------------------------------------------------


def _width(text: str) -> int:
    """Columns a string takes in a terminal: CJK characters take two."""
    return sum(2 if ord(ch) >= 0x1100 and not 0x2000 <= ord(ch) < 0x3000 else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def render(findings: list[Finding], lang: int) -> str:
    rows = [(LABELS[f.check][lang], WORDS[f.status][lang], f.detail) for f in findings]
    head = (WORDS["check"][lang], WORDS["result"][lang], WORDS["detail"][lang])
    widths = [max(_width(r[i]) for r in [head, *rows]) for i in range(2)]
    lines = [WORDS["title"][lang], ""]
    for row in [head, *rows]:
        lines.append(f"{_pad(row[0], widths[0])}  {_pad(row[1], widths[1])}  {row[2]}")
        if row is head:
            lines.append(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 40}")
    failed = sum(f.status is Status.FAIL for f in findings)
    lines += [
        "",
        WORDS["summary_fail"][lang].format(n=failed) if failed else WORDS["summary_ok"][lang],
    ]
    return "\n".join(lines)


def settings_failure(messages: list[str], lang: int) -> str:
    """The table when the settings themselves cannot be loaded: nothing else can be checked."""
    return render([Finding("settings", Status.FAIL, m) for m in messages], lang)

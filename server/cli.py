"""The `tongke` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from server.settings import Settings, load_settings

if TYPE_CHECKING:
    from server.tls import ServingTls


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML settings file (also TONGKE_CONFIG)")
    parser.add_argument("--data-dir", type=Path, help="data folder (SQLite, recordings, secret)")
    parser.add_argument("--database-url", help="SQLAlchemy URL; default SQLite in the data folder")
    parser.add_argument("--redis-url", help="Redis URL for many nodes; default in-process bus")
    parser.add_argument(
        "--debug", action="store_true", help="on a start-up failure, print the traceback too"
    )


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    from server.preflight import check_config_file

    check_config_file(args.config)  # a named file that is missing must not mean defaults
    return load_settings(
        config_file=args.config,
        data_dir=args.data_dir,
        database_url=args.database_url,
        redis_url=args.redis_url,
        **extra,
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from server.app import create_app
    from server.cluster.drain import serve
    from server.http_guard import connection_guard
    from server.preflight import preflight
    from server.tls import TlsError, prepare_tls
    from server.workers.check import check_workers

    try:
        settings = _settings(
            args,
            host=args.host,
            port=args.port,
            public_url=args.public_url,
            ice_servers=args.ice_server,
            seed_demo=False if args.no_demo else None,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            https=True if args.https else None,
            trusted_proxies=args.trusted_proxy,
            workers=args.workers,
        )
        if "workers" not in settings.model_fields_set:  # serve's default: one per core
            settings = settings.model_copy(update={"workers": 0})
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            print(f"error: setting {where}: {error['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    preflight(settings, args.config)  # folders, database, Redis: one line each when not
    check_workers(settings)  # a media worker that cannot start: one line
    try:
        tls = prepare_tls(settings)  # made or checked before the loop starts
    except TlsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(startup_banner(settings, tls), flush=True)
    if tls is not None:
        for warning in tls.warnings(settings.public_url):
            logging.getLogger("tongke.tls").warning("%s", warning)
    # uvicorn, except that SIGTERM drains a cluster node first (server/cluster/drain.py),
    # with read deadlines and a connection cap (server/http_guard.py).
    serve(
        create_app(settings, tls),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws_max_size=settings.ws_max_frame_bytes,
        drain_timeout_s=settings.drain_timeout_s,
        tls=tls,
        guard=connection_guard(settings),
    )
    return 0


def startup_banner(settings: Settings, tls: ServingTls | None) -> str:
    """Where classrooms open the service: public_url, else every LAN address."""
    from server.addresses import listen_urls

    bases = listen_urls(settings.scheme, settings.host, settings.port, settings.public_url)
    lines = ["tongke serves at:", *(f"  {base}/" for base in bases)]
    if tls is not None and tls.ca_file is not None:
        lines += [
            "each classroom PC trusts the school certificate once, following:",
            *(f"  {base}/ca/" for base in bases),
            f"  CA SHA-256 fingerprint {tls.ca_fingerprint}",
        ]
    elif tls is None and settings.host not in ("127.0.0.1", "localhost", "::1"):
        lines.append(
            "  note: over plain http, browsers of other PCs give no camera or microphone; "
            "serve with --https (or --tls-cert/--tls-key, or behind an HTTPS proxy)"
        )
    return "\n".join(lines)


def _cmd_doctor(args: argparse.Namespace) -> int:
    """Checks everything serve needs and prints a table; 1 when any check failed."""
    import asyncio

    from pydantic import ValidationError

    from server.doctor import Status, language, render, run_checks, settings_failure
    from server.preflight import StartupError

    lang = language(args.lang)
    try:
        settings = _settings(args, host=args.host, port=args.port)
    except StartupError as exc:
        print(settings_failure([exc.message], lang))
        return 1
    except ValidationError as exc:
        messages = [
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        ]
        print(settings_failure(messages, lang))
        return 1
    findings = asyncio.run(run_checks(settings))
    print(render(findings, lang))
    return 1 if any(f.status is Status.FAIL for f in findings) else 0


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from server.accounts_cli import db_upgrade

    settings = _settings(args)
    db_upgrade(settings)
    print("database is at the latest schema")
    return 0


def _cmd_admin_create(args: argparse.Namespace) -> int:
    import asyncio
    import getpass

    from server.accounts_cli import CliError, create_account

    password = args.password
    if password is None:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 1
    try:
        account_id = asyncio.run(
            create_account(_settings(args), args.username, password, args.display_name or "")
        )
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"admin {args.username} created (id {account_id})")
    return 0


def _cmd_seed_demo(args: argparse.Namespace) -> int:
    import asyncio

    from server.accounts_cli import seed_demo_command

    settings = _settings(args, public_url=args.public_url)
    if not asyncio.run(seed_demo_command(settings)):
        print("the database is not empty; the demo district was not seeded", file=sys.stderr)
        return 1
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import asyncio
    import json

    if args.loss is not None:
        return _cmd_bench_loss(args)

    from tongke_bench.run import BenchError, format_summary, parse_counts, run_bench

    try:
        receivers = parse_counts(args.receivers)
        naive = parse_counts(args.naive) if args.naive else []
        if args.decoders < 0:
            raise ValueError(f"--decoders must be 0 or more, got {args.decoders}.")
        report = asyncio.run(
            run_bench(
                receivers,
                args.seconds,
                naive,
                log=sys.stdout,
                decoders=args.decoders,
                nice=args.nice,
                nodes=args.nodes,
                redis_url=args.redis_url,
                database_url=args.database_url,
            )
        )
    except (ValueError, BenchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def _cmd_bench_loss(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from tongke_bench.loss import LossBenchError, parse_losses, quiet_logs, run_loss_bench

    try:
        losses = parse_losses(args.loss)
        quiet_logs()
        report = asyncio.run(run_loss_bench(losses, args.seconds, log=sys.stdout))
    except (ValueError, LossBenchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tongke_bench.demo_run import DEMO_DATA_DIR, DEMO_PORT, run_demo

    # Its own port and data folder unless told otherwise: it runs beside `tongke serve`.
    args.data_dir = args.data_dir or DEMO_DATA_DIR
    settings = _settings(args, host=args.host, port=args.port or DEMO_PORT)
    return run_demo(settings, receivers=args.receivers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tongke", description="同课 tongke: 1+N live teaching")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service")
    _add_settings_flags(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--public-url", help="URL browsers use to reach this service")
    serve.add_argument(
        "--ice-server",
        action="append",
        help="ICE server URL (repeatable), e.g. stun:host:3478 or turn:user:pass@host:3478",
    )
    serve.add_argument("--no-demo", action="store_true", help="do not seed the demo district")
    serve.add_argument(
        "--tls-cert", type=Path, help="TLS certificate, PEM (the chain may follow the leaf)"
    )
    serve.add_argument("--tls-key", type=Path, help="the certificate's private key, PEM")
    serve.add_argument(
        "--https",
        action="store_true",
        help="HTTPS with a local CA made once in the data folder (classroom PCs trust /ca.crt)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        help="address or network of a reverse proxy whose X-Forwarded-* headers are believed "
        "(repeatable)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="media worker processes (default: one per core; 1: everything in one process)",
    )
    serve.set_defaults(func=_cmd_serve)

    doctor = commands.add_parser(
        "doctor", help="check settings, database, Redis, folders, TLS, TURN, port and clock"
    )
    _add_settings_flags(doctor)
    doctor.add_argument("--host", help="the address serve will listen on")
    doctor.add_argument("--port", type=int, help="the port serve will listen on")
    doctor.add_argument(
        "--lang", choices=("zh-CN", "en"), help="table language (default: from the locale)"
    )
    doctor.set_defaults(func=_cmd_doctor)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply Alembic migrations up to the latest")
    _add_settings_flags(db_upgrade)
    db_upgrade.set_defaults(func=_cmd_db_upgrade)

    admin = commands.add_parser("admin", help="admin accounts")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    admin_create = admin_commands.add_parser("create", help="create an admin account")
    _add_settings_flags(admin_create)
    admin_create.add_argument("--username", required=True)
    admin_create.add_argument(
        "--password", help="the password (prompted when left out; flags show in `ps`)"
    )
    admin_create.add_argument("--display-name", help="name shown in the UI")
    admin_create.set_defaults(func=_cmd_admin_create)

    seed = commands.add_parser("seed-demo", help="create the demo district and print join links")
    _add_settings_flags(seed)
    seed.add_argument("--public-url", help="URL browsers use to reach this service")
    seed.set_defaults(func=_cmd_seed_demo)

    bench = commands.add_parser("bench", help="measure the SFU with synthetic peers on loopback")
    bench.add_argument("--receivers", default="1,10,50", help="receiver counts, e.g. 1,10,50")
    bench.add_argument("--seconds", type=float, default=15.0, help="measured seconds per point")
    bench.add_argument(
        "--naive", default="1,2,4", help="receiver counts for the naive baseline ('' skips it)"
    )
    bench.add_argument(
        "--decoders",
        type=int,
        default=2,
        help="receivers per point that also decode, to time a decoded frame (0: none)",
    )
    bench.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice value of the server and peer processes (below 0 needs root): on a shared "
        "machine, keeps other work from starving them; CPU-seconds are unaffected",
    )
    bench.add_argument(
        "--loss",
        help="instead: one receiver through the whole service at these loss percentages, "
        "e.g. 0,2,5,10, then a 3 s outage (tongke_bench/loss.py)",
    )
    bench.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="run each point on this many nodes (2 or 3: one lead on node A, receivers spread "
        "over the nodes through the cascade; figures per node; tongke_bench/nodes.py)",
    )
    bench.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="with --nodes: the Redis the nodes share (a fresh key prefix, removed after)",
    )
    bench.add_argument(
        "--database-url",
        default="",
        help="with --nodes: a postgresql+asyncpg:// server URL; each point creates a fresh "
        "database there (dropped after). Default: a fresh shared SQLite file",
    )
    bench.add_argument("--json", type=Path, help="write the report here")
    bench.set_defaults(func=_cmd_bench)

    demo = commands.add_parser("demo", help="serve the demo lesson with synthetic peers")
    _add_settings_flags(demo)
    demo.add_argument("--host")
    demo.add_argument("--port", type=int, help="default 8010 (make run takes 8000)")
    demo.add_argument("--receivers", type=int, default=2, help="synthetic receiving classrooms")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from server.preflight import StartupError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StartupError as exc:
        if getattr(args, "debug", False):
            import traceback

            traceback.print_exc()
        print(f"error: {exc.message}", file=sys.stderr)
        return int(exc.code)


if __name__ == "__main__":
    sys.exit(main())

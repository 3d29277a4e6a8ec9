"""`tongke bench --nodes N`: one lesson across N real nodes, figures per node.

Each node is a ``python -m tongke_bench.host`` process (the tongke app under uvicorn, as
``tongke serve``, with the forwarding-delay probe) joined to one cluster: the same Redis under
a fresh key prefix, the same SQLite database (in a temporary folder), the same secret key.

- Node A starts first, seeds the bench lesson into the shared database and gets the edges
  ``TONGKE_CASCADE_EDGES`` = {receiver i's classroom: node i mod N} (deterministic, receivers
  spread evenly; those of A have none). The lead opens its link on A while A is the only
  node registered, so placement makes A the lesson's home.
- Nodes B (and C) then start; every receiver opens its link on A (signaling stays on the
  home), and A's picker serves its media from its edge node: A relays the lead's producers
  to each edge node once, the edge node fans them out.
- The window is the single-node one (first frames, 1 s warm-up, ``seconds`` measured); every
  figure is reported per node (the receivers whose media that node serves, that node's
  process), plus the relayed streams A sends (``relay_streams_out``: one per relayed producer
  and edge node, however many receivers each edge serves).

The forwarding-delay probe stamps on A the lead's camera main and mic (the last copy includes
the relay copies to the edges), on an edge node the relayed camera main and mic arriving from
A (arrival at the edge's socket to the last copy to its receivers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import string
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from media.synthetic.terminal import SyntheticTerminal, TerminalError
from tongke_bench.single import (
    WARMUP_S,
    BenchError,
    Host,
    Joined,
    _close_all,
    _delay_figures,
    _join_times,
    _peers_cpu_seconds,
    _receiver_figures,
    _totals,
    _wait_for_first_frames,
    format_point,
    join_receiver,
    start_host,
    start_lead,
    unpaced_delays,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
MAX_NODES = 8  # node-a .. node-h; the machine runs out long before


def node_names(nodes: int) -> list[str]:
    return [f"node-{string.ascii_lowercase[i]}" for i in range(nodes)]


def check_nodes(nodes: int, receivers: list[int], database_url: str = "") -> None:
    """Refuses what the multi-node mode cannot measure, before anything starts."""
    if not 1 <= nodes <= MAX_NODES:
        raise ValueError(f"--nodes must be 1 to {MAX_NODES}, got {nodes}.")
    if database_url and nodes == 1:
        raise ValueError("--database-url is for --nodes 2 or more (one node uses SQLite).")
    if database_url and not database_url.startswith("postgresql+asyncpg://"):
        raise ValueError(
            f"--database-url must be a postgresql+asyncpg:// URL, got {database_url!r} "
            "(leave it out for a shared SQLite file)."
        )
    if nodes > 1 and any(n < nodes for n in receivers):
        raise ValueError(
            f"With --nodes {nodes} every receiver count must be at least {nodes} "
            f"(one receiver per node at least), got {','.join(map(str, receivers))}."
        )


async def _redis_reachable(redis_url: str) -> Any:
    from signaling.redis_bus import connect_redis

    client = connect_redis(redis_url, socket_timeout=5.0)
    try:
        await client.ping()
    except OSError as exc:  # redis' ConnectionError is an OSError too
        await client.aclose()
        raise BenchError(f"--nodes needs Redis; {redis_url} is not reachable: {exc}") from None
    return client


async def _delete_prefix(client: Any, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
    if keys:
        await client.delete(*keys)


async def _postgres_admin(url: Any, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@asynccontextmanager
async def shared_database(database_url: str, folder: Path) -> AsyncIterator[str]:
    """The database every node of a point uses: a fresh SQLite file in ``folder``, or, given
    a PostgreSQL URL, a fresh database on that server (dropped afterwards), so that no run
    sees another's lesson."""
    if not database_url:
        yield f"sqlite+aiosqlite:///{(folder / 'shared.db').resolve()}"
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    server = make_url(database_url)
    name = f"tongke_bench_{uuid.uuid4().hex[:12]}"
    try:
        await _postgres_admin(server, f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchError(
            f"cannot create a database on {server.host}:{server.port}: {exc}"
        ) from None
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        await _postgres_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _stop_all(hosts: dict[str, Host]) -> None:
    results = await asyncio.gather(*(h.stop() for h in hosts.values()), return_exceptions=True)
    for name, result in zip(hosts, results, strict=True):
        if isinstance(result, BaseException):
            print(f"bench: stopping {name} failed: {result!r}", file=sys.stderr)


async def nodes_point(
    nodes: int,
    receivers: int,
    seconds: float,
    decoders: int,
    nice: int = 0,
    redis_url: str = REDIS_URL,
    database_url: str = "",
) -> dict[str, Any]:
    """One measurement over ``nodes`` fresh node processes: one lead on node A, ``receivers``
    receivers whose media is served by node ``i mod nodes``; the last ``decoders`` to join
    decode (joining in turn over the nodes, they sit on different nodes)."""
    names = node_names(nodes)
    redis = await _redis_reachable(redis_url)
    prefix = f"tongke-bench:{uuid.uuid4().hex[:10]}:"  # nobody else's keys, removed after
    folder = Path(tempfile.mkdtemp(prefix="tongke-bench-nodes-"))
    hosts: dict[str, Host] = {}
    terminals: list[SyntheticTerminal] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        stack.push_async_callback(redis.aclose)
        stack.push_async_callback(_delete_prefix, redis, prefix)
        shared = await stack.enter_async_context(shared_database(database_url, folder))
        # Closed first: peers, then the nodes (before their database and Redis keys go).
        stack.push_async_callback(_stop_all, hosts)
        stack.push_async_callback(lambda: _close_all([t.close() for t in terminals]))
        common = [
            "--redis-url", redis_url,
            "--redis-prefix", prefix,
            "--database-url", shared,
            "--secret-key", secrets.token_hex(32),
        ]  # fmt: skip
        return await _run_nodes(names, receivers, seconds, decoders, nice, common, hosts, terminals)
    raise AssertionError("unreachable")  # the stack does not swallow exceptions


async def _run_nodes(
    names: list[str],
    receivers: int,
    seconds: float,
    decoders: int,
    nice: int,
    common: list[str],
    hosts: dict[str, Host],
    terminals: list[SyntheticTerminal],
) -> dict[str, Any]:
    """Starts the nodes into ``hosts`` and the peers into ``terminals`` (the caller closes
    both), then measures."""
    try:
        home = names[0]
        hosts[home] = await start_host(
            "sfu", receivers, nice, [*common, "--node-id", home, "--media-nodes", ",".join(names)]
        )
        a = hosts[home]
        base = f"http://127.0.0.1:{a.info['http_port']}"
        # A is the only node registered: the lead's join link places the lesson there.
        lead = await start_lead(a, base, terminals)
        started = await asyncio.gather(
            *(start_host("sfu", 0, nice, [*common, "--node-id", n]) for n in names[1:]),
            return_exceptions=True,
        )
        for name, result in zip(names[1:], started, strict=True):
            if isinstance(result, Host):
                hosts[name] = result
        for result in started:
            if isinstance(result, BaseException):
                raise result

        by_node: dict[str, list[Joined]] = {n: [] for n in names}
        codes: list[str] = a.info["receivers"]
        for index, (code, node) in enumerate(zip(codes, a.info["media_nodes"], strict=True)):
            decode = index >= len(codes) - decoders
            # Every link is opened on A: the receivers' signaling is the home's.
            by_node[node].append(await join_receiver(base, code, decode, terminals))
        point = await _measure_nodes(hosts, by_node, seconds)
        unpaced = await unpaced_delays(list(hosts.values()), lead, seconds)
        for node, figures in zip(point["per_node"], unpaced, strict=True):
            node["forwarding_delay_unpaced_ms"] = figures
        point["forwarding_delay_unpaced_ms"] = unpaced[0]  # the home's, as the paced figure
        if any(n["join_to_first_frame_ms"]["missing"] for n in point["per_node"]):
            for name, host in hosts.items():
                print(f"bench: receivers without video; {name}'s log", end="", file=sys.stderr)
                print(host.log_tail() or ": empty", file=sys.stderr)
        return point
    except TerminalError as exc:
        raise BenchError(f"sfu: the service refused a synthetic terminal: {exc}") from exc


async def _measure_nodes(
    hosts: dict[str, Host], by_node: dict[str, list[Joined]], seconds: float
) -> dict[str, Any]:
    """The single-node window, with every figure split by the node serving the media."""
    loop = asyncio.get_running_loop()
    names = list(hosts)
    every = [j for n in names for j in by_node[n]]
    await _wait_for_first_frames("sfu", every)
    joins = {n: _join_times(by_node[n]) for n in names}
    for name in names[1:]:  # the relay exists now: sample what it brings to each edge
        await hosts[name].call(op="probe_watch_relayed")

    await asyncio.sleep(WARMUP_S)
    for host in hosts.values():
        await host.call(op="probe_read", reset=True)  # samples from the joins are dropped
    before = {n: [_totals(j.receiver) for j in by_node[n]] for n in names}
    cpu0 = {n: h.cpu_seconds() for n, h in hosts.items()}
    peers0, t0 = _peers_cpu_seconds(), loop.time()
    await asyncio.sleep(seconds)
    after = {n: [_totals(j.receiver) for j in by_node[n]] for n in names}
    cpu1 = {n: h.cpu_seconds() for n, h in hosts.items()}
    peers1, t1 = _peers_cpu_seconds(), loop.time()
    elapsed = t1 - t0
    per_node: list[dict[str, Any]] = []
    for name, host in hosts.items():
        delay = await host.call(op="probe_read", reset=True)
        media = await host.call(op="media_stats")
        cpu = (cpu1[name] - cpu0[name]) / elapsed
        delivered = sum(
            f1 - f0 for (f0, *_), (f1, *_) in zip(before[name], after[name], strict=True)
        )
        per_node.append(
            {
                "node": name,
                "home": name == names[0],
                "receivers": len(by_node[name]),
                "server_cpu_s_per_s": round(cpu, 3),
                "server_cpu_ms_per_delivered_frame": round(1000 * cpu * elapsed / delivered, 3)
                if delivered
                else None,
                "server_rss_mib": round(host.rss_mib(), 1),
                **_receiver_figures(
                    by_node[name], before[name], after[name], elapsed, *joins[name]
                ),
                "forwarding_delay_ms": _delay_figures(delay),
                # The node's MediaService at the end of the window (A: the lead + its
                # receivers; an edge: its receivers; the relays between them).
                "media": {
                    "peers": media["peers"],
                    "relays_out": media["relays_out"],
                    "relays_in": media["relays_in"],
                    "relay_streams_out": media["relay_streams_out"],
                    "relayed_in_producers": sum(media["relayed_in_producers"].values()),
                },
                "server_loop": host.info["loop"],
            }
        )
    for node in per_node:  # a receiver served elsewhere than assigned would skew the split
        expected = node["receivers"] + (1 if node["home"] else 0)
        if node["media"]["peers"] != expected:
            print(
                f"bench: {node['node']} serves {node['media']['peers']} media peers, "
                f"{expected} assigned (was an edge node missing from the registry?)",
                file=sys.stderr,
            )
    cpu_total = sum(cpu1[n] - cpu0[n] for n in names) / elapsed
    everyone = _receiver_figures(
        every,
        [t for n in names for t in before[n]],
        [t for n in names for t in after[n]],
        elapsed,
        [ms for n in names for ms in joins[n][0]],
        [ms for n in names for ms in joins[n][1]],
    )
    delivered = sum(
        f1 - f0 for n in names for (f0, *_), (f1, *_) in zip(before[n], after[n], strict=True)
    )
    home = per_node[0]
    edges = len(names) - 1
    relayed = [n["media"]["relayed_in_producers"] for n in per_node[1:]]
    return {
        "server": "sfu",
        "nodes": len(names),
        "receivers": len(every),
        "seconds": round(elapsed, 2),
        # All nodes together (each node's own figure is under per_node).
        "server_cpu_s_per_s": round(cpu_total, 3),
        "server_cpu_ms_per_delivered_frame": round(1000 * cpu_total * elapsed / delivered, 3)
        if delivered
        else None,
        "server_rss_mib": round(sum(n["server_rss_mib"] for n in per_node), 1),
        "peers_cpu_s_per_s": round((peers1 - peers0) / elapsed, 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
        **everyone,
        # The home's: the lead's packets, from A's socket to the last copy (relays included).
        "forwarding_delay_ms": home["forwarding_delay_ms"],
        "server_loop": home["server_loop"],
        "cascade": {
            "edge_nodes": edges,
            # What A sends: one stream per relayed producer and edge node.
            "relay_streams_out": home["media"]["relay_streams_out"],
            "relay_streams_per_edge": round(home["media"]["relay_streams_out"] / edges, 2),
            "relayed_producers_per_edge": relayed,
            "receivers_per_edge": [n["receivers"] for n in per_node[1:]],
        },
        "per_node": per_node,
    }


def format_nodes_point(p: dict[str, Any]) -> str:
    """The whole point's line, then one line per node."""
    c = p["cascade"]
    lines = [
        f"nodes={p['nodes']} " + format_point(p),
        f"  relay: A sends {c['relay_streams_out']} streams "
        f"({c['relay_streams_per_edge']} per edge node; edges receive "
        f"{c['relayed_producers_per_edge']} producers for {c['receivers_per_edge']} receivers)",
    ]
    for node in p["per_node"]:
        shown = {**node, "server": "sfu", "load_average_1m": p["load_average_1m"]}
        lines.append(
            f"  {node['node']}{' (home)' if node['home'] else ''}: media peers="
            f"{node['media']['peers']} " + format_point(shown)
        )
    return "\n".join(lines)

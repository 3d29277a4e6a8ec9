"""`tongke bench`: every point of one run, and its summary.

A point is one server (``single``: one process; ``nodes``: a cluster of processes) against
synthetic peers; this module runs the points in order and sums them up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tongke_bench.nodes import check_nodes, format_nodes_point, nodes_point
from tongke_bench.single import (
    DECODERS,
    KEPT_UP_FPS,
    NAIVE_SCRIPT,
    BenchError,
    format_point,
    run_point,
)


def _per_receiver(points: list[dict[str, Any]]) -> float | None:
    """CPU-seconds per second added by each receiver: the slope between the smallest and
    largest N among the points that kept up (a saturated server's CPU stops growing)."""
    kept = [p for p in points if p["fps"]["mean"] >= KEPT_UP_FPS]
    if len(kept) < 2:
        return None
    low, high = kept[0], kept[-1]
    if high["receivers"] == low["receivers"]:
        return None
    added = high["server_cpu_s_per_s"] - low["server_cpu_s_per_s"]
    return added / (high["receivers"] - low["receivers"])


def _dump_tasks() -> None:
    """SIGUSR1: print where every task of the harness waits (a stuck bench tells why)."""
    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)


async def run_bench(
    receivers: Sequence[int],
    seconds: float,
    naive: Sequence[int] = (1, 2, 4),
    cache_dir: Path | None = None,
    log: Any = None,
    decoders: int = DECODERS,
    nice: int = 0,
    nodes: int = 1,
    redis_url: str = "redis://127.0.0.1:6379/0",
    database_url: str = "",
) -> dict[str, Any]:
    """Every point of both servers. ``nice``: the priority of this process (the peers) and of
    each server process, so that other work on a shared machine does not starve them.
    ``nodes`` > 1: each point runs that many nodes on ``redis_url`` (tongke_bench/nodes.py),
    sharing a fresh SQLite file or a fresh database on the PostgreSQL server of
    ``database_url``; the naive baseline, one process by nature, is skipped."""
    if nodes != 1 or database_url:  # refused before anything starts
        check_nodes(nodes, list(receivers), database_url)
        naive = ()
    load_start = os.getloadavg()
    if nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError as exc:
            raise BenchError(f"cannot run at nice {nice} ({exc}); below 0 needs root") from None
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _dump_tasks)
    points: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] = []
    for kind, counts, out in (("sfu", receivers, points), ("naive", naive, baseline)):
        if kind == "naive" and counts and not NAIVE_SCRIPT.exists():
            break
        for n in sorted(counts):
            if nodes > 1:
                point = await nodes_point(
                    nodes, n, seconds, decoders, nice, redis_url, database_url
                )
                text = format_nodes_point(point)
            else:
                point = await run_point(kind, n, seconds, cache_dir, decoders, nice)
                text = format_point(point)
            out.append(point)
            if log is not None:
                print(text, file=log, flush=True)
    sfu_slope, naive_slope = _per_receiver(points), _per_receiver(baseline)
    ratio = None
    if sfu_slope and naive_slope and sfu_slope > 0:
        ratio = round(naive_slope / sfu_slope, 1)
    return {
        "points": points,
        "naive": baseline,
        "cpu_per_receiver": {
            "sfu": None if sfu_slope is None else round(sfu_slope, 4),
            "naive": None if naive_slope is None else round(naive_slope, 4),
            "naive_over_sfu": ratio,
            "naive_saturated_at": [
                p["receivers"] for p in baseline if p["fps"]["mean"] < KEPT_UP_FPS
            ],
        },
        # The largest N's figures (the worst case the run measured).
        "forwarding_delay_ms": points[-1]["forwarding_delay_ms"] if points else None,
        "forwarding_delay_unpaced_ms": points[-1].get("forwarding_delay_unpaced_ms")
        if points
        else None,
        "nodes": nodes,
        "database": "postgresql" if database_url else "sqlite",
        "machine": {
            "cpus": os.cpu_count(),
            "nice": nice,
            "load_average_start": [round(x, 2) for x in load_start],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
        },
    }


def format_summary(report: dict[str, Any]) -> str:
    c = report["cpu_per_receiver"]
    delay = report["forwarding_delay_ms"]
    forwarding = (
        f"p50={delay['p50']} p99={delay['p99']} ms at N={report['points'][-1]['receivers']}"
        if delay
        else "not measured"
    )
    unpaced = report.get("forwarding_delay_unpaced_ms")
    if unpaced:
        forwarding += f" (unpaced lead: p50={unpaced['p50']} p99={unpaced['p99']} ms)"
    saturated = c["naive_saturated_at"]
    cascade = ""
    if report.get("nodes", 1) > 1 and report["points"]:
        relay = report["points"][-1]["cascade"]
        forwarding += " (the home node)" if delay else ""
        cascade = (
            f"; {report['nodes']} nodes: the home sends {relay['relay_streams_per_edge']} "
            f"relayed streams per edge node at N={report['points'][-1]['receivers']}"
        )
    return (
        f"CPU per added receiver: sfu={c['sfu']} naive={c['naive']} s/s; "
        f"naive/sfu ratio={c['naive_over_sfu']}"
        + (f" (naive saturated at N={saturated})" if saturated else "")
        + cascade
        + f"; forwarding delay at the server: {forwarding}; "
        f"load average {report['machine']['load_average_start']} -> "
        f"{report['machine']['load_average_end']}"
    )


def parse_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"Receiver counts must be comma-separated integers, got {text!r}."
        ) from None
    if any(n < 1 for n in counts):
        raise ValueError(f"Receiver counts must be at least 1, got {text!r}.")
    return counts

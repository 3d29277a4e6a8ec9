"""`tongke bench`: the harness measures one point against the real service in its own process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from server.cli import main
from signaling.redis_bus import connect_redis
from tongke_bench.nodes import REDIS_URL, format_nodes_point
from tongke_bench.run import format_summary, parse_counts, run_bench
from tongke_bench.single import format_point


async def test_one_receiver_point_reports_every_field_and_receives_frames() -> None:
    report = await run_bench([1], seconds=2.0, naive=[], decoders=1)
    (point,) = report["points"]
    assert point["server"] == "sfu" and point["receivers"] == 1
    assert point["fps"]["min"] > 0 and point["kbps"]["min"] > 0
    assert point["server_cpu_s_per_s"] >= 0 and point["server_rss_mib"] > 0
    assert set(point["loss_pct"]) == {"max", "mean"}
    # Join -> first complete frame, and -> first decoded frame for the decoding receiver.
    joins = point["join_to_first_frame_ms"]
    assert 0 < joins["p50"] <= joins["p99"]
    decoded = point["join_to_first_decoded_frame_ms"]
    assert decoded["receivers"] == 1 and decoded["decode_errors"] == 0
    assert decoded["p50"] >= joins["p50"] and decoded["decoded_fps_mean"] > 0
    # Forwarding delay stamped at the server's socket: real samples, consistent parts.
    delay = point["forwarding_delay_ms"]
    assert delay["samples"] > 0 and delay["sampled_every"] >= 1
    assert 0 < delay["p50"] <= delay["p99"] <= delay["max"]
    assert 0 <= delay["socket_wait_p50"] <= delay["p99"]
    assert 0 < delay["handling_p50"] <= delay["max"]
    assert report["forwarding_delay_ms"] == delay
    assert point["server_loop"] in ("uvloop", "asyncio")
    assert report["naive"] == [] and report["cpu_per_receiver"]["naive_over_sfu"] is None
    assert len(report["machine"]["load_average_start"]) == 3
    assert 0 < delay["mean_copy_p50"] <= delay["p99"]
    # The same probe again with the lead's pacer off (its frames' packets back to back).
    unpaced = point["forwarding_delay_unpaced_ms"]
    assert unpaced["samples"] > 0 and 0 < unpaced["p50"] <= unpaced["p99"] <= unpaced["max"]
    assert report["forwarding_delay_unpaced_ms"] == unpaced
    assert "fwd delay (last copy) p50/p99" in format_point(point)
    assert "unpaced lead: p50/p99=" in format_point(point)
    assert "forwarding delay at the server: p50=" in format_summary(report)
    json.dumps(report)  # the --json file must be writable


def test_bad_receiver_counts_are_refused_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="comma-separated integers"):
        parse_counts("1,x")
    assert main(["bench", "--receivers", "0", "--json", str(tmp_path / "r.json")]) == 1
    assert "at least 1" in capsys.readouterr().err
    assert main(["bench", "--decoders", "-1", "--json", str(tmp_path / "r.json")]) == 1
    assert "--decoders must be 0 or more" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


POSTGRES_URL = os.environ.get(
    "TONGKE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@pytest.mark.redis
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_two_nodes_report_figures_per_node_and_one_relay_per_producer(
    database: str,
) -> None:
    client = connect_redis(REDIS_URL, socket_timeout=5.0)
    try:
        await client.ping()
    except OSError as exc:
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc}")
    finally:
        await client.aclose()
    database_url = ""
    if database == "postgres":
        url = make_url(POSTGRES_URL)
        try:
            connection = await asyncpg.connect(
                host=url.host, port=url.port, user=url.username, database=url.database
            )
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.skip(f"PostgreSQL is not reachable: {exc}")
        await connection.close()
        database_url = POSTGRES_URL  # the bench creates (and drops) its own database there
    report = await run_bench(
        [4], seconds=2.0, naive=[1], decoders=2, nodes=2, database_url=database_url
    )
    assert report["nodes"] == 2 and report["naive"] == []  # the baseline is one process
    assert report["database"] == ("postgresql" if database_url else "sqlite")
    (point,) = report["points"]
    assert point["nodes"] == 2 and point["receivers"] == 4
    a, b = point["per_node"]
    assert (a["node"], a["home"], b["node"], b["home"]) == ("node-a", True, "node-b", False)
    for node in (a, b):
        # Receivers spread evenly; each node's own process, receivers and probe.
        assert node["receivers"] == 2
        assert node["server_cpu_s_per_s"] > 0 and node["server_rss_mib"] > 0
        assert node["fps"]["min"] > 0 and node["kbps"]["min"] > 0
        assert set(node["loss_pct"]) == {"max", "mean"}
        joins = node["join_to_first_frame_ms"]
        assert joins["missing"] == 0 and 0 < joins["p50"] <= joins["p99"]
        # The last two receivers to join decode: one on each node.
        decoded = node["join_to_first_decoded_frame_ms"]
        assert decoded["receivers"] == 1 and decoded["decode_errors"] == 0
        for key in ("forwarding_delay_ms", "forwarding_delay_unpaced_ms"):
            delay = node[key]
            assert delay["samples"] > 0 and 0 < delay["p50"] <= delay["p99"] <= delay["max"]
    # A serves the lead and its two receivers; B serves its two, fed by one relay from A.
    assert a["media"]["peers"] == 3 and b["media"]["peers"] == 2
    assert b["media"]["relays_in"] == 1 and b["media"]["relayed_in_producers"] == 3
    # One stream per relayed producer (camera main + low, mic), not per receiver on B.
    cascade = point["cascade"]
    assert cascade["relay_streams_out"] == a["media"]["relay_streams_out"] == 3
    assert cascade["relay_streams_per_edge"] == 3 and cascade["receivers_per_edge"] == [2]
    # The whole point still carries the single-node figures, over every receiver.
    assert point["fps"]["min"] > 0 and point["join_to_first_frame_ms"]["missing"] == 0
    assert point["server_cpu_s_per_s"] >= a["server_cpu_s_per_s"]
    assert point["forwarding_delay_ms"] == a["forwarding_delay_ms"]
    assert point["forwarding_delay_unpaced_ms"] == a["forwarding_delay_unpaced_ms"]
    text = format_nodes_point(point)
    assert "node-a (home)" in text and "node-b:" in text and "A sends 3 streams" in text
    assert "relayed streams per edge node" in format_summary(report)
    json.dumps(report)


def test_bad_node_counts_are_refused_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    assert main(["bench", "--nodes", "0", "--receivers", "4", "--json", str(out)]) == 1
    assert "--nodes must be 1 to 8" in capsys.readouterr().err
    assert main(["bench", "--nodes", "3", "--receivers", "2,10", "--json", str(out)]) == 1
    assert "at least 3 (one receiver per node" in capsys.readouterr().err
    bad_db = ["--database-url", "sqlite:///x.db"]
    assert main(["bench", "--nodes", "2", "--receivers", "4", *bad_db, "--json", str(out)]) == 1
    assert "must be a postgresql+asyncpg:// URL" in capsys.readouterr().err
    pg = ["--database-url", "postgresql+asyncpg://postgres@127.0.0.1/x"]
    assert main(["bench", "--receivers", "4", *pg, "--json", str(out)]) == 1
    assert "--database-url is for --nodes 2 or more" in capsys.readouterr().err
    assert not out.exists()

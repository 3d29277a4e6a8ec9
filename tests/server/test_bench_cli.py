"""`tongke bench`: the harness measures one point against the real service in its own process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.bench import format_point, format_summary, parse_counts, run_bench
from server.cli import main


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
    assert "fwd delay (last copy) p50/p99" in format_point(point)
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

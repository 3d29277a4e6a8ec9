"""`tongke bench`: the harness measures one SFU point with a real host process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.bench import parse_counts, run_bench
from server.cli import main


async def test_one_receiver_point_reports_every_field_and_receives_frames() -> None:
    report = await run_bench([1], seconds=2.0, naive=[])
    (point,) = report["points"]
    assert point["server"] == "sfu" and point["receivers"] == 1
    assert point["fps"]["min"] > 0 and point["kbps"]["min"] > 0
    assert point["server_cpu_s_per_s"] >= 0 and point["server_rss_mib"] > 0
    assert point["join_to_first_frame_ms"]["p50"] >= 0
    assert set(point["loss_pct"]) == {"max", "mean"}
    assert report["naive"] == [] and report["cpu_per_receiver"]["naive_over_sfu"] is None
    json.dumps(report)  # the --json file must be writable


def test_bad_receiver_counts_are_refused_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="comma-separated integers"):
        parse_counts("1,x")
    assert main(["bench", "--receivers", "0", "--json", str(tmp_path / "r.json")]) == 1
    assert "at least 1" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()

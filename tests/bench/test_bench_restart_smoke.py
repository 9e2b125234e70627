"""A tiny run of bench/bench_restart.py, so the restart benchmark cannot rot."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_restart


def test_the_restart_benchmark_prints_its_three_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench_restart.replay_table(tmp_path, [0.05], dim=8, batch=50)
    bench_restart.parallel_table(tmp_path, banks=2, size=0.02, dim=8, batch=50)
    bench_restart.background_table(tmp_path, 0.05, dim=8, batch=50, small_mib=0.01)
    out = capsys.readouterr().out
    assert out.count("### ") == 3  # main() adds the one-memory-write replay table
    assert "replay s" in out and "open_threads" in out and "every bank open" in out

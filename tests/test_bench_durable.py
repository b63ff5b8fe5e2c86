"""Smoke test of the durable-execution benchmark: it runs and prints plausible numbers."""

from __future__ import annotations

import re
import statistics

import pytest

from evals.bench_durable import CHECKPOINT_TABLES, LEDGER_TABLE, main


def test_quick_benchmark_prints_its_tables(pg_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    results = main(["--quick", "--uri", pg_uri])
    out = capsys.readouterr().out

    for title in (
        "1. per-transition cost",
        "2. throughput",
        "3. bytes written per transition",
        "4. where the time goes",
        "cProfile of one planbound decision",
    ):
        assert title in out
    assert "1 KB INSERT commit (floor)" in out
    assert re.search(r"≤ 1\.25x raw", out) and "≥ 40/s" in out  # targets printed, not asserted

    # Latency: every series measured, positive, and planbound writes more checkpoints than raw.
    for key in ("start", "invoke", "raw", "floor"):
        assert results.latency[key] and min(results.latency[key]) > 0
    assert statistics.median(results.latency["floor"]) < statistics.median(results.latency["raw"])
    assert results.checkpoints_per_run["planbound"] > results.checkpoints_per_run["raw"] > 0

    # Throughput at 1, 10 and 50 workers, every decision completed.
    assert [row["concurrency"] for row in results.throughput] == [1, 10, 50]
    assert all(row["per_s"] > 0 and row["decisions"] > 0 for row in results.throughput)

    # Bytes: both graphs wrote checkpoint rows; only planbound writes one ledger row per step.
    for kind in ("raw", "planbound"):
        data = results.bytes[kind]
        assert all(data[f"rows:{t}"] > 0 for t in CHECKPOINT_TABLES)
        assert data["wal"] > 0
    assert results.bytes["planbound"][f"count:{LEDGER_TABLE}"] == pytest.approx(1.0)
    assert results.bytes["raw"][f"count:{LEDGER_TABLE}"] == 0

    # Breakdown: wall time and the main contributors were measured.
    for kind in ("raw", "planbound"):
        assert results.breakdown[kind]["wall"] > 0
        assert results.statements[kind] > 0
    assert any("checkpoint put" in key for key in results.breakdown["planbound"])
    assert results.profile and results.profile[0][2] > 0

"""The durable-execution benchmark, run small on a fresh database.

Nothing here compares timings: the figures must exist, agree with what the plan run wrote,
and be printed for planbound next to the raw LangGraph baseline.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from checkpoints.ledger import Ledger
from evals.bench_durable import Results, main
from evals.bench_durable.baseline import FLOOR_TABLE
from evals.bench_durable.pgstats import CHECKPOINT_TABLES, LEDGER_TABLE
from evals.bench_durable.profiling import (
    ENGINE,
    LEDGER,
    LOOP,
    POLICY_ENGINE,
    SAVER,
    STARTED,
    WAITS_BY,
)
from evals.bench_durable.workload import PLAN, QUICK, TRANSITIONS
from graph.runner import Runner
from graph.services import open_stores

pytestmark = pytest.mark.slow

LEVELS = (1, 2)
"""Throughput concurrencies of the small run."""


@dataclass
class Run:
    results: Results
    out: str
    uri: str


@pytest.fixture(scope="module")
def run(pg_uri: str) -> Iterator[Run]:
    """One small benchmark run (``--quick`` sizes, 1 and 2 workers) on the module's database."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        results = main(["--quick", "--concurrency", ",".join(map(str, LEVELS)), "--uri", pg_uri])
    yield Run(results, out.getvalue(), pg_uri)


def test_every_phase_produced_figures(run: Run) -> None:
    results = run.results
    lat = results.latency
    for series in ("start", "invoke", "raw"):
        assert len(lat[series]) == len(lat[f"{series}:cpu"]) == QUICK.rounds
        assert min(lat[series]) > 0
    assert len(lat["floor"]) == QUICK.rounds * QUICK.floor_per_round
    assert min(lat["floor"]) > 0

    assert [(r["mode"], r["concurrency"]) for r in results.throughput] == [
        ("planbound", c) for c in LEVELS
    ]
    for row in results.throughput:
        assert row["decisions"] == row["concurrency"] * QUICK.per_worker.get(row["concurrency"], 2)
        assert row["per_s"] > 0 and 0 < row["p50_ms"] <= row["p95_ms"]

    for kind in ("raw", "planbound"):
        data = results.bytes[kind]
        assert all(data[f"rows:{t}"] > 0 for t in CHECKPOINT_TABLES)
        assert data["wal"] > 0 and data["wal:db"] > 0
        assert len(results.measured_threads[kind]) == QUICK.bytes_runs
    assert len(results.measured_decisions) == QUICK.bytes_runs


def test_the_breakdown_accounts_for_the_decision(run: Run) -> None:
    pb, raw = run.results.breakdown["planbound"], run.results.breakdown["raw"]
    for data in (pb, raw):
        loop = sum(v for k, v in data.items() if k.startswith(LOOP + "|"))
        assert 0.5 * data["wall"] < loop <= data["wall"] + 1.0
        # The checkpoints are written by the threads the run starts, and were profiled there.
        assert data[f"{STARTED}|{SAVER}"] > 0
    tool_wait = f"{LOOP}|{WAITS_BY[ENGINE]}"
    assert pb[tool_wait] > 0 and tool_wait not in raw
    assert pb[f"{LOOP}|SQL issued by {LEDGER}"] > 0
    assert not any(LEDGER in k for k in raw)
    assert pb[f"{LOOP}|{POLICY_ENGINE}"] > 0
    assert not any(POLICY_ENGINE in k for k in raw)

    pb_sql = run.results.statement_sources["planbound"]
    raw_sql = run.results.statement_sources["raw"]
    assert pb_sql[SAVER] > 0 and raw_sql[SAVER] > 0
    assert pb_sql[LEDGER] > 0 and LEDGER not in raw_sql
    assert run.results.statements["planbound"] == pytest.approx(sum(pb_sql.values()))
    assert run.results.profile and run.results.profile[0][2] > 0


def test_the_counts_agree_with_the_plan_run(run: Run) -> None:
    results = run.results
    per_run = results.checkpoints_per_run
    # The raw graph: the input, START, then one checkpoint per tool call.
    assert per_run["raw"] == TRANSITIONS + 2
    assert per_run["planbound"] > per_run["raw"]
    for kind in ("raw", "planbound"):
        # Every run of the same plan stores as many checkpoints.
        stored = results.bytes[kind]["count:checkpoints"] * TRANSITIONS
        assert stored == pytest.approx(per_run[kind])
        # Each checkpoint is its own autocommit write; planbound also commits each step's
        # domain transaction (its ledger row).
        commits = results.bytes[kind]["xacts:db"] * TRANSITIONS
        assert commits >= per_run[kind] + (TRANSITIONS if kind == "planbound" else 0)

    # One ledger row per executed step, for planbound only.
    assert results.bytes["planbound"][f"count:{LEDGER_TABLE}"] == pytest.approx(1.0)
    assert results.bytes["raw"][f"count:{LEDGER_TABLE}"] == 0

    with tempfile.TemporaryDirectory() as home:
        stores = open_stores(home, uri=run.uri)
        try:
            runner = Runner(stores)
            for thread_id in results.measured_threads["planbound"]:
                outcome = runner.outcome(thread_id)
                assert outcome["status"] == "completed"
                assert [r["tool"] for r in outcome["results"]] == [a["name"] for a in PLAN]
                assert all(r["ok"] for r in outcome["results"])
                assert len(list(runner.history(thread_id))) == per_run["planbound"]
                with stores.lock:
                    rows = Ledger(stores.domain).rows(outcome["decision_id"])
                assert [r.tool for r in rows] == [a["name"] for a in PLAN]
                assert {r.status for r in rows} == {"succeeded"}
        finally:
            stores.close()


def test_the_tables_name_planbound_and_the_raw_baseline(run: Run) -> None:
    out = run.out
    titles = (
        "1. per-transition cost",
        "2. throughput",
        "3. bytes written per transition",
        "4. where the time goes",
        "cProfile of a planbound decision",
    )
    starts = [out.index(title) for title in titles]
    assert starts == sorted(starts)
    sections = [out[a:b] for a, b in zip(starts, [*starts[1:], len(out)], strict=True)]
    latency, throughput, written, breakdown, _top = sections
    for section in (latency, written, breakdown):
        assert "planbound" in section and "raw" in section
    assert "raw LangGraph (same saver, pool)" in latency and "1 KB INSERT commit (floor)" in latency
    assert "planbound, own domain conn/worker" in throughput and "raw" in throughput
    assert "≤ 1.25x raw" in latency  # the targets are printed, not asserted
    assert "WAL bytes of this database (pg_walinspect)" in written


def test_a_given_database_is_left_without_the_bench_tables(run: Run) -> None:
    with psycopg.connect(run.uri) as conn:
        floor = conn.execute("SELECT to_regclass(%s)", (FLOOR_TABLE,)).fetchone()
        walinspect = conn.execute(
            "SELECT 1 FROM pg_extension WHERE extname = 'pg_walinspect'"
        ).fetchone()
    assert floor == (None,)
    assert walinspect is None

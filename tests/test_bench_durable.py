"""The durable-execution benchmark, run small on a fresh database.

Nothing here compares timings: the figures must exist, agree with what the runs wrote, and
be printed for planbound next to the raw LangGraph baseline, ending with the summary line.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from checkpoints.ledger import Approvals, Ledger
from evals.bench_durable import Results, main
from evals.bench_durable.baseline import FLOOR_TABLE
from evals.bench_durable.pgstats import CHECKPOINT_TABLES, LEDGER_TABLE
from evals.bench_durable.phases import SERIES
from evals.bench_durable.profiling import LOOP, POLICY_ENGINE, SAVER, STARTED
from evals.bench_durable.workload import QUICK, READ_PLAN, REVIEWER, TOOL_CALLS
from graph.runner import Runner
from graph.services import open_stores

pytestmark = pytest.mark.slow

LEVELS = (1, 2)
"""Throughput concurrencies of the small run."""

BENCH_KEYS = (
    "read_ratio",
    "write_ratio",
    "read_dps_c50",
    "write_dps_c50",
    "verify_p50_ms",
    "commits_per_superstep",
)


@dataclass
class Run:
    results: Results
    out: str
    uri: str


@pytest.fixture(scope="module")
def run(pg_uri: str) -> Iterator[Run]:
    """One small benchmark run (``--quick`` sizes, 1 and 2 callers, 2 processes)."""
    out = io.StringIO()
    argv = ["--quick", "--concurrency", ",".join(map(str, LEVELS)), "--processes", "2"]
    argv += ["--scaling", "1,2"]
    with contextlib.redirect_stdout(out):
        results = main([*argv, "--uri", pg_uri])
    yield Run(results, out.getvalue(), pg_uri)


def test_every_series_has_its_costs(run: Run) -> None:
    results = run.results
    for series in SERIES:
        samples = results.latency[series]
        assert len(samples) == QUICK.rounds
        for sample in samples:
            assert sample["ms"] > 0 and sample["cpu"] > 0 and sample["statements"] > 0
            assert sample["pg_cpu"] >= 0  # the server runs on this machine
        written = results.written[series]
        assert written["checkpoints"] > 0 and written["supersteps"] > 0
        assert written["commits"] > 0 and written["wal:db"] > 0
    assert len(results.floor) == QUICK.rounds * QUICK.floor_per_round
    assert len(results.verify_ms) == QUICK.verify_runs


def test_the_raw_baselines_do_the_same_calls(run: Run) -> None:
    written = run.results.written
    # The raw read graph: the input, then one super-step per tool call, then the end.
    assert written["raw_read"]["supersteps"] == TOOL_CALLS + 1
    assert written["raw_read"]["checkpoints"] == TOOL_CALLS + 2
    # The raw write graph stops for approval and is resumed: it has more than its 3 calls.
    assert written["raw_write"]["supersteps"] > 3
    for series in ("raw_read", "raw_write"):
        assert written[series][f"count:{LEDGER_TABLE}"] == 0
    assert written["read"][f"count:{LEDGER_TABLE}"] == pytest.approx(TOOL_CALLS)
    assert written["write"][f"count:{LEDGER_TABLE}"] == pytest.approx(3)


def test_the_measured_decisions_completed_once(run: Run) -> None:
    results = run.results
    with tempfile.TemporaryDirectory() as home:
        stores = open_stores(home, uri=run.uri)
        try:
            runner = Runner(stores)
            for series, tools in (
                ("read", [a["name"] for a in READ_PLAN]),
                ("write", ["find_user_id_by_email", "get_order_details"]),
            ):
                for thread_id in results.measured_threads[series]:
                    outcome = runner.outcome(thread_id)
                    assert outcome["status"] == "completed"
                    assert all(r["ok"] for r in outcome["results"])
                    with stores.lock:
                        rows = Ledger(stores.domain).rows(outcome["decision_id"])
                        used = Approvals(stores.domain).rows(outcome["decision_id"])
                    assert [r.tool for r in rows][: len(tools)] == tools
                    assert {r.status for r in rows} == {"succeeded"}
                    if series == "write":
                        assert [r.tool for r in rows][-1] == "modify_pending_order_address"
                        assert [(a.step_id, a.reviewer) for a in used] == [
                            (rows[-1].step_id, REVIEWER)
                        ]
                    else:
                        assert used == []
        finally:
            stores.close()


def test_throughput_covers_both_layouts(run: Run) -> None:
    rows = {
        (r["workload"], r["system"], r["processes"], r["concurrency"]): r
        for r in run.results.throughput
    }
    for workload in ("read", "write"):
        for system in ("planbound", "raw"):
            for level in LEVELS:
                expected = level * QUICK.per_worker.get(level, 2)
                assert rows[(workload, system, 1, level)]["decisions"] == expected
            assert rows[(workload, system, 2, max(LEVELS))]["per_s"] > 0


def test_scaling_over_processes_keeps_every_write_exactly_once(run: Run) -> None:
    rows = run.results.scaling
    assert [(r["workload"], r["processes"]) for r in rows] == [
        (w, p) for w in ("read", "write") for p in (1, 2)
    ]
    for row in rows:
        assert row["decisions"] == max(LEVELS) * QUICK.per_worker.get(max(LEVELS), 2)
        assert row["once"]["started"] == 0
        if row["workload"] == "write":
            n = row["decisions"]
            assert (row["once"]["approvals"], row["once"]["claims"], row["once"]["writes"]) == (
                n,
                n,
                n,
            )
    assert "3b. scaling" in run.out


@pytest.mark.parametrize("workload", ["read", "write"])
def test_the_breakdown_names_the_parts(run: Run, workload: str) -> None:
    breakdown = run.results.breakdown[workload]
    pb, raw = breakdown["planbound"], breakdown["raw"]
    for data in (pb, raw):
        loop = sum(v for k, v in data.items() if k.startswith(LOOP + "|"))
        assert 0.5 * data["wall"] < loop <= data["wall"] + 1.0
    assert any(k.startswith(f"{STARTED}|") or k.startswith(f"{LOOP}|") for k in pb)
    assert any(SAVER in k for k in pb) and any(SAVER in k for k in raw)
    assert any(POLICY_ENGINE in k for k in pb) and not any(POLICY_ENGINE in k for k in raw)
    assert run.results.profile[workload]
    sources = run.results.statement_sources[workload]
    assert sum(sources["planbound"].values()) > 0 and sum(sources["raw"].values()) > 0


def test_the_report_prints_tables_and_the_summary_line(run: Run) -> None:
    out = run.out
    titles = (
        "1. per decision",
        "2. per super-step",
        "3. throughput",
        "4. rows written",
        "5. verify",
        "6. where the time of a read decision",
        "6b. where the time of a write decision",
    )
    starts = [out.index(title) for title in titles]
    assert starts == sorted(starts)
    for label in (
        "planbound, read",
        "raw LangGraph, read",
        "planbound, write + approval",
        "raw LangGraph, write + interrupt/resume",
    ):
        assert label in out
    assert "2 processes, own stores" in out and "one process, shared stores" in out
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    for key in BENCH_KEYS:
        assert key in fields
    assert float(fields["read_ratio"]) > 0 and float(fields["verify_p50_ms"]) > 0
    assert all(t in out for t in CHECKPOINT_TABLES)


def test_a_given_database_is_left_without_the_bench_tables(run: Run) -> None:
    with psycopg.connect(run.uri) as conn:
        floor = conn.execute("SELECT to_regclass(%s)", (FLOOR_TABLE,)).fetchone()
        walinspect = conn.execute(
            "SELECT 1 FROM pg_extension WHERE extname = 'pg_walinspect'"
        ).fetchone()
    assert floor == (None,)
    assert walinspect is None

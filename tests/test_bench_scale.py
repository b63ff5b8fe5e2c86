"""The scaling bench, run small on a fresh database: worker processes on one PostgreSQL.

Nothing here compares timings: every row must exist, the answers handed between workers
and the raced answers must leave each write decision exactly once on the database, and
the summary line must carry every figure.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from evals.bench_durable.scale import Row, main, parse

pytestmark = pytest.mark.slow

WORKERS = (1, 2)
CALLERS = 4


@dataclass
class Run:
    rows: list[Row]
    out: str
    uri: str


@pytest.fixture(scope="module")
def run(pg_uri: str) -> Iterator[Run]:
    out = io.StringIO()
    argv = ["--workers", ",".join(map(str, WORKERS)), "--concurrency", str(CALLERS)]
    argv += ["--runs", "1", "--reads", "1", "--rounds", "1", "--uri", pg_uri]
    with contextlib.redirect_stdout(out):
        rows = main(argv)
    yield Run(rows, out.getvalue(), pg_uri)


def test_every_workload_is_measured_at_every_worker_count(run: Run) -> None:
    assert [(r.workload, r.workers) for r in run.rows] == [
        ("read", 1),
        ("read", 2),
        ("write", 1),
        ("write", 2),
    ]
    for row in run.rows:
        (sample,) = row.samples
        assert sample.decisions == CALLERS and len(sample.latencies) == CALLERS
        assert sample.wall_s > 0 and all(ms > 0 for ms in sample.latencies)


def test_write_decisions_are_exactly_once_across_workers_and_races(run: Run) -> None:
    for row in (r for r in run.rows if r.workload == "write"):
        # Warm-up round, one timed round and the race: three write decisions per caller.
        assert row.expected == 3 * CALLERS
        assert row.once == {
            "approvals": 3 * CALLERS,
            "claims": 3 * CALLERS,
            "writes": 3 * CALLERS,
            "started": 0,
        }
        # Each raced decision was answered twice at once: one answer won, one was refused.
        assert row.raced == row.won == row.refused == CALLERS
        assert row.exactly_once()


def test_the_database_agrees_with_the_counts(run: Run) -> None:
    with psycopg.connect(run.uri) as conn:
        writes, started = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'"
            "  AND tool = 'modify_pending_order_address'),"
            " count(*) FILTER (WHERE status = 'started') FROM planbound.ledger"
        ).fetchone() or (None, None)
        (approvals,) = conn.execute("SELECT count(*) FROM planbound.approvals").fetchone() or (0,)
    total = sum(r.expected for r in run.rows if r.workload == "write")
    assert (writes, approvals, started) == (total, total, 0)


def test_the_table_and_summary_line_carry_every_figure(run: Run) -> None:
    lines = [line for line in run.out.splitlines() if line.startswith("SCALE ")]
    assert len(lines) == 1, run.out
    figures = dict(part.split("=", 1) for part in lines[0].split()[1:])
    keys = {f"{w}_dps_w{n}" for w in ("read", "write") for n in WORKERS}
    keys |= {"read_scaling_w2", "write_scaling_w2", "exactly_once"}
    assert set(figures) == keys
    assert figures["exactly_once"] == "yes"
    for key in keys - {"exactly_once"}:
        assert re.fullmatch(r"\d+\.\d+", figures[key]) and float(figures[key]) > 0, key
    assert "decisions/s by worker processes" in run.out


@pytest.mark.parametrize(
    ("argv", "needs"),
    [
        (["--workers", "0"], "at least 1"),
        (["--workers", ""], "at least 1"),
        (["--runs", "0"], "at least 1"),
        (["--concurrency", "100000"], "write targets"),
        (["--workers", "4", "--concurrency", "2"], "largest worker count"),
    ],
)
def test_bad_settings_are_refused_naming_the_option(
    argv: list[str], needs: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(argv)
    assert needs in capsys.readouterr().err

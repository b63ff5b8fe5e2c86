"""The benchmark's tables and its summary line, printed with rich."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from evals.bench_durable.pgstats import CHECKPOINT_TABLES, LEDGER_TABLE, PLANBOUND_TABLES
from evals.bench_durable.phases import Results, percentile
from evals.bench_durable.profiling import LOOP, STARTED
from evals.bench_durable.workload import (
    TARGET_AT,
    TARGET_READ_DPS,
    TARGET_READ_RATIO,
    TARGET_VERIFY_P50_MS,
    TARGET_WRITE_DPS,
    TARGET_WRITE_RATIO,
    TOOL_CALLS,
)

LABELS = {
    "read": "planbound, read (10 tool calls)",
    "raw_read": "raw LangGraph, read (same calls, saver)",
    "write": "planbound, write + approval",
    "raw_write": "raw LangGraph, write + interrupt/resume",
}
RAW_OF = {"read": "raw_read", "write": "raw_write"}
RATIO_TARGET = {"read": TARGET_READ_RATIO, "write": TARGET_WRITE_RATIO}
DPS_TARGET = {"read": TARGET_READ_DPS, "write": TARGET_WRITE_DPS}


def _table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def _mark(ok: bool) -> str:
    return "[green]ok[/]" if ok else "[red]not met[/]"


def _opt(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def ratio(results: Results, workload: str) -> float:
    """The median planbound decision time over the raw graph's, for one workload."""
    return results.median(workload) / results.median(RAW_OF[workload])


def row_bytes(results: Results, series: str) -> float:
    """Bytes of the rows one run of ``series`` wrote (checkpoints, ledger, audit journal)."""
    data = results.written[series]
    return sum(data[f"rows:{t}"] for t in (*CHECKPOINT_TABLES, *PLANBOUND_TABLES))


def ledger_row(results: Results) -> float:
    """The mean size of one ledger row planbound wrote (bytes)."""
    for series in ("read", "write"):
        data = results.written.get(series, {})
        if data.get(f"count:{LEDGER_TABLE}"):
            return data[f"rows:{LEDGER_TABLE}"] / data[f"count:{LEDGER_TABLE}"]
    return 0.0


def per_step(results: Results, series: str, value: float | None) -> float | None:
    """``value`` per super-step of ``series``."""
    steps = results.written[series]["supersteps"]
    return None if value is None or not steps else value / steps


def print_decisions(console: Console, results: Results) -> None:
    """Table 1: the cost of one decision."""
    n = len(results.latency["read"])
    table = _table(
        f"1. per decision: medians of {n} interleaved runs (PostgreSQL backend CPU: mean), "
        f"writes from {len(results.measured_threads['read'])} runs per series",
        (
            "series",
            "ms",
            "process CPU ms",
            "PG backend CPU ms",
            "statements",
            "super-steps",
            "checkpoints",
            "durable commits",
            "WAL bytes",
            "row bytes",
            "vs raw",
        ),
    )
    for series, label in LABELS.items():
        data = results.written[series]
        vs = ""
        if series in RAW_OF:
            value = ratio(results, series)
            target = RATIO_TARGET[series]
            vs = f"{value:.2f}x (≤ {target:g}x {_mark(value <= target)})"
        table.add_row(
            label,
            f"{results.median(series):.1f}",
            f"{results.median(series, 'cpu'):.1f}",
            _opt(results.mean(series, "pg_cpu")),
            f"{results.median(series, 'statements'):.0f}",
            f"{data['supersteps']:.0f}",
            f"{data['checkpoints']:.0f}",
            _opt(data.get("commits"), "{:.1f}"),
            _opt(data.get("wal:db"), "{:.0f}"),
            f"{row_bytes(results, series):.0f}",
            vs,
        )
    floor = statistics.median(results.floor)
    floor_row = ["", "", "1", "", "", "1", "", "", ""]
    table.add_row("1 KB INSERT commit (floor)", f"{floor:.2f}", *floor_row)
    console.print(table)
    server = results.server
    console.print(
        f"   PostgreSQL {server.get('server_version')}, synchronous_commit="
        f"{server.get('synchronous_commit')}, fsync={server.get('fsync')}; p95: "
        + ", ".join(
            f"{s} {percentile([x['ms'] for x in results.latency[s]], 0.95):.1f} ms" for s in LABELS
        )
        + f"; load average {results.load}; policy engine {results.engine}"
    )


def print_supersteps(console: Console, results: Results) -> None:
    """Table 2: the same per super-step, with the commit and byte targets."""
    table = _table(
        "2. per super-step (each graph's own super-steps; targets: commits ≤ raw's, "
        "row bytes ≤ raw's + one ledger row)",
        (
            "series",
            "ms",
            "process CPU ms",
            "statements",
            "durable commits",
            "WAL bytes",
            "row bytes",
            "target",
        ),
    )
    extra = ledger_row(results)
    for series, label in LABELS.items():
        data = results.written[series]
        commits = per_step(results, series, data.get("commits"))
        rows = per_step(results, series, row_bytes(results, series))
        target = ""
        if series in RAW_OF:
            raw = RAW_OF[series]
            raw_commits = per_step(results, raw, results.written[raw].get("commits"))
            raw_rows = per_step(results, raw, row_bytes(results, raw)) or 0.0
            marks = []
            if commits is not None and raw_commits is not None:
                marks.append(f"commits {_mark(commits <= raw_commits + 1e-9)}")
            if rows is not None:
                marks.append(f"bytes {_mark(rows <= raw_rows + extra)}")
            target = ", ".join(marks)
        table.add_row(
            label,
            _opt(per_step(results, series, results.median(series)), "{:.2f}"),
            _opt(per_step(results, series, results.median(series, "cpu")), "{:.2f}"),
            _opt(per_step(results, series, results.median(series, "statements")), "{:.1f}"),
            _opt(commits, "{:.2f}"),
            _opt(per_step(results, series, data.get("wal:db")), "{:.0f}"),
            _opt(rows, "{:.0f}"),
            target,
        )
    console.print(table)
    console.print(f"   one ledger row: {extra:.0f} bytes")


def best_dps(results: Results, workload: str, concurrency: int = TARGET_AT) -> dict[str, Any]:
    """The fastest planbound layout for ``workload`` at ``concurrency`` (empty if unmeasured)."""
    rows = [
        r
        for r in (*results.throughput, *results.scaling)
        if r["workload"] == workload
        and r["system"] == "planbound"
        and r["concurrency"] == concurrency
    ]
    return max(rows, key=lambda r: float(r["per_s"])) if rows else {}


def print_throughput(console: Console, results: Results) -> None:
    """Table 3: decisions per second by workload, system and layout."""
    table = _table(
        f"3. throughput on {os.cpu_count()} CPUs (a write decision: start, approval, resume), "
        f"checkpointer pool max {results.pool_max} per process",
        (
            "workload",
            "system",
            "layout",
            "C",
            "decisions",
            "decisions/s",
            "p50 ms",
            "p95 ms",
            "target",
        ),
    )
    for row in results.throughput:
        target = ""
        if row["system"] == "planbound" and row["concurrency"] == TARGET_AT:
            wanted = DPS_TARGET[row["workload"]]
            target = f"≥ {wanted:g}/s {_mark(row['per_s'] >= wanted)}"
        table.add_row(
            row["workload"],
            row["system"],
            row["layout"],
            str(row["concurrency"]),
            str(row["decisions"]),
            f"{row['per_s']:.1f}",
            f"{row['p50_ms']:.0f}",
            f"{row['p95_ms']:.0f}",
            target,
        )
    console.print(table)
    cpu = results.median("read", "cpu") + (results.mean("read", "pg_cpu") or 0.0)
    console.print(
        f"   CPU per read decision, process + backends: {cpu:.0f} ms; on "
        f"{os.cpu_count()} cores that caps the machine at ~{1000 * (os.cpu_count() or 1) / cpu:.0f}"
        " read decisions/s before any other load"
    )


def print_scaling(console: Console, results: Results) -> None:
    """Table 3b: planbound decisions/s by worker processes on one database, exactly once."""
    table = _table(
        "3b. scaling: planbound at one concurrency, worker processes on one PostgreSQL (each "
        "with its own stores); write decisions must each consume one approval, take one review "
        "claim and leave one succeeded write",
        (
            "workload",
            "processes",
            "C",
            "decisions",
            "decisions/s",
            "p50 ms",
            "approvals / claims / writes",
            "started rows",
            "exactly once",
        ),
    )
    for row in results.scaling:
        once = row.get("once", {})
        counts, ok = "", ""
        if row["workload"] == "write":
            n = row["decisions"]
            got = (once.get("approvals"), once.get("claims"), once.get("writes"))
            counts = " / ".join(str(v) for v in got)
            ok = _mark(got == (n, n, n) and once.get("started") == 0)
        table.add_row(
            row["workload"],
            str(row["processes"]),
            str(row["concurrency"]),
            str(row["decisions"]),
            f"{row['per_s']:.1f}",
            f"{row['p50_ms']:.0f}",
            counts,
            str(once.get("started", "")),
            ok,
        )
    console.print(table)


def print_written(console: Console, results: Results) -> None:
    """Table 4: what one decision writes, per table."""
    table = _table(
        "4. rows written per decision by table (sum of pg_column_size; disk = "
        "pg_total_relation_size delta)",
        ("table", *(f"{s} rows B (n)" for s in LABELS)),
    )
    for name in (*CHECKPOINT_TABLES, *PLANBOUND_TABLES):
        cells = []
        for series in LABELS:
            data = results.written[series]
            cells.append(f"{data[f'rows:{name}']:.0f} ({data[f'count:{name}']:.1f})")
        table.add_row(name, *cells)
    for key, label in (("wal:fpi", "WAL full-page images (B)"), ("xids", "xids, cluster-wide")):
        table.add_row(label, *(_opt(results.written[s].get(key), "{:.1f}") for s in LABELS))
    console.print(table)


def print_verify(console: Console, results: Results) -> None:
    """Table 5: verify latency of the ten-step plan."""
    samples = results.verify_ms
    p50 = statistics.median(samples)
    table = _table(
        f"5. verify of the ten-step plan (evals.bench_verify), {len(samples)} runs on these stores",
        ("p50 ms", "p95 ms", "target"),
    )
    target = f"≤ {TARGET_VERIFY_P50_MS:g} ms {_mark(p50 <= TARGET_VERIFY_P50_MS)}"
    table.add_row(f"{p50:.2f}", f"{percentile(samples, 0.95):.2f}", target)
    console.print(table)


def _share_cells(data: dict[str, float], key: str) -> tuple[str, str]:
    if key not in data:
        return "-", ""
    return f"{data[key]:.2f}", f"{data[key] / data['wall']:.0%}"


BREAKDOWN_TITLES = {
    "read": ("6", "a read decision", "raw LangGraph ms"),
    "write": ("6b", "a write decision with approval (run, interrupt, resume)", "raw ms"),
}
"""Number, subject and raw column of each workload's breakdown table."""


def print_breakdown(console: Console, results: Results, runs: int, workload: str) -> None:
    """Table 6 (6b): where the time of one decision of ``workload`` goes, and its top list."""
    pb, raw = results.breakdown[workload]["planbound"], results.breakdown[workload]["raw"]
    number, subject, raw_column = BREAKDOWN_TITLES[workload]
    table = _table(
        f"{number}. where the time of {subject} goes: self time under cProfile, mean of {runs} "
        "(the profiler slows Python code, so read the shares; only the loop thread adds up "
        "to the wall time)",
        ("part", "planbound ms", "share", raw_column, "share"),
    )
    for kind in (LOOP, STARTED):
        keys = sorted(
            {
                k
                for k in (*pb, *raw)
                if k.startswith(kind + "|") and max(pb.get(k, 0.0), raw.get(k, 0.0)) >= 0.01
            },
            key=lambda k: max(pb.get(k, 0.0), raw.get(k, 0.0)),
            reverse=True,
        )
        if not keys:
            continue
        table.add_row(f"[bold]{kind}[/]", "", "", "", "", end_section=False)
        for key in keys:
            table.add_row(
                "  " + key.split("|", 1)[1], *_share_cells(pb, key), *_share_cells(raw, key)
            )
        if kind == LOOP:
            totals = [sum(v for k, v in d.items() if k.startswith(LOOP + "|")) for d in (pb, raw)]
            table.add_row("  = loop thread total", f"{totals[0]:.2f}", "", f"{totals[1]:.2f}", "")
            table.add_row(
                "  wall (timed around each run)",
                f"{pb['wall']:.2f}",
                "",
                f"{raw['wall']:.2f}",
                "",
                end_section=True,
            )
    sql = results.statement_sources[workload]
    pb_sql, raw_sql = sql["planbound"], sql["raw"]
    table.add_row(
        "SQL statement calls per decision (profiled threads)",
        f"{sum(pb_sql.values()):.0f}",
        "",
        f"{sum(raw_sql.values()):.0f}",
        "",
        end_section=False,
    )
    sources = {s for s in (*pb_sql, *raw_sql) if max(pb_sql.get(s, 0), raw_sql.get(s, 0)) >= 0.5}
    for source in sorted(sources, key=lambda s: -max(pb_sql.get(s, 0), raw_sql.get(s, 0))):
        cells = [f"{d[source]:.0f}" if source in d else "-" for d in (pb_sql, raw_sql)]
        table.add_row(f"  issued by {source}", cells[0], "", cells[1], "")
    console.print(table)
    console.print(
        "   tool calls planbound makes on the engine's long-lived tool threads are not profiled:"
        " their time shows as the engine's wait for the tool thread"
    )
    top = _table(
        f"   cProfile of {subject} on planbound (loop thread, mean of {runs})",
        ("function", "calls", "self ms", "cumulative ms"),
    )
    for label, calls, self_ms, cum_ms in results.profile[workload]:
        top.add_row(label, str(calls), f"{self_ms:.2f}", f"{cum_ms:.2f}")
    console.print(top)


def summary(results: Results) -> str:
    """The one line scripts read: ``BENCH key=value ...``."""

    def commits_per_step(series: str) -> float:
        value = per_step(results, series, results.written[series].get("commits"))
        return value if value is not None else float("nan")

    read_best, write_best = best_dps(results, "read"), best_dps(results, "write")
    fields = {
        "read_ratio": f"{ratio(results, 'read'):.2f}",
        "write_ratio": f"{ratio(results, 'write'):.2f}",
        "read_dps_c50": f"{float(read_best.get('per_s', float('nan'))):.1f}",
        "write_dps_c50": f"{float(write_best.get('per_s', float('nan'))):.1f}",
        "verify_p50_ms": f"{statistics.median(results.verify_ms):.2f}",
        "commits_per_superstep": f"{max(commits_per_step('read'), commits_per_step('write')):.2f}",
        "raw_commits_per_superstep": (
            f"{max(commits_per_step('raw_read'), commits_per_step('raw_write')):.2f}"
        ),
        "read_ms": f"{results.median('read'):.1f}",
        "raw_read_ms": f"{results.median('raw_read'):.1f}",
        "write_ms": f"{results.median('write'):.1f}",
        "raw_write_ms": f"{results.median('raw_write'):.1f}",
        "dps_processes": str(read_best.get("processes", "")),
        "tool_calls": str(TOOL_CALLS),
        "engine": results.engine,
        "load": results.load.split(" ", 1)[0],
    }
    return "BENCH " + " ".join(f"{k}={v}" for k, v in fields.items())


def print_report(console: Console, results: Results, profile_runs: int) -> None:
    """Print every table, then the summary line (plain, on stdout)."""
    print_decisions(console, results)
    print_supersteps(console, results)
    if results.throughput:
        print_throughput(console, results)
    if results.scaling:
        print_scaling(console, results)
    print_written(console, results)
    print_verify(console, results)
    for workload in BREAKDOWN_TITLES:
        if workload in results.breakdown:
            print_breakdown(console, results, profile_runs, workload)
    console.print(summary(results), markup=False, highlight=False, soft_wrap=True)

"""The four tables of the durable-execution benchmark, printed with rich."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from evals.bench_durable.pgstats import CHECKPOINT_TABLES, LEDGER_TABLE
from evals.bench_durable.phases import Results, percentile
from evals.bench_durable.profiling import LOOP, STARTED
from evals.bench_durable.workload import (
    TARGET_AT,
    TARGET_DECISIONS_S,
    TARGET_VS_FLOOR,
    TARGET_VS_RAW,
    TRANSITIONS,
)


def _table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def _ratio_mark(value: float, target: float) -> str:
    return f"{value:.2f}x " + ("[green]ok[/]" if value <= target else "[red]over[/]")


def print_latency(console: Console, results: Results) -> None:
    """Table 1: per-transition cost."""
    lat = results.latency
    floor = statistics.median(lat["floor"])
    raw = statistics.median(lat["raw"]) / TRANSITIONS
    table = _table(
        f"1. per-transition cost, {TRANSITIONS}-step read-only decision, median of "
        f"{len(lat['raw'])} runs ({len(lat['floor'])} floor commits), pool max {results.pool_max}",
        (
            "what",
            "decision ms",
            "CPU ms",
            "checkpoints",
            "ms / transition",
            "vs raw",
            "vs floor",
            "target",
        ),
    )
    rows = (
        ("raw LangGraph (same saver, pool)", "raw", "raw"),
        ("planbound graph.invoke", "invoke", "planbound"),
        ("planbound decision (Runner.start)", "start", "planbound"),
    )
    for label, key, kind in rows:
        decision = statistics.median(lat[key])
        per = decision / TRANSITIONS
        target = ""
        if key == "start":
            target = f"≤ {TARGET_VS_RAW}x raw, ≤ {TARGET_VS_FLOOR:g}x floor"
        table.add_row(
            label,
            f"{decision:.1f}",
            f"{statistics.median(lat[key + ':cpu']):.1f}",
            f"{results.checkpoints_per_run.get(kind, 0):.0f}",
            f"{per:.2f}",
            _ratio_mark(per / raw, TARGET_VS_RAW) if key != "raw" else "1.00x",
            _ratio_mark(per / floor, TARGET_VS_FLOOR),
            target,
        )
    table.add_row("1 KB INSERT commit (floor)", "", "", "", f"{floor:.2f}", "", "1.00x", "")
    console.print(table)
    server = results.server
    console.print(
        f"   PostgreSQL {server.get('server_version')}, synchronous_commit="
        f"{server.get('synchronous_commit')}, fsync={server.get('fsync')}, "
        f"wal_sync_method={server.get('wal_sync_method')}; floor p95 "
        f"{percentile(lat['floor'], 0.95):.2f} ms; planbound decision p95 "
        f"{percentile(lat['start'], 0.95):.1f} ms; raw p95 {percentile(lat['raw'], 0.95):.1f}"
        f" ms; load average {results.load}"
    )


def print_throughput(console: Console, results: Results) -> None:
    """Table 2: decisions per second."""
    table = _table(
        f"2. throughput, {TRANSITIONS}-transition decisions, threads in one process, "
        f"{os.cpu_count()} CPUs, checkpointer pool max {results.pool_max}",
        ("layout", "C", "decisions", "decisions/s", "p50 ms", "p95 ms", "target"),
    )
    labels = {
        "planbound": "planbound, own domain conn/worker",
        "planbound-shared": "planbound, one shared Stores",
        "raw": "raw LangGraph, own domain conn/worker",
    }
    for row in results.throughput:
        target = ""
        if row["mode"] == "planbound" and row["concurrency"] == TARGET_AT:
            ok = row["per_s"] >= TARGET_DECISIONS_S
            target = f"≥ {TARGET_DECISIONS_S:g}/s " + ("[green]ok[/]" if ok else "[red]under[/]")
        table.add_row(
            labels[row["mode"]],
            str(row["concurrency"]),
            str(row["decisions"]),
            f"{row['per_s']:.1f}",
            f"{row['p50_ms']:.0f}",
            f"{row['p95_ms']:.0f}",
            target,
        )
    console.print(table)
    cpu = statistics.median(results.latency["start:cpu"])
    raw_cpu = statistics.median(results.latency["raw:cpu"])
    console.print(
        f"   process CPU per decision (all threads): planbound {cpu:.0f} ms, raw {raw_cpu:.0f} ms;"
        f" one core (the GIL) caps a process at ~{1000 / cpu:.0f} planbound decisions/s"
        f" (~{1000 / raw_cpu:.0f} raw runs/s)"
    )


def print_bytes(console: Console, results: Results, runs: int) -> None:
    """Table 3: bytes written per transition."""
    table = _table(
        f"3. bytes written per transition ({runs} decisions / raw runs each; disk = "
        "pg_total_relation_size delta, rows = sum(pg_column_size) of the run's rows)",
        ("table", "raw rows/tr", "raw disk B/tr", "planbound rows/tr", "planbound disk B/tr"),
    )
    raw, pb = results.bytes["raw"], results.bytes["planbound"]
    totals = {"raw": [0.0, 0.0], "planbound": [0.0, 0.0]}
    for name in (*CHECKPOINT_TABLES, LEDGER_TABLE):
        cells = []
        for kind, data in (("raw", raw), ("planbound", pb)):
            count = data[f"count:{name}"]
            cells.append(f"{data[f'rows:{name}']:.0f} B ({count:.2f} rows)")
            cells.append(f"{data[f'disk:{name}']:.0f}")
            totals[kind][0] += data[f"rows:{name}"]
            totals[kind][1] += data[f"disk:{name}"]
        table.add_row(name, *cells)
    table.add_row(
        "total",
        f"{totals['raw'][0]:.0f} B",
        f"{totals['raw'][1]:.0f}",
        f"{totals['planbound'][0]:.0f} B",
        f"{totals['planbound'][1]:.0f}",
    )
    if "wal:db" in raw and "wal:db" in pb:
        table.add_row(
            "WAL bytes of this database (pg_walinspect)",
            "",
            f"{raw['wal:db']:.0f}",
            "",
            f"{pb['wal:db']:.0f}",
        )
        table.add_row(
            "  of which full-page images", "", f"{raw['wal:fpi']:.0f}", "", f"{pb['wal:fpi']:.0f}"
        )
        table.add_row(
            "write transactions (commits) / transition",
            "",
            f"{raw['xacts:db']:.2f}",
            "",
            f"{pb['xacts:db']:.2f}",
        )
    table.add_row("WAL bytes, cluster-wide", "", f"{raw['wal']:.0f}", "", f"{pb['wal']:.0f}")
    table.add_row("xids assigned, cluster-wide", "", f"{raw['xids']:.2f}", "", f"{pb['xids']:.2f}")
    console.print(table)


def _share_cells(data: dict[str, float], key: str) -> tuple[str, str]:
    if key not in data:
        return "-", ""
    return f"{data[key]:.2f}", f"{data[key] / data['wall']:.0%}"


def print_breakdown(console: Console, results: Results, runs: int) -> None:
    """Table 4: where the time of one decision goes, and the cProfile top list."""
    pb, raw = results.breakdown["planbound"], results.breakdown["raw"]
    table = _table(
        f"4. where the time goes: self time per decision under cProfile, mean of {runs} "
        "(the profiler slows Python code, so read the shares; only the loop thread adds up "
        "to the wall time)",
        ("part", "planbound ms", "share", "raw LangGraph ms", "share"),
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
    pb_sql, raw_sql = results.statement_sources["planbound"], results.statement_sources["raw"]
    table.add_row(
        "SQL statement calls per decision (profiled threads)",
        f"{results.statements['planbound']:.0f}",
        "",
        f"{results.statements['raw']:.0f}",
        "",
        end_section=False,
    )
    sources = {s for s in (*pb_sql, *raw_sql) if max(pb_sql.get(s, 0), raw_sql.get(s, 0)) >= 0.5}
    for source in sorted(sources, key=lambda s: -max(pb_sql.get(s, 0), raw_sql.get(s, 0))):
        cells = [f"{d[source]:.0f}" if source in d else "-" for d in (pb_sql, raw_sql)]
        table.add_row(f"  issued by {source}", cells[0], "", cells[1], "")
    console.print(table)
    console.print(
        "   planbound runs the steps' tool calls on the engine's long-lived tool threads, which"
        " are not profiled: their time is the engine's wait for the tool thread, their SQL is not"
        " counted (planbound's tool bodies above are verify's facts lookups); the raw LangGraph"
        " graph calls the same tools inline, so its figures include both"
    )

    top = _table(
        f"   cProfile of a planbound decision (loop thread, mean of {runs}; waits on other "
        "threads show as lock acquire)",
        ("function", "calls", "self ms", "cumulative ms"),
    )
    for label, calls, self_ms, cum_ms in results.profile:
        top.add_row(label, str(calls), f"{self_ms:.2f}", f"{cum_ms:.2f}")
    console.print(top)


def print_report(console: Console, results: Results, bytes_runs: int, profile_runs: int) -> None:
    """Print the four tables."""
    print_latency(console, results)
    print_throughput(console, results)
    print_bytes(console, results, bytes_runs)
    print_breakdown(console, results, profile_runs)

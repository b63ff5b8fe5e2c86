"""Options, the order of the phases, and clean-up of what the bench created."""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from checkpoints.factory import redact
from evals.bench_durable.baseline import build_raw_graph, drop_floor_table
from evals.bench_durable.pgstats import drop_walinspect, enable_walinspect, server_settings
from evals.bench_durable.phases import (
    Results,
    checkpoints_per_run,
    measure_breakdown,
    measure_bytes,
    measure_latency,
    measure_throughput,
)
from evals.bench_durable.report import print_report
from evals.bench_durable.setup import ADMIN_URI, bench_database, open_seeded, pool_of
from evals.bench_durable.workload import FULL, QUICK, Settings
from graph.runner import Runner

DESCRIPTION = (
    "Durable execution cost on PostgreSQL: planbound vs raw LangGraph vs one durable commit."
)


def parse_settings(argv: list[str] | None) -> tuple[argparse.Namespace, Settings]:
    """Parse the command line into its options and the run sizes."""
    parser = argparse.ArgumentParser(prog="python -m evals.bench_durable", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="a smoke run (under a minute)")
    parser.add_argument("--uri", help="a scratch PostgreSQL database to use (not dropped)")
    parser.add_argument(
        "--admin-uri", default=ADMIN_URI, help="server where the throw-away database is made"
    )
    parser.add_argument(
        "--concurrency", help="comma-separated worker counts (default 1,10,50)", default=None
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.concurrency:
        levels = tuple(int(c) for c in args.concurrency.split(","))
        per_worker = {c: settings.per_worker.get(c, 2) for c in levels}
        settings = dataclasses.replace(settings, concurrency=levels, per_worker=per_worker)
    return args, settings


def main(argv: list[str] | None = None) -> Results:
    """Run the benchmark, print its tables and return the measurements."""
    args, settings = parse_settings(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    results = Results()
    progress = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with ExitStack() as stack:
        home = stack.enter_context(tempfile.TemporaryDirectory())
        uri = stack.enter_context(bench_database(args.uri, args.admin_uri))
        console.log(f"database {redact(uri)}; opening stores and seeding the retail domain")
        stores = open_seeded(Path(home), uri)
        stack.callback(stores.close)
        pool = pool_of(stores)
        results.pool_max = pool.max_size
        if enable_walinspect(pool) and args.uri is not None:
            stack.callback(drop_walinspect, pool)  # leave a given database as it was
        runner = Runner(stores)
        raw = build_raw_graph(stores)
        results.server = server_settings(pool)
        load_before = os.getloadavg()[0]

        with progress:
            console.log("phase 1/4: per-transition latency (planbound, raw LangGraph, floor)")
            results.latency = measure_latency(runner, raw, pool, settings, progress)
            results.checkpoints_per_run = checkpoints_per_run(runner, raw, pool)

            console.log(
                "phase 2/4: throughput at concurrency "
                + ", ".join(str(c) for c in settings.concurrency)
            )
            modes = ["planbound", *(["planbound-shared", "raw"] if settings.shared_modes else [])]
            for mode in modes:
                for level in settings.concurrency:
                    results.throughput.append(
                        measure_throughput(
                            stores,
                            uri,
                            mode,
                            level,
                            settings.per_worker[level],
                            progress,
                            warm=settings.warmup > 0,
                        )
                    )

            console.log("phase 3/4: bytes written per transition")
            measure_bytes(runner, raw, pool, settings.bytes_runs, progress, results)

            console.log("phase 4/4: where the time goes")
            measure_breakdown(runner, raw, settings.profile_runs, progress, results)
        results.load = f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end (1 min)"
        drop_floor_table(pool)

    print_report(console, results, settings.bytes_runs, settings.profile_runs)
    return results

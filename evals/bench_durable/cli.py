"""Options, the order of the phases, and clean-up of what the bench created."""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from checkpoints.factory import redact
from evals.bench_durable.baseline import build_raw_graph, drop_floor_table
from evals.bench_durable.meter import Meter, StatementCounter
from evals.bench_durable.pgstats import (
    drop_walinspect,
    enable_walinspect,
    once_counts,
    server_settings,
)
from evals.bench_durable.phases import (
    SERIES,
    Results,
    Workloads,
    measure_breakdown,
    measure_latency,
    measure_threads,
    measure_verify,
    measure_written,
)
from evals.bench_durable.procs import measure_processes
from evals.bench_durable.report import print_report
from evals.bench_durable.setup import ADMIN_URI, bench_database, open_seeded, pool_of
from evals.bench_durable.workload import FULL, QUICK, Settings, write_targets
from graph.runner import Runner

DESCRIPTION = (
    "Durable execution cost on PostgreSQL: planbound vs raw LangGraph doing the same tool "
    "calls, a read-only and a write-with-approval workload, in one process and in several."
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
        "--concurrency", help="comma-separated caller counts (default 1,50)", default=None
    )
    parser.add_argument("--processes", type=int, help="processes of the multi-process layout")
    parser.add_argument(
        "--scaling", help="comma-separated worker process counts to scale over (e.g. 1,2,4)"
    )
    parser.add_argument(
        "--skip", default="", help="comma-separated phases to skip: throughput, profile"
    )
    parser.add_argument(
        "--engine",
        choices=("regopy", "regorus"),
        help="the in-process policy engine (default: PLANBOUND_POLICY_ENGINE, else regopy)",
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.concurrency:
        levels = tuple(int(c) for c in args.concurrency.split(","))
        per_worker = {c: settings.per_worker.get(c, 2) for c in levels}
        settings = dataclasses.replace(settings, concurrency=levels, per_worker=per_worker)
    if args.processes:
        settings = dataclasses.replace(settings, processes=args.processes)
    if args.scaling is not None:
        counts = tuple(int(p) for p in args.scaling.split(",") if p.strip())
        settings = dataclasses.replace(settings, scaling=counts)
    most = max(settings.concurrency)
    if most > len(write_targets()):
        parser.error(f"at most {len(write_targets())} concurrent callers (write targets)")
    return args, settings


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the block; restore what it was after."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def main(argv: list[str] | None = None) -> Results:
    """Run the benchmark, print its tables and the summary line; return the measurements."""
    args, settings = parse_settings(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    console = Console()
    if not console.is_terminal:
        console = Console(width=180)
    results = Results()
    progress = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    counter = StatementCounter()
    with ExitStack() as stack:
        if args.engine:
            # The worker processes read their settings from the environment too.
            stack.enter_context(_environment("PLANBOUND_POLICY_ENGINE", args.engine))
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
        results.engine = runner.services.settings.policy_engine
        work = Workloads(runner, build_raw_graph(stores), write_targets()[0])
        results.server = server_settings(pool)
        load_before = os.getloadavg()[0]

        with progress:
            console.log("phase 1/5: cost per decision, both workloads, planbound and raw")
            with counter.installed():
                meter = Meter(pool, counter)
                results.latency, results.floor = measure_latency(
                    work, meter, pool, settings, progress
                )
            console.log("phase 2/5: what each decision writes")
            measure_written(work, pool, settings.bytes_runs, progress, results)

            if "throughput" not in skip:
                console.log(
                    "phase 3/5: throughput at "
                    + ", ".join(f"C={c}" for c in settings.concurrency)
                    + f", one process and {settings.processes} processes"
                )
                warm = settings.warmup > 0
                for series in SERIES:
                    for level in settings.concurrency:
                        results.throughput.append(
                            measure_threads(
                                stores, series, level, settings.per_worker[level], progress, warm
                            )
                        )
                    top = max(settings.concurrency)
                    results.throughput.append(
                        measure_processes(
                            uri, series, settings.processes, top, settings.per_worker[top], warm
                        )
                    )

            if settings.scaling and "throughput" not in skip:
                top = max(settings.concurrency)
                console.log(
                    f"phase 3b: scaling over {', '.join(map(str, settings.scaling))} worker"
                    f" processes at C={top}"
                )
                for series in ("read", "write"):
                    for procs in settings.scaling:
                        before = once_counts(pool)
                        row = measure_processes(
                            uri, series, procs, top, settings.per_worker[top], settings.warmup > 0
                        )
                        after = once_counts(pool)
                        row["once"] = {k: after[k] - before[k] for k in after}
                        row["once"]["started"] = after["started"]
                        results.scaling.append(row)

            console.log("phase 4/5: verify latency")
            results.verify_ms = measure_verify(runner, settings.verify_runs)

            if "profile" not in skip:
                console.log("phase 5/5: where the time goes")
                measure_breakdown(work, settings.profile_runs, progress, results)
        results.load = f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end (1 min)"
        drop_floor_table(pool)

    print_report(console, results, settings.profile_runs)
    return results

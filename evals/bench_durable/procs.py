"""The multi-process layout: N worker processes on one database, each with its own stores.

Each process opens planbound's stores as a deployment would (``open_stores``: its own
checkpointer pool and domain connection), shares them among its callers (threads), and
waits for the parent's signal before its callers start, so the processes run together.
"""

from __future__ import annotations

import multiprocessing
import tempfile
from typing import Any

from evals.bench_durable.baseline import build_raw_graph
from evals.bench_durable.phases import job_for, run_callers, throughput_row
from graph.runner import Runner
from graph.services import open_stores


def _child(
    uri: str,
    series: str,
    callers: int,
    offset: int,
    per_worker: int,
    warm: bool,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    try:
        with tempfile.TemporaryDirectory(prefix="planbound-bench-") as home:
            stores = open_stores(home, uri=uri)
            try:
                runner, raw = Runner(stores), build_raw_graph(stores)
                pairs = [job_for(series, runner, raw, offset + i, warm) for i in range(callers)]

                def gate() -> None:
                    ready.put(True)
                    go.wait()

                wall, lat = run_callers(pairs, per_worker, gate)
            finally:
                stores.close()
        out.put(("ok", wall, lat))
    except BaseException as exc:  # reported by the parent
        ready.put(False)
        out.put(("error", repr(exc), []))


def measure_processes(
    uri: str, series: str, processes: int, concurrency: int, per_worker: int, warm: bool
) -> dict[str, Any]:
    """Throughput of ``concurrency`` callers split over ``processes`` worker processes.

    Raises:
        RuntimeError: a worker process failed (its error is named).
    """
    ctx = multiprocessing.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    shares = [
        concurrency // processes + (1 if p < concurrency % processes else 0)
        for p in range(processes)
    ]
    children, offset = [], 0
    for share in shares:
        child = ctx.Process(
            target=_child,
            args=(uri, series, share, offset, per_worker, warm, ready, go, out),
            daemon=True,
        )
        child.start()
        children.append(child)
        offset += share
    try:
        if not all(ready.get(timeout=300) for _ in children):
            go.set()
            failure = next(r for r in (out.get(timeout=60) for _ in children) if r[0] == "error")
            raise RuntimeError(f"a worker process failed: {failure[1]}")
        go.set()
        reports = [out.get(timeout=600) for _ in children]
    finally:
        for child in children:
            child.join(timeout=60)
    errors = [r[1] for r in reports if r[0] == "error"]
    if errors:
        raise RuntimeError(f"a worker process failed: {errors[0]}")
    wall = max(r[1] for r in reports)
    latencies = [ms for r in reports for ms in r[2]]
    return throughput_row(
        series, f"{processes} processes, own stores", processes, concurrency, wall, latencies
    )

"""What the served graph's tracing callbacks cost when no key is set: served vs plain graph.

Run: ``python -m evals.bench_server_tracing [--runs N]``. It seeds a throw-away home and
runs the same request (a cancellation, which pauses for review) ``N`` times on each of two
graphs over the same services, alternating: the plain graph (the baseline) and the graph the
server serves (:mod:`graph.server.traces`, tracing off: only the root recorder, which observes
the invocation's time). Each run is ``ainvoke`` on a fresh thread, as the server runs it. It
prints the median and p95 of each and the ratio of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from rich.console import Console
from rich.table import Table

from checkpoints.factory import serializer
from graph.graph import build_graph
from graph.server.traces import traced
from graph.services import Services, open_stores
from graph.settings import Settings
from graph.state import STATE_TYPES
from tools.retail import load_shipped, seed

REQUEST = (
    "I'm fatima.anderson1447@example.com. Please cancel my order #W2974929, "
    "reason: no longer needed."
)


async def timed(graph: Any) -> float:
    """Seconds one start (until the pause for review) takes on a fresh thread."""
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    started = time.perf_counter()
    await graph.ainvoke({"request": REQUEST}, config, durability="sync")
    return time.perf_counter() - started


async def bench(runs: int, home: Path) -> dict[str, list[float]]:
    """Time both graphs ``runs`` times each, alternating, on one seeded home."""
    stores = open_stores(home)
    with stores.lock:
        seed(stores.domain, load_shipped())
    services = Services(Settings.load(home=home, langsmith_tracing=False), stores=stores)
    saver = InMemorySaver(serde=serializer(STATE_TYPES))
    graphs = {
        "plain graph (baseline)": build_graph(services, checkpointer=saver),
        "served graph, no key": traced(build_graph(services, checkpointer=saver), services),
    }
    times: dict[str, list[float]] = {name: [] for name in graphs}
    for graph in graphs.values():  # warm up: policy, templates, connections
        await timed(graph)
    for _ in range(runs):
        for name, graph in graphs.items():
            times[name].append(await timed(graph))
    stores.close()
    return times


def main() -> None:
    """Parse ``--runs``, run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if args.runs < 3:
        parser.error("--runs must be at least 3")
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_API_KEY"):
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory() as tmp:
        times = asyncio.run(bench(args.runs, Path(tmp)))
    base = statistics.median(next(iter(times.values())))
    table = Table(title=f"One start until the review pause, {args.runs} runs each (ms)")
    for column in ("graph", "median", "p95", "ratio of medians"):
        table.add_column(column)
    for name, values in times.items():
        median = statistics.median(values)
        p95 = statistics.quantiles(values, n=20)[-1]
        table.add_row(name, f"{median * 1e3:.2f}", f"{p95 * 1e3:.2f}", f"{median / base:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()

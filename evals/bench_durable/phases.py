"""The measured phases: latency, throughput, bytes written, and where the time goes."""

from __future__ import annotations

import functools
import secrets
import statistics
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import ConnectionPool
from rich.progress import Progress

from checkpoints.factory import Stores
from evals.bench_durable.baseline import (
    RawGraph,
    build_raw_graph,
    create_floor_table,
    floor_commit,
    run_raw,
)
from evals.bench_durable.pgstats import checkpoint_count, logical_bytes, sizes, wal_of_database
from evals.bench_durable.profiling import LOOP, STARTED, Attribution, profile_runs
from evals.bench_durable.setup import worker_stores
from evals.bench_durable.workload import (
    ACTOR,
    PLAN,
    TRANSITIONS,
    Settings,
    invoke_only,
    run_decision,
)
from graph.runner import Runner

PROFILE_TOP = 15
"""Functions listed in the cProfile top list."""


@dataclass
class Results:
    """Everything measured, for printing and for checking a run.

    Attributes:
        latency: Milliseconds per run by series: ``start`` (``Runner.start``), ``invoke``
            (``graph.invoke`` alone), ``raw`` and ``floor`` (one commit each), and the
            process CPU milliseconds of the first three as ``<series>:cpu``.
        checkpoints_per_run: Checkpoints one ``planbound`` decision and one ``raw`` run
            store.
        throughput: One row per (layout, concurrency): ``mode``, ``concurrency``,
            ``decisions``, ``wall_s``, ``per_s``, ``p50_ms``, ``p95_ms``.
        bytes: Per transition, for ``raw`` and ``planbound``: ``disk:<table>``,
            ``rows:<table>`` (bytes), ``count:<table>`` (rows), ``wal`` and ``xids``
            (cluster-wide), and with ``pg_walinspect`` ``wal:db``, ``wal:fpi`` and
            ``xacts:db`` (this database's write transactions).
        measured_threads: The threads whose writes ``bytes`` counts, by kind.
        measured_decisions: The planbound decisions whose ledger rows ``bytes`` counts.
        breakdown: Milliseconds per decision, for ``planbound`` and ``raw``, keyed
            ``"<thread kind>|<category>"``, with ``wall`` (timed around each run).
        statements: psycopg statement calls per decision on the profiled threads.
        statement_sources: The same, by the component that issued them.
        profile: The planbound loop thread's top self-time functions per decision:
            (function, calls, self ms, cumulative ms).
        server: The server settings that decide the cost of a commit.
        load: The machine's load average at the start and end.
        pool_max: The checkpointer pool's maximum size.
    """

    latency: dict[str, list[float]] = field(default_factory=dict)
    checkpoints_per_run: dict[str, float] = field(default_factory=dict)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    bytes: dict[str, dict[str, float]] = field(default_factory=dict)
    measured_threads: dict[str, list[str]] = field(default_factory=dict)
    measured_decisions: list[str] = field(default_factory=list)
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)
    statements: dict[str, float] = field(default_factory=dict)
    statement_sources: dict[str, dict[str, float]] = field(default_factory=dict)
    profile: list[tuple[str, int, float, float]] = field(default_factory=list)
    server: dict[str, str] = field(default_factory=dict)
    load: str = ""
    pool_max: int = 0


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _nothing() -> None:
    """Do nothing (a worker that is not warmed up)."""


def measure_latency(
    runner: Runner, raw: RawGraph, pool: ConnectionPool[Any], settings: Settings, progress: Progress
) -> dict[str, list[float]]:
    """Interleave planbound decisions, raw runs and floor commits; return ms samples."""
    create_floor_table(pool)
    for _ in range(max(1, settings.warmup)):  # imports, Rego interpreter, pool connections
        run_decision(runner)
        invoke_only(runner)
        run_raw(raw)
    floor_commit(pool, [secrets.token_hex(512) for _ in range(20)])

    samples: dict[str, list[float]] = defaultdict(list)
    task = progress.add_task("latency rounds", total=settings.rounds)
    for _ in range(settings.rounds):
        for name, fn in (
            ("start", lambda: run_decision(runner)),
            ("invoke", lambda: invoke_only(runner)),
            ("raw", lambda: run_raw(raw)),
        ):
            cpu, start = time.process_time(), time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1000)
            samples[f"{name}:cpu"].append((time.process_time() - cpu) * 1000)
        payloads = [secrets.token_hex(512) for _ in range(settings.floor_per_round)]
        samples["floor"].extend(floor_commit(pool, payloads))
        progress.advance(task)
    return dict(samples)


def checkpoints_per_run(
    runner: Runner, raw: RawGraph, pool: ConnectionPool[Any]
) -> dict[str, float]:
    """Count the checkpoints one decision and one raw run write."""
    thread = run_raw(raw, uuid.uuid4().hex)
    decision = run_decision(runner)
    return {
        "raw": float(checkpoint_count(pool, thread)),
        "planbound": float(checkpoint_count(pool, decision["thread_id"])),
    }


def measure_throughput(
    primary: Stores,
    uri: str,
    mode: str,
    concurrency: int,
    per_worker: int,
    progress: Progress,
    warm: bool = True,
) -> dict[str, Any]:
    """Run ``per_worker`` decisions on each of ``concurrency`` threads; return decisions/s.

    Modes: ``planbound`` (own domain connection per worker, shared checkpointer pool),
    ``planbound-shared`` (every worker on the primary ``Stores``, as ``shared_stores`` does
    in the server) and ``raw`` (the raw graph, own domain connection, shared pool). With
    ``warm``, each thread first judges the plan once, untimed (its Rego interpreter is per
    thread).
    """
    own = [
        primary if mode == "planbound-shared" else worker_stores(primary, uri)
        for _ in range(concurrency)
    ]
    jobs: list[tuple[Callable[[], Any], Callable[[], Any]]] = []
    for stores in own:
        if mode == "raw":
            graph = build_raw_graph(stores)
            job = functools.partial(run_raw, graph)
            jobs.append((job if warm else _nothing, job))
        else:
            runner = Runner(stores)
            # Judging the plan once builds this thread's Rego interpreter (one per thread).
            prime = functools.partial(runner.explain, PLAN, ACTOR) if warm else _nothing
            jobs.append((prime, functools.partial(run_decision, runner)))
    barrier = threading.Barrier(concurrency + 1)
    latencies: list[float] = []
    errors: list[BaseException] = []
    task = progress.add_task(f"{mode} C={concurrency}", total=concurrency * per_worker)

    def work(prime: Callable[[], Any], job: Callable[[], Any]) -> None:
        try:
            prime()
            barrier.wait()
            for _ in range(per_worker):
                start = time.perf_counter()
                job()
                latencies.append((time.perf_counter() - start) * 1000)
                progress.advance(task)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=pair, daemon=True) for pair in jobs]
    try:
        for thread in threads:
            thread.start()
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
    finally:
        for stores in own:
            if stores is not primary:
                stores.domain.close()
    if errors:
        raise errors[0]
    done = concurrency * per_worker
    return {
        "mode": mode,
        "concurrency": concurrency,
        "decisions": done,
        "wall_s": wall,
        "per_s": done / wall,
        "p50_ms": statistics.median(latencies),
        "p95_ms": percentile(latencies, 0.95),
    }


def measure_bytes(
    runner: Runner,
    raw: RawGraph,
    pool: ConnectionPool[Any],
    runs: int,
    progress: Progress,
    results: Results,
) -> None:
    """Writes per transition for ``runs`` raw runs, then ``runs`` planbound decisions.

    Fills ``results.bytes``, ``results.measured_threads`` and
    ``results.measured_decisions``.
    """
    task = progress.add_task("bytes written", total=2 * runs)
    for name in ("raw", "planbound"):
        threads: list[str] = []
        decisions: list[str] = []
        before = sizes(pool)
        for _ in range(runs):
            if name == "raw":
                threads.append(run_raw(raw))
            else:
                outcome = run_decision(runner)
                threads.append(outcome["thread_id"])
                decisions.append(outcome["decision_id"])
            progress.advance(task)
        after = sizes(pool)
        rows = logical_bytes(pool, threads, decisions)
        transitions = runs * TRANSITIONS
        result: dict[str, float] = {}
        for table, size in after.relations.items():
            result[f"disk:{table}"] = (size - before.relations[table]) / transitions
            result[f"rows:{table}"] = rows[table] / transitions
            result[f"count:{table}"] = rows[f"{table}:rows"] / transitions
        result["wal"] = (after.wal - before.wal) / transitions
        result["xids"] = (after.xid - before.xid) / transitions
        mine = wal_of_database(pool, before.lsn, after.lsn)
        if mine is not None:
            result["wal:db"] = mine["bytes"] / transitions
            result["wal:fpi"] = mine["fpi"] / transitions
            result["xacts:db"] = mine["xacts"] / transitions
        results.bytes[name] = result
        results.measured_threads[name] = threads
        if decisions:
            results.measured_decisions = decisions


def measure_breakdown(
    runner: Runner, raw: RawGraph, runs: int, progress: Progress, results: Results
) -> None:
    """Profile ``runs`` decisions and raw runs; fill the breakdown, statements and top list.

    Times are milliseconds per run under ``cProfile``, which slows Python code down: the
    shares are the figure to read, ``wall`` is the profiled wall time.
    """
    task = progress.add_task("time breakdown", total=2 * runs)
    for name, fn in (("planbound", lambda: run_decision(runner)), ("raw", lambda: run_raw(raw))):
        profiled = profile_runs(fn, runs, lambda: progress.advance(task))
        per_run = 1000 / profiled.runs
        result: dict[str, float] = {}
        sources: dict[str, float] = defaultdict(float)
        for kind, stats in ((LOOP, profiled.loop), (STARTED, profiled.started)):
            if stats is None:
                continue
            attribution = Attribution(stats)
            for category, seconds in attribution.self_time().items():
                result[f"{kind}|{category}"] = seconds * per_run
            for source, calls in attribution.statements().items():
                sources[source] += calls / profiled.runs
            if name == "planbound" and kind == LOOP:
                results.profile = [
                    (label, round(calls / profiled.runs), tt * per_run, ct * per_run)
                    for label, calls, tt, ct in attribution.top(PROFILE_TOP)
                ]
        result["wall"] = profiled.wall * per_run
        results.breakdown[name] = result
        results.statement_sources[name] = dict(sources)
        results.statements[name] = sum(sources.values())

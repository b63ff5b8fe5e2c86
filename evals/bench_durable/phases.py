"""The measured phases: cost per decision, what is written, throughput, verify, profile."""

from __future__ import annotations

import secrets
import statistics
import threading
import time
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
    run_raw_write,
)
from evals.bench_durable.meter import Meter
from evals.bench_durable.pgstats import logical_bytes, sizes, supersteps, wal_of_database
from evals.bench_durable.profiling import LOOP, STARTED, Attribution, profile_runs
from evals.bench_durable.workload import (
    READ_PLAN,
    Settings,
    WriteTarget,
    run_read,
    run_write,
    write_targets,
)
from graph.runner import Runner

PROFILE_TOP = 15
"""Functions listed in the cProfile top list."""

SERIES = ("read", "raw_read", "write", "raw_write")
"""The measured series: each workload on planbound and on the raw graph."""


@dataclass
class Results:
    """Everything measured, for printing and for checking a run.

    Attributes:
        latency: One sample per run by series (:data:`SERIES`): ``ms`` (wall), ``cpu``
            (process CPU ms), ``pg_cpu`` (server backends' CPU ms, when /proc is readable),
            ``statements`` (psycopg statement calls).
        floor: Milliseconds per 1 KB autocommit INSERT (one durable commit).
        written: Per series, per run: ``checkpoints``, ``supersteps``, ``disk:<table>``,
            ``rows:<table>`` (bytes), ``count:<table>`` (rows), ``wal`` and ``xids``
            (cluster-wide), and with ``pg_walinspect`` ``wal:db``, ``wal:fpi`` and
            ``commits`` (this database's transactions that wrote, i.e. durable commits).
        measured_threads: The threads whose writes ``written`` counts, by series.
        measured_decisions: The planbound decisions whose ledger rows were counted, by series.
        throughput: One row per (workload, system, layout, concurrency): ``workload``,
            ``system``, ``layout``, ``processes``, ``concurrency``, ``decisions``,
            ``wall_s``, ``per_s``, ``p50_ms``, ``p95_ms``.
        verify_ms: Verify of the ten-step plan on the bench's stores, ms per run.
        scaling: Throughput rows of planbound at the top concurrency by worker processes,
            each with ``once`` (the write workload: approvals consumed, review claims,
            succeeded writes and ledger rows left started, counted on the database).
        breakdown: Milliseconds per decision by workload (``read``, ``write``), then by
            system (``planbound``, ``raw``), keyed ``"<thread kind>|<category>"``, with
            ``wall`` (timed around each run).
        statement_sources: Statement calls per decision by issuing component, by workload
            and system.
        profile: The planbound loop thread's top self-time functions per decision, by
            workload.
        server: The server settings that decide the cost of a commit.
        load: The machine's load average at the start and end.
        pool_max: The checkpointer pool's maximum size.
        engine: The in-process policy engine the decisions were judged with.
    """

    latency: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    floor: list[float] = field(default_factory=list)
    written: dict[str, dict[str, float]] = field(default_factory=dict)
    measured_threads: dict[str, list[str]] = field(default_factory=dict)
    measured_decisions: dict[str, list[str]] = field(default_factory=dict)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    verify_ms: list[float] = field(default_factory=list)
    scaling: list[dict[str, Any]] = field(default_factory=list)
    breakdown: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    statement_sources: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    profile: dict[str, list[tuple[str, int, float, float]]] = field(default_factory=dict)
    server: dict[str, str] = field(default_factory=dict)
    load: str = ""
    pool_max: int = 0
    engine: str = ""

    def median(self, series: str, key: str = "ms") -> float:
        """The median of one figure of a latency series."""
        return statistics.median(s[key] for s in self.latency[series])

    def mean(self, series: str, key: str) -> float | None:
        """The mean of one figure of a latency series (``None`` when it was not measured)."""
        values = [s[key] for s in self.latency[series] if key in s]
        return statistics.fmean(values) if values else None


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Workloads:
    """Both workloads on planbound and on the raw graph, over one set of stores.

    Each series keeps a turn counter (the write workload alternates addresses) and uses
    the write target ``target`` (its own pending order).
    """

    def __init__(self, runner: Runner, raw: RawGraph, target: WriteTarget) -> None:
        self.runner, self.raw, self.target = runner, raw, target
        self.turns: dict[str, int] = defaultdict(int)

    def _turn(self, series: str) -> int:
        self.turns[series] += 1
        return self.turns[series]

    def run(self, series: str) -> tuple[str, str | None]:
        """Run one of :data:`SERIES`; return its thread id and the decision id (planbound).

        Each planbound decision starts with the policy's memo emptied: the bench repeats
        one plan on unchanged data, which a real workload does not, so no decision reuses
        another's policy answers (within a decision, they are reused as in production).
        """
        if not series.startswith("raw_"):
            self.runner.services.policy.forget()
        if series == "read":
            outcome = run_read(self.runner)
            return outcome["thread_id"], outcome["decision_id"]
        if series == "raw_read":
            return run_raw(self.raw), None
        if series == "write":
            outcome = run_write(self.runner, self.target, self._turn(series))
            return outcome["thread_id"], outcome["decision_id"]
        if series == "raw_write":
            return run_raw_write(self.raw, self.target, self._turn(series)), None
        raise ValueError(f"unknown series {series!r}")

    def job(self, series: str) -> Callable[[], Any]:
        """A callable that runs one decision of ``series``."""
        return lambda: self.run(series)


def measure_latency(
    work: Workloads, meter: Meter, pool: ConnectionPool[Any], settings: Settings, progress: Progress
) -> tuple[dict[str, list[dict[str, float]]], list[float]]:
    """Interleave the four series and floor commits; return the samples and the floor ms."""
    create_floor_table(pool)
    for _ in range(max(1, settings.warmup)):  # imports, Rego interpreter, pool connections
        for series in SERIES:
            work.run(series)
    floor_commit(pool, [secrets.token_hex(512) for _ in range(10)])
    meter.refresh()

    samples: dict[str, list[dict[str, float]]] = defaultdict(list)
    floor: list[float] = []
    task = progress.add_task("latency rounds", total=settings.rounds)
    for _ in range(settings.rounds):
        for series in SERIES:
            _, sample = meter.measure(work.job(series))
            samples[series].append(sample)
        floor.extend(floor_commit(pool, [secrets.token_hex(512)] * settings.floor_per_round))
        progress.advance(task)
    return dict(samples), floor


def measure_written(
    work: Workloads, pool: ConnectionPool[Any], runs: int, progress: Progress, results: Results
) -> None:
    """What each series writes per run: checkpoints, super-steps, rows, WAL, commits.

    The series run one after the other (``runs`` each) with nothing else of the bench
    running, so this database's WAL between two positions is theirs.
    """
    task = progress.add_task("bytes and commits", total=len(SERIES) * runs)
    for series in SERIES:
        threads: list[str] = []
        decisions: list[str] = []
        before = sizes(pool)
        for _ in range(runs):
            thread, decision = work.run(series)
            threads.append(thread)
            if decision is not None:
                decisions.append(decision)
            progress.advance(task)
        after = sizes(pool)
        rows = logical_bytes(pool, threads, decisions)
        out: dict[str, float] = {}
        for table, size in after.relations.items():
            out[f"disk:{table}"] = (size - before.relations[table]) / runs
            out[f"rows:{table}"] = rows[table] / runs
            out[f"count:{table}"] = rows[f"{table}:rows"] / runs
        out["checkpoints"] = rows["checkpoints:rows"] / runs
        out["supersteps"] = statistics.fmean(supersteps(pool, t) for t in threads)
        out["wal"] = (after.wal - before.wal) / runs
        out["xids"] = (after.xid - before.xid) / runs
        mine = wal_of_database(pool, before.lsn, after.lsn)
        if mine is not None:
            out["wal:db"] = mine["bytes"] / runs
            out["wal:fpi"] = mine["fpi"] / runs
            out["commits"] = mine["xacts"] / runs
        results.written[series] = out
        results.measured_threads[series] = threads
        results.measured_decisions[series] = decisions


def measure_verify(runner: Runner, runs: int) -> list[float]:
    """Verify the ten-step plan of :mod:`evals.bench_verify` ``runs`` times on the stores.

    The policy's memo is emptied before each run: every run evaluates the policy.
    """
    from evals.bench_verify import ten_step_plan

    services, stores = runner.services, runner.stores
    plan = ten_step_plan()
    for _ in range(5):
        services.verifier.verify(plan, stores.domain, stores.lock, "bench")
    samples = []
    for _ in range(runs):
        services.policy.forget()
        start = time.perf_counter()
        services.verifier.verify(plan, stores.domain, stores.lock, "bench")
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def job_for(
    series: str, runner: Runner, raw: RawGraph, index: int, warm: bool
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """A (warm-up, job) pair for concurrent caller ``index`` of ``series``.

    Callers share the runner and the raw graph (as the server shares one graph); caller
    ``index`` writes its own pending order (the write workload).
    """
    targets = write_targets()
    if index >= len(targets):
        raise SystemExit(f"the write workload has {len(targets)} targets, not {index + 1}")
    work = Workloads(runner, raw, targets[index])

    def prime() -> None:
        if warm and not series.startswith("raw_"):
            # Judging a plan once builds this thread's Rego interpreter (one per thread).
            runner.explain(READ_PLAN, "bench")

    return prime, work.job(series)


def run_callers(
    pairs: list[tuple[Callable[[], Any], Callable[[], Any]]],
    per_worker: int,
    start_gate: Callable[[], None],
    advance: Callable[[], None] = lambda: None,
) -> tuple[float, list[float]]:
    """Run ``per_worker`` jobs on one thread per pair after ``start_gate``; (wall s, ms each).

    Raises:
        BaseException: the first error a caller hit.
    """
    primed = threading.Barrier(len(pairs) + 1)
    go = threading.Barrier(len(pairs) + 1)
    latencies: list[float] = []
    errors: list[BaseException] = []

    def work(prime: Callable[[], Any], job: Callable[[], Any]) -> None:
        try:
            prime()
            primed.wait()
            go.wait()
            for _ in range(per_worker):
                start = time.perf_counter()
                job()
                latencies.append((time.perf_counter() - start) * 1000)
                advance()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            primed.abort()
            go.abort()

    threads = [threading.Thread(target=work, args=pair, daemon=True) for pair in pairs]
    for thread in threads:
        thread.start()
    try:
        primed.wait()
        start_gate()
        go.wait()
    except threading.BrokenBarrierError:
        pass
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    return wall, latencies


def throughput_row(
    series: str, layout: str, processes: int, concurrency: int, wall: float, lat: list[float]
) -> dict[str, Any]:
    """One row of the throughput table."""
    return {
        "workload": series.removeprefix("raw_"),
        "system": "raw" if series.startswith("raw_") else "planbound",
        "layout": layout,
        "processes": processes,
        "concurrency": concurrency,
        "decisions": len(lat),
        "wall_s": wall,
        "per_s": len(lat) / wall,
        "p50_ms": statistics.median(lat),
        "p95_ms": percentile(lat, 0.95),
    }


def measure_threads(
    primary: Stores, series: str, concurrency: int, per_worker: int, progress: Progress, warm: bool
) -> dict[str, Any]:
    """Throughput of ``concurrency`` callers in this process, all on the one shared ``Stores``.

    This is the product's layout in one process (the server's shared stores): one
    checkpointer pool and one domain connection for every caller.
    """
    runner, raw = Runner(primary), build_raw_graph(primary)
    pairs = [job_for(series, runner, raw, i, warm) for i in range(concurrency)]
    task = progress.add_task(f"{series} threads C={concurrency}", total=concurrency * per_worker)
    wall, lat = run_callers(pairs, per_worker, lambda: None, lambda: progress.advance(task))
    return throughput_row(series, "one process, shared stores", 1, concurrency, wall, lat)


BREAKDOWNS = (
    ("read", "planbound", "read"),
    ("read", "raw", "raw_read"),
    ("write", "planbound", "write"),
    ("write", "raw", "raw_write"),
)
"""What the time breakdown profiles: (workload, system, series)."""


def measure_breakdown(work: Workloads, runs: int, progress: Progress, results: Results) -> None:
    """Profile ``runs`` decisions and raw runs of both workloads; fill breakdowns and top lists.

    Times are milliseconds per run under ``cProfile``, which slows Python code down: the
    shares are the figure to read, ``wall`` is the profiled wall time.
    """
    task = progress.add_task("time breakdown", total=len(BREAKDOWNS) * runs)
    for workload, system, series in BREAKDOWNS:
        profiled = profile_runs(work.job(series), runs, lambda: progress.advance(task))
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
            if system == "planbound" and kind == LOOP:
                results.profile[workload] = [
                    (label, round(calls / profiled.runs), tt * per_run, ct * per_run)
                    for label, calls, tt, ct in attribution.top(PROFILE_TOP)
                ]
        result["wall"] = profiled.wall * per_run
        results.breakdown.setdefault(workload, {})[system] = result
        results.statement_sources.setdefault(workload, {})[system] = dict(sources)

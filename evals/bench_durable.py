"""Durable execution cost on PostgreSQL: planbound vs raw LangGraph vs one durable commit.

Run: ``python -m evals.bench_durable [--quick] [--uri postgresql://...]``. Without ``--uri``
it creates a throw-away database ``pb_bench_<random>`` on ``--admin-uri`` and drops it at the
end; with ``--uri`` it uses that (scratch!) database: the retail tables are re-seeded, bench
threads and ledger rows are written (the ``planbound_bench_floor`` table and, if the bench
created it, the ``pg_walinspect`` extension are dropped again).

Every measurement uses a read-only ten-step plan (find the user, nine lookups) so no approval
is needed, and compares it, in the same run, with:

* a raw LangGraph graph: one node that calls the same retail tools, one per super-step, on
  the same ``PostgresSaver`` and pool, ``durability="sync"``;
* the physical floor: one autocommit ``INSERT`` of a 1 KB row (one durable commit, with the
  server's ``synchronous_commit``) on a connection of the same pool.

It prints four tables: per-transition latency, throughput at several concurrencies, bytes
written per transition (relation sizes, row sizes, and this database's WAL via
``pg_walinspect`` when available), and where the time of one decision goes (perf_counter
wrappers plus a cProfile top list). The targets of issue 4 are printed next to the measured
values; nothing is asserted.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import cProfile
import dataclasses
import functools
import operator
import os
import pstats
import secrets
import statistics
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict
from urllib.parse import urlsplit, urlunsplit

import psycopg
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from psycopg import sql
from psycopg_pool import ConnectionPool
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from checkpoints.db import Domain, PostgresDomain
from checkpoints.factory import Stores, open_stores
from checkpoints.ledger import Ledger
from graph import engine, nodes
from graph.context import Context
from graph.planners.explicit import ExplicitPlanner
from graph.runner import Runner
from graph.state import InputState
from guards.policy import Policy
from tools.retail import RetailDB, build_catalog, load_shipped, seed

ADMIN_URI = os.environ.get("PLANBOUND_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
"""Server where the throw-away database is created (trust auth on the dev box)."""

USER_ID = "fatima_anderson_2157"
PLAN: list[dict[str, Any]] = [
    {"name": "find_user_id_by_email", "arguments": {"email": "fatima.anderson1447@example.com"}},
    {"name": "get_user_details", "arguments": {"user_id": USER_ID}},
    {"name": "get_order_details", "arguments": {"order_id": "#W2974929"}},
    {"name": "get_order_details", "arguments": {"order_id": "#W4111294"}},
    {"name": "get_order_details", "arguments": {"order_id": "#W4514908"}},
    {"name": "get_item_details", "arguments": {"item_id": "3877188862"}},
    {"name": "get_product_details", "arguments": {"product_id": "1968349452"}},
    {"name": "get_item_details", "arguments": {"item_id": "2757705742"}},
    {"name": "list_all_product_types", "arguments": {}},
    {"name": "calculate", "arguments": {"expression": "182.03 * 2"}},
]
"""The τ² action list every decision runs: ten read-only tool calls."""

TRANSITIONS = len(PLAN)
"""Transitions per decision: one per tool call (one super-step each, in both graphs)."""

CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
LEDGER_TABLE = "planbound.ledger"
FLOOR_TABLE = "planbound_bench_floor"

TARGET_VS_RAW = 1.25
TARGET_VS_FLOOR = 3.0
TARGET_DECISIONS_S = 40.0
TARGET_AT = 50


@dataclass(frozen=True)
class Settings:
    """How much of each phase to run.

    Attributes:
        rounds: Latency rounds (one planbound decision, one raw run, floor inserts each).
        floor_per_round: 1 KB INSERT commits timed per round.
        concurrency: Worker threads for the throughput phase.
        per_worker: Timed decisions per worker thread, by concurrency.
        shared_modes: Whether to also measure the one-shared-``Stores`` and raw layouts.
        bytes_runs: Decisions (and raw runs) whose writes are measured.
        profile_runs: Decisions averaged for the time breakdown.
        warmup: Untimed rounds before the latency rounds; with 0 the throughput workers
            are not warmed up either (a smoke run).
    """

    rounds: int
    floor_per_round: int
    concurrency: tuple[int, ...]
    per_worker: dict[int, int]
    shared_modes: bool
    bytes_runs: int
    profile_runs: int
    warmup: int = 2


FULL = Settings(
    rounds=30,
    floor_per_round=10,
    concurrency=(1, 10, 50),
    per_worker={1: 30, 10: 8, 50: 4},
    shared_modes=True,
    bytes_runs=20,
    profile_runs=5,
)
QUICK = Settings(
    rounds=3,
    floor_per_round=10,
    concurrency=(1, 10, 50),
    per_worker={1: 3, 10: 1, 50: 1},
    shared_modes=False,
    bytes_runs=3,
    profile_runs=1,
    warmup=0,
)


# The raw LangGraph baseline -----------------------------------------------------------------


class RawState(TypedDict, total=False):
    """State of the raw graph: the next action and every output so far."""

    i: int
    outputs: Annotated[list[Any], operator.add]


RawGraph = CompiledStateGraph[RawState, None, RawState, RawState]


def build_raw_graph(stores: Stores) -> RawGraph:
    """A minimal StateGraph: one node that runs the next action of :data:`PLAN` per super-step.

    The tools are the catalog's, called the way the engine calls them (``db`` injected), on
    the same domain connection and checkpointer as planbound, with no ledger, guards or
    transaction of their own.
    """
    catalog = build_catalog()
    entries = []
    for action in PLAN:
        entry = catalog.get(action["name"])
        if entry is None:
            raise SystemExit(f"unknown tool {action['name']!r} in the bench plan")
        entries.append(entry)

    def call(state: RawState) -> RawState:
        i = state.get("i", 0)
        with stores.lock:
            db = RetailDB(stores.domain)
            output = entries[i].tool.invoke({**PLAN[i]["arguments"], "db": db})
        return {"i": i + 1, "outputs": [output]}

    def route(state: RawState) -> str:
        return "call" if state.get("i", 0) < len(PLAN) else END

    builder = StateGraph(RawState)
    builder.add_node("call", call)
    builder.add_edge(START, "call")
    builder.add_conditional_edges("call", route, ["call", END])
    return builder.compile(checkpointer=stores.checkpointer)


def run_raw(graph: RawGraph, thread_id: str | None = None) -> str:
    """Run the raw graph once on a new thread; return the thread id."""
    thread_id = thread_id or uuid.uuid4().hex
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    final = graph.invoke({"i": 0}, config, durability="sync")
    if final.get("i") != len(PLAN):
        raise RuntimeError(f"the raw graph stopped at action {final.get('i')}")
    return thread_id


def _nothing() -> None:
    """Do nothing (a worker that is not warmed up)."""


def run_decision(runner: Runner) -> dict[str, Any]:
    """Run one planbound decision of :data:`PLAN`; it must complete."""
    outcome = runner.start(explicit_plan=PLAN, actor="bench")
    if outcome["status"] != "completed":
        raise RuntimeError(f"the bench decision ended {outcome['status']}: {outcome['error']}")
    return outcome


def invoke_only(runner: Runner) -> None:
    """Run one decision through ``graph.invoke`` alone (no Runner checks, no outcome read)."""
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    payload: InputState = {"explicit_plan": PLAN, "actor": "bench"}
    final = runner.graph.invoke(payload, config, context=runner.context, durability="sync")
    if final.get("status") != "completed":
        raise RuntimeError(f"the bench decision ended {final.get('status')}")


# Database helpers ---------------------------------------------------------------------------


def _with_database(uri: str, name: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path="/" + name))


@contextmanager
def bench_database(uri: str | None, admin_uri: str) -> Iterator[str]:
    """Yield ``uri``, or a throw-away database created on ``admin_uri`` and dropped after."""
    if uri is not None:
        yield uri
        return
    name = f"pb_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_uri, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(admin_uri, name)
    finally:
        with psycopg.connect(admin_uri, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def pool_of(stores: Stores) -> ConnectionPool[Any]:
    """Return the connection pool under the stores' ``PostgresSaver``."""
    saver = stores.checkpointer
    if not isinstance(saver, PostgresSaver) or not isinstance(saver.conn, ConnectionPool):
        raise SystemExit("the bench needs PostgreSQL stores (a PostgresSaver on a pool)")
    return saver.conn


def floor_commit(pool: ConnectionPool[Any], payloads: Sequence[str]) -> list[float]:
    """Time one autocommit 1 KB INSERT per payload, on one pooled connection (ms each)."""
    samples = []
    with pool.connection() as conn:
        for payload in payloads:
            start = time.perf_counter()
            conn.execute(f"INSERT INTO {FLOOR_TABLE} (payload) VALUES (%s)", (payload,))
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass(frozen=True)
class Sizes:
    """Relation sizes and cluster-wide WAL position / transaction counter at one moment."""

    relations: dict[str, int]
    lsn: str
    xid: int

    @property
    def wal(self) -> int:
        """The WAL position as a byte offset."""
        return _lsn(self.lsn)


def sizes(pool: ConnectionPool[Any]) -> Sizes:
    """Read the sizes of the checkpoint and ledger tables, the WAL insert LSN and next xid."""
    names = (*CHECKPOINT_TABLES, LEDGER_TABLE)
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT pg_current_wal_flush_lsn()::text AS wal,"
            " pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xid"
        ).fetchone()
        relations = {}
        for name in names:
            size = conn.execute(
                "SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0) AS n", (name,)
            ).fetchone()
            relations[name] = int(size["n"]) if size else 0
    if row is None:
        raise RuntimeError("could not read the WAL position")
    return Sizes(relations=relations, lsn=row["wal"], xid=int(row["xid"]))


WAL_OF_DATABASE = """
WITH r AS (
    SELECT xid::text AS xid, resource_manager, record_length, fpi_length, block_ref
    FROM pg_get_wal_records_info(%(start)s::pg_lsn, %(end)s::pg_lsn)),
mine AS (
    SELECT * FROM r
    WHERE block_ref LIKE '%%/' || (SELECT oid FROM pg_database
                                   WHERE datname = current_database())::text || '/%%'),
xacts AS (SELECT DISTINCT xid FROM mine WHERE xid <> '0')
SELECT
    (SELECT coalesce(sum(record_length), 0) FROM mine)
        + (SELECT coalesce(sum(record_length), 0) FROM r
           WHERE resource_manager = 'Transaction' AND xid IN (SELECT xid FROM xacts)) AS bytes,
    (SELECT coalesce(sum(fpi_length), 0) FROM mine) AS fpi,
    (SELECT count(*) FROM xacts) AS xacts
"""
"""WAL bytes, full-page-image bytes and write transactions of this database between two LSNs."""


def enable_walinspect(pool: ConnectionPool[Any]) -> bool:
    """Create ``pg_walinspect`` in the bench database; return whether this call created it.

    Needs the contrib package and a superuser; without them the WAL is only measured
    cluster-wide.
    """
    try:
        with pool.connection() as conn:
            if conn.execute(
                "SELECT 1 FROM pg_extension WHERE extname = 'pg_walinspect'"
            ).fetchone():
                return False
            conn.execute("CREATE EXTENSION pg_walinspect")
            return True
    except psycopg.Error:
        return False


def drop_walinspect(pool: ConnectionPool[Any]) -> None:
    """Drop the ``pg_walinspect`` extension the bench created."""
    with pool.connection() as conn:
        conn.execute("DROP EXTENSION IF EXISTS pg_walinspect")


def wal_of_database(pool: ConnectionPool[Any], start: str, end: str) -> dict[str, int] | None:
    """Read this database's share of the WAL with ``pg_walinspect``; ``None`` if unavailable."""
    try:
        with pool.connection() as conn:
            row = conn.execute(WAL_OF_DATABASE, {"start": start, "end": end}).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        return None
    return {"bytes": int(row["bytes"]), "fpi": int(row["fpi"]), "xacts": int(row["xacts"])}


def logical_bytes(
    pool: ConnectionPool[Any], thread_ids: list[str], decision_ids: list[str]
) -> dict[str, int]:
    """Sum ``pg_column_size`` of the rows these threads and decisions wrote, per table."""
    out: dict[str, int] = {}
    with pool.connection() as conn:
        for table in CHECKPOINT_TABLES:
            row = conn.execute(
                sql.SQL(
                    "SELECT coalesce(sum(pg_column_size(t.*)), 0) AS n, count(*) AS rows"
                    " FROM {} t WHERE thread_id = ANY(%s)"
                ).format(sql.Identifier(table)),
                (thread_ids,),
            ).fetchone()
            out[table] = int(row["n"]) if row else 0
            out[f"{table}:rows"] = int(row["rows"]) if row else 0
        row = conn.execute(
            "SELECT coalesce(sum(pg_column_size(t.*)), 0) AS n, count(*) AS rows"
            f" FROM {LEDGER_TABLE} t WHERE decision_id = ANY(%s)",
            (decision_ids,),
        ).fetchone()
        out[LEDGER_TABLE] = int(row["n"]) if row else 0
        out[f"{LEDGER_TABLE}:rows"] = int(row["rows"]) if row else 0
    return out


def worker_stores(primary: Stores, uri: str) -> Stores:
    """Stores for one worker thread: the primary's checkpointer pool, its own domain connection.

    ``Stores.lock`` serialises the single domain connection of a ``Stores``, so workers that
    shared one would queue on it; a deployment with N workers gives each its own domain
    connection and shares the checkpointer's pool (``open_stores`` per worker would also open
    a pool per worker: N x pool size connections).
    """
    return Stores(
        home=primary.home,
        checkpointer=primary.checkpointer,
        domain=PostgresDomain(uri),
        backend="postgres",
    )


# Time breakdown -----------------------------------------------------------------------------


Category = str | Callable[[str, bool], str]
"""A category name, or a function of (thread kind, nested?) that names one."""

LOOP, BG, TOOL_THREAD = "loop thread", "bg threads", "tool threads"


class Breakdown:
    """Self time (time minus instrumented callees on the same thread) of patched functions.

    Times are kept per thread kind: the thread that runs the decision (``loop thread``), the
    per-step timeout threads of the engine (``tool threads``, named ``tool*``) and LangGraph's
    background executor that writes checkpoints (``bg threads``). Only the loop thread's times
    add up to the wall time; waits for other threads are measured where they happen
    (``Future.result``).
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.statements = 0
        self.loop = threading.current_thread()
        self._local = threading.local()
        self._lock = threading.Lock()

    def _stack(self) -> list[float]:
        stack: list[float] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _kind(self) -> str:
        thread = threading.current_thread()
        if thread is self.loop:
            return LOOP
        return TOOL_THREAD if thread.name.startswith("tool") else BG

    def wrap(self, category: Category, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``fn`` timed under ``category`` (keys are ``"<thread kind>|<category>"``)."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self._stack()
            kind = self._kind()
            name = category if isinstance(category, str) else category(kind, bool(stack))
            stack.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                children = stack.pop()
                if stack:
                    stack[-1] += elapsed
                with self._lock:
                    self.totals[f"{kind}|{name}"] += elapsed - children

        return timed

    def count(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``fn`` counted as one SQL statement per call."""

        @functools.wraps(fn)
        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.statements += 1
            return fn(*args, **kwargs)

        return counted

    @contextmanager
    def patched(self, targets: Sequence[tuple[Any, str, Category]]) -> Iterator[Breakdown]:
        """Patch ``(owner, attribute, category)`` targets and count psycopg statements."""
        saved: list[tuple[Any, str, Any]] = []
        try:
            for owner, attr, category in targets:
                original = owner.__dict__[attr]
                saved.append((owner, attr, original))
                if isinstance(original, property) and original.fget is not None:
                    setattr(owner, attr, property(self.wrap(category, original.fget)))
                else:
                    setattr(owner, attr, self.wrap(category, original))
            for attr in ("execute", "executemany"):
                original = psycopg.Cursor.__dict__[attr]
                saved.append((psycopg.Cursor, attr, original))
                setattr(psycopg.Cursor, attr, self.count(original))
            yield self
        finally:
            for owner, attr, original in reversed(saved):
                setattr(owner, attr, original)


CHECKPOINT_WRITE = "checkpoint put (SQL + Python)"
CHECKPOINT_WRITES = "checkpoint put_writes (SQL + Python)"
CHECKPOINT_READ = "checkpoint read (get_tuple)"
SERIALIZE = "state (de)serialization (msgpack)"
TOOL = "per-step timeout: hand-off to the tool thread"
TOOL_BODY = "tool body + its SQL"
LEDGER = "ledger SQL (get/start/finish)"
TXN = "domain BEGIN/COMMIT/ROLLBACK"
FACTS = "facts (verify; its tool calls listed as tool body)"
POLICY = "policy (input + regopy)"
CONTRACTS = "contracts (check_plan)"
HASHING = "output hashing (canonical JSON)"
PLANNER = "planner (parse plan)"
RUNNER = "runner checks (seeded, outcome)"


def wait_category(kind: str, nested: bool) -> str:
    """Name a ``Future.result`` wait by where it happens."""
    if kind != LOOP:
        return "waits for the previous checkpoint save"
    if nested:
        return "waits for the tool thread"
    return "waits for the bg checkpoint save (sync durability)"


def instrument_targets() -> list[tuple[Any, str, Category]]:
    """What :class:`Breakdown` patches for a planbound decision (and the raw graph)."""
    return [
        (PostgresSaver, "put", CHECKPOINT_WRITE),
        (PostgresSaver, "put_writes", CHECKPOINT_WRITES),
        (PostgresSaver, "get_tuple", CHECKPOINT_READ),
        (JsonPlusSerializer, "dumps_typed", SERIALIZE),
        (JsonPlusSerializer, "loads_typed", SERIALIZE),
        (concurrent.futures.Future, "result", wait_category),
        (engine, "_call_with_timeout", TOOL),
        (BaseTool, "invoke", TOOL_BODY),
        (Ledger, "get", LEDGER),
        (Ledger, "start", LEDGER),
        (Ledger, "finish", LEDGER),
        (PostgresDomain, "begin", TXN),
        (Domain, "commit", TXN),
        (Domain, "rollback", TXN),
        (nodes, "resolve_facts", FACTS),
        (Policy, "decide", POLICY),
        (Policy, "input_for", POLICY),
        (nodes, "check_plan", CONTRACTS),
        (engine, "content_hash", HASHING),
        (engine, "canonical_json", HASHING),
        (ExplicitPlanner, "plan", PLANNER),
        (Runner, "_require_seeded", RUNNER),
        (Runner, "outcome", RUNNER),
    ]


def _label(key: tuple[str, int, str]) -> str:
    path, line, func = key
    if path == "~":
        return func
    parts = Path(path).parts
    for anchor in ("site-packages", "main"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + 1 :]
            break
    return f"{'/'.join(parts[-3:])}:{line}({func})"


def profile_top(fn: Callable[[], Any], limit: int) -> list[tuple[str, int, float, float]]:
    """Profile ``fn`` with cProfile (its thread only); return the top self-time functions."""
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = [
        (_label(key), int(value[1]), value[2] * 1000, value[3] * 1000)
        for key, value in stats.stats.items()  # type: ignore[attr-defined]
    ]
    rows.sort(key=lambda r: r[2], reverse=True)
    return rows[:limit]


# Phases -------------------------------------------------------------------------------------


@dataclass
class Results:
    """Everything measured, for printing and for the smoke test."""

    latency: dict[str, list[float]] = field(default_factory=dict)
    checkpoints_per_run: dict[str, float] = field(default_factory=dict)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    bytes: dict[str, dict[str, float]] = field(default_factory=dict)
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)
    statements: dict[str, float] = field(default_factory=dict)
    profile: list[tuple[str, int, float, float]] = field(default_factory=list)
    server: dict[str, str] = field(default_factory=dict)
    load: str = ""
    pool_max: int = 0


def measure_latency(
    runner: Runner, raw: RawGraph, pool: ConnectionPool[Any], settings: Settings, progress: Progress
) -> dict[str, list[float]]:
    """Interleave planbound decisions, raw runs and floor commits; return ms samples."""
    with pool.connection() as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE}"
            " (id bigserial PRIMARY KEY, payload text NOT NULL)"
        )
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
    thread = uuid.uuid4().hex
    run_raw(raw, thread)
    decision = run_decision(runner)
    counts = {}
    with pool.connection() as conn:
        for name, tid in (("raw", thread), ("planbound", decision["thread_id"])):
            row = conn.execute(
                "SELECT count(*) AS n FROM checkpoints WHERE thread_id = %s", (tid,)
            ).fetchone()
            counts[name] = float(row["n"]) if row else 0.0
    return counts


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
            runner = Runner(stores, Context(home=str(stores.home), stores=stores))
            # Judging the plan once builds this thread's Rego interpreter (one per thread).
            prime = functools.partial(runner.explain, PLAN, "bench") if warm else _nothing
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
        "p95_ms": _pct(latencies, 0.95),
    }


def measure_bytes(
    runner: Runner, raw: RawGraph, pool: ConnectionPool[Any], runs: int, progress: Progress
) -> dict[str, dict[str, float]]:
    """Writes per transition for ``runs`` raw runs, then ``runs`` planbound decisions."""
    out: dict[str, dict[str, float]] = {}
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
        out[name] = result
    return out


def measure_breakdown(
    runner: Runner, raw: RawGraph, runs: int, progress: Progress
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Self time per category (ms per decision) and SQL statements per decision."""
    out: dict[str, dict[str, float]] = {}
    statements: dict[str, float] = {}
    task = progress.add_task("time breakdown", total=2 * runs)
    for name, fn in (("planbound", lambda: run_decision(runner)), ("raw", lambda: run_raw(raw))):
        targets = instrument_targets()
        with Breakdown().patched(targets) as breakdown:
            wall = 0.0
            for _ in range(runs):
                start = time.perf_counter()
                fn()
                wall += time.perf_counter() - start
                progress.advance(task)
        result = {k: v * 1000 / runs for k, v in breakdown.totals.items()}
        result["wall"] = wall * 1000 / runs
        out[name] = result
        statements[name] = breakdown.statements / runs
    return out, statements


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def server_settings(pool: ConnectionPool[Any]) -> dict[str, str]:
    """The server settings that decide the cost of a commit."""
    out = {}
    with pool.connection() as conn:
        for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method"):
            row = conn.execute(f"SHOW {name}").fetchone()
            out[name] = str(next(iter(row.values()))) if row else "?"
    return out


# Output -------------------------------------------------------------------------------------


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
        f"{_pct(lat['floor'], 0.95):.2f} ms; planbound decision p95 {_pct(lat['start'], 0.95):.1f}"
        f" ms; raw p95 {_pct(lat['raw'], 0.95):.1f} ms; load average {results.load}"
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


def print_breakdown(console: Console, results: Results, runs: int) -> None:
    """Table 4: where the time of one decision goes, and the cProfile top list."""
    pb, raw = results.breakdown["planbound"], results.breakdown["raw"]
    table = _table(
        f"4. where the time goes: self time per decision, mean of {runs} (perf_counter "
        "wrappers; only the loop thread adds up to the wall time)",
        ("part", "planbound ms", "share", "raw ms", "share"),
    )

    def cell(data: dict[str, float], key: str) -> tuple[str, str]:
        if key not in data:
            return "-", ""
        return f"{data[key]:.2f}", f"{data[key] / data['wall']:.0%}"

    for kind in (LOOP, BG, TOOL_THREAD):
        keys = sorted(
            {k for k in (*pb, *raw) if k.startswith(kind + "|")},
            key=lambda k: max(pb.get(k, 0.0), raw.get(k, 0.0)),
            reverse=True,
        )
        if not keys:
            continue
        table.add_row(f"[bold]{kind}[/]", "", "", "", "", end_section=False)
        for key in keys:
            table.add_row("  " + key.split("|", 1)[1], *cell(pb, key), *cell(raw, key))
        if kind == LOOP:
            for data in (pb, raw):
                data["rest"] = data["wall"] - sum(v for k, v in data.items() if k.startswith(LOOP))
            table.add_row(
                "  rest: LangGraph loop, node code, pydantic", *cell(pb, "rest"), *cell(raw, "rest")
            )
            table.add_row(
                "  = wall (one decision)",
                f"{pb['wall']:.2f}",
                "",
                f"{raw['wall']:.2f}",
                "",
                end_section=True,
            )
    table.add_row(
        "SQL statements per decision",
        f"{results.statements['planbound']:.0f}",
        "",
        f"{results.statements['raw']:.0f}",
        "",
    )
    console.print(table)

    top = _table(
        "   cProfile of one planbound decision (main thread; waits on the bg checkpoint "
        "thread show as lock acquire)",
        ("function", "calls", "self ms", "cumulative ms"),
    )
    for label, calls, self_ms, cum_ms in results.profile:
        top.add_row(label, str(calls), f"{self_ms:.2f}", f"{cum_ms:.2f}")
    console.print(top)


# Main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> Results:
    """Run the benchmark, print its tables and return the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
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
        console.log(f"database {_redact(uri)}; opening stores and seeding the retail domain")
        stores = open_stores(Path(home), uri=uri)
        stack.callback(stores.close)
        with stores.lock:
            seed(stores.domain, load_shipped())
        pool = pool_of(stores)
        results.pool_max = pool.max_size
        if enable_walinspect(pool) and args.uri is not None:
            stack.callback(drop_walinspect, pool)  # leave a given database as it was
        runner = Runner(stores, Context(home=home, stores=stores))
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
            results.bytes = measure_bytes(runner, raw, pool, settings.bytes_runs, progress)

            console.log("phase 4/4: where the time goes")
            results.breakdown, results.statements = measure_breakdown(
                runner, raw, settings.profile_runs, progress
            )
            results.profile = profile_top(lambda: run_decision(runner), 15)
        results.load = f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end (1 min)"

        with pool.connection() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")

    print_latency(console, results)
    print_throughput(console, results)
    print_bytes(console, results, settings.bytes_runs)
    print_breakdown(console, results, settings.profile_runs)
    return results


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


if __name__ == "__main__":
    main()

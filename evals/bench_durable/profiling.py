"""Where the time of a decision goes, from ``cProfile`` (no function is patched).

:func:`profile_runs` profiles a callable on the calling thread (the *loop thread*) and on
every thread started while it runs (LangGraph's per-run background executor, which writes
the checkpoints), each with its own ``cProfile.Profile`` installed through
``threading.setprofile``. Threads that already exist are not profiled: the engine's
long-lived tool threads show on the loop thread as the engine's wait for the tool call.

:class:`Attribution` turns the merged ``pstats`` into self time per component. A function
belongs to the component of the file it is defined in (``langgraph/checkpoint/postgres``,
``regopy``, planbound's packages, ...); the time spent in psycopg (the server's answers
included) and the domain connection is charged as ``SQL issued by`` the component that
issued the statement. Standard-library and built-in
functions have no component of their own: their self time goes to their nearest caller
that has one, split by the callers' share of the time (as ``gprof`` does). Blocking waits
(lock acquires, sleeps, queue gets) are kept apart and named by who waits: the engine
waiting for its tool thread, LangGraph waiting for the checkpoint save, and so on; a thread
pool's wait for work, which no component asked for, is left out. SQL statements are the
calls of psycopg's ``Cursor.execute``/``executemany``, charged to the nearest caller above
psycopg and the domain connection (the tool, the ledger, the checkpoint saver, ...).
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import sysconfig
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import checkpoints
import evals
import graph
import guards
import tools

Func = tuple[str, int, str]
"""A function as ``pstats`` keys it: (file, first line, name)."""
Calls = tuple[int, int, float, float]
"""(primitive calls, calls, self seconds, cumulative seconds), as ``pstats`` keeps them."""
RawStats = dict[Func, tuple[int, int, float, float, dict[Func, Calls]]]

LOOP = "loop thread"
"""The thread that runs the decision; its times add up to the wall time."""
STARTED = "threads the run started"
"""LangGraph's background executor (checkpoint saves); they overlap the loop thread."""

SAVER = "checkpoint saver (PostgresSaver)"
SERDE = "state (de)serialization (msgpack)"
SQL = "psycopg"
POLICY_ENGINE = "policy engine (regopy or regorus)"
LANGGRAPH = "LangGraph loop, langchain-core, langsmith"
PYDANTIC = "pydantic"
LEDGER = "ledger"
DOMAIN = "domain connection"
TOOLS = "tool bodies"
GUARDS = "guards (contracts, policy input, facts)"
ENGINE = "engine (steps, output hashing)"
GRAPH = "graph nodes, runner, planner"
BENCH = "bench harness"
OTHER = "other libraries"
UNOWNED = "stdlib outside any component (thread start-up, profiler)"

COMPONENTS: tuple[tuple[str, str], ...] = (
    ("langgraph/checkpoint/postgres/", SAVER),
    ("langgraph/checkpoint/serde/", SERDE),
    ("psycopg", SQL),
    ("regopy/", POLICY_ENGINE),
    ("regorus/", POLICY_ENGINE),
    ("langgraph/", LANGGRAPH),
    ("langchain_core/", LANGGRAPH),
    ("langsmith/", LANGGRAPH),
    ("pydantic", PYDANTIC),
    ("checkpoints/ledger.py", LEDGER),
    ("checkpoints/", DOMAIN),
    ("tools/", TOOLS),
    ("guards/", GUARDS),
    ("graph/engine.py", ENGINE),
    ("graph/", GRAPH),
    ("evals/", BENCH),
)
"""Path prefixes (relative to their ``sys.path`` entry) and the component they belong to."""

WAITS_BY = {
    ENGINE: "waits for the tool thread (tool body, hand-off)",
    LANGGRAPH: "waits for the checkpoint save (sync durability)",
    SAVER: "waits for the previous checkpoint save",
    SQL: "waits in psycopg (pool connection, connection lock)",
}
"""How a blocking wait is named after the component that waits."""

BLOCKING = (
    "<method 'acquire' of '_thread.lock' objects>",
    "<method 'acquire' of '_thread.RLock' objects>",
    "<method 'get' of '_queue.SimpleQueue' objects>",
    "<built-in method time.sleep>",
)
"""Built-ins whose self time is time spent blocked, not computing."""

REGORUS_METHODS = "of 'builtins.Engine' objects>"
"""How cProfile names the methods of regorus's ``Engine`` (a compiled extension type)."""

STATEMENT_FILE = "psycopg/cursor.py"
STATEMENT_CALLS = ("execute", "executemany")


@dataclass
class Profiled:
    """The profiles of ``runs`` calls of one callable.

    Attributes:
        loop: The calling thread's profile, merged over the runs.
        started: The threads started during the runs, merged (``None`` if there were none).
        runs: How many calls were profiled.
        wall: Their summed wall time, in seconds.
    """

    loop: pstats.Stats
    started: pstats.Stats | None
    runs: int
    wall: float


def profile_runs(fn: Callable[[], object], runs: int, after_each: Callable[[], None]) -> Profiled:
    """Call ``fn`` ``runs`` times under ``cProfile`` (this thread and the threads it starts).

    Args:
        fn: The call to profile.
        runs: How many times to call it.
        after_each: Called (unprofiled) after each run, e.g. to advance a progress bar.
    """
    loop = cProfile.Profile()
    started: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_profiling(frame: FrameType, event: str, arg: Any) -> None:
        profiler = cProfile.Profile()
        with lock:
            started.append(profiler)
        profiler.enable()  # replaces this hook for the new thread

    wall = 0.0
    threading.setprofile(start_profiling)
    try:
        for _ in range(runs):
            start = time.perf_counter()
            loop.enable()
            try:
                fn()
            finally:
                loop.disable()
            wall += time.perf_counter() - start
            after_each()
    finally:
        threading.setprofile(None)
    with lock:
        profilers = list(started)
    return Profiled(
        loop=pstats.Stats(loop),
        started=pstats.Stats(*profilers) if profilers else None,
        runs=runs,
        wall=wall,
    )


def _roots() -> list[str]:
    """Directories that function files are made relative to, longest first."""
    roots = {os.path.abspath(p) for p in sys.path if p}
    for package in (graph, guards, tools, checkpoints, evals):
        if package.__file__:
            roots.add(str(Path(package.__file__).resolve().parent.parent))
    return sorted(roots, key=len, reverse=True)


class Attribution:
    """Owners of the functions of one merged profile (see the module docstring)."""

    def __init__(self, stats: pstats.Stats) -> None:
        self.raw: RawStats = stats.stats  # type: ignore[attr-defined]
        self._roots = _roots()
        self._stdlib = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep
        self._site = os.sep + "site-packages" + os.sep
        self._owners: dict[str, str | None] = {}

    def relative(self, file: str) -> str:
        """The file as a path under its ``sys.path`` entry (``~`` for built-ins)."""
        if file == "~":
            return file
        path = os.path.abspath(file)
        for root in self._roots:
            if path.startswith(root + os.sep):
                return path[len(root) + 1 :].replace(os.sep, "/")
        return path

    def owner(self, func: Func) -> str | None:
        """The component ``func`` belongs to; ``None`` for the stdlib and built-ins."""
        file = func[0]
        if file == "~" and func[2].endswith(REGORUS_METHODS):
            return POLICY_ENGINE  # regorus is a compiled extension: its methods are built-ins
        if file not in self._owners:
            path = os.path.abspath(file)
            stdlib = path.startswith(self._stdlib) and self._site not in path
            if file == "~" or file.startswith("<") or stdlib:
                self._owners[file] = None
            else:
                relative = self.relative(file)
                found = (c for prefix, c in COMPONENTS if relative.startswith(prefix))
                self._owners[file] = next(found, OTHER)
        return self._owners[file]

    def transparent(self, func: Func) -> bool:
        """Whether ``func`` has no component (stdlib, built-ins): its cost goes to its callers."""
        return self.owner(func) is None

    def below_issuer(self, func: Func) -> bool:
        """Whether ``func`` runs SQL for a caller (stdlib, psycopg, the domain connection)."""
        return self.owner(func) in (None, SQL, DOMAIN)

    def callers_share(
        self, func: Func, see_through: Callable[[Func], bool], first: int, further: int
    ) -> dict[Func | None, float]:
        """Split ``func`` among its nearest callers that ``see_through`` does not skip.

        Args:
            func: The function whose cost is split.
            see_through: Whether a caller passes its share on to its own callers.
            first: Which :data:`Calls` field weighs the direct callers (1: calls,
                2: self time, 3: cumulative time).
            further: Which field weighs the callers of a caller seen through.

        Returns:
            Fractions summing to 1 by caller (``None``: no caller left to charge).
        """
        out: dict[Func | None, float] = defaultdict(float)

        def walk(f: Func, fraction: float, weight: int, path: frozenset[Func]) -> None:
            callers = {c: v for c, v in self.raw[f][4].items() if c not in path and c in self.raw}
            total = sum(v[weight] for v in callers.values())
            if not callers or total <= 0 or len(path) > 60:
                out[None] += fraction
                return
            for caller, value in callers.items():
                share = fraction * value[weight] / total
                if share <= 0:
                    continue
                if see_through(caller):
                    walk(caller, share, further, path | {caller})
                else:
                    out[caller] += share

        walk(func, 1.0, first, frozenset({func}))
        return dict(out)

    def _issuer(self, func: Func | None) -> str:
        owner = self.owner(func) if func is not None else None
        return owner or UNOWNED

    def self_time(self) -> dict[str, float]:
        """Self seconds per category (see the module docstring).

        Categories are the components; ``SQL issued by <component>`` for psycopg, the
        server and the domain connection, charged to the component that issued the
        statement; and blocking waits, named by the component that waits.
        """
        out: dict[str, float] = defaultdict(float)
        for func, (_cc, _nc, tt, _ct, _callers) in self.raw.items():
            if tt <= 0:
                continue
            waits = func[0] == "~" and func[2] in BLOCKING
            owned: dict[Func | None, float] = (
                self.callers_share(func, self.transparent, 2, 3)
                if waits or self.transparent(func)
                else {func: 1.0}
            )
            for by, share in owned.items():
                owner = self.owner(by) if by is not None else None
                if waits:
                    if owner is not None:  # else a thread pool waiting for work
                        out[WAITS_BY.get(owner, f"waits in {owner}")] += tt * share
                elif by is not None and owner in (SQL, DOMAIN):
                    for issuer, part in self.callers_share(by, self.below_issuer, 3, 3).items():
                        out[f"SQL issued by {self._issuer(issuer)}"] += tt * share * part
                else:
                    out[owner or UNOWNED] += tt * share
        return dict(out)

    def statements(self) -> dict[str, float]:
        """Count psycopg ``execute``/``executemany`` calls by the component that issued them."""
        out: dict[str, float] = defaultdict(float)
        for func, (_cc, nc, _tt, _ct, _callers) in self.raw.items():
            if func[2] not in STATEMENT_CALLS or self.relative(func[0]) != STATEMENT_FILE:
                continue
            for issuer, share in self.callers_share(func, self.below_issuer, 1, 1).items():
                out[self._issuer(issuer)] += nc * share
        return dict(out)

    def label(self, func: Func) -> str:
        """``path:line(name)`` of a function, or the built-in's name."""
        file, line, name = func
        return name if file == "~" else f"{self.relative(file)}:{line}({name})"

    def top(self, limit: int) -> list[tuple[str, int, float, float]]:
        """The ``limit`` functions with the most self time: (label, calls, self s, cum s)."""
        rows = [(self.label(func), nc, tt, ct) for func, (_cc, nc, tt, ct, _) in self.raw.items()]
        rows.sort(key=lambda r: r[2], reverse=True)
        return rows[:limit]

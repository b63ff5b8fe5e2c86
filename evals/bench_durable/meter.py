"""What one run costs: wall time, process CPU, PostgreSQL backend CPU and SQL statements.

* Process CPU is ``time.process_time()`` (every thread of this process).
* Backend CPU is read from ``/proc/<pid>/stat`` of this database's server processes (the
  server runs on this machine in the bench's setting): user + system ticks of every backend
  connected to the bench database, before and after. Background processes (WAL writer,
  checkpointer) are not counted. The clock tick is 10 ms, so the figure is only meaningful
  summed over many runs (the bench reports the mean).
* Statements are psycopg ``Cursor.execute`` / ``executemany`` calls, counted on every thread
  while :class:`StatementCounter` is installed (the checkpointer's pool, the domain
  connection, the tools' SQL).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

_TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


class StatementCounter:
    """Counts psycopg statement calls on every thread while installed."""

    def __init__(self) -> None:
        self.total = 0
        self._lock = threading.Lock()

    def _bump(self) -> None:
        with self._lock:
            self.total += 1

    @contextmanager
    def installed(self) -> Iterator[StatementCounter]:
        """Count while the block runs (wraps the two ``psycopg.Cursor`` methods)."""
        execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany
        bump = self._bump

        def counted_execute(cur: Any, *args: Any, **kwargs: Any) -> Any:
            bump()
            return execute(cur, *args, **kwargs)

        def counted_executemany(cur: Any, *args: Any, **kwargs: Any) -> Any:
            bump()
            return executemany(cur, *args, **kwargs)

        psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign,assignment]
        psycopg.Cursor.executemany = counted_executemany  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            psycopg.Cursor.execute = execute  # type: ignore[method-assign]
            psycopg.Cursor.executemany = executemany  # type: ignore[method-assign]


def backend_pids(pool: ConnectionPool[Any]) -> list[int]:
    """The server processes connected to the pool's database, except the asking one."""
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(r["pid"]) for r in rows]


def backend_cpu_ms(pids: list[int]) -> float | None:
    """User + system CPU milliseconds of ``pids`` so far; ``None`` when /proc is unreadable."""
    total = 0
    readable = False
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a backend that ended (its last ticks are lost)
        readable = True
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total * _TICK_MS if readable else None


@dataclass
class Meter:
    """Measures runs on one database: see the module docstring."""

    pool: ConnectionPool[Any]
    counter: StatementCounter

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Re-read which backends serve the database (after the pool grew)."""
        self.pids = backend_pids(self.pool)

    def measure(self, fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
        """Run ``fn`` once; return its value and ``ms``, ``cpu``, ``pg_cpu``, ``statements``."""
        pg_before = backend_cpu_ms(self.pids)
        statements = self.counter.total
        cpu, start = time.process_time(), time.perf_counter()
        value = fn()
        wall = (time.perf_counter() - start) * 1000
        cpu_ms = (time.process_time() - cpu) * 1000
        done = self.counter.total - statements
        pg_after = backend_cpu_ms(self.pids)
        sample = {"ms": wall, "cpu": cpu_ms, "statements": float(done)}
        if pg_before is not None and pg_after is not None:
            sample["pg_cpu"] = pg_after - pg_before
        return value, sample

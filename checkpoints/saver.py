"""planbound's checkpointers: LangGraph's PostgreSQL and SQLite savers, with retention.

LangGraph's savers keep every checkpoint; retention (``planbound db prune``) must remove the
old ones without reaching into their tables from outside. These subclasses give both
backends the saver interface's retention methods (``prune``, ``delete_for_runs``,
``delete_thread``), with the two counts retention reports (:meth:`RetentionMixin.thread_ids`,
:meth:`RetentionMixin.prunable`), and the async methods of the interface, which run the
sync ones on a worker thread so a sync saver also serves ``ainvoke`` and the conformance
suite (``langgraph-checkpoint-conformance``, run by ``tests/test_saver_conformance.py``).

Checkpoints are written exactly as LangGraph's savers write them; only deletion is added.
A step's ledger rows are not folded into its checkpoint's transaction: LangGraph's loop
commits a task's writes (``put_writes``) and the super-step's checkpoint (``put``) from its
background threads after the node returned, while the ledger commits inside the node, on
the domain connection, before the task's writes (routing included) exist. Joining them
would keep the node's transaction open across threads until the saver commits it.
The side-effect ledger, approvals and the audit journal live in another schema (PostgreSQL)
or file (SQLite) and are never touched here.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.base import PRUNE_DELTA_THREADS_SQL
from langgraph.checkpoint.serde.types import TASKS, _DeltaSnapshot
from langgraph.checkpoint.sqlite import SqliteSaver

STRATEGIES = ("keep_latest", "delete")
"""The prune strategies of ``BaseCheckpointSaver.prune``."""

_THREADS_SQL = "SELECT DISTINCT thread_id FROM checkpoints ORDER BY thread_id"
_PRUNABLE_SQL = {
    "keep_latest": (
        "SELECT count(*) - count(DISTINCT checkpoint_ns) AS n FROM checkpoints"
        " WHERE thread_id = {p}"
    ),
    "delete": "SELECT count(*) AS n FROM checkpoints WHERE thread_id = {p}",
}
_DELTA_KEYS = ("counters_since_delta_snapshot", "delta_writes_versioned")
"""Checkpoint metadata keys a ``DeltaChannel`` leaves (see LangGraph's ``prune``)."""


class DeltaThreads(NotImplementedError):
    """Threads that use a ``DeltaChannel``: deleting some of their rows would corrupt it."""

    def __init__(self, what: str, thread_ids: Sequence[str]) -> None:
        super().__init__(
            f"{what} can't remove rows of threads that use a DeltaChannel: "
            + ", ".join(sorted(thread_ids))
        )
        self.thread_ids = sorted(thread_ids)


def _check_prune_args(thread_ids: Sequence[str], strategy: str) -> list[str]:
    """The thread ids as strings, after refusing a bare string or an unknown strategy."""
    if isinstance(thread_ids, str):
        raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown prune strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    return [str(t) for t in thread_ids]


def _check_run_ids(run_ids: Sequence[str]) -> list[str]:
    if isinstance(run_ids, str):
        raise TypeError("run_ids must be a sequence of run IDs, not a str")
    return [str(r) for r in run_ids]


class RetentionMixin(BaseCheckpointSaver[str]):
    """What both of planbound's savers add: retention counts and the async interface.

    The async methods run the sync ones on a worker thread (the sync saver serialises its
    connection use behind its own lock, so this is safe from any number of tasks).
    """

    def _scalar_rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """The first column of each row of a read query (``{p}`` is the placeholder)."""
        raise NotImplementedError

    def thread_ids(self) -> list[str]:
        """Every thread with at least one checkpoint, in id order."""
        return [str(t) for t in self._scalar_rows(_THREADS_SQL, ())]

    def prunable(self, thread_id: str, strategy: str = "keep_latest") -> int:
        """How many checkpoints ``prune([thread_id], strategy=strategy)`` would delete now."""
        _check_prune_args([thread_id], strategy)
        rows = self._scalar_rows(_PRUNABLE_SQL[strategy], (thread_id,))
        return int(rows[0]) if rows else 0

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """:meth:`get_tuple` on a worker thread."""
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """:meth:`list` on a worker thread (read whole, then yielded)."""
        found = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in found:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """:meth:`put` on a worker thread."""
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """:meth:`put_writes` on a worker thread."""
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """:meth:`delete_thread` on a worker thread."""
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """:meth:`delete_for_runs` on a worker thread."""
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """:meth:`prune` on a worker thread."""
        await asyncio.to_thread(lambda: self.prune(thread_ids, strategy=strategy))


# PostgreSQL ---------------------------------------------------------------------------------

_PG_DELETE_RUNS = """
DELETE FROM checkpoints WHERE metadata ->> 'run_id' = ANY(%s)
RETURNING thread_id, checkpoint_ns, checkpoint_id, checkpoint -> 'channel_versions' AS versions
"""
_PG_RUN_THREADS = "SELECT DISTINCT thread_id FROM checkpoints WHERE metadata ->> 'run_id' = ANY(%s)"
_PG_DELETE_WRITES = """
DELETE FROM checkpoint_writes WHERE (thread_id, checkpoint_ns, checkpoint_id) IN
    (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))
"""
_PG_ORPHAN_PARENTS = """
UPDATE checkpoints SET parent_checkpoint_id = NULL
WHERE (thread_id, checkpoint_ns, parent_checkpoint_id) IN
    (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))
"""
_PG_REFERENCED = """
SELECT DISTINCT v.key AS channel, v.value AS version
FROM checkpoints c CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
WHERE c.thread_id = %s AND c.checkpoint_ns = %s
"""
_PG_DELETE_BLOBS = """
DELETE FROM checkpoint_blobs
WHERE thread_id = %s AND checkpoint_ns = %s AND channel = %s AND version = ANY(%s)
"""


class PlanboundPostgresSaver(RetentionMixin, PostgresSaver):
    """LangGraph's ``PostgresSaver`` with ``delete_for_runs`` and the retention counts.

    ``prune`` and ``delete_thread`` are LangGraph's own (``keep_latest`` keeps each
    namespace's latest checkpoint with its pending writes and blobs, in one transaction
    per thread; ``delete`` removes the threads in one transaction).
    """

    def _scalar_rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._cursor() as cur:
            cur.execute(sql.format(p="%s"), tuple(params))
            return [next(iter(row.values())) for row in cur.fetchall()]

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints the given runs saved, their writes and the blobs they alone used.

        One transaction. A later checkpoint whose parent is deleted is left with no parent.

        Raises:
            TypeError: ``run_ids`` is a single string.
            DeltaThreads: a run's thread uses a ``DeltaChannel`` (nothing is deleted).
        """
        runs = _check_run_ids(run_ids)
        if not runs:
            return
        with self._cursor() as cur, cur.connection.transaction():
            threads = [r["thread_id"] for r in cur.execute(_PG_RUN_THREADS, (runs,)).fetchall()]
            if not threads:
                return
            delta = cur.execute(PRUNE_DELTA_THREADS_SQL, (threads, threads)).fetchall()
            if delta:
                raise DeltaThreads("delete_for_runs", [r["thread_id"] for r in delta])
            gone = cur.execute(_PG_DELETE_RUNS, (runs,)).fetchall()
            keys = (
                [r["thread_id"] for r in gone],
                [r["checkpoint_ns"] for r in gone],
                [r["checkpoint_id"] for r in gone],
            )
            cur.execute(_PG_DELETE_WRITES, keys)
            cur.execute(_PG_ORPHAN_PARENTS, keys)
            freed: dict[tuple[str, str], set[tuple[str, str]]] = {}
            for r in gone:
                versions = r["versions"] or {}
                place = freed.setdefault((r["thread_id"], r["checkpoint_ns"]), set())
                place.update((str(c), str(v)) for c, v in versions.items())
            for (thread_id, ns), used in freed.items():
                kept = {
                    (row["channel"], row["version"])
                    for row in cur.execute(_PG_REFERENCED, (thread_id, ns)).fetchall()
                }
                garbage: dict[str, list[str]] = {}
                for channel, version in sorted(used - kept):
                    garbage.setdefault(channel, []).append(version)
                for channel, versions in garbage.items():
                    cur.execute(_PG_DELETE_BLOBS, (thread_id, ns, channel, versions))


# SQLite -------------------------------------------------------------------------------------


class PlanboundSqliteSaver(RetentionMixin, SqliteSaver):
    """LangGraph's ``SqliteSaver`` with ``prune``, ``delete_for_runs`` and retention counts.

    Each deletion is one ``BEGIN IMMEDIATE`` transaction (``delete_thread`` too, where
    LangGraph's runs two statements that each commit on an autocommit connection), so a
    reader never sees a thread's checkpoints gone and its writes still there.
    """

    def _scalar_rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self.cursor(transaction=False) as cur:
            return [row[0] for row in cur.execute(sql.format(p="?"), tuple(params)).fetchall()]

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the saver's connection, under its lock."""
        with self.lock:
            self.setup()
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of a thread, in one transaction."""
        with self._write() as conn:
            conn.execute("DELETE FROM checkpoints WHERE thread_id = ?", (str(thread_id),))
            conn.execute("DELETE FROM writes WHERE thread_id = ?", (str(thread_id),))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune the given threads.

        ``delete`` removes every checkpoint and write of the threads. ``keep_latest`` keeps,
        in each namespace, the latest checkpoint (the one ``get_tuple`` loads; with its
        parent when it predates checkpoint format 4 and the parent holds pending sends) and
        its pending writes; a kept checkpoint whose parent is deleted is left with no
        parent. One transaction for the whole call.

        Raises:
            TypeError: ``thread_ids`` is a single string.
            ValueError: ``strategy`` is unknown.
            DeltaThreads: ``keep_latest`` on a thread that uses a ``DeltaChannel`` (nothing
                is pruned).
        """
        threads = _check_prune_args(thread_ids, strategy)
        if not threads:
            return
        with self._write() as conn:
            if strategy == "delete":
                for thread_id in threads:
                    conn.execute("DELETE FROM checkpoints WHERE thread_id = ?", (thread_id,))
                    conn.execute("DELETE FROM writes WHERE thread_id = ?", (thread_id,))
                return
            self._refuse_delta(conn, threads, "keep_latest")
            for thread_id in threads:
                self._keep_latest(conn, thread_id)

    def _refuse_delta(self, conn: sqlite3.Connection, threads: list[str], what: str) -> None:
        delta: set[str] = set()
        for thread_id in threads:
            rows = conn.execute(
                "SELECT metadata FROM checkpoints WHERE thread_id = ?", (thread_id,)
            ).fetchall()
            if any(_has_delta_keys(r[0]) for r in rows):
                delta.add(thread_id)
            elif any(self._has_delta_snapshot(h) for h in self._heads(conn, thread_id)):
                delta.add(thread_id)
        if delta:
            raise DeltaThreads(what, sorted(delta))

    def _heads(self, conn: sqlite3.Connection, thread_id: str) -> list[tuple[Any, ...]]:
        """Each namespace's latest checkpoint: ``(ns, id, parent_id, type, checkpoint)``."""
        return list(
            conn.execute(
                "SELECT c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.type,"
                " c.checkpoint FROM checkpoints c WHERE c.thread_id = ? AND c.checkpoint_id ="
                " (SELECT max(checkpoint_id) FROM checkpoints"
                "  WHERE thread_id = c.thread_id AND checkpoint_ns = c.checkpoint_ns)",
                (thread_id,),
            ).fetchall()
        )

    def _has_delta_snapshot(self, head: tuple[Any, ...]) -> bool:
        checkpoint = self.serde.loads_typed((head[3], head[4]))
        values = checkpoint.get("channel_values") or {}
        return any(isinstance(v, _DeltaSnapshot) for v in values.values())

    def _keep_latest(self, conn: sqlite3.Connection, thread_id: str) -> None:
        for ns, head, parent, type_, blob in self._heads(conn, thread_id):
            kept = [head]
            if parent is not None and self._sends_parent(conn, thread_id, ns, parent, type_, blob):
                kept.append(parent)
            marks = ",".join("?" * len(kept))
            where = f"thread_id = ? AND checkpoint_ns = ? AND checkpoint_id NOT IN ({marks})"
            conn.execute(f"DELETE FROM writes WHERE {where}", (thread_id, ns, *kept))
            conn.execute(f"DELETE FROM checkpoints WHERE {where}", (thread_id, ns, *kept))
            conn.execute(
                "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ?"
                f" AND checkpoint_ns = ? AND parent_checkpoint_id NOT IN ({marks})",
                (thread_id, ns, *kept),
            )

    def _sends_parent(
        self,
        conn: sqlite3.Connection,
        thread_id: str,
        ns: str,
        parent: str,
        type_: str,
        blob: bytes,
    ) -> bool:
        """Whether a head older than format 4 needs its parent's pending sends to load."""
        if int(self.serde.loads_typed((type_, blob)).get("v", 4)) >= 4:
            return False
        found = conn.execute(
            "SELECT 1 FROM writes WHERE thread_id = ? AND checkpoint_ns = ?"
            " AND checkpoint_id = ? AND channel = ? LIMIT 1",
            (thread_id, ns, parent, TASKS),
        ).fetchone()
        return found is not None

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints the given runs saved and their writes, in one transaction.

        A later checkpoint whose parent is deleted is left with no parent.

        Raises:
            TypeError: ``run_ids`` is a single string.
            DeltaThreads: a run's thread uses a ``DeltaChannel`` (nothing is deleted).
        """
        runs = _check_run_ids(run_ids)
        if not runs:
            return
        marks = ",".join("?" * len(runs))
        of_runs = f"json_extract(CAST(metadata AS TEXT), '$.run_id') IN ({marks})"
        with self._write() as conn:
            gone = conn.execute(
                f"SELECT thread_id, checkpoint_ns, checkpoint_id FROM checkpoints WHERE {of_runs}",
                runs,
            ).fetchall()
            if not gone:
                return
            self._refuse_delta(conn, sorted({str(r[0]) for r in gone}), "delete_for_runs")
            conn.executemany(
                "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ?"
                " AND checkpoint_id = ?",
                gone,
            )
            conn.executemany(
                "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ?"
                " AND checkpoint_id = ?",
                gone,
            )
            conn.executemany(
                "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ?"
                " AND checkpoint_ns = ? AND parent_checkpoint_id = ?",
                gone,
            )


def _has_delta_keys(metadata: bytes | str | None) -> bool:
    if not metadata:
        return False
    found = json.loads(metadata)
    return isinstance(found, dict) and any(k in found for k in _DELTA_KEYS)

"""Retention: prune old checkpoints of finished threads; the ledger and approvals stay.

LangGraph's savers keep every checkpoint forever. ``prune`` deletes the checkpoints (and
their writes and blobs) of threads that are finished — nothing left to run, no pending
review — and whose latest checkpoint is older than a cut-off. The side-effect ledger,
approvals and review claims are never touched: the audit trail survives pruning.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig

from checkpoints.factory import Stores


@dataclass(frozen=True)
class PruneReport:
    """What a prune did (or would do, with ``dry_run``)."""

    threads_seen: int
    threads_pruned: int
    checkpoints_deleted: int
    kept_latest: bool
    dry_run: bool


def _threads(stores: Stores) -> list[str]:
    rows = _query(stores, "SELECT DISTINCT thread_id FROM checkpoints", ())
    return [str(r[0]) for r in rows]


def _query(stores: Stores, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    saver: Any = stores.checkpointer
    if stores.backend == "postgres":
        with saver.conn.connection() as conn, conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), params)
            rows = cur.fetchall() if cur.description else []
        return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]
    with saver.lock:
        cur = saver.conn.execute(sql, params)
        return list(cur.fetchall()) if cur.description else []


def _count(stores: Stores, thread_id: str, keep: str | None) -> int:
    sql = "SELECT count(*) FROM checkpoints WHERE thread_id = ?"
    params: tuple[Any, ...] = (thread_id,)
    if keep is not None:
        sql += " AND checkpoint_id <> ?"
        params = (thread_id, keep)
    return int(_query(stores, sql, params)[0][0])


def _delete_all_but(stores: Stores, thread_id: str, keep: str) -> None:
    saver: Any = stores.checkpointer
    if stores.backend == "postgres":
        latest = saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_id": keep}})
        versions = latest.checkpoint["channel_versions"] if latest is not None else {}
        with saver.conn.connection() as conn, conn.transaction():
            conn.execute(
                "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id <> %s",
                (thread_id, keep),
            )
            conn.execute(
                "DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_id <> %s",
                (thread_id, keep),
            )
            conn.execute(
                "DELETE FROM checkpoint_blobs WHERE thread_id = %s"
                " AND NOT ((channel, version) IN (SELECT * FROM unnest(%s::text[], %s::text[])))",
                (thread_id, list(versions), [str(v) for v in versions.values()]),
            )
        return
    with saver.lock:
        saver.conn.execute("BEGIN IMMEDIATE")
        try:
            saver.conn.execute(
                "DELETE FROM writes WHERE thread_id = ? AND checkpoint_id <> ?", (thread_id, keep)
            )
            saver.conn.execute(
                "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id <> ?",
                (thread_id, keep),
            )
        except BaseException:
            saver.conn.execute("ROLLBACK")
            raise
        saver.conn.execute("COMMIT")


def prune(
    stores: Stores,
    graph: Any,
    older_than_days: float,
    keep_latest: bool = False,
    dry_run: bool = False,
) -> PruneReport:
    """Delete checkpoints of finished threads last touched more than ``older_than_days`` ago.

    Args:
        stores: The stores (SQLite or PostgreSQL).
        graph: The compiled graph bound to ``stores.checkpointer`` (to read thread states).
        older_than_days: Age of a thread's latest checkpoint, in days, before it is pruned.
        keep_latest: Keep each pruned thread's latest checkpoint (its final state).
        dry_run: Count only.
    """
    cutoff = time.time() - older_than_days * 86400
    seen = pruned = deleted = 0
    for thread_id in _threads(stores):
        seen += 1
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        snap = graph.get_state(config)
        if snap.next or snap.interrupts or snap.created_at is None:
            continue  # not finished: never pruned
        if datetime.fromisoformat(snap.created_at).timestamp() > cutoff:
            continue
        keep = snap.config["configurable"]["checkpoint_id"] if keep_latest else None
        count = _count(stores, thread_id, keep)
        if count == 0:
            continue
        pruned += 1
        deleted += count
        if dry_run:
            continue
        if keep is None:
            stores.checkpointer.delete_thread(thread_id)
        else:
            _delete_all_but(stores, thread_id, keep)
    return PruneReport(seen, pruned, deleted, keep_latest, dry_run)

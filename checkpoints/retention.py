"""Retention: prune old checkpoints of finished threads; the ledger and approvals stay.

LangGraph's savers keep every checkpoint forever. ``prune`` deletes the checkpoints (and
their writes and blobs) of threads that are finished — nothing left to run, no pending
review — and whose latest checkpoint is older than a cut-off, through the saver's own
``prune`` (:mod:`checkpoints.saver`): this module chooses the threads, the saver deletes.
The side-effect ledger, approvals and review claims are never touched: the audit trail
survives pruning.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig

from checkpoints.factory import StorageError, Stores
from checkpoints.saver import RetentionMixin


@dataclass(frozen=True)
class PruneReport:
    """What a prune did (or would do, with ``dry_run``)."""

    threads_seen: int
    threads_pruned: int
    checkpoints_deleted: int
    kept_latest: bool
    dry_run: bool


def _saver(stores: Stores) -> RetentionMixin:
    saver = stores.checkpointer
    if not isinstance(saver, RetentionMixin):
        raise StorageError(
            f"the checkpointer {type(saver).__name__} cannot prune: open the stores with "
            "checkpoints.factory.open_stores"
        )
    return saver


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
    saver = _saver(stores)
    strategy = "keep_latest" if keep_latest else "delete"
    cutoff = time.time() - older_than_days * 86400
    seen = deleted = 0
    chosen: list[str] = []
    for thread_id in saver.thread_ids():
        seen += 1
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        snap = graph.get_state(config)
        if snap.next or snap.interrupts or snap.created_at is None:
            continue  # not finished: never pruned
        if datetime.fromisoformat(snap.created_at).timestamp() > cutoff:
            continue
        count = saver.prunable(thread_id, strategy)
        if count == 0:
            continue
        chosen.append(thread_id)
        deleted += count
    if chosen and not dry_run:
        saver.prune(chosen, strategy=strategy)
    return PruneReport(seen, len(chosen), deleted, keep_latest, dry_run)

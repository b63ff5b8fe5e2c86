"""Re-running a thread from a checkpoint, and rolling its writes back to one."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot

from checkpoints.ledger import Ledger
from graph.compensation import undo_writes
from graph.context import Context
from graph.errors import RunError
from graph.services import Services


def at_checkpoint(
    graph: CompiledStateGraph[Any, Any, Any, Any], thread_id: str, checkpoint_id: str
) -> tuple[RunnableConfig, StateSnapshot]:
    """Return the config and state of one checkpoint of a thread.

    Raises:
        RunError: the thread has no such checkpoint.
    """
    config: RunnableConfig = {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": "",
            "checkpoint_id": checkpoint_id,
        }
    }
    snap = graph.get_state(config)
    if snap.created_at is None:
        raise RunError(f"thread {thread_id} has no checkpoint {checkpoint_id!r}", thread_id)
    return config, snap


def replay(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    thread_id: str,
    checkpoint_id: str,
    live: bool = False,
) -> None:
    """Re-run a thread from one of its checkpoints.

    Safe mode (the default): steps with an outcome in the ledger serve it and no write tool
    is called; the replay stops at the first write step that never ran. Live mode: approvals
    are dropped and asked for again, then steps not in the ledger run for real.

    Raises:
        RunError: unknown checkpoint.
    """
    config, snap = at_checkpoint(graph, thread_id, checkpoint_id)
    verdict = snap.values.get("verdict")
    if live and verdict is not None and verdict.outcome == "needs_approval":
        # Fork as if verify had just decided, without approvals: approve asks again.
        config = graph.update_state(
            config, {"approvals": [], "status": "verified"}, as_node="verify"
        )
    context = Context(replay="live" if live else "safe")
    graph.invoke(None, config, context=context, durability="sync")


def rollback(
    services: Services,
    graph: CompiledStateGraph[Any, Any, Any, Any],
    latest: StateSnapshot,
    thread_id: str,
    checkpoint_id: str,
) -> dict[str, Any]:
    """Undo every write applied after ``checkpoint_id``, newest first, then fork back to it.

    Each undo restores the before-images of the records the step changed, only if those
    records were not changed since; a conflict stops the rollback and is reported, and the
    thread is not moved. Writes without a compensator are reported as irreversible.

    Raises:
        RunError: unknown checkpoint.
    """
    _, target = at_checkpoint(graph, thread_id, checkpoint_id)
    decision_id = latest.values.get("decision_id")
    kept = set()
    if target.values.get("decision_id") == decision_id:
        kept = {sid for sid, r in (target.values.get("results") or {}).items() if not r.compensated}
    stores = services.stores
    with stores.lock:
        rows = Ledger(stores.domain).rows(decision_id) if decision_id else []
    applied = [
        (r.step_id, r.tool)
        for r in rows
        if r.status == "succeeded"
        and r.step_id not in kept
        and (entry := services.catalog.get(r.tool)) is not None
        and entry.spec.effect == "write"
    ]
    report = undo_writes(services, decision_id or "", applied, stop_at_conflict=True)
    forked = None
    if not report.conflicts:
        config: RunnableConfig = {
            "configurable": {"thread_id": thread_id, "checkpoint_id": checkpoint_id}
        }
        fork = graph.update_state(config, None, as_node="__copy__")
        forked = fork["configurable"].get("checkpoint_id")
    undone = [n for n in report.notes if n not in report.irreversible + report.conflicts]
    return {
        "thread_id": thread_id,
        "decision_id": decision_id,
        "status": "conflict" if report.conflicts else "rolled_back",
        "to_checkpoint": checkpoint_id,
        "forked_checkpoint": forked,
        "undone": undone,
        "irreversible": report.irreversible,
        "conflicts": report.conflicts,
    }

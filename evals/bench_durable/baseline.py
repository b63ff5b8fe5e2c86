"""What planbound is compared with: raw LangGraph graphs doing the same tool calls.

* The raw read graph: one node that calls the read workload's tools, one per super-step, on
  the same checkpointer (saver and pool) and ``durability="sync"``.
* The raw write graph: the same for the write workload's two reads, then a node that stops
  with ``interrupt()`` for a human, then (resumed with the answer) the write, in a
  transaction of its own. No ledger, no guards.
* The physical floor: one autocommit ``INSERT`` of a 1 KB row (one durable commit, with the
  server's ``synchronous_commit``) on a connection of the same pool.
"""

from __future__ import annotations

import operator
import time
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt
from psycopg_pool import ConnectionPool

from checkpoints.factory import Stores
from evals.bench_durable.workload import READ_PLAN, WriteTarget, write_plan
from tools.catalog import Catalog, CatalogEntry
from tools.retail import RetailDB, build_catalog

FLOOR_TABLE = "planbound_bench_floor"
"""The table the floor commits insert into (created and dropped by the bench)."""


class RawState(TypedDict, total=False):
    """State of the raw graphs: the actions, the next one, every output so far."""

    actions: list[dict[str, Any]]
    i: int
    outputs: Annotated[list[Any], operator.add]
    approved: bool


RawGraph = CompiledStateGraph[RawState, None, RawState, RawState]


def _entry(catalog: Catalog, name: str) -> CatalogEntry:
    entry = catalog.get(name)
    if entry is None:
        raise SystemExit(f"unknown tool {name!r} in a bench plan")
    return entry


def build_raw_graph(stores: Stores) -> RawGraph:
    """The raw graph of both workloads: one tool call per super-step, an interrupt before a write.

    The tools are the catalog's, called the way the engine calls them (``db`` injected), on
    the same domain connection and checkpointer as planbound. A write runs in one
    transaction (as any careful raw graph would), after a node that interrupts for approval.
    """
    catalog = build_catalog()

    def call(state: RawState) -> RawState:
        i = state.get("i", 0)
        action = state["actions"][i]
        entry = _entry(catalog, action["name"])
        args = action["arguments"]
        with stores.lock:
            if entry.spec.effect == "write":
                with stores.domain.transaction(write=True):
                    output = entry.tool.invoke({**args, "db": RetailDB(stores.domain)})
            else:
                output = entry.tool.invoke({**args, "db": RetailDB(stores.domain)})
        return {"i": i + 1, "outputs": [output]}

    def approve(state: RawState) -> RawState:
        answer = interrupt({"action": state["actions"][state.get("i", 0)]})
        return {"approved": bool(answer.get("approve"))}

    def next_of(state: RawState) -> str:
        actions, i = state["actions"], state.get("i", 0)
        if i >= len(actions):
            return END
        write = _entry(catalog, actions[i]["name"]).spec.effect == "write"
        return "approve" if write and not state.get("approved") else "call"

    def after_approve(state: RawState) -> str:
        return "call" if state.get("approved") else END

    builder = StateGraph(RawState)
    builder.add_node("call", call)
    builder.add_node("approve", approve)
    builder.add_conditional_edges(START, next_of, ["call", "approve", END])
    builder.add_conditional_edges("call", next_of, ["call", "approve", END])
    builder.add_conditional_edges("approve", after_approve, ["call", END])
    return builder.compile(checkpointer=stores.checkpointer)


def run_raw(graph: RawGraph, thread_id: str | None = None) -> str:
    """Run the raw graph on the read workload on a new thread; return the thread id.

    Raises:
        RuntimeError: the graph stopped before the last action.
    """
    thread_id = thread_id or uuid.uuid4().hex
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    final = graph.invoke({"actions": READ_PLAN, "i": 0}, config, durability="sync")
    if final.get("i") != len(READ_PLAN):
        raise RuntimeError(f"the raw graph stopped at action {final.get('i')}")
    return thread_id


def run_raw_write(
    graph: RawGraph, target: WriteTarget, turn: int, thread_id: str | None = None
) -> str:
    """Run the raw graph on the write workload: run, interrupt, resume approved, write.

    Raises:
        RuntimeError: it did not stop before the write, or did not finish after it.
    """
    thread_id = thread_id or uuid.uuid4().hex
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    actions = write_plan(target, turn)
    first = graph.invoke({"actions": actions, "i": 0}, config, durability="sync")
    if "__interrupt__" not in first:
        raise RuntimeError("the raw write graph did not stop for approval")
    final = graph.invoke(Command(resume={"approve": True}), config, durability="sync")
    if final.get("i") != len(actions):
        raise RuntimeError(f"the raw write graph stopped at action {final.get('i')}")
    return thread_id


def create_floor_table(pool: ConnectionPool[Any]) -> None:
    """Create :data:`FLOOR_TABLE` if it is missing."""
    with pool.connection() as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE}"
            " (id bigserial PRIMARY KEY, payload text NOT NULL)"
        )


def drop_floor_table(pool: ConnectionPool[Any]) -> None:
    """Drop :data:`FLOOR_TABLE`."""
    with pool.connection() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")


def floor_commit(pool: ConnectionPool[Any], payloads: Sequence[str]) -> list[float]:
    """Time one autocommit 1 KB INSERT per payload, on one pooled connection (ms each)."""
    samples = []
    with pool.connection() as conn:
        for payload in payloads:
            start = time.perf_counter()
            conn.execute(f"INSERT INTO {FLOOR_TABLE} (payload) VALUES (%s)", (payload,))
            samples.append((time.perf_counter() - start) * 1000)
    return samples

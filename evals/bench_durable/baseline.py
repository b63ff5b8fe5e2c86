"""What planbound is compared with: a raw LangGraph graph and one durable commit.

* The raw graph: one node that calls the same retail tools as :data:`~.workload.PLAN`, one
  per super-step, on the same ``PostgresSaver`` and pool, ``durability="sync"``.
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
from psycopg_pool import ConnectionPool

from checkpoints.factory import Stores
from evals.bench_durable.workload import PLAN
from tools.retail import RetailDB, build_catalog

FLOOR_TABLE = "planbound_bench_floor"
"""The table the floor commits insert into (created and dropped by the bench)."""


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

    Raises:
        SystemExit: the bench plan names a tool the catalog does not have.
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
    """Run the raw graph once on a new thread and return the thread id.

    Raises:
        RuntimeError: the graph stopped before the last action.
    """
    thread_id = thread_id or uuid.uuid4().hex
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    final = graph.invoke({"i": 0}, config, durability="sync")
    if final.get("i") != len(PLAN):
        raise RuntimeError(f"the raw graph stopped at action {final.get('i')}")
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

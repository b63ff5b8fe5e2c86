"""The one builder of planbound's topology.

``START → intake → plan → verify → approve → execute → finalize``, with bounded re-plans
(``verify → plan``), re-verification of edits (``approve → verify``), rejection and refusal
to ``END``, and ``compensate`` after a failed step.
"""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graph import routing
from graph.context import Context
from graph.nodes import Nodes
from graph.services import Services
from graph.state import InputState, OutputState, State

GRAPH_NAME = "planbound"

SERVICES = Services()
"""The process's services for the served graph (built on first use, never at import)."""


def build_graph(
    services: Services | None = None,
    checkpointer: BaseCheckpointSaver[str] | None = None,
) -> CompiledStateGraph[State, Context, InputState, OutputState]:
    """Wire and compile the graph; pass a checkpointer for durable runs.

    ``services`` defaults to the process's :data:`SERVICES`, built from the environment on
    first use.
    """
    nodes = Nodes(services if services is not None else SERVICES)
    builder = StateGraph(
        State, context_schema=Context, input_schema=InputState, output_schema=OutputState
    )
    builder.add_node("intake", nodes.intake)
    builder.add_node("plan", nodes.plan)
    builder.add_node("verify", nodes.verify)
    builder.add_node("approve", nodes.approve)
    builder.add_node("execute", nodes.execute)
    builder.add_node("compensate", nodes.compensate)
    builder.add_node("finalize", nodes.finalize)

    builder.add_edge(START, "intake")
    builder.add_edge("intake", "plan")
    builder.add_conditional_edges("plan", routing.after_plan)
    builder.add_conditional_edges("verify", routing.after_verify)
    builder.add_conditional_edges("approve", routing.after_approve)
    builder.add_conditional_edges("execute", routing.after_execute)
    builder.add_edge("compensate", END)
    builder.add_edge("finalize", END)
    return builder.compile(checkpointer=checkpointer, name=GRAPH_NAME)

"""The graph the LangGraph server serves (``langgraph.json`` ``graphs.planbound``).

planbound's graph on the process's :data:`graph.graph.SERVICES` (the ones the server's
checkpointer, auth and routes use), with the server's tracing callbacks
(:mod:`graph.server.traces`): a run started through the API is traced like a CLI run.
"""

from __future__ import annotations

from graph.graph import SERVICES, build_graph
from graph.server.traces import traced

graph = traced(build_graph(SERVICES), SERVICES)
"""The served graph (the server supplies its checkpointer and store)."""

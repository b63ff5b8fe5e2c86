"""Traces of the runs the LangGraph server starts, with the decision's story on their root.

The server runs the graph itself (``graph.astream``, the server's run id as the root run's
id) and LangChain traces it when ``LANGSMITH_TRACING`` is on. planbound adds to that trace,
never a second one: :func:`traced` gives the served graph a callback manager with

- LangChain's own ``LangChainTracer`` on planbound's LangSmith client (the key, endpoint and
  project of :class:`graph.tracing.Tracer`, and its redaction hooks), inherited by every
  node, tool call and model call. LangChain makes no tracer of its own from the environment
  when the callbacks already hold one.
- :class:`RootRecorder`, on the root run only (a local handler: the runs below never see
  it). When the root run ends (finished, paused for a review, failed) it reads the thread's
  latest checkpoint and the decision's journal off the event loop, adds
  :func:`graph.tracing.decision_metadata` to the root run, sends each reviewer decision made
  in this run as feedback on the trace that asked for it, and journals the trace id with
  the decision (``planbound audit`` shows it). Handlers that run inline run in order, and it
  comes before the tracer: the metadata leaves with the root run's own end.

Without a key nothing is traced. When ``LANGSMITH_TRACING`` asks for traces and no key is
set, the tracer slot is taken by one whose client samples nothing and has no background
sender, so no run leaves the process and LangChain does not make an unkeyed tracer from the
environment. With tracing off nothing is added but the root recorder, which then only
observes the invocation's wall time (``planbound_invocation_duration_seconds``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import (
    AsyncCallbackHandler,
    AsyncCallbackManager,
    BaseCallbackHandler,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tracers.langchain import LangChainTracer
from langgraph.types import Command, StateSnapshot
from langsmith.utils import tracing_is_enabled

from checkpoints.server import reader
from graph import events, inspect
from graph.state import STATE_TYPES
from graph.tracing import (
    Tracer,
    decision_metadata,
    journal_trace,
    journalled_traces,
    send_review_feedback,
)

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph
    from langsmith import Client
    from langsmith.run_trees import RunTree

    from graph.context import Context
    from graph.services import Services
    from graph.state import InputState, OutputState, State

    Graph = CompiledStateGraph[State, Context, InputState, OutputState]

log = logging.getLogger(__name__)

USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")


def invocation_name(inputs: Any) -> str:
    """What a server run does to its thread, named like the CLI's invocations."""
    if isinstance(inputs, Command):
        return "planbound.resume"
    if inputs is None:
        return "planbound.proceed"
    return "planbound.start"


def usage_since(usage: Any, previous: list[dict[str, Any]]) -> dict[str, Any]:
    """The tokens and cost of this invocation: the decision's so far less what was journalled.

    The state holds the decision's running total (:class:`graph.state.Usage`); the trace
    records of earlier invocations hold what each used, so the report, which adds them up,
    counts every token once.
    """
    now = usage.model_dump() if usage is not None else {}
    spent: dict[str, Any] = {}
    for key in USAGE_KEYS:
        before = sum(int((p.get("usage") or {}).get(key) or 0) for p in previous)
        spent[key] = max(0, int(now.get(key) or 0) - before)
    cost_before = sum(float((p.get("usage") or {}).get("cost") or 0.0) for p in previous)
    cost = float(now.get("cost") or 0.0) - cost_before
    spent["cost"] = round(cost, 10) if cost > 0 else (0.0 if now else None)
    return spent


@dataclass
class _Open:
    """A root run that has started and not yet ended."""

    name: str
    thread_id: str | None
    started: float


class RootRecorder(AsyncCallbackHandler):
    """Puts the decision on the root run of each server run, and journals its trace.

    Args:
        services: The process's services (stores, catalog, policy).
        tracer: The operator's tracing settings and LangSmith client.
        langchain: The tracer that sends the runs, when tracing is on.
        graph: The graph whose state is read when a run ends (with a reader's checkpointer).
    """

    run_inline = True
    """Awaited in order with the tracer (which is inline too), before it: see the module."""

    def __init__(
        self,
        services: Services,
        tracer: Tracer,
        langchain: LangChainTracer | None,
        graph: Graph,
    ) -> None:
        self.services = services
        self.tracer = tracer
        self.langchain = langchain
        self.graph = graph
        self._open: dict[UUID, _Open] = {}

    async def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember when the root run started, on which thread, and what it does."""
        if parent_run_id is not None:
            return
        thread = (metadata or {}).get("thread_id")
        self._open[run_id] = _Open(
            invocation_name(inputs), str(thread) if thread else None, time.monotonic()
        )

    async def on_chain_end(
        self,
        outputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """The run finished or paused for a review."""
        await self._close(run_id)

    async def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """The run failed or was cancelled."""
        await self._close(run_id)

    async def _close(self, run_id: UUID) -> None:
        opened = self._open.pop(run_id, None)
        if opened is None:
            return
        seconds = time.monotonic() - opened.started
        events.invocation_finished(opened.name, seconds)
        if self.langchain is None or not self.tracer.enabled or opened.thread_id is None:
            return
        root = self.langchain.run_map.get(str(run_id))
        if root is None:
            return
        try:
            snapshot = await self._snapshot(opened.thread_id)
            metadata = await asyncio.to_thread(
                self._record, opened.name, opened.thread_id, snapshot, root, seconds
            )
        except Exception as exc:  # a trace that cannot be completed never fails the run
            log.warning("could not add the decision to trace %s: %s", run_id, type(exc).__name__)
            return
        root.add_metadata(metadata)

    async def _snapshot(self, thread_id: str) -> StateSnapshot:
        """The thread's latest state, read on a connection of its own."""
        settings = self.services.settings
        async with reader(settings.home, settings.postgres_uri, STATE_TYPES) as saver:
            graph = self.graph.copy(update={"checkpointer": saver})
            config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
            return await graph.aget_state(config)

    def _record(
        self, name: str, thread_id: str, snapshot: StateSnapshot, root: RunTree, seconds: float
    ) -> dict[str, Any]:
        """The root run's metadata; the review feedback and the journal record (blocking)."""
        values = snapshot.values
        outcome = inspect.outcome(thread_id, snapshot)
        metadata = decision_metadata(self.services, values, thread_id)
        decision_id = values.get("decision_id")
        previous = journalled_traces(self.services, decision_id) if decision_id else []
        usage = usage_since(values.get("usage"), previous)
        metadata |= {
            "invocation": name,
            "status": outcome.get("status"),
            "usage": usage,
            "seconds": round(seconds, 6),
        }
        if previous:
            metadata["previous_trace_ids"] = [p.get("trace_id") for p in previous]
        if not decision_id:
            return metadata
        trace_id = str(root.trace_id)
        new = [d for d in metadata["decisions"] if d.get("invocation") == "new"]
        try:
            send_review_feedback(self.tracer.client, new, previous, str(root.id), trace_id)
        except Exception as exc:  # feedback that cannot be sent never fails the run
            log.warning("could not send the review feedback of %s: %s", name, type(exc).__name__)
        if usage.get("total_tokens"):
            events.model_used(usage["input_tokens"], usage["output_tokens"], usage["cost"])
        journal_trace(
            self.services,
            decision_id,
            thread_id,
            {
                "invocation": name,
                "trace_id": trace_id,
                "run_id": str(root.id),
                "project": root.session_name,
                "seconds": round(seconds, 6),
                "usage": usage,
                "decisions": len(metadata["decisions"]),
            },
        )
        return metadata


def muted_client(endpoint: str | None) -> Client:
    """A LangSmith client that samples no run, so it sends nothing (and has no sender thread)."""
    from langsmith import Client
    from langsmith.utils import LangSmithMissingAPIKeyWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LangSmithMissingAPIKeyWarning)
        return Client(
            api_url=endpoint, api_key=None, tracing_sampling_rate=0.0, auto_batch_tracing=False
        )


def callbacks(services: Services, graph: Graph) -> AsyncCallbackManager:
    """The served graph's callbacks: the tracer (inherited) and the root recorder (local)."""
    tracer = Tracer.from_settings(services.settings)
    langchain: LangChainTracer | None = None
    if tracer.enabled:
        langchain = LangChainTracer(client=tracer.client, project_name=tracer.project)
    elif tracing_is_enabled():
        # LangChain would trace from the environment, with no key: take its tracer's place.
        log.warning("LANGSMITH_TRACING is on but LANGSMITH_API_KEY is not set: nothing is traced")
        langchain = LangChainTracer(client=muted_client(services.settings.langsmith_endpoint))
    recorder = RootRecorder(services, tracer, langchain if tracer.enabled else None, graph)
    inherited: list[BaseCallbackHandler] = [langchain] if langchain is not None else []
    return AsyncCallbackManager(handlers=[recorder, *inherited], inheritable_handlers=inherited)


def traced(graph: Graph, services: Services) -> Graph:
    """``graph`` with the server's tracing callbacks (see the module)."""
    return graph.with_config(callbacks=callbacks(services, graph))

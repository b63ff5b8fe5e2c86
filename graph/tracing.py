"""Traces to LangSmith: one trace per graph invocation, with the decision's story on its root.

With ``LANGSMITH_TRACING=true`` and ``LANGSMITH_API_KEY`` set, every invocation of the graph
(a start, a resume, a continued or replayed run) is one trace: a root run named after what was
asked, the graph's nodes below it (LangGraph's callbacks), each tool call below the execute
step that made it (the engine's threads carry the run's context), and each model call of a
planner. When the invocation ends the root run gets the decision's metadata (see
:func:`decision_metadata`); each reviewer decision becomes LangSmith feedback on the trace that
asked for it; and the trace id is journalled with the decision (``steps`` stream, kind
``trace``), so ``planbound audit`` leads to the trace and the trace's ``decision_id`` back.

Without a key nothing is traced: no client is made, LangChain's own tracer is switched off for
the invocation, nothing is journalled unless a model reported tokens. The key is held by the
LangSmith client only and is never part of a message here.

Redaction (``PLANBOUND_TRACE_REDACT``) is done by langsmith's own hooks before a run leaves
the process: ``mask`` passes every input, output, error and metadata value through an
anonymizer that replaces emails, payment method ids, street addresses and names; ``hide``
drops inputs and outputs entirely (metadata stays, masked).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.runnables import RunnableConfig

from checkpoints.audit import AuditLog
from checkpoints.ledger import Ledger
from graph import events
from graph.planners.llm.prices import PriceTable, load_prices

if TYPE_CHECKING:
    from langsmith import Client
    from langsmith.run_trees import RunTree

    from graph.services import Services

log = logging.getLogger(__name__)

Redaction = Literal["off", "mask", "hide"]
"""What leaves the process in a trace: everything, masked personal data, or no inputs/outputs."""

TRACE_KIND = "trace"
"""The journal kind of an invocation's trace record (``steps`` stream)."""

FEEDBACK_KEY = "review"
"""The LangSmith feedback key of a reviewer's decision (score 1 approve/edit, 0 otherwise)."""

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PAYMENT = re.compile(r"\b(?:credit_card|paypal|gift_card)_\d+\b")
_USER_ID = re.compile(r"\b[a-z]+_[a-z]+_\d{4}\b")
"""A user id of the τ²-bench shape (first_last_1234), which carries the user's name."""
_ADDRESS = re.compile(r"(?i)(address:\s*)[^.\n]+")
_NAME = re.compile(r"(?i)\b(I am|I'm|my name is|this is|name:)\s+[A-Z][a-z]+\s+[A-Z][a-z]+")
_PERSONAL_KEYS = frozenset(
    {
        "address1",
        "address2",
        "city",
        "state",
        "country",
        "zip",
        "first_name",
        "last_name",
        "email",
        "user_id",
    }
)
"""Argument and field names whose whole value is personal data."""


def mask_text(value: str, path: Sequence[str | int] = ()) -> str:
    """Mask personal data in one string (the anonymizer's node function).

    A value under a personal key (``email``, ``address1``, ``zip`` ...) is replaced whole;
    elsewhere emails, payment method ids, ``address: ...`` bodies and "I am First Last" names
    are replaced by placeholders.
    """
    if path and isinstance(path[-1], str) and path[-1] in _PERSONAL_KEYS:
        return f"<{path[-1]}>"
    value = _EMAIL.sub("<email>", value)
    value = _PAYMENT.sub("<payment_method>", value)
    value = _USER_ID.sub("<user_id>", value)
    value = _ADDRESS.sub(r"\1<address>", value)
    return _NAME.sub(r"\1 <name>", value)


class Masker:
    """Masks personal data in runs' inputs, outputs, errors and metadata (the anonymizer).

    Values under personal keys are replaced whole, and wherever else they occur (a step
    description that repeats the street, an interrupt's text in an error): the values seen
    are remembered, up to ``memory`` of them, since an error arrives without its inputs.
    Then :func:`mask_text` applies to every string.
    """

    def __init__(self, memory: int = 10_000) -> None:
        self.memory = memory
        self.known: dict[str, None] = {}
        self._lock = threading.Lock()

    def _collect(self, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key in _PERSONAL_KEYS and isinstance(item, str) and len(item) > 2:
                    self.known[item] = None
                self._collect(item)
        elif isinstance(value, list | tuple):
            for item in value:
                self._collect(item)

    def __call__(self, data: Any) -> Any:
        """Return ``data`` with personal data replaced by placeholders."""
        with self._lock:
            self._collect(data)
            while len(self.known) > self.memory:
                self.known.pop(next(iter(self.known)))
            known = sorted(self.known, key=len, reverse=True)

        def walk(value: Any, path: tuple[str | int, ...]) -> Any:
            if isinstance(value, Mapping):
                return {k: walk(v, (*path, k)) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [walk(v, (*path, i)) for i, v in enumerate(value)]
            if isinstance(value, str):
                for item in known:
                    value = value.replace(item, "<personal>")
                return mask_text(value, path)
            return value

        return walk(data, ())


@dataclass
class Usage:
    """Tokens and cost a model reported during one invocation."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None
    models: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The usage as a JSON object."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cost": self.cost,
            "models": self.models,
        }


def usage_of(handler: UsageMetadataCallbackHandler, prices: PriceTable | None) -> Usage:
    """Sum what the chat models of one invocation reported, priced by the price table.

    Args:
        handler: The invocation's usage callback.
        prices: The price table the planner's cost budget uses (``PLANBOUND_PRICE_TABLE``);
            ``None`` leaves the cost unknown.
    """
    usage = Usage()
    cost = 0.0
    for model, meta in handler.usage_metadata.items():
        inp, out = int(meta.get("input_tokens", 0)), int(meta.get("output_tokens", 0))
        usage.input_tokens += inp
        usage.output_tokens += out
        usage.total_tokens += int(meta.get("total_tokens", inp + out))
        usage.models.append(model)
        if prices is not None:
            cost += prices.usage(model, inp, out).cost
    usage.cost = round(cost, 8) if prices is not None and usage.models else None
    return usage


_TRACERS: weakref.WeakSet[Tracer] = weakref.WeakSet()


def flush_all() -> None:
    """Send what every tracer of the process still holds (the CLI calls it before exiting)."""
    for tracer in list(_TRACERS):
        tracer.flush()


class Tracer:
    """Traces graph invocations to LangSmith when a key is configured; else does nothing.

    Args:
        enabled: Whether ``LANGSMITH_TRACING`` is on and a key is set.
        api_key: The LangSmith key (held by the client only).
        endpoint: The LangSmith API URL (``LANGSMITH_ENDPOINT``).
        project: The project traces go to (``LANGSMITH_PROJECT``).
        redact: What to remove before anything leaves the process.
        prices: The price table for the cost of a decision (``None``: cost unknown).
    """

    def __init__(
        self,
        *,
        enabled: bool = False,
        api_key: str | None = None,
        endpoint: str | None = None,
        project: str | None = None,
        redact: Redaction = "off",
        prices: PriceTable | None = None,
    ) -> None:
        self.enabled = bool(enabled and api_key)
        self.project = project or "planbound"
        self.redact = redact
        self.prices = prices
        self._api_key = api_key
        self._endpoint = endpoint
        self._client: Client | None = None
        _TRACERS.add(self)

    @classmethod
    def from_settings(cls, settings: Any) -> Tracer:
        """The tracer the operator settings describe."""
        key = settings.langsmith_api_key
        return cls(
            enabled=settings.langsmith_tracing,
            api_key=key.get_secret_value() if key is not None else None,
            endpoint=settings.langsmith_endpoint,
            project=settings.langsmith_project,
            redact=settings.trace_redact,
            prices=load_prices(settings.price_table),
        )

    @property
    def client(self) -> Client:
        """The LangSmith client (made on first use, with the redaction hooks)."""
        if self._client is None:
            from langsmith import Client

            kwargs: dict[str, Any] = {}
            if self.redact in ("mask", "hide"):
                kwargs["anonymizer"] = Masker()
            if self.redact == "hide":
                kwargs["hide_inputs"] = True
                kwargs["hide_outputs"] = True
            self._client = Client(api_url=self._endpoint, api_key=self._api_key, **kwargs)
        return self._client

    def flush(self) -> None:
        """Send everything still queued (call before the process exits)."""
        if self._client is not None:
            self._client.flush()

    @contextlib.contextmanager
    def invocation(
        self, services: Services, name: str, inputs: dict[str, Any], thread_id: str
    ) -> Iterator[Invocation]:
        """Wrap one graph invocation: its config callbacks, its root run, its journal record.

        The caller invokes the graph with :meth:`Invocation.config` merged into its config,
        then calls :meth:`Invocation.finish` with the thread's values.
        """
        from langsmith import run_helpers

        handle = Invocation(self, services, name, thread_id)
        if not self.enabled:
            # LANGSMITH_TRACING without a key would make LangChain try on its own: never.
            with run_helpers.tracing_context(enabled=False):
                yield handle
            handle.close(None)
            return
        from langsmith.run_trees import RunTree

        parent = run_helpers.get_current_run_tree()
        if parent is not None:
            # Inside a traced caller (an evaluation run): the invocation is its child.
            root = parent.create_child(
                name=name,
                run_type="chain",
                inputs=inputs,
                extra={"metadata": {"thread_id": thread_id}},
                tags=["planbound"],
            )
        else:
            root = RunTree(
                name=name,
                run_type="chain",
                inputs=inputs,
                project_name=self.project,
                ls_client=self.client,
                extra={"metadata": {"thread_id": thread_id}},
                tags=["planbound"],
            )
        root.post()
        handle.root = root
        error: str | None = None
        try:
            with run_helpers.tracing_context(
                enabled=True, client=root.client, parent=root, project_name=root.session_name
            ):
                yield handle
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            handle.close(error)


class Invocation:
    """One traced (or untraced) invocation of the graph."""

    def __init__(self, tracer: Tracer, services: Services, name: str, thread_id: str) -> None:
        self.tracer = tracer
        self.services = services
        self.name = name
        self.thread_id = thread_id
        self.root: RunTree | None = None
        self.usage_handler = UsageMetadataCallbackHandler()
        self.started = time.monotonic()
        self.metadata: dict[str, Any] = {"thread_id": thread_id}
        self.outputs: dict[str, Any] = {}
        self._decision_id: str | None = None
        self._new_decisions: list[dict[str, Any]] = []

    @property
    def trace_id(self) -> str | None:
        """The trace's id, when traced."""
        return str(self.root.trace_id) if self.root is not None else None

    def config(self) -> RunnableConfig:
        """What to merge into the invocation's config (the usage callback, the run name)."""
        config: RunnableConfig = {"callbacks": [self.usage_handler]}
        if self.root is not None:
            config["metadata"] = {"planbound_trace_id": self.trace_id}
        return config

    def finish(self, values: Callable[[], Mapping[str, Any]], outcome: Mapping[str, Any]) -> None:
        """Record the decision's metadata from the thread's values after the invocation.

        Args:
            values: Reads the thread's latest state values; called only when the metadata
                is wanted (a trace is sent, or the invocation used a model).
            outcome: The one-object outcome (``graph.inspect.outcome``) shown to the caller.
        """
        usage = usage_of(self.usage_handler, self.tracer.prices)
        self._decision_id = outcome.get("decision_id")
        self.outputs = {"status": outcome.get("status"), "error": outcome.get("error")}
        self.usage = usage
        if self.root is None and not usage.total_tokens:
            return  # nothing is sent and no trace record is journalled: nothing to read
        self.metadata = decision_metadata(self.services, values(), self.thread_id)
        self.metadata["usage"] = usage.as_json()
        self.metadata["status"] = outcome.get("status")
        self._new_decisions = [
            d for d in self.metadata.get("decisions", []) if d.get("invocation") == "new"
        ]

    def close(self, error: str | None) -> None:
        """End the root run, send review feedback and journal the trace id."""
        seconds = time.monotonic() - self.started
        usage: Usage | None = getattr(self, "usage", None)
        events.invocation_finished(self.name, seconds)
        if usage is not None and usage.total_tokens:
            events.model_used(usage.input_tokens, usage.output_tokens, usage.cost)
        decision_id = self._decision_id
        traced = self.root is not None
        previous = journalled_traces(self.services, decision_id) if decision_id and traced else []
        if self.root is not None:
            self.metadata["seconds"] = round(seconds, 6)
            if previous:
                self.metadata["previous_trace_ids"] = [p.get("trace_id") for p in previous]
            try:
                self.root.add_metadata(self.metadata)
                self.root.end(outputs=self.outputs or None, error=error)
                self.root.patch()
                self._feedback(previous)
            except Exception as exc:  # a trace that cannot be sent never fails the run
                log.warning("could not send the trace of %s: %s", self.name, type(exc).__name__)
        if decision_id and (traced or (usage is not None and usage.total_tokens)):
            journal_trace(
                self.services,
                decision_id,
                self.thread_id,
                {
                    "invocation": self.name,
                    "trace_id": self.trace_id,
                    "run_id": str(self.root.id) if self.root is not None else None,
                    "project": self.tracer.project if traced else None,
                    "seconds": round(seconds, 6),
                    "usage": usage.as_json() if usage is not None else None,
                    "decisions": len(self.metadata.get("decisions", [])),
                },
            )

    def _feedback(self, previous: list[dict[str, Any]]) -> None:
        """Each decision given in this invocation, as feedback on the trace that asked for it."""
        if self.root is None:
            return
        send_review_feedback(
            self.tracer.client, self._new_decisions, previous, str(self.root.id), self.trace_id
        )


def send_review_feedback(
    client: Client,
    decisions: Sequence[Mapping[str, Any]],
    previous: Sequence[Mapping[str, Any]],
    run_id: str,
    trace_id: str | None,
) -> None:
    """Send reviewer decisions as feedback on the trace that asked for them.

    That is the latest earlier invocation journalled with a run (the one that paused for the
    review); ``run_id`` / ``trace_id`` (the current root) when there is none.

    Args:
        client: The LangSmith client.
        decisions: The decisions given in this invocation (:func:`decision_metadata` shape).
        previous: The decision's earlier trace records (:func:`journalled_traces`).
        run_id: The current invocation's root run id.
        trace_id: The current invocation's trace id.
    """
    if not decisions:
        return
    asked = next((p for p in reversed(previous) if p.get("run_id")), None)
    if asked is not None:
        run_id, trace_id = str(asked["run_id"]), asked.get("trace_id")
    for d in decisions:
        with warnings.catch_warnings():
            # The project's id is not known here; LangSmith finds it from the run.
            warnings.filterwarnings("ignore", message=".*without session_id.*")
            client.create_feedback(
                run_id=run_id,
                trace_id=trace_id,
                key=FEEDBACK_KEY,
                score=1.0 if d["type"] in ("approve", "edit") else 0.0,
                value=d["type"],
                comment=d.get("message"),
                source_info={
                    "reviewer": d["reviewer"],
                    "roles": d["roles"],
                    "step_id": d["step_id"],
                },
            )


def journal_trace(
    services: Services, decision_id: str, thread_id: str | None, body: Mapping[str, Any]
) -> None:
    """Append an invocation's trace record to the decision's ``steps`` stream (kind ``trace``).

    The body names the invocation, its ``trace_id`` and root ``run_id`` (``None`` untraced),
    the project, its wall time, the tokens and cost it used, and how many reviewer decisions
    the decision had when it ended (so the next invocation knows which ones are new).
    """
    stores = services.stores
    with stores.lock:
        AuditLog(stores.domain).append_now(decision_id, "steps", TRACE_KIND, dict(body), thread_id)


def journalled_traces(services: Services, decision_id: str) -> list[dict[str, Any]]:
    """The trace records journalled for a decision, oldest first."""
    stores = services.stores
    with stores.lock:
        entries = AuditLog(stores.domain).entries(decision_id)
    return [e.body for e in entries if e.stream == "steps" and e.kind == TRACE_KIND]


def trace_ids(services: Services, decision_id: str) -> list[str]:
    """The LangSmith trace ids of a decision's invocations (from its audit journal)."""
    return [
        str(t["trace_id"]) for t in journalled_traces(services, decision_id) if t.get("trace_id")
    ]


def decision_metadata(
    services: Services, values: Mapping[str, Any], thread_id: str
) -> dict[str, Any]:
    """The root run's metadata: what was decided, by whom, under which versions and rules.

    Decisions are marked ``invocation: "new"`` when this invocation added them (a resume);
    the journal's verdict entries give the rules that fired.
    """
    decision_id = values.get("decision_id")
    plan = values.get("plan")
    verdict = values.get("verdict")
    pins = values.get("pins")
    meta: dict[str, Any] = {"decision_id": decision_id, "thread_id": thread_id}
    if pins is not None:
        meta |= {
            "catalog": pins.catalog,
            "catalog_version": pins.catalog_version,
            "policy_version": pins.policy_version,
            "planner": pins.planner,
            "planner_version": pins.planner_version,
            "template_version": pins.planner_version if pins.planner == "template" else None,
            "prompt_version": getattr(pins, "prompt_version", None),
        }
    if plan is not None:
        meta |= {"plan_id": plan.id, "plan_source": plan.source, "template": plan.template}
        meta["plan_steps"] = [s.tool for s in plan.steps]
    rules: list[str] = []
    denied: list[dict[str, Any]] = []
    entries = []
    if decision_id:
        stores = services.stores
        with stores.lock:
            entries = AuditLog(stores.domain).entries(decision_id)
            ledger = {r.step_id: r.status for r in Ledger(stores.domain).rows(decision_id)}
    else:
        ledger = {}
    verdicts = [e.body for e in entries if e.stream == "steps" and e.kind == "verdict"]
    if verdicts:
        last = verdicts[-1]
        denied = list(last.get("deny", []))
        rules = sorted(
            {d["rule"] for d in denied}
            | {r for a in last.get("approval", []) for r in a.get("rules", [])}
            | ({"contracts"} if last.get("contracts") else set())
        )
    meta["verdict"] = verdict.outcome if verdict is not None else None
    meta["verdict_reasons"] = list(verdict.reasons) if verdict is not None else []
    meta["rules"] = rules
    meta["denied"] = denied
    meta["route"] = route_of(values)
    seen_before = _decisions_before(entries)
    decisions = []
    for n, d in enumerate(values.get("decisions") or []):
        decisions.append(
            {
                "step_id": d.step_id,
                "type": d.type,
                "reviewer": d.reviewer,
                "roles": list(d.roles),
                "message": d.message,
                "invocation": "earlier" if n < seen_before else "new",
            }
        )
    meta["decisions"] = decisions
    meta["reviewers"] = sorted({d["reviewer"] for d in decisions})
    results = values.get("results") or {}
    meta["steps"] = [
        {
            "step_id": r.step_id,
            "tool": r.tool,
            "ok": r.ok,
            "attempts": r.attempts,
            "compensated": r.compensated,
            "ledger": ledger.get(r.step_id),
            "error": r.error,
        }
        for r in results.values()
    ]
    meta["error"] = values.get("error")
    return meta


def _decisions_before(entries: Sequence[Any]) -> int:
    """How many reviewer decisions earlier invocations had recorded (from trace records)."""
    count = 0
    for e in entries:
        if e.stream == "steps" and e.kind == TRACE_KIND:
            count = int(e.body.get("decisions", count) or count)
    return count


def route_of(values: Mapping[str, Any]) -> str:
    """Which way the run went: cannot_plan, refused, review, direct (no review needed)."""
    status = values.get("status")
    if status == "cannot_plan":
        return "cannot_plan"
    verdict = values.get("verdict")
    if status == "refused" or (verdict is not None and verdict.outcome == "deny"):
        return "refused"
    if values.get("decisions") or (verdict is not None and verdict.reviews):
        return "review"
    return "direct"

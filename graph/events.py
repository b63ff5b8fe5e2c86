"""What the flow counts as it happens: Prometheus counters and a histogram, per process.

The figures are recorded where the events occur (a node's outcome, the engine's step end,
the verifier's deny, a review answer) into the process-wide Prometheus registry, so the
LangGraph server's own ``/metrics`` shows them next to its ``lg_api_*`` metrics. Nothing
here reads or writes a database or a file: a scrape costs what formatting the numbers
costs, whatever state the databases are in.

Counters are per process and start at zero when it starts: scrape every process that runs
graphs and add them up (``sum by (status) (rate(planbound_runs_total[5m]))``). A count of
pending reviews is not kept here, because no single process knows it; ask the server
(``threads.search(status="interrupted")``), which reads it from the checkpoints.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from langgraph.errors import GraphInterrupt
from prometheus_client import Counter, Histogram

from graph.state import FINAL

if TYPE_CHECKING:
    from graph.compensation import Undo
    from guards.verifier import Judgement

ENDED: tuple[str, ...] = (*FINAL, "stopped")
"""Statuses with which a run ends (``stopped``: a safe replay reached a write never run)."""

PAUSED = "awaiting_approval"
"""The status of a run paused for a reviewer's answer."""

DECISIONS: tuple[str, ...] = ("approve", "edit", "reject", "respond", "refused")
"""Review outcomes counted: a reviewer's decision per step, or a refused answer."""

COMPENSATION_OUTCOMES: tuple[str, ...] = ("undone", "conflict", "irreversible")
"""What undoing one write after a failed step came to."""

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds, in seconds, of the step duration histogram."""

CONTRACTS_RULE = "contracts"
"""The rule label of a deny by the plan's contracts (before the policy is asked)."""

RUNS = Counter(
    "planbound_runs",
    "Runs reaching a final status, or pausing for review (awaiting_approval, once per pause).",
    ["status"],
)
REVIEWS = Counter(
    "planbound_reviews",
    "Review answers: each step's decision (approve, edit, reject, respond) once applied, and"
    " answers refused before they changed anything (refused).",
    ["decision"],
)
STEP_SECONDS = Histogram(
    "planbound_step_duration_seconds",
    "Wall time of executed plan steps (the tool call with its retries), by outcome.",
    ["tool", "status"],
    buckets=BUCKETS,
)
COMPENSATIONS = Counter(
    "planbound_compensations",
    "Writes handled by compensation after a failed step: undone, left as is because their"
    " records changed since (conflict), or without a compensator (irreversible).",
    ["outcome"],
)
POLICY_DENIALS = Counter(
    "planbound_policy_denials",
    "Deny reasons found when verifying a plan, by rule (contracts: the plan's contracts).",
    ["rule"],
)

NODE_SECONDS = Histogram(
    "planbound_node_duration_seconds",
    "Wall time of a node's work (plan, verify, approve once answered, compensate, finalize).",
    ["node"],
    buckets=BUCKETS,
)
INVOCATION_SECONDS = Histogram(
    "planbound_invocation_duration_seconds",
    "Wall time of one graph invocation (planbound.start, .resume, .proceed); a pause for"
    " review ends an invocation, so human wait is not in it.",
    ["invocation"],
    buckets=BUCKETS,
)
WAIT_BUCKETS = (1.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0)
"""Upper bounds, in seconds, of the human wait histogram."""
REVIEW_WAIT = Histogram(
    "planbound_human_wait_seconds",
    "Time from a pause for review to the answer that was accepted.",
    buckets=WAIT_BUCKETS,
)
MODEL_TOKENS = Counter(
    "planbound_model_tokens", "Tokens the planners' models reported, by kind.", ["kind"]
)
MODEL_COST = Counter(
    "planbound_model_cost_usd",
    "Cost of the planners' model calls (priced by PLANBOUND_PRICE_TABLE).",
)

for _kind in ("input", "output"):
    MODEL_TOKENS.labels(kind=_kind)
for _status in (PAUSED, *ENDED):
    RUNS.labels(status=_status)
for _decision in DECISIONS:
    REVIEWS.labels(decision=_decision)
for _outcome in COMPENSATION_OUTCOMES:
    COMPENSATIONS.labels(outcome=_outcome)

S = TypeVar("S")
P = ParamSpec("P")


def run_reached(status: str) -> None:
    """Count a run reaching ``status`` (one of :data:`ENDED`, or :data:`PAUSED`)."""
    RUNS.labels(status=status).inc()


def reviewed(decisions: Iterable[Any]) -> None:
    """Count applied reviewer decisions (objects with a ``type``: approve, edit, reject ...)."""
    for decision in decisions:
        REVIEWS.labels(decision=str(decision.type)).inc()


def answer_refused() -> None:
    """Count a review answer refused before it changed anything."""
    REVIEWS.labels(decision="refused").inc()


def step_finished(tool: str, ok: bool, seconds: float) -> None:
    """Observe one executed step's wall time under its tool and outcome."""
    STEP_SECONDS.labels(tool=tool, status="succeeded" if ok else "failed").observe(seconds)


def compensated(report: Undo) -> None:
    """Count what undoing the writes of a failed run did, one per write."""
    COMPENSATIONS.labels(outcome="undone").inc(len(report.undone))
    COMPENSATIONS.labels(outcome="conflict").inc(len(report.conflicts))
    COMPENSATIONS.labels(outcome="irreversible").inc(len(report.irreversible))


def plan_denied(judgement: Judgement) -> None:
    """Count the deny reasons of a refused plan by rule (a contract finding as ``contracts``)."""
    if judgement.findings:
        POLICY_DENIALS.labels(rule=CONTRACTS_RULE).inc(len(judgement.findings))
    for violation in judgement.decision.deny:
        POLICY_DENIALS.labels(rule=violation.rule).inc()


def invocation_finished(name: str, seconds: float) -> None:
    """Observe one graph invocation's wall time."""
    INVOCATION_SECONDS.labels(invocation=name).observe(seconds)


def review_waited(seconds: float) -> None:
    """Observe how long a review waited for its accepted answer."""
    REVIEW_WAIT.observe(max(0.0, seconds))


def model_used(input_tokens: int, output_tokens: int, cost: float | None) -> None:
    """Count the tokens (and cost) a planner's model reported in one invocation."""
    MODEL_TOKENS.labels(kind="input").inc(input_tokens)
    MODEL_TOKENS.labels(kind="output").inc(output_tokens)
    if cost:
        MODEL_COST.inc(cost)


def record_update(update: dict[str, Any]) -> None:
    """Count what a node's update says happened: the decisions it applied, the run's end."""
    reviewed(update.get("decisions") or [])
    status = update.get("status")
    if status in ENDED:
        run_reached(str(status))


def record_pause(interrupt: GraphInterrupt) -> None:
    """Count a run pausing for review; a request asked again after a refused answer says why.

    A node is re-executed from its start when resumed, but only the one ``interrupt()`` that
    has no answer yet raises, so each pause is counted once.
    """
    run_reached(PAUSED)
    values = [getattr(i, "value", None) for i in (interrupt.args[0] if interrupt.args else ())]
    if any(isinstance(v, dict) and v.get("error") for v in values):
        answer_refused()


def recorded(
    node: Callable[Concatenate[S, P], dict[str, Any]],
) -> Callable[Concatenate[S, P], dict[str, Any]]:
    """Decorate a node so its outcome is counted (see :func:`record_update`, :func:`record_pause`).

    The node itself is unchanged: its update is returned as is and a pause propagates.
    """
    name = node.__name__

    @functools.wraps(node)
    def counted(self: S, /, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            update = node(self, *args, **kwargs)
        except GraphInterrupt as exc:
            record_pause(exc)
            raise
        NODE_SECONDS.labels(node=name).observe(time.perf_counter() - started)
        record_update(update)
        return update

    return counted

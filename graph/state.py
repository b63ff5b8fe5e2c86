"""Graph state: the input, internal and output schemas, and their reducers."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict, get_args

from pydantic import BaseModel, ConfigDict, Field

from guards.judgement import Approval, Decision, Verdict
from guards.plan import Plan

Status = Literal[
    "planning",
    "verified",
    "approved",
    "executing",
    "completed",
    "awaiting_approval",
    "refused",
    "rejected",
    "failed",
    "rolled_back",
    "cannot_plan",
    "stopped",
]
"""Where a run stands; from ``completed`` on, what a caller sees at the end or at a pause
(``stopped``: a safe replay reached a write step that never ran)."""

STATUSES: tuple[str, ...] = get_args(Status)
"""Every status, in order."""

FINAL: tuple[str, ...] = (
    "completed",
    "refused",
    "rejected",
    "failed",
    "rolled_back",
    "cannot_plan",
)
"""Statuses after which nothing more runs."""


class StepResult(BaseModel):
    """A small record of one executed step; large outputs are kept by hash in the ledger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_id: str
    tool: str
    ok: bool
    output: Any = Field(default=None, description="The output, inlined when small.")
    output_hash: str | None = None
    output_ref: str | None = Field(
        default=None, description="Ledger reference when the output was too large to inline."
    )
    error: str | None = None
    attempts: int = 1
    compensated: bool = False


class Pins(BaseModel):
    """Versions pinned by ``intake`` for the whole run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog: str
    catalog_version: str
    policy_version: str
    planner: str
    planner_version: str


class Route(BaseModel):
    """Who plans a run and why: the router's choice, recorded at intake."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    planner: Literal["explicit", "template", "llm"] | None = Field(
        description="The planner chosen; ``None`` when nobody may plan the request."
    )
    reason: str = Field(description="Why, in words a user understands.")
    tier: str | None = Field(default=None, description="The request's risk tier, if judged.")
    taxonomy_version: str | None = Field(
        default=None, description="Version of the risk-tier file the choice was made on."
    )


class Usage(BaseModel):
    """Model tokens and their cost, summed over a run's model calls."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost: float = Field(default=0.0, description="In the price table's currency (USD).")

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cost=round(self.cost + other.cost, 10),
        )


def merge_results(
    left: dict[str, StepResult] | None, right: dict[str, StepResult] | None
) -> dict[str, StepResult]:
    """Merge step results by step id; a later record for the same step replaces the earlier."""
    return {**(left or {}), **(right or {})}


def append(left: list[Any] | None, right: list[Any] | None) -> list[Any]:
    """Append ``right`` to ``left``."""
    return [*(left or []), *(right or [])]


class InputState(TypedDict, total=False):
    """What a caller sends: a request in words, or an explicit plan document."""

    request: str
    """The request in words, planned by the template planner."""
    explicit_plan: Any
    """A plan document: ``{"goal", "steps"}`` or a τ²-style action list."""
    actor: str
    """Who asked (recorded in provenance)."""


class State(InputState, total=False):
    """Internal state of a run."""

    asked: str | None
    """This run's request in words (``request`` is cleared once intake has read it)."""
    asked_plan: Any
    """This run's plan document (``explicit_plan`` is cleared once intake has read it)."""
    decision_id: str
    """Immutable id of this run's decision, the ledger's idempotency prefix."""
    pins: Pins
    """Catalog, policy and planner versions pinned at intake."""
    plan: Plan | None
    """The current plan (replaced by a re-plan or a reviewer's edit)."""
    plan_attempts: int
    """How many times the planner has been asked."""
    route: Route | None
    """Who plans this run and why (the router's choice at intake)."""
    usage: Usage | None
    """Model tokens and cost used by this run's planning."""
    human_fallback: Literal["asked", "used"] | None
    """Whether a person was asked for the plan after the re-plans were used up."""
    feedback: Annotated[list[str], append]
    """Verifier reasons handed back to the planner."""
    verdict: Verdict | None
    """The guards' latest verdict on ``plan``."""
    decisions: Annotated[list[Decision], append]
    """Every validated reviewer decision, in the order given."""
    approvals: list[Approval]
    """Grants for the current plan, each bound to its step's digest."""
    results: Annotated[dict[str, StepResult], merge_results]
    """Executed steps, by step id."""
    compensation: Annotated[list[str], append]
    """What compensation did (or could not do), one line per step."""
    status: Status
    """Where the run stands."""
    error: str | None
    """Why the run stopped short, if it did."""


class OutputState(TypedDict, total=False):
    """What a finished (or paused) run returns."""

    decision_id: str
    """Id of the run's decision."""
    status: Status
    """Final status."""
    plan: Plan | None
    """The plan that was judged (and executed, if it was)."""
    verdict: Verdict | None
    """The guards' verdict."""
    results: dict[str, StepResult]
    """Executed steps, by step id."""
    compensation: list[str]
    """What compensation did."""
    error: str | None
    """Why the run stopped short, if it did."""
    route: Route | None
    """Who planned the run and why."""
    usage: Usage | None
    """Model tokens and cost the run's planning used."""


STATE_TYPES: tuple[tuple[str, str], ...] = (
    ("guards.plan", "Plan"),
    ("guards.plan", "Step"),
    ("guards.plan", "Repeat"),
    ("guards.judgement", "Verdict"),
    ("guards.judgement", "StepReview"),
    ("guards.judgement", "Decision"),
    ("guards.judgement", "Approval"),
    ("graph.state", "StepResult"),
    ("graph.state", "Pins"),
    ("graph.state", "Route"),
    ("graph.state", "Usage"),
)
"""Types the checkpoint serializer may revive from msgpack (everything else is refused)."""

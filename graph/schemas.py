"""Data that crosses node boundaries: plans, steps, verdicts, decisions and results."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

STEP_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
REF = re.compile(r"^\$(?P<step>[A-Za-z][A-Za-z0-9_-]{0,63})(?P<path>(?:\.[A-Za-z0-9_-]+)*)$")
"""A reference to an earlier step's output: ``$s1`` (whole output) or ``$s1.field.0.sub``."""


def canonical_json(value: Any) -> str:
    """Serialise ``value`` deterministically (sorted keys, no spaces, UTF-8 kept)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any, length: int = 16) -> str:
    """Return the first ``length`` hex digits of the SHA-256 of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


class Step(BaseModel):
    """One tool call in a plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=STEP_ID, description="Unique step id within the plan, e.g. 's1'.")
    tool: str = Field(min_length=1, description="Name of a tool in the pinned catalog.")
    args: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Tool arguments. A string value '$s1.field' (or '$s1' for the whole output) is "
            "replaced at execution time by that earlier step's output; '$$' escapes '$'."
        ),
    )
    depends_on: list[str] = Field(
        default_factory=list,
        description="Ids of steps that must finish first (references imply dependencies).",
    )
    description: str = Field(default="", description="What the step is for, for reviewers.")


class Plan(BaseModel):
    """A plan as data. Its ``id`` is a content hash of goal and steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default="", description="Content hash; computed, never chosen.")
    source: Literal["explicit", "template", "llm", "edit"] = Field(
        description="Which planner produced the plan (``edit`` for a reviewer's change)."
    )
    goal: str = Field(default="", description="The request or goal the plan serves.")
    template: str | None = Field(
        default=None, description="Template id and version for template plans, e.g. 'cancel@1'."
    )
    steps: list[Step] = Field(description="Steps in the order they were written.")

    @model_validator(mode="after")
    def _pin_id(self) -> Plan:
        expected = content_hash(
            {"goal": self.goal, "steps": [s.model_dump(mode="json") for s in self.steps]}
        )
        if self.id and self.id != expected:
            raise ValueError(f"plan id {self.id!r} does not match its content hash {expected!r}")
        object.__setattr__(self, "id", expected)
        return self

    def step(self, step_id: str) -> Step:
        """Return the step with ``step_id`` or raise ``KeyError``."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)


class CannotPlan(BaseModel):
    """A planner's honest answer when it cannot map the request to a plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(description="Why no plan was produced, in words a user understands.")
    candidates: list[str] = Field(
        default_factory=list, description="Intents that matched weakly, if any."
    )


class PlanRequest(BaseModel):
    """What a planner receives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(description="The user's request.")
    feedback: list[str] = Field(
        default_factory=list,
        description="Verifier reasons or reviewer feedback from earlier tries.",
    )
    previous: Plan | None = Field(default=None, description="The plan that was refused, if any.")


class StepReview(BaseModel):
    """Why a step needs a human."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_id: str
    reason: str
    rules: list[str] = Field(default_factory=list, description="Policy rules that asked.")
    roles: list[str] = Field(
        default_factory=list,
        description=(
            "Roles that may approve; with several rules asking, the reviewer must hold one "
            "role of every rule's list (see ``requirements``)."
        ),
    )
    requirements: list[dict[str, Any]] = Field(
        default_factory=list, description="Each asking rule with its approver roles."
    )


class Verdict(BaseModel):
    """The guards' judgement of a plan: allow, needs_approval or deny, always with reasons."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Literal["allow", "needs_approval", "deny"]
    plan_id: str
    catalog_version: str
    policy_version: str
    reasons: list[str] = Field(default_factory=list, description="Deny reasons or notes.")
    facts_hash: str | None = Field(
        default=None, description="Hash of the facts the policy decided on (read from the domain)."
    )
    reviews: list[StepReview] = Field(
        default_factory=list, description="Steps that need a human, with the reason."
    )
    fixable: bool = Field(
        default=False, description="Whether a re-plan with the reasons could fix a deny."
    )


class Decision(BaseModel):
    """A reviewer's validated answer for one step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_id: str
    type: Literal["approve", "edit", "reject"]
    reviewer: str = Field(min_length=1)
    roles: list[str] = Field(default_factory=list, description="The reviewer's roles.")
    args: dict[str, Any] | None = Field(default=None, description="Edited arguments (edit only).")
    tool: str | None = Field(default=None, description="Edited tool name (edit only).")
    message: str | None = Field(default=None, description="Reason given with a reject.")


class Approval(BaseModel):
    """A grant to run one exact call, bound to a digest and consumed once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_id: str
    digest: str
    reviewer: str
    roles: list[str] = Field(default_factory=list, description="The reviewer's roles.")


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

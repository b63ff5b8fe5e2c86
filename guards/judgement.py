"""The guards' judgements: verdicts on plans, reviewers' decisions, approvals and their digest.

Verify writes a :class:`Verdict`; approve turns a reviewer's answer into :class:`Decision`
records and :class:`Approval` grants, each bound by :func:`approval_digest` to one exact call;
execution consumes a grant only if its digest still matches.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from guards.plan import Step, content_hash


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
    type: Literal["approve", "edit", "reject", "respond"]
    reviewer: str = Field(min_length=1)
    roles: list[str] = Field(default_factory=list, description="The reviewer's roles.")
    args: dict[str, Any] | None = Field(default=None, description="Edited arguments (edit only).")
    tool: str | None = Field(default=None, description="Edited tool name (edit only).")
    message: str | None = Field(
        default=None, description="Reason given with a reject; the reviewer's response."
    )


class Approval(BaseModel):
    """A grant to run one exact call, bound to a digest and consumed once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_id: str
    digest: str
    reviewer: str
    roles: list[str] = Field(default_factory=list, description="The reviewer's roles.")


def approval_digest(step: Step, plan_id: str, catalog_version: str, policy_version: str) -> str:
    """Bind an approval to one exact call: tool, args, catalog, policy and plan."""
    return content_hash(
        {
            "step": step.id,
            "tool": step.tool,
            "args": step.args,
            "plan": plan_id,
            "catalog": catalog_version,
            "policy": policy_version,
        },
        length=32,
    )

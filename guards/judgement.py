"""The guards' judgements: verdicts on plans, reviewers' decisions, approvals and their digest.

Verify writes a :class:`Verdict`; approve turns a reviewer's answer into :class:`Decision`
records and :class:`Approval` grants, each bound by :func:`approval_digest` to one exact call;
execution consumes a grant only if its digest still matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from guards.plan import Step, canonical_json, content_hash, has_ref


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
    resolved_args: dict[str, Any] | None = Field(
        default=None,
        description=(
            "The arguments that hold references or selections, as they resolved on the "
            "verifier's snapshot: the values the reviewer is shown and an approval binds to "
            "(``None`` when the step has none, or they could not be resolved)."
        ),
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
    bound: dict[str, Any] | None = Field(
        default=None,
        description=(
            "The resolved values of the step's referencing arguments the reviewer was shown; "
            "the call runs only if its arguments resolve to exactly these."
        ),
    )


def approval_digest(
    step: Step,
    plan_id: str,
    catalog_version: str,
    policy_version: str,
    bound: dict[str, Any] | None = None,
) -> str:
    """Bind an approval to one exact call: tool, args, catalog, policy and plan.

    ``bound`` (the resolved values of arguments that hold references or selections, as the
    reviewer saw them) is part of the digest when given, so the ledger's approval row
    names the values that were approved, not only the rule that picks them.
    """
    body: dict[str, Any] = {
        "step": step.id,
        "tool": step.tool,
        "args": step.args,
        "plan": plan_id,
        "catalog": catalog_version,
        "policy": policy_version,
    }
    if bound is not None:
        body["bound"] = bound
    return content_hash(body, length=32)


def bound_args(step: Step, resolved: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The referencing arguments of ``step`` taken from its ``resolved`` arguments.

    ``None`` when the step has no references or selections (its literal arguments are in
    the digest already), or when they could not be resolved (``resolved`` is ``None``).
    """
    keys = [k for k, v in step.args.items() if has_ref(v)]
    if not keys or resolved is None:
        return None
    return {k: resolved.get(k) for k in keys}


def bound_problems(
    step_id: str, bound: dict[str, Any] | None, resolved: dict[str, Any]
) -> list[str]:
    """Why the arguments a step resolves to now differ from those approved (empty: the same).

    ``resolved`` holds the step's referencing arguments as they resolve just before it runs;
    each one must equal the value the reviewer approved.
    """
    if not resolved:
        return []
    if bound is None:
        return [
            f"step {step_id!r}: its approval does not say what its references resolved to when "
            "it was given; not run"
        ]
    problems = []
    for arg in sorted(set(bound) | set(resolved)):
        was, now = bound.get(arg), resolved.get(arg)
        if canonical_json(was) != canonical_json(now):
            problems.append(
                f"step {step_id!r}, argument {arg!r}: approved as {_short(was)}, it resolves "
                f"now to {_short(now)} (the data changed since the review); not run"
            )
    return problems


def _short(value: Any, limit: int = 120) -> str:
    text = canonical_json(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

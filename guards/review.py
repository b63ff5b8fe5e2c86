"""Approval digests, validation of a reviewer's answer, and reviewer authorization.

An answer (:class:`~guards.answer.Answer`, LangChain's human-in-the-loop decisions plus who
answers and which review) is checked whole for its shape, then the rules across fields are
applied to it: step ids, counts, who answers, and that the review it names (``decision_id``
and ``plan_id``) is the one pending. Behind the LangGraph server the reviewer and their
roles come from authentication and the payload cannot change them; local callers (the CLI,
the Python API) name the reviewer and role in the answer (``role`` defaults to
``reviewer``). Whether a reviewer may approve a step is the policy's decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from guards.answer import (
    DECISION_TYPES,
    Answer,
    AnswerDecision,
    ApproveDecision,
    EditDecision,
    EditedAction,
    RejectDecision,
    RespondDecision,
    answer_problems,
)
from guards.compat import from_agent_inbox
from guards.errors import DecisionInvalid, ReviewChanged
from guards.judgement import Decision, StepReview
from guards.limits import MAX_ANSWER_BYTES, document_problem
from guards.plan import Plan
from tools.catalog import Catalog

if TYPE_CHECKING:
    from guards.policy import Policy

__all__ = [
    "DECISION_TYPES",
    "DECLINING",
    "DEFAULT_ROLE",
    "Answer",
    "AnswerDecision",
    "ApproveDecision",
    "EditDecision",
    "EditedAction",
    "Identity",
    "RejectDecision",
    "RespondDecision",
    "answer_problems",
    "apply_edits",
    "authorize",
    "identity_from_config",
    "parse_answer",
]

DECLINING = ("reject", "respond")
"""Decisions that do not run the step: they need no authority, and the run ends with them."""
DEFAULT_ROLE = "reviewer"
"""Role of a local reviewer who names none."""

UNNAMED = (
    "the answer does not say which review it answers: add 'decision_id' and 'plan_id' from "
    "the pending review (its interrupt value), or send the answer keyed by its interrupt id "
    "({interrupt_id: answer}; the only way for a legacy Agent Inbox answer, which has no place "
    "for them)"
)
"""The problem with an answer that must name its review and names neither id."""


@dataclass(frozen=True)
class Identity:
    """An authenticated reviewer (from the server's auth), overriding the payload.

    Attributes:
        id: The identity.
        roles: Its roles.
    """

    id: str
    roles: tuple[str, ...] = field(default_factory=tuple)


def identity_from_config(config: Mapping[str, Any] | None) -> Identity | None:
    """Return the authenticated user LangGraph's server put in the run's config, if any.

    Roles are read from a ``roles`` field or from ``role:<name>`` permissions.
    """
    if not config:
        return None
    user = (config.get("configurable") or {}).get("langgraph_auth_user")
    if user is None:
        return None
    ident = getattr(user, "identity", None)
    if ident is None and isinstance(user, Mapping):
        ident = user.get("identity")
    if not isinstance(ident, str) or not ident:
        return None
    roles: set[str] = set()
    raw_roles: Any = None
    try:
        raw_roles = user["roles"]
    except (KeyError, TypeError, IndexError):
        raw_roles = getattr(user, "roles", None)
    if isinstance(raw_roles, (list, tuple, set)):
        roles |= {str(r) for r in raw_roles}
    permissions = getattr(user, "permissions", None)
    if permissions is None and isinstance(user, Mapping):
        permissions = user.get("permissions")
    for perm in permissions or []:
        if isinstance(perm, str) and perm.startswith("role:"):
            roles.add(perm.removeprefix("role:"))
    return Identity(id=ident, roles=tuple(sorted(roles)))


def parse_answer(
    payload: Any,
    pending: Sequence[StepReview],
    plan: Plan,
    identity: Identity | None = None,
    *,
    decision_id: str | None = None,
    must_name: bool = False,
) -> list[Decision]:
    """Validate a resume payload against the pending reviews and return typed decisions.

    The payload is an :class:`Answer` (a legacy Agent Inbox answer is translated first).
    With an authenticated ``identity`` the reviewer and roles come from it and the
    payload's ``reviewer``/``role``/``roles`` are ignored. Without step ids, decisions
    answer the action requests in order and must match their count; with step ids on every
    decision, they may answer a subset of the pending steps. An answer naming its review
    names both ids, and they must be those pending. Problems of shape are reported
    together; the rules across fields are then checked on the well-formed answer.

    Args:
        payload: The resume payload, as sent.
        pending: The steps awaiting review.
        plan: The plan under review (its id is the ``plan_id`` an answer may name).
        identity: The authenticated reviewer, if any.
        decision_id: The run's decision id (checked when the answer names one).
        must_name: Refuse an answer that names neither ``decision_id`` nor ``plan_id``.

    Raises:
        ReviewChanged: the answer names another decision or plan than the pending one.
        DecisionInvalid: naming every problem found; nothing is applied.
    """
    too_big = document_problem(payload, "the answer", MAX_ANSWER_BYTES)
    if too_big is not None:
        raise DecisionInvalid([too_big])
    try:
        answer = Answer.model_validate(from_agent_inbox(payload))
    except ValidationError as exc:
        raise DecisionInvalid(answer_problems(exc)) from None
    problems = _named_review(answer, plan.id, decision_id, must_name)
    decisions, found = _decide(answer, [r.step_id for r in pending], plan, identity)
    problems += found
    if problems:
        raise DecisionInvalid(problems)
    return decisions


def _named_review(
    answer: Answer, plan_id: str, decision_id: str | None, must_name: bool
) -> list[str]:
    """Check the review an answer names against the pending one.

    Raises:
        ReviewChanged: the answer names another decision or plan.
    """
    if decision_id is not None and answer.decision_id not in (None, decision_id):
        raise ReviewChanged(f"decision {answer.decision_id}", f"decision {decision_id}")
    if answer.plan_id not in (None, plan_id):
        raise ReviewChanged(f"plan {answer.plan_id}", f"plan {plan_id}")
    if (answer.decision_id is None) != (answer.plan_id is None):
        given, missing = (
            ("decision_id", "plan_id") if answer.plan_id is None else ("plan_id", "decision_id")
        )
        return [f"the answer names its '{given}' but not its '{missing}': give both"]
    if answer.decision_id is None and must_name:
        return [UNNAMED]
    return []


def _decide(
    answer: Answer, pending_ids: list[str], plan: Plan, identity: Identity | None
) -> tuple[list[Decision], list[str]]:
    """Apply the rules across fields to a well-formed answer."""
    problems: list[str] = []
    reviewer = answer.reviewer
    roles = _roles(answer, problems)
    if identity is not None:
        reviewer, roles = identity.id, list(identity.roles)
    targets = _targets(answer.decisions, pending_ids, problems)
    decisions: list[Decision] = []
    for i, (d, sid) in enumerate(zip(answer.decisions, targets, strict=True)):
        who = reviewer if identity is not None else d.reviewer or reviewer
        if who is None:
            problems.append(f"decisions[{i}]: a reviewer is required ('reviewer' on the answer)")
            continue
        if sid is None:
            continue
        tool = args = message = None
        if isinstance(d, EditDecision):
            tool = d.edited_action.name or plan.step(sid).tool
            args = d.edited_action.call_args
        elif isinstance(d, (RejectDecision, RespondDecision)):
            message = d.message
        decisions.append(
            Decision(
                step_id=sid,
                type=d.type,
                reviewer=who,
                roles=roles,
                tool=tool,
                args=args,
                message=message,
            )
        )
    return decisions, problems


def _targets(
    decisions: Sequence[AnswerDecision], pending_ids: list[str], problems: list[str]
) -> list[str | None]:
    """Return the step each decision answers (``None`` where it cannot be told)."""
    with_ids = [d.step_id is not None for d in decisions]
    if any(with_ids) and not all(with_ids):
        problems.append("either every decision names its 'step_id' or none does")
    if not all(with_ids):
        if len(decisions) != len(pending_ids):
            problems.append(
                f"expected {len(pending_ids)} decisions (one per pending step: "
                f"{', '.join(pending_ids)}), got {len(decisions)}"
            )
        return [pending_ids[i] if i < len(pending_ids) else None for i in range(len(decisions))]
    targets: list[str | None] = []
    for i, d in enumerate(decisions):
        sid = d.step_id
        if sid not in pending_ids:
            problems.append(
                f"decisions[{i}].step_id {sid!r} is not awaiting review "
                f"(pending: {', '.join(pending_ids)})"
            )
            targets.append(None)
        elif sid in targets:
            problems.append(f"decisions[{i}]: step {sid!r} is answered twice")
            targets.append(None)
        else:
            targets.append(sid)
    return targets


def apply_edits(plan: Plan, decisions: Sequence[Decision]) -> Plan:
    """Return ``plan`` with the reviewers' edits applied (a new ``edit`` plan), or ``plan``."""
    edits = {d.step_id: d for d in decisions if d.type == "edit"}
    if not edits:
        return plan
    steps = [
        s.model_copy(update={"tool": edits[s.id].tool, "args": edits[s.id].args})
        if s.id in edits
        else s
        for s in plan.steps
    ]
    return Plan(source="edit", goal=plan.goal, template=plan.template, steps=steps)


def _roles(answer: Answer, problems: list[str]) -> list[str]:
    if answer.role is not None and answer.roles is not None:
        problems.append("give 'role' or 'roles', not both")
        return []
    if answer.roles is not None:
        return sorted(set(answer.roles))
    if answer.role is not None:
        return [answer.role]
    return [DEFAULT_ROLE]


def authorize(
    decisions: Sequence[Decision],
    reviews: Sequence[StepReview],
    plan: Plan,
    catalog: Catalog,
    policy: Policy,
    actor: str | None,
) -> None:
    """Check with the policy that each approving reviewer may approve the step they answer.

    Rejections and responses need no authority. Raises :class:`DecisionInvalid` naming every
    refusal; nothing is applied.
    """
    by_step = {r.step_id: r for r in reviews}
    problems: list[str] = []
    for d in decisions:
        if d.type in DECLINING or d.step_id not in by_step:
            continue
        entry = catalog.get(plan.step(d.step_id).tool)
        risk = entry.spec.risk if entry is not None else "high"
        problems += policy.approval_denied(by_step[d.step_id], risk, d.reviewer, d.roles, actor)
    if problems:
        raise DecisionInvalid(problems)

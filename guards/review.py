"""Approval digests, validation of a reviewer's answer, and reviewer authorization.

Answers follow LangChain's human-in-the-loop schema (``decisions`` of type ``approve`` /
``edit`` / ``reject``) plus who answers; :class:`Answer` is that shape, checked whole before
the rules across fields (step ids, counts, who answers) are applied to it. Behind the
LangGraph server the reviewer and their roles come from authentication and the payload
cannot change them; local callers (the CLI, the Python API) name the reviewer and role in
the answer (``role`` defaults to ``reviewer``). Whether a reviewer may approve a step is
the policy's decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import ErrorDetails

from guards.compat import from_agent_inbox
from guards.errors import DecisionInvalid
from guards.judgement import Decision, StepReview
from guards.limits import MAX_ANSWER_BYTES, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, document_problem
from guards.plan import Plan
from guards.problems import field_path, field_problem, type_name, unknown_keys
from tools.catalog import Catalog

if TYPE_CHECKING:
    from guards.policy import Policy

DECISION_TYPES = ("approve", "edit", "reject")
DEFAULT_ROLE = "reviewer"
"""Role of a local reviewer who names none."""

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_CHARS)
]
"""A reviewer's name or a role: non-empty once stripped, at most MAX_NAME_CHARS."""


class _Answered(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    step_id: str | None = Field(
        default=None, description="The step answered; without it, decisions go in order."
    )
    reviewer: Name | None = Field(
        default=None, description="Who answers this step (local callers; else the answer's)."
    )


class ApproveDecision(_Answered):
    """Run the step as it is."""

    type: Literal["approve"]


class EditedAction(BaseModel):
    """The call a reviewer puts in place of the step's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1)] | None = Field(
        default=None, description="The tool; the step's own when left out."
    )
    arguments: dict[str, Any] = Field(description="The arguments to run it with.")


class EditDecision(_Answered):
    """Run the step with another call."""

    type: Literal["edit"]
    edited_action: EditedAction


class RejectDecision(_Answered):
    """Do not run the step (the run is sent back or ends)."""

    type: Literal["reject"]
    message: Annotated[str, Field(max_length=MAX_MESSAGE_CHARS)] | None = Field(
        default=None, description="Why, for the requester."
    )


AnswerDecision = Annotated[
    ApproveDecision | EditDecision | RejectDecision, Field(discriminator="type")
]
"""One decision, told apart by its ``type``."""


class Answer(BaseModel):
    """A resume payload: decisions on the pending steps, and who gives them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decisions: list[AnswerDecision] = Field(min_length=1)
    reviewer: Name | None = Field(default=None, description="Who answers (local callers).")
    role: Name | None = Field(default=None, description="The reviewer's role.")
    roles: list[Name] | None = Field(default=None, description="The reviewer's roles.")


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
) -> list[Decision]:
    """Validate a resume payload against the pending reviews and return typed decisions.

    The payload is an :class:`Answer` (a legacy Agent Inbox answer is translated first).
    With an authenticated ``identity`` the reviewer and roles come from it and the
    payload's ``reviewer``/``role``/``roles`` are ignored. Without step ids, decisions
    answer the action requests in order and must match their count; with step ids on every
    decision, they may answer a subset of the pending steps. Problems of shape are reported
    together; the rules across fields are then checked on the well-formed answer.

    Raises:
        DecisionInvalid: naming every problem found; nothing is applied.
    """
    too_big = document_problem(payload, "the answer", MAX_ANSWER_BYTES)
    if too_big is not None:
        raise DecisionInvalid([too_big])
    try:
        answer = Answer.model_validate(from_agent_inbox(payload))
    except ValidationError as exc:
        raise DecisionInvalid(answer_problems(exc)) from None
    decisions, problems = _decide(answer, [r.step_id for r in pending], plan, identity)
    if problems:
        raise DecisionInvalid(problems)
    return decisions


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
            args = d.edited_action.arguments
        elif isinstance(d, RejectDecision):
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


def answer_problems(exc: ValidationError) -> list[str]:
    """Say what is wrong with an answer's shape, one problem per field, in its own terms."""
    errors = exc.errors()
    problems: list[str] = []
    for parent, keys in unknown_keys(errors).items():
        if not parent:
            problems.append(f"unknown keys {keys} (expected 'decisions', 'reviewer' and 'role')")
            continue
        where = field_path(_untagged(parent))
        if "edited_action" in keys and parent[2:] != ("edit",):
            problems.append(f"{where}: 'edited_action' is only allowed with type 'edit'")
            keys.remove("edited_action")
        if keys:
            problems.append(f"{where} has unknown keys {keys}")
    problems += [_answer_problem(err) for err in errors if err["type"] != "extra_forbidden"]
    return problems


def _untagged(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop the decision type pydantic puts in a location: ``decisions.0.edit.x`` is ``...0.x``."""
    return loc[:2] + loc[3:] if loc[:1] == ("decisions",) else loc


def _answer_problem(err: ErrorDetails) -> str:
    loc, found = err["loc"], err["input"]
    if not loc:
        return (
            f"the answer must be an object with 'decisions' and 'reviewer', got {type_name(found)}"
        )
    if loc == ("decisions",):
        return "'decisions' must be a non-empty list"
    if loc[0] != "decisions":
        return field_problem(f"'{field_path(loc)}'", err)
    where = field_path(loc[:2])
    if len(loc) == 2:
        if err["type"].startswith("union_tag"):
            return (
                f"{where}.type must be one of {', '.join(DECISION_TYPES)}, "
                f"got {found.get('type')!r}"
            )
        return f"{where} must be an object, got {type_name(found)}"
    field = loc[3:]  # past the decision's type
    if field == ("edited_action",):
        return f"{where}.edited_action must be an object with 'name' and 'arguments'"
    if field == ("edited_action", "arguments"):
        return f"{where}.edited_action.arguments must be an object"
    if field == ("edited_action", "name"):
        return f"{where}.edited_action.name must be a tool name"
    return field_problem(field_path(field, where), err)


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

    Rejections need no authority. Raises :class:`DecisionInvalid` naming every refusal;
    nothing is applied.
    """
    by_step = {r.step_id: r for r in reviews}
    problems: list[str] = []
    for d in decisions:
        if d.type == "reject" or d.step_id not in by_step:
            continue
        entry = catalog.get(plan.step(d.step_id).tool)
        risk = entry.spec.risk if entry is not None else "high"
        problems += policy.approval_denied(by_step[d.step_id], risk, d.reviewer, d.roles, actor)
    if problems:
        raise DecisionInvalid(problems)

"""Approval digests, validation of a reviewer's answer, and reviewer authorization.

Answers follow LangChain's human-in-the-loop schema (``decisions`` of type ``approve`` /
``edit`` / ``reject``) plus who answers. Behind the LangGraph server the reviewer and their
roles come from authentication and the payload cannot change them; local callers (the CLI,
the Python API) name the reviewer and role in the answer (``role`` defaults to
``reviewer``). Whether a reviewer may approve a step is the policy's decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from guards.compat import from_agent_inbox
from guards.errors import DecisionInvalid
from guards.judgement import Decision, StepReview
from guards.plan import Plan
from tools.catalog import Catalog

if TYPE_CHECKING:
    from guards.policy import Policy

DECISION_TYPES = ("approve", "edit", "reject")
DEFAULT_ROLE = "reviewer"
"""Role of a local reviewer who names none."""


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

    Accepted shape: ``{"decisions": [...], "reviewer": "name", "role": "reviewer"}``
    (``roles`` as a list also works). With an authenticated ``identity`` the reviewer and
    roles come from it and the payload's ``reviewer``/``role`` are ignored. Each decision is
    ``{"type": "approve"}``, ``{"type": "edit", "edited_action": {"name", "arguments"}}`` or
    ``{"type": "reject", "message": "..."}``, optionally with ``step_id`` and ``reviewer``.
    Without step ids, decisions answer the action requests in order and must match their
    count; with step ids on every decision, they may answer a subset of the pending steps.

    Raises:
        DecisionInvalid: naming every problem found; nothing is applied.
    """
    payload = from_agent_inbox(payload)
    problems: list[str] = []
    if not isinstance(payload, Mapping):
        raise DecisionInvalid(
            [
                "the answer must be an object with 'decisions' and 'reviewer', "
                f"got {type(payload).__name__}"
            ]
        )
    unknown = sorted(set(payload) - {"decisions", "reviewer", "role", "roles"})
    if unknown:
        problems.append(f"unknown keys {unknown} (expected 'decisions', 'reviewer' and 'role')")
    raw = payload.get("decisions")
    if not isinstance(raw, list) or not raw:
        raise DecisionInvalid([*problems, "'decisions' must be a non-empty list"])
    top_reviewer = payload.get("reviewer")
    if top_reviewer is not None and (not isinstance(top_reviewer, str) or not top_reviewer.strip()):
        problems.append("'reviewer' must be a non-empty string")
        top_reviewer = None
    roles = _roles(payload, problems)
    if identity is not None:
        top_reviewer, roles = identity.id, list(identity.roles)

    pending_ids = [r.step_id for r in pending]
    with_ids = [isinstance(d, Mapping) and "step_id" in d for d in raw]
    if any(with_ids) and not all(with_ids):
        problems.append("either every decision names its 'step_id' or none does")
    targets: list[str | None]
    if all(with_ids):
        targets = []
        for i, d in enumerate(raw):
            sid = d["step_id"]
            if not isinstance(sid, str) or sid not in pending_ids:
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
    else:
        if len(raw) != len(pending_ids):
            problems.append(
                f"expected {len(pending_ids)} decisions (one per pending step: "
                f"{', '.join(pending_ids)}), got {len(raw)}"
            )
        targets = [pending_ids[i] if i < len(pending_ids) else None for i in range(len(raw))]

    decisions: list[Decision] = []
    for i, (d, sid) in enumerate(zip(raw, targets, strict=True)):
        where = f"decisions[{i}]"
        if not isinstance(d, Mapping):
            problems.append(f"{where} must be an object, got {type(d).__name__}")
            continue
        extra = sorted(set(d) - {"type", "step_id", "reviewer", "edited_action", "message"})
        if extra:
            problems.append(f"{where} has unknown keys {extra}")
        kind = d.get("type")
        if kind not in DECISION_TYPES:
            problems.append(
                f"{where}.type must be one of {', '.join(DECISION_TYPES)}, got {kind!r}"
            )
            continue
        reviewer = top_reviewer if identity is not None else d.get("reviewer", top_reviewer)
        if not isinstance(reviewer, str) or not reviewer.strip():
            problems.append(f"{where}: a reviewer is required ('reviewer' on the answer)")
            continue
        if sid is None:
            continue
        tool = args = message = None
        if kind == "edit":
            action = d.get("edited_action")
            if not isinstance(action, Mapping):
                problems.append(
                    f"{where}.edited_action must be an object with 'name' and 'arguments'"
                )
                continue
            tool = action.get("name", plan.step(sid).tool)
            args = action.get("arguments")
            if not isinstance(tool, str) or not tool:
                problems.append(f"{where}.edited_action.name must be a tool name")
                continue
            if not isinstance(args, dict):
                problems.append(f"{where}.edited_action.arguments must be an object")
                continue
        elif "edited_action" in d:
            problems.append(f"{where}: 'edited_action' is only allowed with type 'edit'")
        if kind == "reject":
            message = d.get("message")
            if message is not None and not isinstance(message, str):
                problems.append(f"{where}.message must be a string")
                continue
        decisions.append(
            Decision(
                step_id=sid,
                type=kind,
                reviewer=reviewer.strip(),
                roles=roles,
                tool=tool,
                args=args,
                message=message,
            )
        )
    if problems:
        raise DecisionInvalid(problems)
    return decisions


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


def _roles(payload: Mapping[str, Any], problems: list[str]) -> list[str]:
    role, roles = payload.get("role"), payload.get("roles")
    if role is not None and roles is not None:
        problems.append("give 'role' or 'roles', not both")
        return []
    if roles is not None:
        if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
            problems.append("'roles' must be a list of role names")
            return []
        return sorted(set(roles))
    if role is not None:
        if not isinstance(role, str) or not role.strip():
            problems.append("'role' must be a non-empty string")
            return []
        return [role.strip()]
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

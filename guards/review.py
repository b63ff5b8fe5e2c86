"""Who must review what, approval digests, and validation of a reviewer's answer.

Until the policy engine decides it, every step whose tool writes to the domain needs a
human. Answers follow LangChain's human-in-the-loop schema (``decisions`` of type
``approve`` / ``edit`` / ``reject``) plus the reviewer's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from graph.schemas import Decision, Plan, Step, StepReview, content_hash
from guards.errors import DecisionInvalid
from tools.catalog import Catalog

DECISION_TYPES = ("approve", "edit", "reject")


def reviews_required(plan: Plan, catalog: Catalog) -> list[StepReview]:
    """Return the steps that need a human, with the reason, in plan order."""
    out = []
    for step in plan.steps:
        entry = catalog.get(step.tool)
        if entry is not None and entry.spec.effect == "write":
            out.append(
                StepReview(
                    step_id=step.id,
                    reason=f"{step.tool} changes the domain (risk {entry.spec.risk})",
                )
            )
    return out


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


def parse_answer(payload: Any, pending: Sequence[StepReview], plan: Plan) -> list[Decision]:
    """Validate a resume payload against the pending reviews and return typed decisions.

    Accepted shape: ``{"decisions": [...], "reviewer": "name"}``. Each decision is
    ``{"type": "approve"}``, ``{"type": "edit", "edited_action": {"name", "arguments"}}`` or
    ``{"type": "reject", "message": "..."}``, optionally with ``step_id`` and ``reviewer``.
    Without step ids, decisions answer the action requests in order and must match their
    count; with step ids on every decision, they may answer a subset of the pending steps.

    Raises:
        DecisionInvalid: naming every problem found; nothing is applied.
    """
    problems: list[str] = []
    if not isinstance(payload, Mapping):
        raise DecisionInvalid(
            [
                "the answer must be an object with 'decisions' and 'reviewer', "
                f"got {type(payload).__name__}"
            ]
        )
    unknown = sorted(set(payload) - {"decisions", "reviewer"})
    if unknown:
        problems.append(f"unknown keys {unknown} (expected 'decisions' and 'reviewer')")
    raw = payload.get("decisions")
    if not isinstance(raw, list) or not raw:
        raise DecisionInvalid([*problems, "'decisions' must be a non-empty list"])
    top_reviewer = payload.get("reviewer")
    if top_reviewer is not None and (not isinstance(top_reviewer, str) or not top_reviewer.strip()):
        problems.append("'reviewer' must be a non-empty string")
        top_reviewer = None

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
        reviewer = d.get("reviewer", top_reviewer)
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
                tool=tool,
                args=args,
                message=message,
            )
        )
    if problems:
        raise DecisionInvalid(problems)
    return decisions


POLICY_VERSION = "writes-need-review@1"
"""Version of the built-in review rule (every write step needs a human)."""

"""Turning the options of ``planbound approve`` into a review answer.

The answer has the shape the approval step validates: ``{"decisions": [{"type": ...,
"step_id": ...}, ...], "decision_id": ..., "plan_id": ..., "reviewer": ..., "role": ...}``,
naming the review it answers as the thread shows it; or it is the raw ``--payload``
document, passed on unchecked for the approval step to judge (it must name its review
itself).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graph.cli.common import UsageError

EDITED_KEYS = frozenset({"name", "args", "arguments"})
"""The keys of a whole edited action given to ``--edit`` (``arguments`` is deprecated).

``--edit '{"reason": "..."}'`` (arguments alone) changes the named arguments and keeps the
step's others; ``--edit '{"args": {...}}'`` (an edited action, as in LangChain's
human-in-the-loop schema) gives the whole arguments, replacing them."""
PARTIAL = "__partial__"


@dataclass(frozen=True)
class ApproveFlags:
    """The answer options given to ``planbound approve``.

    Attributes:
        reviewer: ``--reviewer``: who answers (required unless ``payload`` is given).
        role: ``--role``: the reviewer's role.
        all_steps: ``--all``: answer every pending step.
        step: ``--step``: answer this one step.
        approve: ``--approve``.
        edit: ``--edit``: arguments to change as a JSON object, merged over the step's; or
            a whole edited action (``{"args": {...}}``, optionally with ``name``).
        reject: ``--reject``: the reason for rejecting.
        respond: ``--respond``: a response in the step's place (the step is not run).
        payload: ``--payload``: a raw answer as JSON, exclusive of every other option.
    """

    reviewer: str = ""
    role: str = "reviewer"
    all_steps: bool = False
    step: str | None = None
    approve: bool = False
    edit: str | None = None
    reject: str | None = None
    respond: str | None = None
    payload: str | None = None


@dataclass(frozen=True)
class PendingReview:
    """The review a thread shows as pending: what an answer names and the steps it covers.

    Attributes:
        decision_id: The run's decision id.
        plan_id: The id of the plan under review.
        tools: The tool of each step awaiting review, by step id, in order.
        args: The arguments of each step awaiting review, by step id (what a partial
            ``--edit`` is merged over).
    """

    decision_id: str
    plan_id: str
    tools: dict[str, str] = field(default_factory=dict)
    args: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, outcome: Mapping[str, Any]) -> PendingReview:
        """Read the pending review from a run's outcome (see :func:`graph.inspect.outcome`)."""
        plan = outcome.get("plan") or {}
        return cls(
            decision_id=str(outcome.get("decision_id")),
            plan_id=str(plan.get("id")),
            tools={str(p["step_id"]): str(p["tool"]) for p in outcome.get("pending") or []},
            args={
                str(p["step_id"]): dict(p.get("args") or {}) for p in outcome.get("pending") or []
            },
        )


def review_answer(flags: ApproveFlags, pending: Callable[[], PendingReview]) -> Any:
    """Build the review answer the options describe.

    Args:
        flags: The options given.
        pending: Returns the pending review; called only when the options were found
            consistent, and never for ``--payload``.

    Returns:
        The answer: the parsed ``--payload``, or one decision per answered step, naming the
        pending review.

    Raises:
        UsageError: The options are missing, contradictory or not valid JSON.
    """
    answers = [flags.approve, flags.edit is not None, flags.reject is not None]
    answers.append(flags.respond is not None)
    if flags.payload is not None:
        if flags.all_steps or flags.step or any(answers):
            raise UsageError("--payload cannot be combined with other answer options")
        try:
            return json.loads(flags.payload)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--payload is not JSON ({exc})") from exc
    if not flags.reviewer.strip():
        raise UsageError("--reviewer NAME is required")
    if flags.all_steps == (flags.step is not None):
        raise UsageError("give --all or --step ID (exactly one)")
    if sum(answers) != 1:
        raise UsageError("give exactly one of --approve, --edit JSON, --reject MSG, --respond MSG")
    if flags.edit is not None and flags.all_steps:
        raise UsageError("--edit applies to one step: use --step ID")
    decision = _decision(flags)
    review = pending()
    steps = [flags.step] if flags.step is not None else list(review.tools)
    decisions = [{**decision, "step_id": step_id} for step_id in steps]
    for d in decisions:
        action = d.get("edited_action")
        if action is None:
            continue
        step_id = d["step_id"]
        partial = action.pop(PARTIAL, False)
        if step_id not in review.tools:
            continue  # refused when judged: the step is not awaiting review
        if partial:  # the named arguments change, the others stay as they are
            action["args"] = {**review.args.get(step_id, {}), **action["args"]}
        if "name" not in action:
            d["edited_action"] = {"name": review.tools[step_id], **action}
    return {
        "decisions": decisions,
        "decision_id": review.decision_id,
        "plan_id": review.plan_id,
        "reviewer": flags.reviewer,
        "role": flags.role,
    }


def _decision(flags: ApproveFlags) -> dict[str, Any]:
    """Return the one decision (without its step) that ``flags`` ask for."""
    if flags.reject is not None:
        return {"type": "reject", "message": flags.reject}
    if flags.respond is not None:
        return {"type": "respond", "message": flags.respond}
    if flags.edit is not None:
        try:
            edited = json.loads(flags.edit)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--edit is not JSON ({exc})") from exc
        if not isinstance(edited, dict):
            raise UsageError("--edit must be a JSON object of arguments")
        whole = bool(edited) and set(edited) <= EDITED_KEYS and set(edited) != {"name"}
        action = dict(edited) if whole else {"args": edited, PARTIAL: True}
        if "arguments" in action and "args" not in action:
            action["args"] = action.pop("arguments")
        return {"type": "edit", "edited_action": action}
    return {"type": "approve"}

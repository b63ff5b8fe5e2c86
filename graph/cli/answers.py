"""Turning the options of ``planbound approve`` into a review answer.

The answer has the shape the approval step validates:
``{"decisions": [{"type": ..., "step_id": ...}, ...], "reviewer": ..., "role": ...}``,
or is the raw ``--payload`` document, passed on unchecked for the approval step to judge.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from graph.cli.common import UsageError


@dataclass(frozen=True)
class ApproveFlags:
    """The answer options given to ``planbound approve``.

    Attributes:
        reviewer: ``--reviewer``: who answers (required unless ``payload`` is given).
        role: ``--role``: the reviewer's role.
        all_steps: ``--all``: answer every pending step.
        step: ``--step``: answer this one step.
        approve: ``--approve``.
        edit: ``--edit``: new arguments as a JSON object (alone, or under ``arguments``).
        reject: ``--reject``: the reason for rejecting.
        payload: ``--payload``: a raw answer as JSON, exclusive of every other option.
    """

    reviewer: str = ""
    role: str = "reviewer"
    all_steps: bool = False
    step: str | None = None
    approve: bool = False
    edit: str | None = None
    reject: str | None = None
    payload: str | None = None


def review_answer(flags: ApproveFlags, pending: Callable[[], Sequence[str]]) -> Any:
    """Build the review answer the options describe.

    Args:
        flags: The options given.
        pending: Returns the ids of the steps awaiting review; called only for ``--all``,
            after the options were found consistent.

    Returns:
        The answer: the parsed ``--payload``, or one decision per answered step.

    Raises:
        UsageError: The options are missing, contradictory or not valid JSON.
    """
    if flags.payload is not None:
        if (
            flags.all_steps
            or flags.step
            or flags.approve
            or flags.edit is not None
            or flags.reject is not None
        ):
            raise UsageError("--payload cannot be combined with other answer options")
        try:
            return json.loads(flags.payload)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--payload is not JSON ({exc})") from exc
    if not flags.reviewer.strip():
        raise UsageError("--reviewer NAME is required")
    if flags.all_steps == (flags.step is not None):
        raise UsageError("give --all or --step ID (exactly one)")
    if sum([flags.approve, flags.edit is not None, flags.reject is not None]) != 1:
        raise UsageError("give exactly one of --approve, --edit JSON, --reject MSG")
    if flags.edit is not None and flags.all_steps:
        raise UsageError("--edit applies to one step: use --step ID")
    decision = _decision(flags)
    steps = [flags.step] if flags.step is not None else list(pending())
    return {
        "decisions": [{**decision, "step_id": step_id} for step_id in steps],
        "reviewer": flags.reviewer,
        "role": flags.role,
    }


def _decision(flags: ApproveFlags) -> dict[str, Any]:
    """Return the one decision (without its step) that ``flags`` ask for."""
    if flags.reject is not None:
        return {"type": "reject", "message": flags.reject}
    if flags.edit is not None:
        try:
            edited = json.loads(flags.edit)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--edit is not JSON ({exc})") from exc
        if not isinstance(edited, dict):
            raise UsageError("--edit must be a JSON object of arguments")
        action = edited if "arguments" in edited else {"arguments": edited}
        return {"type": "edit", "edited_action": action}
    return {"type": "approve"}

"""Answers in the legacy Agent Inbox ``HumanResponse`` shape, turned into planbound's.

Agent Inbox answers an interrupt with a list of ``{"type": ..., "args": ...}``, one per action
request, in order:

- ``{"type": "accept", "args": None}`` approves the step;
- ``{"type": "edit", "args": {"action": name, "args": {...}}}`` edits it;
- ``{"type": "response", "args": "text"}`` sends it back with a message (a reject);
- ``{"type": "ignore", "args": None}`` declines it (a reject).

The result is planbound's resume shape (``{"decisions": [...]}``, see
:func:`guards.review.parse_answer`), which then goes through the same validation as any other
answer. The legacy shape names no reviewer; the reviewer comes from whoever is authenticated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LEGACY_TYPES = ("accept", "edit", "response", "ignore")

IGNORED = "ignored by the reviewer"
"""The reject message recorded for an ``ignore`` answer."""


def _is_human_response(item: Any) -> bool:
    return (
        isinstance(item, Mapping)
        and item.get("type") in LEGACY_TYPES
        and set(item) <= {"type", "args"}
    )


def _decision(item: Mapping[str, Any]) -> dict[str, Any]:
    kind, args = item["type"], item.get("args")
    if kind == "accept":
        return {"type": "approve"}
    if kind == "edit":
        if isinstance(args, Mapping) and set(args) <= {"action", "args"}:
            action: dict[str, Any] = {"arguments": args.get("args")}
            if "action" in args:
                action["name"] = args["action"]
            return {"type": "edit", "edited_action": action}
        # Handed on as it is, so validation names what is wrong with it.
        return {"type": "edit", "edited_action": args}
    if kind == "response":
        return {"type": "reject", "message": args}
    return {"type": "reject", "message": IGNORED}


def from_agent_inbox(answer: Any) -> Any:
    """Translate a legacy ``HumanResponse`` answer; return anything else unchanged.

    Args:
        answer: A resume payload: a ``HumanResponse``, a non-empty list of them (one per
            pending step, in order), or any other value.

    Returns:
        ``{"decisions": [...]}`` for a legacy answer, else ``answer`` itself.
    """
    if _is_human_response(answer):
        return {"decisions": [_decision(answer)]}
    if isinstance(answer, list) and answer and all(_is_human_response(item) for item in answer):
        return {"decisions": [_decision(item) for item in answer]}
    return answer

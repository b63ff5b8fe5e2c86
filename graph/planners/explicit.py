"""Explicit plans: a plan written by a person or another system, read as data.

Accepted documents:

* ``{"goal": "...", "steps": [{"id", "tool", "args", "depends_on"?, "description"?}]}``
* a bare list of steps, or ``{"actions": [...]}``: τ²-bench action lists, where a step may
  say ``name`` for ``tool``, ``arguments`` (or ``kwargs``) for ``args`` and ``action_id``
  for ``id``; τ²'s bookkeeping keys (``requestor``, ``info``, ``compare_args``) are ignored.
  Steps without an id are numbered ``s1``, ``s2``, ... An action list is a sequence, as in
  τ²: when no action says ``depends_on``, each action depends on the one before it.

An explicit plan is still verified and governed like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from guards.errors import PlanInvalid
from guards.plan import CannotPlan, Plan, PlanRequest, Step, content_hash

_ALIASES = {"name": "tool", "arguments": "args", "kwargs": "args", "action_id": "id"}
_IGNORED = {"requestor", "info", "compare_args"}
_STEP_KEYS = {"id", "tool", "args", "depends_on", "description"}


def parse_plan_document(document: Any, goal: str = "") -> Plan:
    """Read a plan document into a :class:`Plan`.

    Raises:
        PlanInvalid: naming each malformed step and field.
    """
    sequential = not isinstance(document, Mapping) or "steps" not in document
    if isinstance(document, Mapping):
        unknown = sorted(set(document) - {"goal", "steps", "actions", "id", "source", "template"})
        if unknown:
            raise PlanInvalid([f"unknown top-level keys {unknown} (expected 'goal' and 'steps')"])
        raw_steps = document.get("steps", document.get("actions"))
        goal = str(document.get("goal") or goal)
    else:
        raw_steps = document
    if not isinstance(raw_steps, list):
        raise PlanInvalid(["the plan must be a list of steps or an object with a 'steps' list"])

    problems: list[str] = []
    steps: list[Step] = []
    items: list[dict[str, Any]] = []
    for i, raw in enumerate(raw_steps):
        where = f"steps[{i}]"
        if not isinstance(raw, Mapping):
            problems.append(f"{where} must be an object, got {type(raw).__name__}")
            continue
        item: dict[str, Any] = {}
        for key, value in raw.items():
            if key in _IGNORED:
                continue
            target = _ALIASES.get(key, key)
            if target not in _STEP_KEYS:
                problems.append(f"{where} has unknown key {key!r}")
                continue
            if target in item:
                problems.append(f"{where} gives {target!r} twice (as {key!r})")
                continue
            item[target] = value
        item.setdefault("id", f"s{i + 1}")
        items.append(item)
    if sequential and not any("depends_on" in item for item in items):
        for before, item in zip(items, items[1:], strict=False):
            item["depends_on"] = [before["id"]]
    for i, item in enumerate(items):
        where = f"steps[{i}]"
        try:
            steps.append(Step.model_validate(item))
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(f"{where}.{loc}: {err['msg']}")
    if problems:
        raise PlanInvalid(problems)
    return Plan(
        source="explicit", goal=goal or f"explicit plan {content_hash(raw_steps, 8)}", steps=steps
    )


class ExplicitPlanner:
    """Serves a plan given as data; it cannot re-plan."""

    name = "explicit"

    def __init__(self, document: Any) -> None:
        self.document = document

    @property
    def version(self) -> str:
        """Hash of the document served."""
        return content_hash(self.document, 12)

    @property
    def can_replan(self) -> bool:
        """An explicit plan is what it is: feedback cannot change it."""
        return False

    def plan(self, request: PlanRequest) -> Plan | CannotPlan:
        """Return the document as a plan (raises :class:`PlanInvalid` if malformed)."""
        return parse_plan_document(self.document, goal=request.text)

"""Fan-out: a step repeated once per element of a selection over earlier outputs.

"Cancel all my pending orders" cannot be written as a fixed list of calls before the orders
have been read. A step may carry ``foreach: {"$select": ..., "take": "all"}``; the verifier
evaluates that selection on its one read snapshot and writes the step once per element
(``s4_1``, ``s4_2`` ...), ``$each`` / ``$each.field`` in its arguments replaced by the
element. Budgets, the policy and the reviewer then judge the concrete calls. A selection
that reads a foreach step reads the list of its expansions' outputs.

Each expanded step keeps its :class:`~guards.plan.Repeat`: the selection and every element
it gave. Before the step runs the selection is evaluated again on the outputs at hand; a set
that differs (an order became pending, or stopped being pending) fails the step before any
write (:func:`repeat_problem`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from guards.errors import ReferenceUnresolved, SelectionEmpty
from guards.plan import EACH, Repeat, Step, canonical_json, is_each, map_strings, resolve_refs
from guards.select import SELECT_KEY, is_selection


def substitute(value: Any, element: Any, step_id: str) -> Any:
    """``value`` with every ``$each`` / ``$each.path`` string replaced by (part of) ``element``.

    Raises:
        ReferenceUnresolved: a path the element does not have.
    """

    def one(text: str) -> Any:
        if not is_each(text):
            return text
        current = element
        for part in text[len(EACH) + 1 :].split(".") if text != EACH else []:
            if isinstance(current, Mapping) and part in current:
                current = current[part]
            elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                raise ReferenceUnresolved(step_id, f"{text!r}: the element has no {part!r}")
        return current

    return map_strings(value, one)


def rename(step: Step, expanded: Mapping[str, list[str]]) -> Step:
    """``step`` with its selections of a foreach step reading that step's expansions."""
    if not expanded:
        return step

    def target(value: Any) -> Any:
        if isinstance(value, str):
            return expanded.get(value, value)
        if isinstance(value, list):
            return [t for v in value for t in (expanded.get(v, [v]) if isinstance(v, str) else [v])]
        return value

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            out = {k: walk(v) for k, v in value.items()}
            if is_selection(value):
                out[SELECT_KEY] = target(value[SELECT_KEY])
            return out
        return value

    deps = [d for dep in step.depends_on for d in expanded.get(dep, [dep])]
    return step.model_copy(
        update={
            "args": walk(step.args),
            "foreach": walk(step.foreach) if step.foreach is not None else None,
            "depends_on": list(dict.fromkeys(deps)),
        }
    )


def expand(step: Step, outputs: Mapping[str, Any]) -> list[Step]:
    """The steps a foreach ``step`` stands for, one per element its selection gives now.

    Raises:
        ReferenceUnresolved: the selection does not resolve, or matched nothing
            (:class:`~guards.errors.SelectionEmpty`): there is nothing to do it for.
    """
    if step.foreach is None:
        return [step]
    values = resolve_refs(step.foreach, outputs, step.id)
    if not isinstance(values, list):
        raise ReferenceUnresolved(step.id, "its foreach selection must take 'all' (a list)")
    out = []
    for n, value in enumerate(values):
        out.append(
            Step(
                id=f"{step.id}_{n + 1}",
                tool=step.tool,
                args=substitute(step.args, value, step.id),
                depends_on=step.depends_on,
                description=(step.description + " " if step.description else "")
                + f"({n + 1} of {len(values)}: {_short(value)})",
                repeat=Repeat(of=step.id, over=step.foreach, values=values, index=n),
            )
        )
    return out


def repeat_problem(step: Step, outputs: Mapping[str, Any]) -> str | None:
    """Why ``step``, written for one element of a foreach, must not run on ``outputs``.

    ``None`` when it is no expanded step, or its selection gives the same elements as when
    it was expanded.
    """
    repeat = step.repeat
    if repeat is None:
        return None
    try:
        now = resolve_refs(repeat.over, outputs, step.id)
    except SelectionEmpty:
        now = []
    except ReferenceUnresolved as exc:
        return f"the selection it is repeated over does not resolve: {exc.reason}"
    if canonical_json(now) == canonical_json(repeat.values):
        return None
    return (
        f"it is one of the steps written for each of {_short(repeat.values)}, and the "
        f"selection gives {_short(now)} now: the data changed since the plan was judged; "
        "not run"
    )


def _short(value: Any, limit: int = 160) -> str:
    text = canonical_json(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

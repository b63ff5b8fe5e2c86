"""Plan contracts: catalog membership, argument schemas, references, DAG shape, budgets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from guards.plan import (
    Plan,
    Step,
    find_cycle,
    has_ref,
    is_each,
    iter_refs,
    iter_selections,
    iter_strings,
)
from guards.select import check_selection, is_selection, parse_selection, strip_optional
from tools.catalog import Catalog


@dataclass(frozen=True)
class Budget:
    """Limits a plan must respect.

    Attributes:
        max_steps: Most steps in one plan.
        max_high_risk: Most steps whose tool is ``high`` risk.
        max_cost: Largest sum of the tools' estimated costs.
    """

    max_steps: int = 20
    max_high_risk: int = 6
    max_cost: float = 30.0


@dataclass(frozen=True)
class Finding:
    """One contract violation.

    Attributes:
        message: What is wrong.
        step_id: The offending step, if any.
        field: The offending argument or field, if any.
    """

    message: str
    step_id: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = []
        if self.step_id is not None:
            where.append(f"step {self.step_id!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return (", ".join(where) + ": " if where else "") + self.message


def check_path(output: Any, path: list[str]) -> str | None:
    """Check ``path`` against an output type; return a problem or ``None``.

    Pydantic models are walked field by field; ``dict[str, X]`` accepts any key; ``list[X]``
    needs an integer index; ``str`` and other scalars accept no further path; ``Any`` and
    bare ``dict``/``list`` accept anything.
    """
    current: Any = output
    for depth, part in enumerate(path):
        where = ".".join(path[: depth + 1])
        current = strip_optional(current)
        if current is Any or current is dict or current is list or current is object:
            return None
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = current.model_fields
            if part not in fields:
                known = ", ".join(sorted(fields))
                return f"output has no field {where!r} (fields: {known})"
            current = fields[part].annotation
            continue
        origin = get_origin(current)
        if origin is dict:
            current = get_args(current)[1] if get_args(current) else Any
            continue
        if origin is list:
            if not part.isdigit():
                return f"{where!r} indexes a list; use a number"
            current = get_args(current)[0] if get_args(current) else Any
            continue
        name = getattr(current, "__name__", repr(current))
        return f"output at {'.'.join(path[:depth]) or 'the top'} is a {name}; it has no {part!r}"
    return None


def check_plan(plan: Plan, catalog: Catalog, budget: Budget) -> list[Finding]:
    """Return every contract violation of ``plan``; an empty list means the plan holds.

    Checks, in order: budgets, unique step ids, each step's tool and arguments, references
    (to an existing, different step, along a field its output has), selections (their query
    parses and names fields the output has), declared dependencies, and that steps form a
    DAG.
    """
    findings: list[Finding] = []
    steps = plan.steps
    if not steps:
        findings.append(Finding("the plan has no steps"))
    if len(steps) > budget.max_steps:
        findings.append(
            Finding(f"the plan has {len(steps)} steps; the budget allows {budget.max_steps}")
        )
    ids = [s.id for s in steps]
    seen: set[str] = set()
    for sid in ids:
        if sid in seen:
            findings.append(Finding("the step id is used more than once", step_id=sid))
        seen.add(sid)
    by_id = {s.id: s for s in steps}

    high, cost = 0, 0.0
    for step in steps:
        entry = catalog.get(step.tool)
        if entry is None:
            findings.append(
                Finding(
                    f"unknown tool {step.tool!r} (catalog {catalog.name}@{catalog.version})",
                    step_id=step.id,
                    field="tool",
                )
            )
            continue
        high += entry.spec.risk == "high"
        cost += entry.spec.cost
        findings.extend(_check_args(step, catalog))
        for text, ref_step, path in iter_refs(step.args):
            findings.extend(_check_ref(step, text, ref_step, path, by_id, catalog))
        for selection in iter_selections(step.args):
            findings.extend(_check_selection(step, selection, by_id, catalog))
        findings.extend(_check_foreach(step, by_id, catalog))
        for dep in step.depends_on:
            if dep not in by_id:
                findings.append(
                    Finding(f"depends on unknown step {dep!r}", step_id=step.id, field="depends_on")
                )
            elif dep == step.id:
                findings.append(Finding("depends on itself", step_id=step.id, field="depends_on"))
    if high > budget.max_high_risk:
        findings.append(
            Finding(
                f"the plan has {high} high-risk steps; the budget allows {budget.max_high_risk}"
            )
        )
    if cost > budget.max_cost:
        findings.append(
            Finding(f"the plan's estimated cost is {cost:g}; the budget allows {budget.max_cost:g}")
        )

    cycle = find_cycle(plan)
    if cycle is not None:
        findings.append(Finding(f"the steps form a cycle: {' -> '.join(cycle)}"))
    return findings


def _check_args(step: Step, catalog: Catalog) -> list[Finding]:
    schema = catalog.args_schema(step.tool)
    fields = schema.model_fields
    out: list[Finding] = []
    for name in step.args:
        if name not in fields:
            known = ", ".join(fields) or "none"
            out.append(
                Finding(
                    f"{step.tool} takes no argument {name!r} (arguments: {known})",
                    step_id=step.id,
                    field=name,
                )
            )
    literal = {k: v for k, v in step.args.items() if k in fields and not _dynamic(v)}
    referenced = {k for k, v in step.args.items() if _dynamic(v)}
    try:
        schema.model_validate(literal)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            if err["type"] == "missing" and loc and loc[0] in referenced:
                continue
            out.append(
                Finding(
                    f"{err['msg']} (got {_short(err.get('input'))})"
                    if err["type"] != "missing"
                    else f"{step.tool} requires argument {'.'.join(loc)!r}",
                    step_id=step.id,
                    field=".".join(loc) or None,
                )
            )
    return out


def _check_ref(
    step: Step,
    text: str,
    ref_step: str,
    path: list[str],
    by_id: dict[str, Step],
    catalog: Catalog,
) -> list[Finding]:
    field = next((k for k, v in step.args.items() if text in set(iter_strings(v))), None)
    if not ref_step:
        return [
            Finding(
                f"{text!r} is not a valid reference (use '$s1' or '$s1.field'; '$$' for '$')",
                step_id=step.id,
                field=field,
            )
        ]
    if ref_step == step.id:
        return [Finding(f"{text!r} refers to its own step", step_id=step.id, field=field)]
    target = by_id.get(ref_step)
    if target is None:
        return [
            Finding(f"{text!r} refers to unknown step {ref_step!r}", step_id=step.id, field=field)
        ]
    entry = catalog.get(target.tool)
    if entry is None:
        return []  # the unknown tool is reported on its own step
    problem = check_path(entry.spec.output, path)
    if problem:
        return [Finding(f"{text!r}: {target.tool} {problem}", step_id=step.id, field=field)]
    return []


def _dynamic(value: Any) -> bool:
    """Whether an argument is known only at execution (a reference, selection or ``$each``)."""
    return has_ref(value) or any(is_each(t) for t in iter_strings(value))


def _check_foreach(step: Step, by_id: dict[str, Step], catalog: Catalog) -> list[Finding]:
    """A foreach is a selection with ``take: all``; ``$each`` only appears in such a step."""
    uses_each = any(is_each(t) for t in iter_strings(step.args))
    if step.foreach is None:
        if uses_each:
            return [Finding("'$each' names the element of a foreach; the step has none", step.id)]
        return []
    raw = step.foreach
    if not is_selection(raw):
        return [Finding("foreach must be a selection ($select, query, take: all)", step.id)]
    found = _check_selection(step, raw, by_id, catalog, field="foreach")
    if not found and parse_selection(raw).take != "all":
        found.append(Finding("a foreach selection takes 'all'", step.id, "foreach"))
    return found


def _selection_output(target: list[Step], catalog: Catalog) -> Any:
    """The type a selection reads: its step's output, or the list of its steps' outputs."""
    entries = [catalog.get(t.tool) for t in target]
    if any(e is None for e in entries):
        return None
    kinds = {e.spec.output for e in entries if e is not None}
    output = kinds.pop() if len(kinds) == 1 else Any
    return output


def _check_selection(
    step: Step,
    raw: dict[str, Any],
    by_id: dict[str, Step],
    catalog: Catalog,
    field: str | None = None,
) -> list[Finding]:
    if field is None:
        field = next(
            (k for k, v in step.args.items() if any(s is raw for s in iter_selections(v))), None
        )
    try:
        selection = parse_selection(raw)
    except ValueError as exc:
        return [Finding(str(exc), step_id=step.id, field=field)]
    where = f"the selection on {selection.step!r}"
    if not selection.steps:
        return [Finding(f"{where} names no step", step_id=step.id, field=field)]
    if step.id in selection.steps:
        return [Finding(f"{where} reads its own step", step_id=step.id, field=field)]
    unknown = [s for s in selection.steps if s not in by_id]
    if unknown:
        return [Finding(f"{where} reads unknown step {unknown[0]!r}", step_id=step.id, field=field)]
    targets = [by_id[s] for s in selection.steps]
    output = _selection_output(targets, catalog)
    if output is None:
        return []  # the unknown tool is reported on its own step
    fanned = isinstance(selection.step, list) or targets[0].foreach is not None
    tools = ", ".join(dict.fromkeys(t.tool for t in targets))
    return [
        Finding(f"{where} ({tools}): {problem}", step_id=step.id, field=field)
        for problem in check_selection(selection, list[output] if fanned else output)  # type: ignore[valid-type]
    ]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

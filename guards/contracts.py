"""Plan contracts: catalog membership, argument schemas, references, DAG shape, budgets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from guards.plan import Plan, Step, find_cycle, has_ref, iter_refs, iter_selections, iter_strings
from guards.select import check_selection, parse_selection, strip_optional
from tools.catalog import Catalog


@dataclass(frozen=True)
class Budget:
    """Limits a plan must respect.

    Attributes:
        max_steps: Most steps in one plan.
        max_high_risk: Most steps whose tool is ``high`` risk.
        max_cost: Largest sum of the tools' estimated costs.
    """

    max_steps: int = 12
    max_high_risk: int = 4
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
    literal = {k: v for k, v in step.args.items() if k in fields and not has_ref(v)}
    referenced = {k for k, v in step.args.items() if has_ref(v)}
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


def _check_selection(
    step: Step,
    raw: dict[str, Any],
    by_id: dict[str, Step],
    catalog: Catalog,
) -> list[Finding]:
    field = next(
        (k for k, v in step.args.items() if any(s is raw for s in iter_selections(v))), None
    )
    try:
        selection = parse_selection(raw)
    except ValueError as exc:
        return [Finding(str(exc), step_id=step.id, field=field)]
    where = f"the selection on {selection.step!r}"
    if selection.step == step.id:
        return [Finding(f"{where} reads its own step", step_id=step.id, field=field)]
    target = by_id.get(selection.step)
    if target is None:
        return [
            Finding(f"{where} reads unknown step {selection.step!r}", step_id=step.id, field=field)
        ]
    entry = catalog.get(target.tool)
    if entry is None:
        return []  # the unknown tool is reported on its own step
    return [
        Finding(f"{where} ({target.tool}): {problem}", step_id=step.id, field=field)
        for problem in check_selection(selection, entry.spec.output)
    ]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

"""The Plan IR: plans as data, references between steps, and their dependency order.

This is the vocabulary shared by planners (which write plans), guards (which judge them) and
the execution engine (which runs them). It imports nothing of planbound's.
"""

from __future__ import annotations

import graphlib
import hashlib
import heapq
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from guards.errors import ReferenceUnresolved
from guards.select import SELECT_KEY, evaluate, is_selection, parse_selection

STEP_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
REF = re.compile(r"^\$(?P<step>[A-Za-z][A-Za-z0-9_-]{0,63})(?P<path>(?:\.[A-Za-z0-9_-]+)*)$")
"""A reference to an earlier step's output: ``$s1`` (whole output) or ``$s1.field.0.sub``.

A step argument may also hold a selection, ``{"$select": "s1", "query": ...}``: a pure
JMESPath query over that output (:mod:`guards.select`).
"""

PlanSource = Literal["explicit", "template", "llm", "edit"]


def canonical_json(value: Any) -> str:
    """Serialise ``value`` deterministically (sorted keys, no spaces, UTF-8 kept)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any, length: int = 16) -> str:
    """Return the first ``length`` hex digits of the SHA-256 of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


EACH = "$each"
"""In the arguments of a step with ``foreach``: the element (``$each``) or a field of it
(``$each.order_id``) the step is written for."""


class Repeat(BaseModel):
    """Where a step expanded from a ``foreach`` came from, so execution can check its set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    of: str = Field(pattern=STEP_ID, description="Id of the foreach step it was expanded from.")
    over: dict[str, Any] = Field(
        description="The foreach selection, over the steps as expanded (a `$select` object)."
    )
    values: list[Any] = Field(description="Every element the selection gave when expanded.")
    index: int = Field(ge=0, description="Which element this step is for (0-based).")


class Step(BaseModel):
    """One tool call in a plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=STEP_ID, description="Unique step id within the plan, e.g. 's1'.")
    tool: str = Field(min_length=1, description="Name of a tool in the pinned catalog.")
    args: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Tool arguments. A string value '$s1.field' (or '$s1' for the whole output) is "
            "replaced at execution time by that earlier step's output; '$$' escapes '$'."
        ),
    )
    depends_on: list[str] = Field(
        default_factory=list,
        description="Ids of steps that must finish first (references imply dependencies).",
    )
    description: str = Field(default="", description="What the step is for, for reviewers.")
    foreach: dict[str, Any] | None = Field(
        default=None,
        description=(
            "A selection with take 'all' over earlier outputs: the verifier writes the step "
            "once per element (ids '<id>_1', '<id>_2' ...), '$each' or '$each.field' in its "
            "arguments naming the element; zero elements is a refusal."
        ),
    )
    repeat: Repeat | None = Field(
        default=None,
        description="Set on a step written from a foreach: the selection and its elements.",
    )


class Plan(BaseModel):
    """A plan as data. Its ``id`` is a content hash of goal and steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default="", description="Content hash; computed, never chosen.")
    source: PlanSource = Field(
        description="Which planner produced the plan (``edit`` for a reviewer's change)."
    )
    goal: str = Field(default="", description="The request or goal the plan serves.")
    template: str | None = Field(
        default=None, description="Template id and version for template plans, e.g. 'cancel@1'."
    )
    steps: list[Step] = Field(description="Steps in the order they were written.")

    @model_validator(mode="after")
    def _pin_id(self) -> Plan:
        expected = content_hash({"goal": self.goal, "steps": [_hashed(s) for s in self.steps]})
        if self.id and self.id != expected:
            raise ValueError(f"plan id {self.id!r} does not match its content hash {expected!r}")
        object.__setattr__(self, "id", expected)
        return self

    def step(self, step_id: str) -> Step:
        """Return the step with ``step_id`` or raise ``KeyError``."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)


def _hashed(step: Step) -> dict[str, Any]:
    """A step as its plan's id hashes it: ``foreach`` and ``repeat`` only when set.

    So a plan without them keeps the id it had before steps could carry them.
    """
    dumped = step.model_dump(mode="json")
    for key in ("foreach", "repeat"):
        if dumped.get(key) is None:
            dumped.pop(key, None)
    return dumped


class CannotPlan(BaseModel):
    """A planner's honest answer when it cannot map the request to a plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(description="Why no plan was produced, in words a user understands.")
    candidates: list[str] = Field(
        default_factory=list, description="Intents that matched weakly, if any."
    )


class PlanRequest(BaseModel):
    """What a planner receives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(description="The user's request.")
    feedback: list[str] = Field(
        default_factory=list,
        description="Verifier reasons or reviewer feedback from earlier tries.",
    )
    previous: Plan | None = Field(default=None, description="The plan that was refused, if any.")


# JSON values ----------------------------------------------------------------------------------


def iter_strings(value: Any) -> Iterator[str]:
    """Yield every string inside a JSON value (dict values and list items, depth first).

    Of a selection object only its ``params`` are data: its step id, query and ``take`` are
    not yielded (a query is never read or filled as a value).
    """
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from iter_strings(v)
    elif is_selection(value):
        yield from iter_strings(value.get("params"))
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_strings(v)


def map_strings(value: Any, fn: Callable[[str], Any]) -> Any:
    """Return a copy of a JSON value with every string ``s`` replaced by ``fn(s)``.

    Inside a selection object only the ``params`` are mapped (see :func:`iter_strings`).
    """
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [map_strings(v, fn) for v in value]
    if is_selection(value):
        if "params" not in value:
            return dict(value)
        return {**value, "params": map_strings(value["params"], fn)}
    if isinstance(value, dict):
        return {k: map_strings(v, fn) for k, v in value.items()}
    return value


def iter_selections(value: Any) -> Iterator[dict[str, Any]]:
    """Yield every ``$select`` object inside a JSON value, outer ones before their params'."""
    if isinstance(value, list):
        for v in value:
            yield from iter_selections(v)
    elif is_selection(value):
        yield value
        yield from iter_selections(value.get("params"))
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_selections(v)


# References -----------------------------------------------------------------------------------


def is_ref(text: str) -> bool:
    """Whether a string is meant as a reference (starts with ``$`` but not ``$$``).

    ``$each`` (the element of a foreach step) is no reference to a step.
    """
    return text.startswith("$") and not text.startswith("$$") and not is_each(text)


def is_each(text: str) -> bool:
    """Whether a string names the element of a foreach step (``$each`` or ``$each.path``)."""
    return text == EACH or text.startswith(EACH + ".")


def iter_refs(value: Any) -> Iterator[tuple[str, str, list[str]]]:
    """Yield ``(text, step_id, path)`` for every ``$step.path`` reference inside ``value``.

    A string that starts with ``$`` but is no valid reference is yielded with an empty step id.
    """
    for text in iter_strings(value):
        if not is_ref(text):
            continue
        m = REF.match(text)
        if m is None:
            yield text, "", []
        else:
            yield text, m.group("step"), [p for p in m.group("path").split(".") if p]


def has_ref(value: Any) -> bool:
    """Return whether ``value`` contains at least one reference or selection."""
    return any(True for _ in iter_refs(value)) or any(True for _ in iter_selections(value))


def selection_steps(value: Any) -> set[str]:
    """Return the ids of the steps that the selections inside ``value`` read."""
    found: set[str] = set()
    for sel in iter_selections(value):
        target = sel[SELECT_KEY]
        if isinstance(target, str):
            found.add(target)
        elif isinstance(target, list):
            found.update(t for t in target if isinstance(t, str))
    return found


def resolve_refs(value: Any, outputs: Mapping[str, Any], step_id: str) -> Any:
    """Replace ``$step.path`` references and selections in ``value`` with earlier outputs.

    Raises:
        ReferenceUnresolved: when a reference or a selection does not resolve against the
            actual outputs (:class:`~guards.errors.SelectionEmpty` and
            :class:`~guards.errors.SelectionAmbiguous` for a selection that matched nothing
            or, wanting one value, several).
    """

    def text(raw: str) -> Any:
        if not raw.startswith("$"):
            return raw
        if raw.startswith("$$"):
            return raw[1:]
        head, *path = raw[1:].split(".")
        if head not in outputs:
            raise ReferenceUnresolved(step_id, f"{raw!r}: step {head!r} has no output")
        current = outputs[head]
        for i, part in enumerate(path):
            where = ".".join([head, *path[: i + 1]])
            if isinstance(current, Mapping) and part in current:
                current = current[part]
            elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                raise ReferenceUnresolved(step_id, f"{raw!r}: the output has no {where!r}")
        return current

    def resolve(item: Any) -> Any:
        if isinstance(item, str):
            return text(item)
        if isinstance(item, list):
            return [resolve(v) for v in item]
        if is_selection(item):
            try:
                selection = parse_selection(item)
            except ValueError as exc:
                raise ReferenceUnresolved(step_id, str(exc)) from None
            missing = [s for s in selection.steps if s not in outputs]
            if missing:
                raise ReferenceUnresolved(
                    step_id, f"selection on {missing[0]!r}: that step has no output"
                )
            params = {k: resolve(v) for k, v in selection.params.items()}
            return evaluate(selection, selection.data(outputs), params, step_id)
        if isinstance(item, dict):
            return {k: resolve(v) for k, v in item.items()}
        return item

    return resolve(value)


# Dependency order -----------------------------------------------------------------------------


def dependencies(step: Step) -> set[str]:
    """Return the ids a step depends on: declared plus implied by references."""
    deps = set(step.depends_on)
    deps.update(sid for _, sid, _ in iter_refs(step.args) if sid)
    deps.update(selection_steps(step.args))
    deps.update(selection_steps(step.foreach))
    if step.repeat is not None:
        deps.update(selection_steps(step.repeat.over))
    return deps


def _sorter(plan: Plan) -> graphlib.TopologicalSorter[str]:
    ids = {s.id for s in plan.steps}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for step in plan.steps:
        sorter.add(step.id, *(d for d in dependencies(step) if d in ids and d != step.id))
    return sorter


def find_cycle(plan: Plan) -> list[str] | None:
    """Return the step ids of one dependency cycle, or ``None`` when the steps form a DAG."""
    try:
        _sorter(plan).prepare()
    except graphlib.CycleError as exc:
        return [str(n) for n in exc.args[1]]
    return None


def dependency_order(plan: Plan) -> list[Step]:
    """Steps in an order that respects dependencies, the earliest-written ready step first.

    A plan with a cycle (which the contracts report) comes back in plan order.
    """
    index = {s.id: i for i, s in enumerate(plan.steps)}
    sorter = _sorter(plan)
    try:
        sorter.prepare()
    except graphlib.CycleError:
        return list(plan.steps)
    if len(index) != len(plan.steps):  # duplicate ids, which the contracts report
        return list(plan.steps)
    ready = [(index[sid], sid) for sid in sorter.get_ready()]
    heapq.heapify(ready)
    ordered: list[Step] = []
    while ready:
        i, sid = heapq.heappop(ready)
        ordered.append(plan.steps[i])
        sorter.done(sid)
        for nxt in sorter.get_ready():
            heapq.heappush(ready, (index[nxt], nxt))
    return ordered


def ancestors(plan: Plan) -> dict[str, list[str]]:
    """Return, for every step, the ids of the steps it transitively depends on (sorted)."""
    direct = {s.id: dependencies(s) for s in plan.steps}
    out: dict[str, list[str]] = {}
    for step in plan.steps:
        seen: set[str] = set()
        stack = list(direct[step.id])
        while stack:
            dep = stack.pop()
            if dep not in seen:
                seen.add(dep)
                stack.extend(direct.get(dep, ()))
        out[step.id] = sorted(seen)
    return out

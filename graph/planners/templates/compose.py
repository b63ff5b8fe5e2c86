"""Writing filled intents as steps, and composing several into one plan.

A filled intent is written as its steps: placeholders replaced by slot values, a step with
``foreach`` once per element of its list slot (ids ``<id>_1``, ``<id>_2`` ...), an argument
``{"$foreach": slot, "value": ...}`` as one value per element, and references (``$s2.x``)
and selections (``{"$select": "s2", ...}``) pointed at the steps written. Inside a foreach
element, a reference to a foreach step names that element's step. A step with ``each_of``
is written once, carrying that selection as its ``foreach``: the verifier repeats it per
element of the data (``$each`` in its arguments), which a template cannot know.

Several intents of one message are composed into one plan: each intent's steps get a
prefix (``p1``, ``p2`` ...), read steps that make the same call are kept once (the first),
and each write of a part runs after the writes of the part before, so the writes run in
the order the message asks for them. The verifier and the policy judge the whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graph.planners.templates.placeholders import describe, fill, whole
from graph.planners.templates.schema import (
    IdentifyStepTemplate,
    Intent,
    TemplateDocument,
)
from guards.plan import REF, Step, canonical_json, is_ref

SELECT = "$select"
FOREACH = "$foreach"


@dataclass(frozen=True)
class Part:
    """One intent of a message, filled: its slot values and the clause it was read from."""

    intent: Intent
    values: Mapping[str, Any]
    clause: str


class _Names:
    """Maps template step ids to the ids written, per foreach element."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.single: dict[str, str] = {}
        self.each: dict[str, list[str]] = {}

    def of(self, sid: str, element: int | None) -> str:
        if sid in self.each:
            if element is None:
                # A foreach step named from outside its elements: all of them is not one step.
                raise ValueError(f"step {sid!r} is written per element; name it inside one")
            return self.each[sid][element]
        return self.single.get(sid, sid)


def _ref(value: str) -> re.Match[str] | None:
    """The reference ``value`` spells (``$each``, a foreach element, is none)."""
    return REF.match(value) if is_ref(value) else None


def _targets(value: Any, names: _Names, element: int | None) -> Any:
    """The steps a ``$select`` reads, renamed (one id, or a list of ids)."""
    if isinstance(value, list):
        return [names.of(v, element) if isinstance(v, str) else v for v in value]
    return names.of(value, element) if isinstance(value, str) else value


def _rename(value: Any, names: _Names, element: int | None) -> Any:
    if isinstance(value, str):
        m = _ref(value)
        if m is None:
            return value
        return f"${names.of(m.group('step'), element)}{m.group('path')}"
    if isinstance(value, list):
        return [_rename(v, names, element) for v in value]
    if isinstance(value, dict):
        out = {k: _rename(v, names, element) for k, v in value.items()}
        if SELECT in value:
            out[SELECT] = _targets(value[SELECT], names, element)
        return out
    return value


def _expand(value: Any, values: Mapping[str, Any], names: _Names, element: int | None) -> Any:
    """Fill one argument: ``$foreach`` lists, placeholders, references and selections."""
    if isinstance(value, dict) and FOREACH in value:
        items = values.get(value[FOREACH]) or []
        return [
            _expand(value["value"], {**values, "each": item}, names, n)
            for n, item in enumerate(items)
        ]
    if isinstance(value, dict):
        out = {k: _expand(v, values, names, element) for k, v in value.items()}
        if SELECT in value:
            out[SELECT] = _targets(value[SELECT], names, element)
        return out
    if isinstance(value, list):
        return [_expand(v, values, names, element) for v in value]
    return _rename(fill(value, values), names, element)


def _dependencies(value: Any) -> set[str]:
    """Step ids a written argument refers to or selects from."""
    found: set[str] = set()
    if isinstance(value, str):
        m = _ref(value)
        if m is not None:
            found.add(m.group("step"))
    elif isinstance(value, list):
        for v in value:
            found |= _dependencies(v)
    elif isinstance(value, dict):
        target = value.get(SELECT)
        if isinstance(target, str):
            found.add(target)
        elif isinstance(target, list):
            found.update(t for t in target if isinstance(t, str))
        for v in value.values():
            found |= _dependencies(v)
    return found


def write_intent(
    document: TemplateDocument, intent: Intent, values: Mapping[str, Any], prefix: str = ""
) -> list[Step]:
    """Write one filled intent as steps whose ids start with ``prefix``."""
    names = _Names(prefix)
    steps: list[Step] = []
    for template in intent.steps:
        if isinstance(template, IdentifyStepTemplate):
            sid = names.single[template.id] = prefix + template.id
            identity: dict[str, Any] = values[template.identify]
            form = document.identity.forms[identity["form"]]
            deps = {names.of(d, None) for d in template.depends_on}
            steps.append(
                Step(
                    id=sid,
                    tool=form.tool,
                    args=fill(form.args, identity),
                    depends_on=sorted(deps),
                    description=template.description or describe(form.description, identity),
                )
            )
            continue
        elements: Sequence[Any] = [None]
        if template.foreach is not None:
            elements = list(values.get(template.foreach) or [])
            names.each[template.id] = [
                f"{prefix}{template.id}_{n}" for n in range(1, 1 + len(elements))
            ]
        else:
            names.single[template.id] = prefix + template.id
        for n, item in enumerate(elements):
            element = n if template.foreach is not None else None
            scope = {**values, "each": item} if template.foreach is not None else values
            args: dict[str, Any] = {}
            for key, value in template.args.items():
                slot = whole(value)
                if slot is not None and slot[0] not in scope:
                    continue  # an optional slot the request did not fill
                args[key] = _expand(value, scope, names, element)
            each_of = (
                _expand(template.each_of, scope, names, element)
                if template.each_of is not None
                else None
            )
            deps = {names.of(d, element) for d in template.depends_on} | _dependencies(args)
            deps |= _dependencies(each_of)
            steps.append(
                Step(
                    id=names.of(template.id, element),
                    tool=template.tool,
                    args=args,
                    depends_on=sorted(deps),
                    description=describe(template.description, scope),
                    foreach=each_of,
                )
            )
    return steps


def _is_write(step: Step, writes: frozenset[str]) -> bool:
    return step.tool in writes


def compose(
    parts: Sequence[list[Step]], writes: frozenset[str], last: Sequence[int] = ()
) -> list[Step]:
    """One plan from the steps of several parts (see the module docstring).

    Args:
        parts: Each part's steps, ids already unique across parts.
        writes: The tools that change data (never merged, and ordered part after part).
        last: Indexes of parts that hand the rest to a human: they go after every write.
    """
    order = [n for n in range(len(parts)) if n not in last] + list(last)
    parts = [parts[n] for n in order]
    handing_off = set(range(len(parts) - len(last), len(parts)))
    every_write: list[str] = []
    same: dict[str, str] = {}
    kept: dict[str, Step] = {}
    by_call: dict[str, str] = {}
    previous_writes: list[str] = []
    for n, steps in enumerate(parts):
        part_writes: list[str] = []
        for step in steps:
            args = _rename(step.args, _Mapped(same), None)
            foreach = _rename(step.foreach, _Mapped(same), None)
            deps = {same.get(d, d) for d in step.depends_on}
            if not _is_write(step, writes):
                key = canonical_json([step.tool, args, foreach])
                if key in by_call:
                    same[step.id] = by_call[key]
                    continue
                by_call[key] = step.id
            if _is_write(step, writes):
                deps |= set(previous_writes)
                every_write.append(step.id)
            elif n in handing_off and not (set(step.depends_on) & {s.id for s in steps}):
                deps |= set(every_write)  # a hand-off comes after every change
            kept[step.id] = step.model_copy(
                update={"args": args, "foreach": foreach, "depends_on": sorted(deps)}
            )
            if _is_write(step, writes):
                part_writes.append(step.id)
        if part_writes:
            previous_writes = part_writes
    ids = list(kept)
    return [
        s.model_copy(update={"depends_on": sorted(set(s.depends_on), key=ids.index)})
        for s in kept.values()
    ]


class _Mapped(_Names):
    """Renames merged step ids (no foreach elements once written)."""

    def __init__(self, same: Mapping[str, str]) -> None:
        super().__init__("")
        self._same = same

    def of(self, sid: str, element: int | None) -> str:
        return self._same.get(sid, sid)

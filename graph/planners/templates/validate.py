"""Checks of a template document against the extractors it will be filled by.

The schema (:mod:`graph.planners.templates.schema`) checks the shape; these checks need
the extractors: every slot names a known, described extractor; placeholders name declared
slots and existing fields; identify steps name a required identity slot; references and
``depends_on`` point at earlier steps; every slot is used. An identity extractor is one
with ``forms``; the document's ``identity.forms`` must write exactly those forms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graph.planners.templates.compose import FOREACH, SELECT
from graph.planners.templates.placeholders import Known, check_text, check_value, whole
from graph.planners.templates.schema import (
    IdentifyStepTemplate,
    Intent,
    TemplateDocument,
    ToolStepTemplate,
)
from guards.plan import is_each, iter_refs, iter_strings
from tools.domain import SlotExtractor

Extractors = Mapping[str, SlotExtractor]


def check_document(doc: TemplateDocument, extractors: Extractors) -> list[str]:
    """Return every problem of ``doc`` for these extractors (empty when it is usable)."""
    problems: list[str] = []
    for name in doc.extractors:
        if name not in extractors:
            problems.append(
                f"extractors: unknown extractor {name!r} (known: {', '.join(extractors)})"
            )
    forms: dict[str, tuple[str, ...]] = {}
    for name, ext in extractors.items():
        for form, fields in (ext.forms or {}).items():
            if forms.setdefault(form, fields) != fields:
                problems.append(
                    f"extractor {name!r} gives identity form {form!r} the fields {fields}, "
                    f"another identity extractor {forms[form]}"
                )
    if set(doc.identity.forms) != set(forms):
        problems.append(
            f"identity.forms must be exactly {sorted(forms)}, got {sorted(doc.identity.forms)}"
        )
    for form, spec in doc.identity.forms.items():
        fields = forms.get(form, ())

        def known(name: str, field: str | None, fields: tuple[str, ...] = fields) -> str | None:
            if field is not None or name not in fields:
                return f"unknown identity field {name!r} (fields: {', '.join(fields)})"
            return None

        for arg, value in spec.args.items():
            problems += check_value(value, f"identity.forms.{form}.args.{arg}", known)
        problems += check_text(spec.description, f"identity.forms.{form}.description", known)
    clauses = doc.clauses
    for label, phrases in (("negations", clauses.negations), ("negated", clauses.negated)):
        for p in phrases:
            if p.startswith("@") and p[1:] not in doc.phrases:
                problems.append(f"clauses.{label} names unknown phrase list {p!r}")
    ids: set[str] = set()
    for intent in doc.intents:
        if intent.id in ids:
            problems.append(f"intent {intent.id!r} is defined more than once")
        ids.add(intent.id)
        problems += _check_intent(intent, doc, extractors)
    return problems


def _slot_checker(
    intent: Intent, extractors: Extractors, used: set[str], optional_ok: bool
) -> Known:
    """Check placeholders against the intent's slots; record the slots they name in ``used``."""

    def known(name: str, field: str | None) -> str | None:
        spec = intent.slots.get(name)
        if spec is None:
            declared = ", ".join(intent.slots) or "none"
            return f"unknown slot {name!r} (slots: {declared})"
        used.add(name)
        ext = extractors.get(spec.extractor)
        if ext is None:
            return None  # reported on the slot
        if ext.forms is not None:
            return f"slot {name!r} is an identity; use a step with 'identify: {name}'"
        if field is None and ext.fields:
            return f"slot {name!r} needs a field ({', '.join(ext.fields)})"
        if field is not None and field not in ext.fields:
            return f"slot {name!r} has no field {field!r} ({', '.join(ext.fields) or 'none'})"
        if not spec.required and not optional_ok:
            return f"optional slot {name!r} may only be a whole argument"
        return None

    return known


def _description_checker(slots: Known, foreach: str | None) -> Known:
    """Placeholders of a description: the slots, and ``{each...}`` in a foreach step."""

    def known(name: str, field: str | None) -> str | None:
        if name == "each" and foreach is not None:
            return None
        return slots(name, field)

    return known


def _each_fields(
    slot: str | None, intent: Intent, extractors: Extractors, where: str, problems: list[str]
) -> tuple[str, ...] | None:
    """The element fields of a ``foreach`` slot (``None`` when there is none)."""
    if slot is None:
        return None
    spec = intent.slots.get(slot)
    ext = extractors.get(spec.extractor) if spec is not None else None
    if spec is None or ext is None:
        problems.append(f"{where}: foreach names unknown slot {slot!r}")
        return ()
    return ext.fields


def _check_arg(
    value: Any,
    where: str,
    intent: Intent,
    extractors: Extractors,
    used: set[str],
    seen: list[str],
    foreach: str | None,
    each: tuple[str, ...] | None,
    *,
    top: bool = False,
) -> list[str]:
    """Check one argument value: placeholders, ``$foreach``, selections and references."""
    problems: list[str] = []
    if isinstance(value, dict) and FOREACH in value:
        slot = value[FOREACH]
        fields = _each_fields(slot, intent, extractors, where, problems)
        if isinstance(slot, str):
            used.add(slot)
        if set(value) != {FOREACH, "value"}:
            problems.append(f"{where}: a $foreach has exactly the keys $foreach and value")
            return problems
        return problems + _check_arg(
            value["value"], f"{where}.value", intent, extractors, used, seen, slot, fields
        )
    if isinstance(value, dict) and SELECT in value:
        target = value[SELECT]
        targets = target if isinstance(target, list) and target else [target]
        for one in targets:
            if not isinstance(one, str) or one not in seen:
                problems.append(f"{where}: $select {one!r} is not an earlier step")
            elif one in _per_element(intent) and each is None:
                problems.append(
                    f"{where}: step {one!r} is written per element; select it inside one"
                )
        if not isinstance(value.get("query"), str) or not value["query"].strip():
            problems.append(f"{where}: a selection needs a query (JMESPath)")
        unknown = set(value) - {SELECT, "query", "take", "params"}
        if unknown:
            problems.append(f"{where}: a selection has no key {', '.join(sorted(unknown))}")
        for name, param in (value.get("params") or {}).items():
            problems += _check_arg(
                param, f"{where}.params.{name}", intent, extractors, used, seen, foreach, each
            )
        return problems
    if isinstance(value, dict):
        for k, v in value.items():
            problems += _check_arg(v, f"{where}.{k}", intent, extractors, used, seen, foreach, each)
        return problems
    if isinstance(value, list):
        for i, v in enumerate(value):
            problems += _check_arg(v, f"{where}.{i}", intent, extractors, used, seen, foreach, each)
        return problems
    found = whole(value)
    if found is not None and found[0] == "each":
        if each is None:
            return [f"{where}: {{each...}} is only known inside a foreach"]
        if found[1] is not None and found[1] not in each:
            return [f"{where}: the elements have no field {found[1]!r} ({', '.join(each)})"]
        return []
    checker = _slot_checker(intent, extractors, used, top or found is not None)
    problems += check_value(value, where, checker)
    for text, ref_step, _ in iter_refs(value):
        if not ref_step:
            problems.append(f"{where}: {text!r} is not a valid reference")
        elif ref_step not in seen:
            problems.append(f"{where}: {text!r} does not refer to an earlier step")
        elif ref_step in _per_element(intent) and each is None:
            problems.append(
                f"{where}: step {ref_step!r} is written per element; name it inside one"
            )
    return problems


def _check_each_of(
    step: ToolStepTemplate,
    intent: Intent,
    extractors: Extractors,
    used: set[str],
    seen: list[str],
    where: str,
) -> list[str]:
    """An ``each_of`` is a selection over earlier steps; ``$each`` appears only with one."""
    uses_each = any(is_each(t) for t in iter_strings(step.args))
    if step.each_of is None:
        return [f"{where}: '$each' is only known in a step with each_of"] if uses_each else []
    if SELECT not in step.each_of:
        return [f"{where}: each_of must be a selection ($select, query, take: all)"]
    problems = _check_arg(
        step.each_of, f"{where} each_of", intent, extractors, used, seen, None, None
    )
    if step.each_of.get("take") != "all":
        problems.append(f"{where}: each_of must take 'all'")
    if step.foreach is not None:
        problems.append(f"{where}: a step has foreach (a list slot) or each_of, not both")
    return problems


def _per_element(intent: Intent) -> set[str]:
    """The ids of the intent's steps written once per element (``foreach``)."""
    return {s.id for s in intent.steps if getattr(s, "foreach", None) is not None}


def _check_intent(intent: Intent, doc: TemplateDocument, extractors: Extractors) -> list[str]:
    where = f"intent {intent.id!r}"
    problems: list[str] = []
    for name, spec in intent.slots.items():
        if spec.extractor not in extractors:
            problems.append(
                f"{where}: slot {name!r} uses unknown extractor {spec.extractor!r} "
                f"(extractors: {', '.join(extractors)})"
            )
        elif spec.extractor not in doc.extractors:
            problems.append(
                f"{where}: slot {name!r} uses extractor {spec.extractor!r}, "
                "which the document's 'extractors' does not describe"
            )
    for label, phrases in (
        *((f"require_any[{i}]", g) for i, g in enumerate(intent.triggers.require_any)),
        ("prefer", intent.triggers.prefer),
        ("reject_if", intent.triggers.reject_if),
    ):
        for p in phrases:
            if p.startswith("@") and p[1:] not in doc.phrases:
                problems.append(f"{where}: triggers.{label} names unknown phrase list {p!r}")

    used: set[str] = set()
    seen: list[str] = []
    for step in intent.steps:
        sw = f"{where}, step {step.id!r}"
        if step.id in seen:
            problems.append(f"{sw}: the step id is used more than once")
        for dep in step.depends_on:
            if dep not in seen:
                problems.append(f"{sw}: depends_on {dep!r} is not an earlier step")
        problems += check_text(
            step.description,
            f"{sw} description",
            _description_checker(
                _slot_checker(intent, extractors, set(), True), getattr(step, "foreach", None)
            ),
        )
        if isinstance(step, IdentifyStepTemplate):
            used.add(step.identify)
            slot = intent.slots.get(step.identify)
            ext = extractors.get(slot.extractor) if slot is not None else None
            if slot is None:
                problems.append(f"{sw}: identify names unknown slot {step.identify!r}")
            elif ext is None or ext.forms is None:
                problems.append(f"{sw}: identify slot {step.identify!r} is not an identity slot")
            elif not slot.required:
                problems.append(f"{sw}: identify slot {step.identify!r} must be required")
        else:
            each = _each_fields(step.foreach, intent, extractors, sw, problems)
            problems += _check_each_of(step, intent, extractors, used, seen, sw)
            for arg, value in step.args.items():
                aw = f"{sw} args.{arg}"
                problems += _check_arg(
                    value, aw, intent, extractors, used, seen, step.foreach, each, top=True
                )
        seen.append(step.id)
    for name, spec in intent.slots.items():
        if spec.absent and name in used:
            problems.append(f"{where}: slot {name!r} is absent by definition; no step may use it")
        elif name not in used and not spec.absent:
            problems.append(f"{where}: slot {name!r} is never used by a step")
    return problems

"""Checks of a template document against the extractors it will be filled by.

The schema (:mod:`graph.planners.templates.schema`) checks the shape; these checks need
the extractors: every slot names a known, described extractor; placeholders name declared
slots and existing fields; identify steps name a required identity slot; references and
``depends_on`` point at earlier steps; every slot is used. An identity extractor is one
with ``forms``; the document's ``identity.forms`` must write exactly those forms.
"""

from __future__ import annotations

from collections.abc import Mapping

from graph.planners.templates.placeholders import Known, check_text, check_value, whole
from graph.planners.templates.schema import IdentifyStepTemplate, Intent, TemplateDocument
from guards.plan import iter_refs
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
            step.description, f"{sw} description", _slot_checker(intent, extractors, set(), True)
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
            for arg, value in step.args.items():
                aw = f"{sw} args.{arg}"
                checker = _slot_checker(intent, extractors, used, whole(value) is not None)
                problems += check_value(value, aw, checker)
                for text, ref_step, _ in iter_refs(value):
                    if not ref_step:
                        problems.append(f"{aw}: {text!r} is not a valid reference")
                    elif ref_step not in seen:
                        problems.append(f"{aw}: {text!r} does not refer to an earlier step")
        seen.append(step.id)
    for name in intent.slots:
        if name not in used:
            problems.append(f"{where}: slot {name!r} is never used by a step")
    return problems

"""Placeholders in templates: ``{slot}`` and ``{slot.field}``.

In a step's arguments a placeholder is a whole string and is replaced by the slot's value,
type kept (a list stays a list). In a description placeholders are interpolated as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from guards.plan import map_strings

PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)(?:\.([a-z0-9_]+))?\}")
"""``{slot}`` or ``{slot.field}``; group 1 is the slot, group 2 the field (or ``None``)."""

Known = Callable[[str, str | None], str | None]
"""Checks one placeholder ``(slot, field)``; returns the problem, or ``None`` when it is fine."""


def whole(value: Any) -> tuple[str, str | None] | None:
    """Return ``(slot, field)`` when ``value`` is a string that is exactly one placeholder."""
    if not isinstance(value, str):
        return None
    m = PLACEHOLDER.fullmatch(value)
    return (m.group(1), m.group(2)) if m else None


def _lookup(values: Mapping[str, Any], name: str, field: str | None) -> Any:
    value = values.get(name)
    if value is None or field is None:
        return value
    return value[field]


def fill(value: Any, values: Mapping[str, Any]) -> Any:
    """Replace whole-string placeholders in a JSON value by slot values (types kept)."""

    def one(text: str) -> Any:
        found = whole(text)
        return text if found is None else _lookup(values, *found)

    return map_strings(value, one)


def describe(template: str, values: Mapping[str, Any]) -> str:
    """Interpolate the placeholders inside a description (a list is joined with ``, ``)."""

    def sub(m: re.Match[str]) -> str:
        value = _lookup(values, m.group(1), m.group(2))
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return "" if value is None else str(value)

    return PLACEHOLDER.sub(sub, template)


def check_value(value: Any, where: str, known: Known) -> list[str]:
    """Check the placeholders of one argument value, naming where each problem is.

    A null anywhere is a problem (an unquoted ``{slot}`` is a YAML mapping, so this is
    what a forgotten quote becomes); so is a string that starts with ``{`` but is not one
    placeholder.
    """
    if value is None:
        return [f"{where} is null (quote placeholders: '{{slot}}')"]
    problems: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            problems += check_value(v, f"{where}.{k}", known)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            problems += check_value(v, f"{where}.{i}", known)
    elif isinstance(value, str) and value.startswith("{"):
        found = whole(value)
        if found is None:
            return [f"{where}: {value!r} is not a placeholder ('{{slot}}' or '{{slot.field}}')"]
        problem = known(*found)
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def check_text(text: str, where: str, known: Known) -> list[str]:
    """Check every placeholder inside a description."""
    out = []
    for m in PLACEHOLDER.finditer(text):
        problem = known(m.group(1), m.group(2))
        if problem:
            out.append(f"{where}: {problem}")
    return out

"""Validation errors as problems a person can act on, each naming the offending field."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic_core import ErrorDetails


def field_path(loc: Iterable[str | int], root: str = "") -> str:
    """Spell a location as a path: ``("decisions", 0, "type")`` is ``decisions[0].type``.

    Args:
        loc: The location, as pydantic reports it.
        root: A path the location is relative to, e.g. ``"steps[2]"``.
    """
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def unknown_keys(errors: Iterable[ErrorDetails]) -> dict[tuple[str | int, ...], list[str]]:
    """Group the keys a model does not know (``extra="forbid"``) by the object holding them."""
    found: dict[tuple[str | int, ...], list[str]] = {}
    for err in errors:
        if err["type"] == "extra_forbidden":
            *parent, key = err["loc"]
            found.setdefault(tuple(parent), []).append(str(key))
    return {parent: sorted(keys) for parent, keys in found.items()}


def type_name(value: Any) -> str:
    """Name a value's JSON type the way Python does (``str``, ``int``, ``list`` ...)."""
    return type(value).__name__


def field_problem(where: str, err: ErrorDetails) -> str:
    """Say what is wrong with the field at ``where``, in words rather than error codes."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "missing":
        return f"{where} is required"
    if kind == "string_type":
        return f"{where} must be a string"
    if kind == "string_too_short":
        return f"{where} must be a non-empty string"
    if kind == "string_too_long":
        return f"{where} has {len(err['input'])} characters; the limit is {ctx['max_length']}"
    if kind == "list_type":
        return f"{where} must be a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{where} must be an object, got {type_name(err['input'])}"
    return f"{where}: {err['msg']}"

"""Input screening: a run's input is checked before anything else happens.

The limits are those of :mod:`guards.limits`; an explicit plan is measured here, before it
is hashed or stored, and read as a plan later (:class:`~guards.errors.PlanInvalid`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from guards.errors import InputRejected
from guards.limits import (
    MAX_NAME_CHARS,
    MAX_PLAN_BYTES,
    MAX_REQUEST_CHARS,
    document_problem,
    text_problem,
)

__all__ = ["MAX_REQUEST_CHARS", "screen_input"]


def screen_input(state: Mapping[str, Any]) -> None:
    """Check a run's input; raise :class:`InputRejected` naming the field and the reason."""
    request = state.get("request")
    explicit = state.get("explicit_plan")
    if (request is None) == (explicit is None):
        raise InputRejected("give exactly one of 'request' (words) or 'explicit_plan' (a plan)")
    if request is not None:
        if not isinstance(request, str) or not request.strip():
            raise InputRejected("'request' must be a non-empty string", "request")
        too_long = text_problem(request, "'request'", MAX_REQUEST_CHARS)
        if too_long is not None:
            raise InputRejected(too_long, "request")
    if explicit is not None:
        too_big = document_problem(explicit, "'explicit_plan'", MAX_PLAN_BYTES)
        if too_big is not None:
            raise InputRejected(too_big, "explicit_plan")
    actor = state.get("actor")
    if actor is not None:
        if not isinstance(actor, str):
            raise InputRejected("'actor' must be a string", "actor")
        too_long = text_problem(actor, "'actor'", MAX_NAME_CHARS)
        if too_long is not None:
            raise InputRejected(too_long, "actor")

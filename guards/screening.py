"""Input screening: a run's input is checked before anything else happens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from guards.errors import InputRejected

MAX_REQUEST_CHARS = 4000
"""Longest request, in characters."""


def screen_input(state: Mapping[str, Any]) -> None:
    """Check a run's input; raise :class:`InputRejected` naming the field and the reason."""
    request = state.get("request")
    explicit = state.get("explicit_plan")
    if (request is None) == (explicit is None):
        raise InputRejected("give exactly one of 'request' (words) or 'explicit_plan' (a plan)")
    if request is not None:
        if not isinstance(request, str) or not request.strip():
            raise InputRejected("'request' must be a non-empty string", "request")
        if len(request) > MAX_REQUEST_CHARS:
            raise InputRejected(
                f"'request' has {len(request)} characters; the limit is {MAX_REQUEST_CHARS}",
                "request",
            )
    actor = state.get("actor")
    if actor is not None and not isinstance(actor, str):
        raise InputRejected("'actor' must be a string", "actor")

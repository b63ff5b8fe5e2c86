"""The evaluations' one error."""

from __future__ import annotations


class EvalError(ValueError):
    """An evaluation cannot run as asked (the message says why)."""

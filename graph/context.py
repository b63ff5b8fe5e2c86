"""Per-run settings, read by nodes through ``Runtime[Context]``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(kw_only=True)
class Context:
    """Settings for one run; unset fields fall back to the environment, then defaults.

    Attributes:
        home: Data directory (``PLANBOUND_HOME``, default ``./.planbound``).
        templates: Path of a plan-template YAML file (``PLANBOUND_TEMPLATES``); the
            packaged retail templates when unset.
        max_steps: Most steps a plan may have (``PLANBOUND_MAX_STEPS``).
        max_replans: Re-plans allowed after a fixable refusal (``PLANBOUND_MAX_REPLANS``).
        inline_limit: Largest step output, in bytes of JSON, kept inline in state
            (``PLANBOUND_INLINE_LIMIT``); larger outputs are kept in the ledger by hash.
        stores: Open stores to use instead of the process-wide ones (tests, embedding).
        replay: ``off`` for normal runs; ``safe`` when replaying a thread from a checkpoint
            (steps in the ledger serve their recorded outcome, no write tool is called);
            ``live`` when the operator allows new writes (after a new approval).
    """

    home: str = field(default_factory=lambda: os.environ.get("PLANBOUND_HOME", ".planbound"))
    templates: str | None = field(default_factory=lambda: os.environ.get("PLANBOUND_TEMPLATES"))
    max_steps: int = field(default_factory=lambda: _env_int("PLANBOUND_MAX_STEPS", 12))
    max_replans: int = field(default_factory=lambda: _env_int("PLANBOUND_MAX_REPLANS", 2))
    inline_limit: int = field(default_factory=lambda: _env_int("PLANBOUND_INLINE_LIMIT", 4096))
    stores: Any = None
    replay: str = "off"

"""Per-run settings, read by nodes through ``Runtime[Context]``.

Only what may differ between two runs of one deployment lives here; operator settings
(budgets, limits, paths, databases) are :class:`~graph.settings.Settings`, fixed per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ReplayMode = Literal["off", "safe", "live"]


@dataclass(kw_only=True, frozen=True)
class Context:
    """Settings for one run.

    Attributes:
        replay: ``off`` for normal runs; ``safe`` when replaying a thread from a checkpoint
            (steps in the ledger serve their recorded outcome, no write tool is called);
            ``live`` when the operator allows new writes (after a new approval).
    """

    replay: ReplayMode = "off"

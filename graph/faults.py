"""Named pause points for crash testing and debugging.

Set ``PLANBOUND_PAUSE_AT`` to a point name (shell-style wildcards allowed, e.g.
``step:s3:before_commit`` or ``node:*``) and the process stops there for
``PLANBOUND_PAUSE_S`` seconds (default 60) after printing ``planbound: paused at NAME`` to
standard error, so a test can kill it at exactly that moment. Unset, a pause point costs one
environment lookup.

Points: ``node:<name>`` at the start of every node (the previous transition is already
checkpointed); ``step:<id>:before_call`` (ledger row ``started`` committed, tool not called),
``step:<id>:before_commit`` (the tool's writes and the ledger outcome are in the open
transaction) and ``step:<id>:after_commit`` (committed, not yet recorded in the graph state);
``compensate:<id>:after_commit`` (a step's undo committed, the next undo not started).
"""

from __future__ import annotations

import fnmatch
import os
import sys
import time


def pause_point(name: str) -> None:
    """Pause here if ``PLANBOUND_PAUSE_AT`` matches ``name``."""
    target = os.environ.get("PLANBOUND_PAUSE_AT")
    if not target or not fnmatch.fnmatchcase(name, target):
        return
    sys.stderr.write(f"planbound: paused at {name}\n")
    sys.stderr.flush()
    time.sleep(float(os.environ.get("PLANBOUND_PAUSE_S") or 60))

"""The flow's exceptions, and the one mapping of failures to what a caller is told.

Each package has one base for its failures (``guards.errors.GuardError``,
``tools.catalog.ToolError``, ``checkpoints.factory.StorageError``, :class:`FlowError` here);
:data:`USER_ERRORS` is what the CLI and the server report as a clear error instead of a
traceback.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Iterator

from checkpoints.factory import StorageError
from guards.errors import GuardError


class FlowError(Exception):
    """Base class of the flow's own failures."""


class ConfigError(FlowError):
    """A setting is malformed (names the variable) or a configured file cannot be used."""


class PlannerError(FlowError):
    """A planner could not be built or loaded (bad template file, bad configuration)."""


class RunError(FlowError):
    """A run could not be started or resumed as asked (unknown thread, wrong state).

    Attributes:
        thread_id: The thread concerned, when there is one.
    """

    def __init__(self, message: str, thread_id: str | None = None) -> None:
        super().__init__(message)
        self.thread_id = thread_id


class StepNotRun(FlowError):
    """A step could not be run to an outcome (no matching approval, unknown tool).

    Attributes:
        step_id: The step.
        reason: Why.
    """

    def __init__(self, step_id: str, reason: str) -> None:
        super().__init__(f"step {step_id!r}: {reason}")
        self.step_id = step_id
        self.reason = reason


USER_ERRORS: tuple[type[Exception], ...] = (FlowError, GuardError, StorageError)
"""Failures a caller caused or can act on: reported with their message, never a traceback."""


@contextlib.contextmanager
def store_failure(thread_id: str) -> Iterator[None]:
    """Report a database that failed mid-run (lost connection, server gone) as a RunError.

    The thread stays at its last checkpoint and the ledger holds every step that committed,
    so the message says how to continue instead of dumping a driver traceback.
    """
    try:
        yield
    except Exception as exc:
        psycopg = sys.modules.get("psycopg")  # only a run on PostgreSQL can raise its errors
        lost = isinstance(exc, sqlite3.OperationalError) or (
            psycopg is not None and isinstance(exc, psycopg.OperationalError)
        )
        if not lost:
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunError(
            f"thread {thread_id} stopped: the database failed ({first}); it stays at its last"
            f" checkpoint: `planbound status {thread_id}` shows where, `planbound resume"
            f" {thread_id}` (or `approve`, if it awaits a review) continues it",
            thread_id,
        ) from exc

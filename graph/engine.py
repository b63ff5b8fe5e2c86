"""The execution engine: runs one step with its catalog timeout and retries, exactly once.

The engine is the one owner of retries (tenacity, per the tool's ``retries``). A business
refusal (:class:`~tools.catalog.ToolError`) is never retried; a timeout or a transient
database error is. Each attempt runs in a transaction that holds the tool's domain writes and
the ledger's outcome row together, so an attempt either happens completely or not at all.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables.config import ContextThreadPoolExecutor
from pydantic import ValidationError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from checkpoints.db import Domain
from checkpoints.ledger import Approvals, Ledger
from graph import events
from graph.errors import StepNotRun
from graph.faults import pause_point
from graph.state import StepResult
from guards.judgement import Approval
from guards.plan import canonical_json, content_hash
from tools.catalog import CatalogEntry, ToolError
from tools.domain import Change, DomainStore

StoreFactory = Callable[[Domain], DomainStore]
"""Wraps the domain connection as the domain's store (``DomainPlugin.open_store``)."""


class _Transient(Exception):
    """An attempt failed in a way worth retrying (its transaction was rolled back)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoStore:
    """The store of a catalog whose tools keep no records (nothing to record or restore)."""

    def __init__(self, conn: Domain) -> None:
        self.conn = conn

    def take_changes(self) -> list[Change]:
        """There are never changes."""
        return []

    def restore(self, change: Change) -> bool:
        """Nothing can be restored."""
        return False

    def is_seeded(self) -> bool:
        """Always ready."""
        return True


@dataclass(frozen=True)
class StepCall:
    """Everything needed to run one step.

    Attributes:
        decision_id: The run's decision id (first half of the idempotency key).
        step_id: The step id (second half).
        entry: The catalog entry of the tool.
        args: Arguments with references already resolved.
    """

    decision_id: str
    step_id: str
    entry: CatalogEntry
    args: dict[str, Any]
    approval: Approval | None = None
    """The approval that allows this call (write steps); consumed when its effects commit."""


def run_step(
    call: StepCall,
    conn: Domain,
    lock: threading.RLock,
    *,
    open_store: StoreFactory = NoStore,
    inline_limit: int = 4096,
    backoff_s: float = 0.1,
) -> StepResult:
    """Run one step exactly once and return its small result record.

    If the ledger already holds an outcome for ``(decision_id, step_id)``, that outcome is
    returned and the tool is not called again.
    """
    ledger = Ledger(conn)
    spec = call.entry.spec
    writes = spec.effect == "write"
    with lock:
        done = ledger.get(call.decision_id, call.step_id)
        if done is not None and done.status == "compensated":
            # Its effects were undone (rollback): never re-apply under the same key.
            reason = "this step was rolled back; start a new run to apply it again"
            return _result(call, False, None, reason, done.attempts, inline_limit)
        if done is not None and done.status in ("succeeded", "failed"):
            ok = done.status != "failed"
            return _result(call, ok, done.output, done.error, done.attempts, inline_limit)
        if writes:
            # Committed before the call, so a crash mid-call leaves a trace to reconcile.
            ledger.start(call.decision_id, call.step_id, spec.name, call.args)
    pause_point(f"step:{call.step_id}:before_call")
    started = time.monotonic()

    retrying = Retrying(
        stop=stop_after_attempt(spec.retries + 1),
        wait=wait_exponential(multiplier=backoff_s),
        retry=retry_if_exception_type(_Transient),
        reraise=True,
    )
    attempts = 0
    try:
        for attempt in retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                outcome = _attempt(call, conn, lock, open_store, attempts, inline_limit)
        error = outcome if isinstance(outcome, str) else None
        if isinstance(outcome, StepResult):
            events.step_finished(spec.name, outcome.ok, time.monotonic() - started)
            return outcome
    except _Transient as exc:
        error = exc.message
    with lock, conn.transaction(write=True):
        if not writes:
            ledger.start(call.decision_id, call.step_id, spec.name, call.args)
        row = ledger.get(call.decision_id, call.step_id)
        if row is not None and row.status != "started":
            # Another executor reached an outcome meanwhile: it stands, never overwritten.
            ok = row.status == "succeeded"
            return _result(call, ok, row.output, row.error, row.attempts, inline_limit)
        ledger.finish(
            call.decision_id, call.step_id, status="failed", attempts=attempts, error=error
        )
    events.step_finished(spec.name, False, time.monotonic() - started)
    return _result(call, False, None, error, attempts, inline_limit)


def _attempt(
    call: StepCall,
    conn: Domain,
    lock: threading.RLock,
    open_store: StoreFactory,
    attempts: int,
    inline_limit: int,
) -> StepResult | str:
    """One attempt in one transaction: a result, a final error, or :class:`_Transient`."""
    ledger = Ledger(conn)
    spec = call.entry.spec
    retryable: tuple[type[BaseException], ...] = (_Timeout, *conn.transient)
    with lock:
        store = open_store(conn)
        try:
            conn.begin(write=True)
            row = ledger.get(call.decision_id, call.step_id)
            if row is not None and row.status != "started":
                # Another executor finished this step meanwhile: its outcome stands.
                conn.rollback()
                ok = row.status != "failed"
                return _result(call, ok, row.output, row.error, row.attempts, inline_limit)
            if spec.effect != "write":
                # A read has nothing to reconcile: its row and outcome commit together.
                ledger.start(call.decision_id, call.step_id, spec.name, call.args)
            if call.approval is not None and not Approvals(conn).consume(
                call.decision_id,
                call.step_id,
                call.approval.digest,
                call.approval.reviewer,
                call.approval.roles,
            ):
                conn.rollback()
                return "its approval was already used; not run again"
            output = _call_with_timeout(call, store, conn, spec.timeout_s)
            changes = [c.to_json() for c in store.take_changes()]
            ledger.finish(
                call.decision_id,
                call.step_id,
                status="succeeded",
                attempts=attempts,
                output=output,
                output_hash=content_hash(output, 64),
                changes=changes,
            )
            pause_point(f"step:{call.step_id}:before_commit")
            conn.commit()
            pause_point(f"step:{call.step_id}:after_commit")
            return _result(call, True, output, None, attempts, inline_limit)
        except ToolError as exc:
            conn.rollback()
            return exc.message
        except ValidationError as exc:
            # Arguments that passed verify but not after references were resolved.
            conn.rollback()
            return f"invalid arguments after resolving references: {_first_error(exc)}"
        except retryable as exc:
            conn.rollback()
            raise _Transient(
                f"timed out after {spec.timeout_s:g}s"
                if isinstance(exc, _Timeout)
                else f"database error: {exc}"
            ) from None
        except BaseException:
            _rollback_keeping_error(conn)
            raise


class _Timeout(Exception):
    pass


def _rollback_keeping_error(conn: Domain) -> None:
    """Roll back after an unexpected error without hiding it.

    On a lost connection the rollback fails too (the server already discarded the
    transaction); the original error is the one worth reporting.
    """
    with contextlib.suppress(Exception):
        conn.rollback()


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "arguments"
    return f"{where}: {first['msg']}"


_TOOL_THREADS = ContextThreadPoolExecutor(max_workers=16, thread_name_prefix="tool")
"""Long-lived threads that run tool calls, so a call's timeout can be enforced; each call
carries the run's context (its config and tracing parent) into the thread."""


def _call_with_timeout(call: StepCall, store: DomainStore, conn: Domain, timeout_s: float) -> Any:
    """Call the tool with its timeout; on expiry stop its statement and roll the attempt back.

    The database statement a tool is blocked in is cancelled (``conn.interrupt()``), which
    ends the call at once. The engine still waits for the tool's thread to return before it
    rolls back: the connection is in autocommit mode outside the attempt's transaction, so a
    write issued late by a tool that ignored the interruption would otherwise commit with no
    ledger record. A tool that never returns therefore holds its step, never the data.
    """
    future = _TOOL_THREADS.submit(call.entry.tool.invoke, {**call.args, "db": store})
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        conn.interrupt()
        concurrent.futures.wait([future])
        raise _Timeout() from None


class ReadTimedOut(Exception):
    """A read called by :func:`timed_read` ran past its catalog timeout (it was stopped)."""


def timed_read(conn: Domain) -> Callable[[CatalogEntry, dict[str, Any]], Any]:
    """A caller of read tools that enforces each tool's catalog timeout, as steps run.

    The call runs on the engine's tool threads; past the timeout its statement on ``conn``
    is cancelled and :class:`ReadTimedOut` is raised once the tool has returned.
    """

    def invoke(entry: CatalogEntry, arguments: dict[str, Any]) -> Any:
        future = _TOOL_THREADS.submit(entry.tool.invoke, arguments)
        try:
            return future.result(timeout=entry.spec.timeout_s)
        except concurrent.futures.TimeoutError:
            conn.interrupt()
            concurrent.futures.wait([future])
            raise ReadTimedOut(entry.spec.name) from None

    return invoke


def _result(
    call: StepCall, ok: bool, output: Any, error: str | None, attempts: int, inline_limit: int
) -> StepResult:
    if not ok:
        return StepResult(
            step_id=call.step_id,
            tool=call.entry.spec.name,
            ok=False,
            error=error,
            attempts=attempts,
        )
    return succeeded(
        call.decision_id, call.step_id, call.entry.spec.name, output, attempts, inline_limit
    )


def succeeded(
    decision_id: str, step_id: str, tool: str, output: Any, attempts: int, inline_limit: int
) -> StepResult:
    """The result record of a succeeded step: its output inline, or by reference when large."""
    size = len(canonical_json(output).encode())
    digest = content_hash(output, 64)
    if size > inline_limit:
        return StepResult(
            step_id=step_id,
            tool=tool,
            ok=True,
            output_hash=digest,
            output_ref=f"ledger:{decision_id}/{step_id}",
            attempts=attempts,
        )
    return StepResult(
        step_id=step_id, tool=tool, ok=True, output=output, output_hash=digest, attempts=attempts
    )


def compensate_step(
    conn: Domain,
    lock: threading.RLock,
    decision_id: str,
    step_id: str,
    *,
    open_store: StoreFactory = NoStore,
) -> tuple[bool, str]:
    """Undo a succeeded step by restoring its before-images, in one transaction.

    Returns ``(done, note)``; nothing is restored if any record changed since the step. A
    step already undone (a compensation resumed after a crash) counts as done, with the
    same note, and is not touched again.
    """
    ledger = Ledger(conn)
    with lock:
        row = ledger.get(decision_id, step_id)
        if row is not None and row.status == "compensated":
            return True, f"{step_id}: undid {row.tool} ({len(row.changes)} record(s) restored)"
        if row is None or row.status != "succeeded":
            return (
                False,
                f"{step_id}: nothing to undo (ledger status {row.status if row else 'missing'})",
            )
        db = open_store(conn)
        changes = [Change.from_json(c) for c in row.changes]
        conn.begin(write=True)
        try:
            for change in reversed(changes):
                if not db.restore(change):
                    conn.rollback()
                    return False, (
                        f"{step_id}: {change.table} {change.key} changed since {row.tool} ran;"
                        " left as is"
                    )
            db.take_changes()
            ledger.mark_compensated(decision_id, step_id)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    pause_point(f"compensate:{step_id}:after_commit")
    return True, f"{step_id}: undid {row.tool} ({len(changes)} record(s) restored)"


def ledger_output(conn: Domain, lock: threading.RLock, decision_id: str, step_id: str) -> Any:
    """Return a step's full output from the ledger (for outputs kept by reference)."""
    with lock:
        row = Ledger(conn).get(decision_id, step_id)
    if row is None:
        raise StepNotRun(step_id, "no ledger record of its output")
    return row.output

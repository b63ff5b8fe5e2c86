"""The execution engine: runs one step with its catalog timeout and retries, exactly once.

The engine is the one owner of retries. A business refusal (:class:`~tools.catalog.ToolError`)
is never retried; a timeout or a transient database error is, up to the tool's ``retries``.
Each attempt runs in a transaction that holds the tool's domain writes and the ledger's
outcome row together, so an attempt either happens completely or not at all.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from checkpoints.db import Domain, as_domain
from checkpoints.ledger import Approvals, Ledger
from graph.faults import pause_point
from graph.state import StepResult
from guards.judgement import Approval
from guards.plan import canonical_json, content_hash
from tools.catalog import CatalogEntry, ToolError
from tools.retail.db import Change, RetailDB


class ToolFailed(Exception):
    """A step could not be run to an outcome (bad reference, missing approval).

    Attributes:
        step_id: The step.
        reason: Why.
    """

    def __init__(self, step_id: str, reason: str) -> None:
        super().__init__(f"step {step_id!r}: {reason}")
        self.step_id = step_id
        self.reason = reason


class _Timeout(Exception):
    pass


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
    conn: Domain | sqlite3.Connection,
    lock: threading.RLock,
    *,
    inline_limit: int = 4096,
    backoff_s: float = 0.1,
) -> StepResult:
    """Run one step exactly once and return its small result record.

    If the ledger already holds an outcome for ``(decision_id, step_id)``, that outcome is
    returned and the tool is not called again.
    """
    conn = as_domain(conn)
    ledger = Ledger(conn)
    spec = call.entry.spec
    with lock:
        done = ledger.get(call.decision_id, call.step_id)
        if done is not None and done.status == "compensated":
            # Its effects were undone (rollback): never re-apply under the same key.
            return _result(
                call,
                False,
                None,
                "this step was rolled back; start a new run to apply it again",
                done.attempts,
                inline_limit,
            )
        if done is not None and done.status in ("succeeded", "failed"):
            return _result(
                call, done.status != "failed", done.output, done.error, done.attempts, inline_limit
            )
        writes = spec.effect == "write"
        if writes:
            # Committed before the call, so a crash mid-call leaves a trace to reconcile.
            ledger.start(call.decision_id, call.step_id, spec.name, call.args)
    pause_point(f"step:{call.step_id}:before_call")

    retryable: tuple[type[BaseException], ...] = (_Timeout, *conn.transient)
    attempts = 0
    error: str | None = None
    while attempts <= spec.retries:
        attempts += 1
        with lock:
            db = RetailDB(conn)
            try:
                conn.begin(write=True)
                row = ledger.get(call.decision_id, call.step_id)
                if row is not None and row.status != "started":
                    # Another executor finished this step meanwhile: its outcome stands.
                    conn.rollback()
                    return _result(
                        call,
                        row.status != "failed",
                        row.output,
                        row.error,
                        row.attempts,
                        inline_limit,
                    )
                if not writes:
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
                    error = "its approval was already used; not run again"
                    break
                output = _call_with_timeout(call, db, conn, spec.timeout_s)
                changes = [c.to_json() for c in db.take_changes()]
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
                error = exc.message
                break
            except ValidationError as exc:
                # Arguments that passed verify but not after references were resolved.
                conn.rollback()
                error = f"invalid arguments after resolving references: {_first_error(exc)}"
                break
            except retryable as exc:
                conn.rollback()
                error = (
                    f"timed out after {spec.timeout_s:g}s"
                    if isinstance(exc, _Timeout)
                    else f"database error: {exc}"
                )
            except BaseException:
                _rollback_keeping_error(conn)
                raise
        time.sleep(backoff_s * 2 ** (attempts - 1))
    with lock:
        if not writes:
            ledger.start(call.decision_id, call.step_id, spec.name, call.args)
        ledger.finish(
            call.decision_id, call.step_id, status="failed", attempts=attempts, error=error
        )
    return _result(call, False, None, error, attempts, inline_limit)


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


_TOOL_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="tool")
"""Long-lived threads that run tool calls, so a call's timeout can be enforced."""


def _call_with_timeout(call: StepCall, db: RetailDB, conn: Domain, timeout_s: float) -> Any:
    future = _TOOL_THREADS.submit(call.entry.tool.invoke, {**call.args, "db": db})
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        conn.interrupt()  # stop its statement; the attempt's transaction is rolled back
        concurrent.futures.wait([future])
        raise _Timeout() from None


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
    size = len(canonical_json(output).encode())
    digest = content_hash(output, 64)
    if size > inline_limit:
        return StepResult(
            step_id=call.step_id,
            tool=call.entry.spec.name,
            ok=True,
            output_hash=digest,
            output_ref=f"ledger:{call.decision_id}/{call.step_id}",
            attempts=attempts,
        )
    return StepResult(
        step_id=call.step_id,
        tool=call.entry.spec.name,
        ok=True,
        output=output,
        output_hash=digest,
        attempts=attempts,
    )


def compensate_step(
    conn: Domain | sqlite3.Connection, lock: threading.RLock, decision_id: str, step_id: str
) -> tuple[bool, str]:
    """Undo a succeeded step by restoring its before-images, in one transaction.

    Returns ``(done, note)``; nothing is restored if any record changed since the step. A
    step already undone (a compensation resumed after a crash) counts as done, with the
    same note, and is not touched again.
    """
    conn = as_domain(conn)
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
        db = RetailDB(conn)
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


def ledger_output(
    conn: Domain | sqlite3.Connection, lock: threading.RLock, decision_id: str, step_id: str
) -> Any:
    """Return a step's full output from the ledger (for outputs kept by reference)."""
    with lock:
        row = Ledger(conn).get(decision_id, step_id)
    if row is None:
        raise ToolFailed(step_id, "no ledger record of its output")
    return row.output

"""The side-effect ledger: one row per (decision_id, step_id), the idempotency key.

A row is written ``started`` (and committed) before a tool is called; the tool's domain
writes and the row's outcome are committed together in one transaction, so a crash leaves
either the outcome with its effect, or ``started`` with no effect at all. A resumed run that
finds ``succeeded`` returns the recorded output instead of calling the tool again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from checkpoints.audit import AuditLog
from checkpoints.db import Domain, as_domain

LedgerStatus = Literal["started", "succeeded", "failed", "compensated"]


@dataclass(frozen=True)
class LedgerRow:
    """One ledger row as read back."""

    decision_id: str
    step_id: str
    tool: str
    args: dict[str, Any]
    status: LedgerStatus
    attempts: int
    output: Any
    output_hash: str | None
    changes: list[dict[str, Any]]
    error: str | None
    started_at: float
    finished_at: float | None


@dataclass(frozen=True)
class ReadRecord:
    """A read step that already ran (in a verification's snapshot), to record as succeeded."""

    step_id: str
    tool: str
    args: dict[str, Any]
    output: Any
    output_hash: str


class Ledger:
    """Reads and writes ledger rows on a connection whose transactions the caller owns."""

    def __init__(self, conn: Domain | sqlite3.Connection) -> None:
        """Use ``conn`` (a :class:`~checkpoints.db.Domain` or a raw SQLite connection)."""
        self.conn = as_domain(conn)

    def get(self, decision_id: str, step_id: str) -> LedgerRow | None:
        """Return the row for the idempotency key, or ``None``."""
        cur = self.conn.execute(
            "SELECT decision_id, step_id, tool, args, status, attempts, output, output_hash,"
            " changes, error, started_at, finished_at FROM ledger"
            " WHERE decision_id = ? AND step_id = ?",
            (decision_id, step_id),
        )
        row = cur.fetchone()
        return None if row is None else _row(row)

    def rows(self, decision_id: str) -> list[LedgerRow]:
        """Return every row of one decision in the order the steps started."""
        cur = self.conn.execute(
            "SELECT decision_id, step_id, tool, args, status, attempts, output, output_hash,"
            " changes, error, started_at, finished_at FROM ledger"
            " WHERE decision_id = ? ORDER BY started_at, step_id",
            (decision_id,),
        )
        return [_row(r) for r in cur.fetchall()]

    def start(self, decision_id: str, step_id: str, tool: str, args: dict[str, Any]) -> None:
        """Record (or re-record after a crash) that a call is about to be made."""
        self.conn.execute(
            "INSERT INTO ledger (decision_id, step_id, tool, args, status, started_at)"
            " VALUES (?, ?, ?, ?, 'started', ?)"
            " ON CONFLICT (decision_id, step_id) DO UPDATE SET status = 'started'"
            " WHERE ledger.status = 'started'",
            (decision_id, step_id, tool, json.dumps(args, sort_keys=True), time.time()),
        )

    def finish(
        self,
        decision_id: str,
        step_id: str,
        *,
        status: Literal["succeeded", "failed"],
        attempts: int,
        output: Any = None,
        output_hash: str | None = None,
        changes: list[dict[str, Any]] | None = None,
        error: str | None = None,
    ) -> None:
        """Record a call's outcome (inside the transaction that holds its effects).

        The outcome is also appended to the decision's audit journal, in the same transaction.
        """
        self.conn.execute(
            "UPDATE ledger SET status = ?, attempts = ?, output = ?, output_hash = ?,"
            " changes = ?, error = ?, finished_at = ? WHERE decision_id = ? AND step_id = ?",
            (
                status,
                attempts,
                json.dumps(output),
                output_hash,
                json.dumps(changes or []),
                error,
                time.time(),
                decision_id,
                step_id,
            ),
        )
        body = {
            "step_id": step_id,
            "status": status,
            "attempts": attempts,
            "output_hash": output_hash,
            "changes": _hash(changes or []),
            "error": error,
        }
        AuditLog(self.conn).append(decision_id, "steps", "outcome", body)

    def record_reads(self, decision_id: str, reads: list[ReadRecord]) -> set[str]:
        """Record reads that already ran as ``succeeded``, journal included (caller's transaction).

        Each row is born ``started`` and then given its outcome, as a call the engine runs
        (the privileges and the trigger of ``deploy/roles.sql`` allow nothing else). A step
        that already has a row keeps it untouched: an outcome, once recorded, stands.

        Returns:
            The ids of the steps recorded.
        """
        existing = {
            str(r[0])
            for r in self.conn.execute(
                "SELECT step_id FROM ledger WHERE decision_id = ?", (decision_id,)
            ).fetchall()
        }
        chosen = [r for r in reads if r.step_id not in existing]
        if not chosen:
            return set()
        now = time.time()
        # A microsecond apart, so the rows list in the order given (plan order).
        stamps = [now + i * 1e-6 for i in range(len(chosen))]
        self.conn.executemany(
            "INSERT INTO ledger (decision_id, step_id, tool, args, status, started_at)"
            " VALUES (?, ?, ?, ?, 'started', ?)",
            [
                (decision_id, r.step_id, r.tool, json.dumps(r.args, sort_keys=True), at)
                for r, at in zip(chosen, stamps, strict=True)
            ],
        )
        self.conn.executemany(
            "UPDATE ledger SET status = 'succeeded', attempts = 1, output = ?, output_hash = ?,"
            " changes = '[]', error = NULL, finished_at = ?"
            " WHERE decision_id = ? AND step_id = ? AND status = 'started'",
            [
                (json.dumps(r.output), r.output_hash, at, decision_id, r.step_id)
                for r, at in zip(chosen, stamps, strict=True)
            ],
        )
        body = {"status": "succeeded", "attempts": 1, "changes": _hash([]), "error": None}
        AuditLog(self.conn).append_many(
            decision_id,
            "steps",
            [
                ("outcome", {"step_id": r.step_id, "output_hash": r.output_hash, **body})
                for r in chosen
            ],
        )
        return {r.step_id for r in chosen}

    def mark_compensated(self, decision_id: str, step_id: str) -> None:
        """Record that a succeeded step's effects were undone (journal included)."""
        cur = self.conn.execute(
            "UPDATE ledger SET status = 'compensated' WHERE decision_id = ? AND step_id = ?"
            " AND status = 'succeeded'",
            (decision_id, step_id),
        )
        if cur.rowcount:
            AuditLog(self.conn).append(decision_id, "steps", "undo", {"step_id": step_id})


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _row(r: tuple[Any, ...]) -> LedgerRow:
    return LedgerRow(
        decision_id=r[0],
        step_id=r[1],
        tool=r[2],
        args=json.loads(r[3]),
        status=r[4],
        attempts=r[5],
        output=None if r[6] is None else json.loads(r[6]),
        output_hash=r[7],
        changes=[] if r[8] is None else json.loads(r[8]),
        error=r[9],
        started_at=r[10],
        finished_at=r[11],
    )


class AlreadyDecided(Exception):
    """Another reviewer (or process) already answered this pending review."""


@dataclass(frozen=True)
class ApprovalRow:
    """An approval as consumed by execution."""

    decision_id: str
    step_id: str
    digest: str
    reviewer: str
    roles: list[str]
    recorded_at: float


class Approvals:
    """Approvals and review claims, next to the ledger (same database, same transactions)."""

    def __init__(self, conn: Domain | sqlite3.Connection) -> None:
        """Use ``conn`` (a :class:`~checkpoints.db.Domain` or a raw SQLite connection)."""
        self.conn = as_domain(conn)

    def claim(
        self,
        thread_id: str,
        checkpoint_id: str,
        reviewer: str,
        still_waiting: Callable[[], bool] | None = None,
        *,
        lease_s: float | None = None,
        record: Callable[[], object] | None = None,
    ) -> None:
        """Claim the answer to the review pending at ``checkpoint_id``; only one claim wins.

        A local claim (``lease_s`` None) is held by this connection's session (PostgreSQL: an
        advisory lock; SQLite: a lock on a file next to the database, held by this process)
        until :meth:`end_claim`. A server claim cannot outlive its request that way: it holds
        a lease of ``lease_s`` seconds instead, time for its run to apply the answer.

        A claim whose holder is gone (a dead process, an expired lease) is taken over, but
        only when ``still_waiting()`` confirms that the thread still waits at
        ``checkpoint_id``; without ``still_waiting`` a recorded claim is final. ``record``
        runs in the transaction that takes the claim (the winning answer's journal entry).

        Raises:
            AlreadyDecided: a live holder has the claim, or the review was answered.
        """
        if not _HOLDS.acquire(self.conn, thread_id, checkpoint_id):
            raise AlreadyDecided(self._decided(thread_id, checkpoint_id))
        now = time.time()
        lease = None if lease_s is None else now + lease_s
        try:
            with self.conn.transaction(write=True):
                row = self.conn.execute(
                    "SELECT reviewer, lease_until FROM review_claims"
                    " WHERE thread_id = ? AND checkpoint_id = ?",
                    (thread_id, checkpoint_id),
                ).fetchone()
                if row is None:
                    self.conn.execute(
                        "INSERT INTO review_claims"
                        " (thread_id, checkpoint_id, reviewer, claimed_at, lease_until)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (thread_id, checkpoint_id, reviewer, now, lease),
                    )
                elif (
                    (row[1] is None or float(row[1]) < now)
                    and still_waiting is not None
                    and still_waiting()
                ):
                    # Its holder is gone before the answer took effect: the review is open.
                    self.conn.execute(
                        "UPDATE review_claims SET reviewer = ?, claimed_at = ?, lease_until = ?"
                        " WHERE thread_id = ? AND checkpoint_id = ?",
                        (reviewer, now, lease, thread_id, checkpoint_id),
                    )
                else:
                    raise AlreadyDecided(_decided_by(thread_id, row[0]))
                if record is not None:
                    record()
        except BaseException:
            _HOLDS.release(self.conn, thread_id, checkpoint_id)
            raise
        if lease_s is not None:
            _HOLDS.release(self.conn, thread_id, checkpoint_id)  # the lease holds it now

    def end_claim(self, thread_id: str, checkpoint_id: str) -> None:
        """Stop holding a claim taken by :meth:`claim` (its record stays); never raises."""
        _HOLDS.release(self.conn, thread_id, checkpoint_id)

    def release(self, thread_id: str, checkpoint_id: str) -> None:
        """Give a claim back (the answer could not be applied)."""
        self.conn.execute(
            "DELETE FROM review_claims WHERE thread_id = ? AND checkpoint_id = ?",
            (thread_id, checkpoint_id),
        )

    def _decided(self, thread_id: str, checkpoint_id: str) -> str:
        # A live holder records its claim right after taking its lock: give it a moment to
        # commit, so the message can name who decided.
        deadline = time.monotonic() + 1.0
        while True:
            row = self.conn.execute(
                "SELECT reviewer FROM review_claims WHERE thread_id = ? AND checkpoint_id = ?",
                (thread_id, checkpoint_id),
            ).fetchone()
            if row is not None or time.monotonic() >= deadline:
                return _decided_by(thread_id, row[0] if row is not None else "another reviewer")
            time.sleep(0.02)

    def consume(
        self, decision_id: str, step_id: str, digest: str, reviewer: str, roles: list[str]
    ) -> bool:
        """Record that execution used an approval; ``False`` if it was already used.

        Call inside the transaction that runs the step, so the approval is consumed exactly
        when the step's effects commit.
        """
        row = self.conn.execute(
            "SELECT digest FROM approvals WHERE decision_id = ? AND step_id = ?",
            (decision_id, step_id),
        ).fetchone()
        if row is not None:
            return False
        self.conn.execute(
            "INSERT INTO approvals (decision_id, step_id, digest, reviewer, roles, recorded_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (decision_id, step_id, digest, reviewer, json.dumps(sorted(roles)), time.time()),
        )
        body = {"step_id": step_id, "digest": digest, "reviewer": reviewer, "roles": sorted(roles)}
        AuditLog(self.conn).append(decision_id, "steps", "approval used", body)
        return True

    def rows(self, decision_id: str) -> list[ApprovalRow]:
        """Return the consumed approvals of a decision."""
        cur = self.conn.execute(
            "SELECT decision_id, step_id, digest, reviewer, roles, recorded_at FROM approvals"
            " WHERE decision_id = ? ORDER BY recorded_at, step_id",
            (decision_id,),
        )
        return [
            ApprovalRow(r[0], r[1], r[2], r[3], json.loads(r[4]), float(r[5]))
            for r in cur.fetchall()
        ]


def _decided_by(thread_id: str, reviewer: str) -> str:
    return f"the review of thread {thread_id} was already decided by {reviewer}"


class _ClaimHolds:
    """The review claims this process holds, each backed by a lock that dies with its holder.

    PostgreSQL: a session advisory lock on the domain connection. SQLite: a POSIX record lock
    on ``<database>-claims`` (released by the kernel when the process exits). Both locks are
    re-entrant for their owner (the session, the process), so the claims held here are also
    tracked in memory: a second claim through the same owner is refused.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: set[tuple[str, str, str]] = set()
        self._files: dict[str, int] = {}

    def acquire(self, conn: Domain, thread_id: str, checkpoint_id: str) -> bool:
        owner, key = self._owner(conn), _lock_key(thread_id, checkpoint_id)
        with self._mutex:
            if (owner, thread_id, checkpoint_id) in self._held:
                return False
            if conn.dialect == "postgres":
                locked = bool(conn.execute("SELECT pg_try_advisory_lock(?)", (key,)).fetchone()[0])
            else:
                locked = self._lock_file(owner, key)
            if locked:
                self._held.add((owner, thread_id, checkpoint_id))
            return locked

    def release(self, conn: Domain, thread_id: str, checkpoint_id: str) -> None:
        owner, key = self._owner(conn), _lock_key(thread_id, checkpoint_id)
        with self._mutex:
            if (owner, thread_id, checkpoint_id) not in self._held:
                return
            self._held.discard((owner, thread_id, checkpoint_id))
            lost: tuple[type[BaseException], ...] = (OSError, *conn.errors)
            try:
                if conn.dialect == "postgres":
                    conn.execute("SELECT pg_advisory_unlock(?)", (key,))
                elif owner in self._files:
                    fcntl.lockf(self._files[owner], fcntl.LOCK_UN, 1, key)
            except lost:
                pass  # a lost session has already dropped its lock

    def _owner(self, conn: Domain) -> str:
        if conn.dialect == "postgres":
            return f"postgres:{id(conn)}"
        path = next((r[2] for r in conn.execute("PRAGMA database_list") if r[1] == "main"), "")
        return f"sqlite:{os.path.realpath(path)}" if path else f"sqlite-memory:{id(conn)}"

    def _lock_file(self, owner: str, key: int) -> bool:
        if not owner.startswith("sqlite:"):
            return True  # an in-memory database lives and dies with this process
        fd = self._files.get(owner)
        if fd is None:
            # Kept open for the life of the process: closing any descriptor of the file
            # would drop every lock the process holds on it.
            fd = self._files[owner] = os.open(
                owner.removeprefix("sqlite:") + "-claims", os.O_RDWR | os.O_CREAT, 0o600
            )
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, key)
        except OSError:
            return False
        return True


def _lock_key(thread_id: str, checkpoint_id: str) -> int:
    """A 62-bit lock key for one pending review (an advisory lock id, a file offset)."""
    digest = hashlib.sha256(f"planbound-review:{thread_id}:{checkpoint_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2


_HOLDS = _ClaimHolds()

"""The audit journal: an append-only, hash-chained record of every answer and every outcome.

Each decision has two streams: ``reviews`` (every answer to a review, the losing and refused
ones too) and ``steps`` (each step's outcome and each undo, written in the transaction that
holds the effect). A row's hash covers its content and the previous row's hash, so an edited,
removed or inserted row breaks the chain, which :func:`verify` detects. Nothing here updates
or deletes a row.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from checkpoints.db import Domain

Stream = Literal["reviews", "steps"]
GENESIS = "0" * 64
"""The ``prev_hash`` of a stream's first row."""


@dataclass(frozen=True)
class Entry:
    """One journal row."""

    decision_id: str
    stream: Stream
    n: int
    thread_id: str | None
    kind: str
    body: dict[str, Any]
    recorded_at: float
    prev_hash: str
    hash: str


def _digest(
    decision_id: str,
    stream: str,
    n: int,
    thread_id: str | None,
    kind: str,
    body: Any,
    recorded_at: float,
    prev_hash: str,
) -> str:
    content = json.dumps(
        [decision_id, stream, n, thread_id, kind, body, recorded_at, prev_hash],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(content.encode()).hexdigest()


class AuditLog:
    """Appends to and reads the journal on a connection whose transactions the caller owns."""

    def __init__(self, conn: Domain) -> None:
        """Use ``conn``."""
        self.conn = conn

    def append(
        self,
        decision_id: str,
        stream: Stream,
        kind: str,
        body: dict[str, Any],
        thread_id: str | None = None,
    ) -> Entry:
        """Append one row after the stream's last (inside the caller's transaction).

        Two appends racing on one stream cannot both succeed: the second violates the
        ``(decision_id, stream, n)`` key, and its transaction fails.
        """
        last = self.conn.execute(
            "SELECT n, hash FROM audit_log WHERE decision_id = ? AND stream = ?"
            " ORDER BY n DESC LIMIT 1",
            (decision_id, stream),
        ).fetchone()
        n, prev = (int(last[0]) + 1, str(last[1])) if last is not None else (1, GENESIS)
        now = time.time()
        encoded = json.loads(json.dumps(body, sort_keys=True, default=str))
        digest = _digest(decision_id, stream, n, thread_id, kind, encoded, now, prev)
        self.conn.execute(
            "INSERT INTO audit_log (decision_id, stream, n, thread_id, kind, body, recorded_at,"
            " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (decision_id, stream, n, thread_id, kind, json.dumps(encoded), now, prev, digest),
        )
        return Entry(decision_id, stream, n, thread_id, kind, encoded, now, prev, digest)

    def append_many(
        self,
        decision_id: str,
        stream: Stream,
        entries: list[tuple[str, dict[str, Any]]],
        thread_id: str | None = None,
    ) -> list[Entry]:
        """Append ``(kind, body)`` rows in order after the stream's last, in one statement.

        Inside the caller's transaction, like :meth:`append`; the chain is the same as
        appending them one by one.
        """
        if not entries:
            return []
        last = self.conn.execute(
            "SELECT n, hash FROM audit_log WHERE decision_id = ? AND stream = ?"
            " ORDER BY n DESC LIMIT 1",
            (decision_id, stream),
        ).fetchone()
        n, prev = (int(last[0]), str(last[1])) if last is not None else (0, GENESIS)
        now = time.time()
        made: list[Entry] = []
        for kind, body in entries:
            n += 1
            encoded = json.loads(json.dumps(body, sort_keys=True, default=str))
            digest = _digest(decision_id, stream, n, thread_id, kind, encoded, now, prev)
            made.append(Entry(decision_id, stream, n, thread_id, kind, encoded, now, prev, digest))
            prev = digest
        self.conn.executemany(
            "INSERT INTO audit_log (decision_id, stream, n, thread_id, kind, body, recorded_at,"
            " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    e.decision_id,
                    e.stream,
                    e.n,
                    e.thread_id,
                    e.kind,
                    json.dumps(e.body),
                    e.recorded_at,
                    e.prev_hash,
                    e.hash,
                )
                for e in made
            ],
        )
        return made

    def append_now(
        self,
        decision_id: str,
        stream: Stream,
        kind: str,
        body: dict[str, Any],
        thread_id: str | None = None,
        attempts: int = 5,
    ) -> Entry:
        """Append in a transaction of its own, retrying when another append won the race."""
        for attempt in range(attempts):
            try:
                with self.conn.transaction(write=True):
                    return self.append(decision_id, stream, kind, body, thread_id)
            except self.conn.errors:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def entries(self, decision_id: str) -> list[Entry]:
        """Every row of a decision, both streams, in the order they were recorded."""
        rows = self.conn.execute(
            "SELECT decision_id, stream, n, thread_id, kind, body, recorded_at, prev_hash, hash"
            " FROM audit_log WHERE decision_id = ? ORDER BY recorded_at, stream, n",
            (decision_id,),
        ).fetchall()
        return [
            Entry(r[0], r[1], int(r[2]), r[3], r[4], json.loads(r[5]), float(r[6]), r[7], r[8])
            for r in rows
        ]


def verify(entries: list[Entry]) -> list[str]:
    """Return every break in the chains of ``entries`` (empty when both streams hold)."""
    problems: list[str] = []
    for stream in ("reviews", "steps"):
        rows = sorted((e for e in entries if e.stream == stream), key=lambda e: e.n)
        prev = GENESIS
        for expected, e in enumerate(rows, start=1):
            if e.n != expected:
                problems.append(f"{stream}: row {expected} is missing (found {e.n})")
            if e.prev_hash != prev:
                problems.append(f"{stream} row {e.n}: does not follow the row before it")
            fields = (e.decision_id, e.stream, e.n, e.thread_id, e.kind, e.body, e.recorded_at)
            if _digest(*fields, e.prev_hash) != e.hash:
                problems.append(f"{stream} row {e.n}: its content was changed")
            prev = e.hash
    return problems

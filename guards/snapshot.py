"""Reads inside one read-only snapshot, each distinct query sent to the database once.

Reading a plan's facts runs its lookups and then collects the records their arguments
name, so the same row is asked for several times (the order a ``get_order_details`` step
returned, again by the facts provider, again by a second step on the same order). Inside
one snapshot the database answers a repeated ``SELECT`` with the same rows, so the answer
is kept for the rest of the snapshot and the round trip is not made again.

Nothing is kept beyond the snapshot (a new :class:`SnapshotReads` is made for each), only
``SELECT`` statements are kept, and a statement that fails is not kept: a write a buggy
read tool attempts still reaches the database (which refuses it, or the caller's change
check reports it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any


class Rows:
    """The rows of one kept answer, read like a DB-API cursor (``fetchone``, iteration)."""

    def __init__(self, rows: Sequence[Any]) -> None:
        """Read ``rows`` from the first."""
        self._rows = rows
        self._next = 0

    def fetchone(self) -> Any:
        """Return the next row, or ``None`` after the last."""
        if self._next >= len(self._rows):
            return None
        row = self._rows[self._next]
        self._next += 1
        return row

    def fetchall(self) -> list[Any]:
        """Return the rows not read yet."""
        rest = list(self._rows[self._next :])
        self._next = len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Any]:
        """Yield the rows not read yet."""
        while (row := self.fetchone()) is not None:
            yield row


class SnapshotReads:
    """A domain connection, inside an open read-only snapshot, that asks each query once.

    It has the :class:`tools.domain.Connection` interface, so a domain's store works on it
    unchanged. Rows are kept as the driver returned them (tuples: a caller cannot change
    another's copy).
    """

    def __init__(self, conn: Any) -> None:
        """Wrap ``conn``, whose snapshot is already open and outlives this object."""
        self._conn = conn
        self._answers: dict[tuple[str, tuple[Any, ...]], list[Any]] = {}

    @property
    def dialect(self) -> Any:
        """The wrapped connection's dialect."""
        return self._conn.dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; a ``SELECT`` asked before in this snapshot is not sent again."""
        if sql.lstrip()[:6].upper() != "SELECT":
            return self._conn.execute(sql, params)
        key = (sql, tuple(params))
        rows = self._answers.get(key)
        if rows is None:
            rows = self._answers[key] = list(self._conn.execute(sql, params).fetchall())
        return Rows(rows)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many rows (never kept: it is not a read)."""
        self._conn.executemany(sql, rows)

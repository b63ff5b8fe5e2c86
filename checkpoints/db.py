"""Connections to the domain database (domain tables, ledger, approvals): SQLite or PostgreSQL.

Both backends expose one small interface, :class:`Domain`: ``execute`` with ``?``
placeholders, explicit transactions (``begin`` / ``commit`` / ``rollback``), ``interrupt``
to stop a running statement, and the errors worth retrying. Callers own transactions; the
connection is otherwise in autocommit mode.

Write transactions are ``BEGIN IMMEDIATE`` on SQLite (one writer at a time) and
``REPEATABLE READ`` on PostgreSQL: a transaction that updates a record another transaction
changed since its snapshot fails with a serialization error, which the engine retries, so a
tool's read-modify-write of a record never loses an update. (``SERIALIZABLE`` would add
predicate locks whose false conflicts fail unrelated concurrent steps.)
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

Dialect = Literal["sqlite", "postgres"]
SCHEMA = "planbound"
"""PostgreSQL schema that holds planbound's own tables (the checkpointer uses ``public``)."""


class Domain:
    """A connection to the domain database; see the module docstring."""

    dialect: Dialect
    transient: tuple[type[BaseException], ...] = ()
    """Errors after which a write transaction may be retried (lock or serialization)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement with ``?`` placeholders; return a cursor."""
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows."""
        raise NotImplementedError

    def begin(self, write: bool = False) -> None:
        """Start a transaction (a write transaction takes the write lock up front)."""
        raise NotImplementedError

    def commit(self) -> None:
        """Commit the open transaction."""
        self.execute("COMMIT")

    def rollback(self) -> None:
        """Roll back the open transaction, if any."""
        if self.in_transaction:
            self.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open."""
        raise NotImplementedError

    def interrupt(self) -> None:
        """Stop the statement running on this connection (from another thread)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection."""
        raise NotImplementedError

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[Domain]:
        """Run a block in a transaction: committed if it returns, rolled back if it raises."""
        self.begin(write)
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        self.commit()

    @contextmanager
    def snapshot(self) -> Iterator[Domain]:
        """Run a block of reads in a transaction that is always rolled back."""
        self.begin(False)
        try:
            yield self
        finally:
            self.rollback()


class SqliteDomain(Domain):
    """The domain database in a SQLite file (WAL, synchronous FULL)."""

    dialect: Dialect = "sqlite"
    transient = (sqlite3.OperationalError,)

    def __init__(self, conn: sqlite3.Connection) -> None:
        """Wrap an autocommit (``isolation_level=None``) SQLite connection."""
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement."""
        return self.conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many rows."""
        self.conn.executemany(sql, rows)

    def begin(self, write: bool = False) -> None:
        """``BEGIN IMMEDIATE`` for writes, ``BEGIN`` for reads."""
        self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open."""
        return self.conn.in_transaction

    def interrupt(self) -> None:
        """Abort the running statement."""
        self.conn.interrupt()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class PostgresDomain(Domain):
    """The domain database in PostgreSQL, in the ``planbound`` schema."""

    dialect: Dialect = "postgres"

    def __init__(self, uri: str) -> None:
        """Connect (autocommit) and select the ``planbound`` schema, creating it if needed."""
        import psycopg
        from psycopg import errors

        self._psycopg = psycopg
        self.transient = (
            errors.SerializationFailure,
            errors.DeadlockDetected,
            errors.LockNotAvailable,
        )
        self.conn = psycopg.connect(uri, autocommit=True)
        self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        self.conn.execute(f"SET search_path TO {SCHEMA}, public")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders become ``%s``)."""
        return self.conn.execute(sql.replace("?", "%s"), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many rows."""
        with self.conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), list(rows))

    def begin(self, write: bool = False) -> None:
        """``REPEATABLE READ`` for writes, a read-only ``REPEATABLE READ`` snapshot for reads."""
        self.conn.execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ"
            if write
            else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        )

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (or failed and awaiting rollback)."""
        status = self.conn.info.transaction_status
        return bool(status != self._psycopg.pq.TransactionStatus.IDLE)

    def interrupt(self) -> None:
        """Cancel the running statement on the server."""
        self.conn.cancel_safe()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def as_domain(conn: Domain | sqlite3.Connection) -> Domain:
    """Accept a :class:`Domain` or a raw autocommit SQLite connection."""
    if isinstance(conn, Domain):
        return conn
    if isinstance(conn, sqlite3.Connection):
        return SqliteDomain(conn)
    raise TypeError(f"not a domain connection: {type(conn).__name__}")


def connect_sqlite(path: Path) -> sqlite3.Connection:
    """Open a SQLite file for planbound: autocommit, WAL, synchronous FULL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


# Migrations ---------------------------------------------------------------------------------

_FLOAT = {"sqlite": "REAL", "postgres": "DOUBLE PRECISION"}

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "retail tables",
        """
        CREATE TABLE IF NOT EXISTS retail_users (
            seq INTEGER NOT NULL UNIQUE, key TEXT PRIMARY KEY, doc TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS retail_orders (
            seq INTEGER NOT NULL UNIQUE, key TEXT PRIMARY KEY, doc TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS retail_products (
            seq INTEGER NOT NULL UNIQUE, key TEXT PRIMARY KEY, doc TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS retail_items (
            item_id TEXT PRIMARY KEY, product_id TEXT NOT NULL)
        """,
    ),
    (
        2,
        "side-effect ledger",
        """
        CREATE TABLE IF NOT EXISTS ledger (
            decision_id TEXT NOT NULL,
            step_id TEXT NOT NULL,
            tool TEXT NOT NULL,
            args TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN
                ('started', 'succeeded', 'failed', 'compensated', 'unknown')),
            attempts INTEGER NOT NULL DEFAULT 0,
            output TEXT,
            output_hash TEXT,
            changes TEXT,
            error TEXT,
            started_at {float} NOT NULL,
            finished_at {float},
            PRIMARY KEY (decision_id, step_id))
        """,
    ),
    (
        3,
        "approvals",
        """
        CREATE TABLE IF NOT EXISTS approvals (
            decision_id TEXT NOT NULL,
            step_id TEXT NOT NULL,
            digest TEXT NOT NULL,
            reviewer TEXT NOT NULL,
            roles TEXT NOT NULL,
            recorded_at {float} NOT NULL,
            PRIMARY KEY (decision_id, step_id))
        """,
    ),
    (
        4,
        "review claims",
        """
        CREATE TABLE IF NOT EXISTS review_claims (
            thread_id TEXT NOT NULL,
            checkpoint_id TEXT NOT NULL,
            reviewer TEXT NOT NULL,
            claimed_at {float} NOT NULL,
            PRIMARY KEY (thread_id, checkpoint_id))
        """,
    ),
)
"""Versioned schema changes, applied in order once per database."""


def migrate(domain: Domain) -> list[int]:
    """Apply the migrations the database has not seen; return the versions applied."""
    float_type = _FLOAT[domain.dialect]
    applied: list[int] = []
    with domain.transaction(write=True):
        if domain.dialect == "postgres":
            domain.execute("SELECT pg_advisory_xact_lock(7401100)")  # one migrator at a time
        domain.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            f" version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at {float_type} NOT NULL)"
        )
        done = {int(r[0]) for r in domain.execute("SELECT version FROM schema_migrations")}
        for version, name, ddl in MIGRATIONS:
            if version in done:
                continue
            for statement in ddl.format(float=float_type).split(";"):
                if statement.strip():
                    domain.execute(statement)
            domain.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, time.time()),
            )
            applied.append(version)
    return applied


def schema_versions(domain: Domain) -> list[int]:
    """Return the schema versions applied to the database, lowest first."""
    return sorted(int(r[0]) for r in domain.execute("SELECT version FROM schema_migrations"))

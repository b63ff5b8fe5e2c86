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
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    errors: tuple[type[BaseException], ...] = ()
    """Every error the driver raises (a failed read is reported, never hidden)."""

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
    errors = (sqlite3.Error,)

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

    def __init__(self, uri: str, create_schema: bool = True) -> None:
        """Connect (autocommit) and select the ``planbound`` schema, creating it if needed.

        With ``create_schema`` false (a reading command) a missing schema is left missing.
        """
        import psycopg
        from psycopg import errors

        self._psycopg = psycopg
        self.errors = (psycopg.Error,)
        self.transient = (
            errors.SerializationFailure,
            errors.DeadlockDetected,
            errors.LockNotAvailable,
        )
        self.conn = psycopg.connect(uri, autocommit=True)
        # Even with IF NOT EXISTS, creating needs the CREATE privilege: a role without it
        # (see deploy/roles.sql) finds the schema in place.
        found = self.conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,))
        if found.fetchone() is None and create_schema:
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


def connect_sqlite(path: Path, readonly: bool = False, timeout: float = 30) -> sqlite3.Connection:
    """Open a SQLite file for planbound: autocommit, WAL, synchronous FULL.

    With ``readonly`` the file must exist and is opened read-only: nothing is created, no
    pragma is written, and readers never wait on a writer (WAL). In a directory this process
    cannot write, where SQLite cannot create the WAL index, the file is read as immutable.
    """
    if readonly:
        return _connect_readonly(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _connect_readonly(path: Path) -> sqlite3.Connection:
    modes = ("mode=ro", "mode=ro&immutable=1")  # the second only when the first cannot read
    for n, mode in enumerate(modes):
        conn = sqlite3.connect(
            f"{path.absolute().as_uri()}?{mode}",
            uri=True,
            check_same_thread=False,
            isolation_level=None,
            timeout=5,
        )
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()
            if n == len(modes) - 1:
                raise
            continue
        return conn
    raise AssertionError("unreachable")  # pragma: no cover


# Migrations ---------------------------------------------------------------------------------

Migration = tuple[int, str, "str | Mapping[Dialect, str]"]
"""``(version, name, ddl)``: statements separated by ``;``, ``{float}`` for the float type;
or the statements of each dialect, by dialect."""

CORE = "planbound"
"""The migrations component of planbound's own tables (a domain's is its name)."""

_FLOAT = {"sqlite": "REAL", "postgres": "DOUBLE PRECISION"}

MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        "side-effect ledger",
        """
        CREATE TABLE IF NOT EXISTS ledger (
            decision_id TEXT NOT NULL,
            step_id TEXT NOT NULL,
            tool TEXT NOT NULL,
            args TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN
                ('started', 'succeeded', 'failed', 'compensated')),
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
        2,
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
        3,
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
    (
        4,
        "audit journal",
        """
        CREATE TABLE IF NOT EXISTS audit_log (
            decision_id TEXT NOT NULL,
            stream TEXT NOT NULL CHECK (stream IN ('reviews', 'steps')),
            n INTEGER NOT NULL,
            thread_id TEXT,
            kind TEXT NOT NULL,
            body TEXT NOT NULL,
            recorded_at {float} NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (decision_id, stream, n))
        """,
    ),
    (5, "review claim leases", "ALTER TABLE review_claims ADD COLUMN lease_until {float}"),
)
"""planbound's own tables: the ledger, approvals, review claims and the audit journal
(component ``planbound``)."""

_LEGACY = {1: ("retail", 1), 2: (CORE, 1), 3: (CORE, 2), 4: (CORE, 3)}
"""Where each version of the single-component layout (planbound 0.1) went."""


def _upgrade_bookkeeping(domain: Domain, float_type: str) -> None:
    """Create ``schema_migrations`` keyed by component, converting the 0.1 layout."""
    if domain.dialect == "postgres":
        exists = domain.execute("SELECT to_regclass('schema_migrations')").fetchone()[0]
        columns = {
            str(r[0])
            for r in domain.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
            )
        }
    else:
        exists = domain.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        columns = {str(r[1]) for r in domain.execute("PRAGMA table_info(schema_migrations)")}
    if exists and "component" in columns:
        return  # current layout: nothing to create (a role without DDL rights gets here)
    legacy: list[tuple[int, str, float]] = []
    if exists:
        legacy = [
            (int(r[0]), str(r[1]), float(r[2]))
            for r in domain.execute("SELECT version, name, applied_at FROM schema_migrations")
        ]
        domain.execute("DROP TABLE schema_migrations")
    domain.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " component TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,"
        f" applied_at {float_type} NOT NULL, PRIMARY KEY (component, version))"
    )
    for version, name, applied_at in legacy:
        if version in _LEGACY:
            component, new = _LEGACY[version]
            domain.execute(
                "INSERT INTO schema_migrations (component, version, name, applied_at)"
                " VALUES (?, ?, ?, ?)",
                (component, new, name, applied_at),
            )


def migrate(
    domain: Domain, components: Iterable[tuple[str, Sequence[Migration]]] = ()
) -> list[tuple[str, int]]:
    """Apply the migrations the database has not seen; return ``(component, version)`` applied.

    planbound's own tables (:data:`MIGRATIONS`) always come first, then each component's
    (a domain's tables), in one transaction.
    """
    float_type = _FLOAT[domain.dialect]
    applied: list[tuple[str, int]] = []
    with domain.transaction(write=True):
        if domain.dialect == "postgres":
            domain.execute("SELECT pg_advisory_xact_lock(7401100)")  # one migrator at a time
        _upgrade_bookkeeping(domain, float_type)
        done = {
            (str(r[0]), int(r[1]))
            for r in domain.execute("SELECT component, version FROM schema_migrations")
        }
        for component, migrations in ((CORE, MIGRATIONS), *components):
            for version, name, ddl in migrations:
                if (component, version) in done:
                    continue
                text = ddl if isinstance(ddl, str) else ddl[domain.dialect]
                for statement in text.format(float=float_type).split(";"):
                    if statement.strip():
                        domain.execute(statement)
                domain.execute(
                    "INSERT INTO schema_migrations (component, version, name, applied_at)"
                    " VALUES (?, ?, ?, ?)",
                    (component, version, name, time.time()),
                )
                applied.append((component, version))
    return applied


def schema_versions(domain: Domain) -> dict[str, list[int]]:
    """Return the applied migration versions per component."""
    versions: dict[str, list[int]] = {}
    for component, version in domain.execute(
        "SELECT component, version FROM schema_migrations ORDER BY component, version"
    ):
        versions.setdefault(str(component), []).append(int(version))
    return versions

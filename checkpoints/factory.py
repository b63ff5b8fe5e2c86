"""The one place that builds checkpointers and opens the domain database.

Sync savers serve the CLI and tests, the async saver the LangGraph server; both use the same
tables and serializer.

Callers say where (a home directory for SQLite, or a PostgreSQL URI) and what to migrate;
this module reads no settings of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoints.db import (
    CORE,
    MIGRATIONS,
    Domain,
    Migration,
    PostgresDomain,
    SqliteDomain,
    connect_sqlite,
    migrate,
)
from checkpoints.saver import PlanboundPostgresSaver, PlanboundSqliteSaver

DEFAULT_HOME = ".planbound"
CHECKPOINTS_FILE = "checkpoints.sqlite"
DOMAIN_FILE = "domain.sqlite"
T = TypeVar("T")
_SETUP_LOCK_KEY = 0x706C616E626F756E  # "planboun": serialises saver setup() across processes.


class StorageError(RuntimeError):
    """A store could not be opened or is not in the expected shape."""


def planbound_home(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the data directory: ``home``, else ``./.planbound``."""
    return Path(home if home is not None else DEFAULT_HOME).expanduser()


def serializer(allowed_types: Iterable[tuple[str, str]] = ()) -> JsonPlusSerializer:
    """Return the checkpoint serializer that revives only the given ``(module, name)`` types."""
    return JsonPlusSerializer(allowed_msgpack_modules=list(allowed_types))


def redact(uri: str) -> str:
    """Hide the password of a URI for messages."""
    parts = urlsplit(uri)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urlunsplit(parts)


def pg_connection_kwargs() -> dict[str, Any]:
    """The connection settings LangGraph's PostgreSQL savers need (used for every pool)."""
    from psycopg.rows import dict_row

    return {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


@dataclass
class Stores:
    """Open connections for one process: the checkpointer and the domain database.

    Attributes:
        home: The data directory (SQLite files; also used for local state with PostgreSQL).
        checkpointer: The saver (:mod:`checkpoints.saver`): LangGraph's ``SqliteSaver`` on
            ``checkpoints.sqlite``, or its ``PostgresSaver`` on a connection pool when a
            PostgreSQL URI is configured, each with retention through the saver interface.
        domain: The domain database (domain tables, side-effect ledger, approvals); callers
            own its transactions.
        lock: Serialises use of ``domain`` across threads.
        backend: ``sqlite`` or ``postgres``.
        readonly: Opened for reading only (no migration, no write ever attempted).
    """

    home: Path
    checkpointer: BaseCheckpointSaver[str]
    domain: Domain
    lock: threading.RLock = field(default_factory=threading.RLock)
    backend: str = "sqlite"
    readonly: bool = False
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Close every connection."""
        for close in self._closers:
            close()
        self.domain.close()


class ThreadBusy(StorageError):
    """Another process is driving the same thread (resuming, replaying or rolling it back)."""


_THREAD_LOCK_NS = 0x706C62  # "plb": the advisory-lock namespace of thread locks


@contextmanager
def thread_lock(stores: Stores, thread_id: str) -> Iterator[None]:
    """Hold the thread's exclusive run lock across processes, or fail at once.

    One process at a time drives a thread forward: a second ``resume`` of the same crashed
    thread is told it is busy instead of writing the checkpoint history a second time.
    SQLite homes use a lock file under ``home/locks``; PostgreSQL a session advisory lock.

    Raises:
        ThreadBusy: another process holds the lock.
    """
    key = int.from_bytes(hashlib.sha256(thread_id.encode()).digest()[:4], "big", signed=True)
    busy = ThreadBusy(
        f"thread {thread_id} is busy: another process is running it; "
        f"wait for it to finish, then `planbound status {thread_id}`"
    )
    if stores.backend == "postgres":
        with stores.lock:
            got = stores.domain.execute(
                "SELECT pg_try_advisory_lock(?, ?)", (_THREAD_LOCK_NS, key)
            ).fetchone()
        if not (got[0] if not isinstance(got, dict) else next(iter(got.values()))):
            raise busy
        try:
            yield
        finally:
            with stores.lock:
                stores.domain.execute("SELECT pg_advisory_unlock(?, ?)", (_THREAD_LOCK_NS, key))
        return
    import fcntl

    folder = stores.home / "locks"
    folder.mkdir(exist_ok=True)
    name = hashlib.sha256(thread_id.encode()).hexdigest()[:32]
    with open(folder / f"{name}.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def domain_path(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the path of the SQLite domain database under ``home``."""
    return planbound_home(home) / DOMAIN_FILE


def open_stores(
    home: str | os.PathLike[str] | None = None,
    uri: str | None = None,
    *,
    components: Sequence[tuple[str, Sequence[Migration]]] = (),
    serde_types: Iterable[tuple[str, str]] = (),
    pool_max: int = 10,
    readonly: bool = False,
) -> Stores:
    """Open the checkpointer and domain database, creating and migrating them if needed.

    With a PostgreSQL ``uri`` both live in that database: the checkpointer's tables in
    ``public``, planbound's in ``planbound``. Without one, both are SQLite files under
    ``home``. ``components`` are the domains' migrations, applied after planbound's own.

    With ``readonly`` (commands that only read) nothing is created or migrated and no write
    lock is ever taken: the SQLite files are opened read-only, so a reader neither needs a
    writable directory nor waits on a writer; the schema must already be current.

    Raises:
        StorageError: the database cannot be reached, opened or written, a file is damaged
            (the message names it and says how to recover), or the URI is malformed.
    """
    root = planbound_home(home)
    serde = serializer(serde_types)
    if uri is None:
        return _open_sqlite(root, components, serde, readonly)
    if not uri.startswith(("postgresql://", "postgres://")):
        raise StorageError(f"not a postgresql:// URI: {redact(uri)!r}")
    return _open_postgres(root, uri, components, serde, pool_max, readonly)


HOME_HINT = "PLANBOUND_HOME or --home"


def _open_sqlite(
    root: Path,
    components: Sequence[tuple[str, Sequence[Migration]]],
    serde: JsonPlusSerializer,
    readonly: bool,
) -> Stores:
    if root.exists() and not root.is_dir():
        raise StorageError(f"the data directory {root} ({HOME_HINT}) is not a directory")
    if readonly:
        missing = [n for n in (CHECKPOINTS_FILE, DOMAIN_FILE) if not (root / n).is_file()]
        if missing:
            raise StorageError(
                f"no planbound databases in {root} ({HOME_HINT}; {' and '.join(missing)} "
                "missing): run `planbound seed` first"
            )
    else:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the data directory {root} ({HOME_HINT}): {exc.strerror}"
            ) from None
    conn = _connect(root / CHECKPOINTS_FILE, readonly)
    try:
        saver = PlanboundSqliteSaver(conn, serde=serde)
        if readonly:
            _readonly_saver(saver, root / CHECKPOINTS_FILE)
        else:
            _sqlite_step(root / CHECKPOINTS_FILE, saver.setup)
        domain: Domain = SqliteDomain(_connect(domain_path(root), readonly))
    except BaseException:
        conn.close()
        raise
    try:
        if readonly:
            _sqlite_step(domain_path(root), lambda: require_migrated(domain, components))
        else:
            _sqlite_step(domain_path(root), lambda: migrate(domain, components))
    except BaseException:
        domain.close()
        conn.close()
        raise
    return Stores(
        home=root, checkpointer=saver, domain=domain, readonly=readonly, _closers=[conn.close]
    )


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """Open one SQLite file; a driver error becomes a StorageError naming the file."""
    return _sqlite_step(path, lambda: connect_sqlite(path, readonly=readonly))


def _sqlite_step(path: Path, step: Callable[[], T]) -> T:
    try:
        return step()
    except sqlite3.DatabaseError as exc:
        raise StorageError(sqlite_problem(path, exc)) from None


def _readonly_saver(saver: PlanboundSqliteSaver, path: Path) -> None:
    """Mark a read-only saver as set up, after checking its tables are there."""

    def columns() -> set[str]:
        return {str(r[1]) for r in saver.conn.execute("PRAGMA table_info(writes)")}

    found = _sqlite_step(path, columns)
    if not found:
        raise StorageError(f"{path} holds no checkpoints yet: run `planbound seed` first")
    saver._has_task_path = "task_path" in found
    saver.is_setup = True


def sqlite_problem(path: Path, exc: BaseException) -> str:
    """Say what a SQLite error on ``path`` means and what to do about it."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, sqlite3.OperationalError):
        if "locked" in text or "busy" in text:
            return (
                f"{path} is busy: another planbound process is writing to it; "
                "try again when it is done"
            )
        if "readonly" in text or "unable to open" in text or "disk I/O" in text:
            return (
                f"cannot write {path} ({text}): this command needs a writable data directory "
                f"({HOME_HINT}); `status`, `history`, `audit` and `export` only read"
            )
        return f"{path}: {text}"
    return damaged_message(path, text)


def damaged_message(path: Path, problem: str) -> str:
    """The message for a damaged SQLite file: which one, what it holds, how to recover."""
    if path.name == DOMAIN_FILE:
        holds = "the domain tables, the side-effect ledger, approvals and the audit journal"
        fix = (
            "restore it from a backup, or run `planbound seed --force` to move it aside "
            "and recreate the domain from its data (checkpoints.sqlite is kept)"
        )
    else:
        holds = "the threads' checkpoints"
        fix = (
            "restore it from a backup, or run `planbound seed --force` to move it aside "
            "and start with no threads (domain.sqlite, the ledger and approvals are kept)"
        )
    return f"{path} is damaged ({problem}); it holds {holds}: {fix}"


def damaged_files(home: str | os.PathLike[str] | None = None) -> dict[Path, str]:
    """Check each SQLite file under ``home`` (read-only); return the damaged ones and why."""
    root = planbound_home(home)
    found: dict[Path, str] = {}
    for name in (CHECKPOINTS_FILE, DOMAIN_FILE):
        path = root / name
        if not path.is_file():
            continue
        try:
            conn = connect_sqlite(path, readonly=True)
            try:
                row = conn.execute("PRAGMA quick_check(1)").fetchone()
            finally:
                conn.close()
        except sqlite3.OperationalError:
            continue  # unreadable for another reason (permissions, a lock): not damage
        except sqlite3.DatabaseError as exc:
            found[path] = str(exc)
            continue
        if row is None or row[0] != "ok":
            found[path] = f"integrity check: {row[0] if row else 'no answer'}"
    return found


def move_aside(path: Path) -> Path:
    """Rename a damaged SQLite file (and its WAL files) out of the way; return the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.rename(target.with_name(target.name + suffix))
    return target


def require_migrated(
    domain: Domain, components: Iterable[tuple[str, Sequence[Migration]]] = ()
) -> None:
    """Check, without writing, that every migration was applied.

    Raises:
        StorageError: a migration is missing (`planbound db init` applies it).
    """
    try:
        done = {
            (str(c), int(v))
            for c, v in domain.execute("SELECT component, version FROM schema_migrations")
        }
    except domain.errors as exc:
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            raise
        done = set()
        if domain.dialect == "postgres":
            domain.rollback()
    wanted = [
        (component, version)
        for component, migrations in ((CORE, MIGRATIONS), *components)
        for version, _, _ in migrations
    ]
    behind = [f"{c} {v}" for c, v in wanted if (c, v) not in done]
    if behind:
        raise StorageError(
            "the database schema is not current (missing migrations: "
            f"{', '.join(behind)}): run `planbound db init` or a command that writes"
        )


def _open_postgres(
    root: Path,
    uri: str,
    components: Sequence[tuple[str, Sequence[Migration]]],
    serde: JsonPlusSerializer,
    pool_max: int,
    readonly: bool = False,
) -> Stores:
    import psycopg
    from psycopg_pool import ConnectionPool

    try:
        domain = PostgresDomain(uri, create_schema=not readonly)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot connect to PostgreSQL at {redact(uri)}: {first}") from None
    if readonly:
        try:
            require_migrated(domain, components)
        except BaseException:
            domain.close()
            raise
    else:
        migrate(domain, components)
    pool: ConnectionPool[Any] = ConnectionPool(
        uri, min_size=1, max_size=pool_max, kwargs=pg_connection_kwargs(), open=True
    )
    saver = PlanboundPostgresSaver(pool, serde=serde)
    with pool.connection() as conn:
        behind = _saver_behind(_saver_version(conn), saver.MIGRATIONS)
    if behind and readonly:
        pool.close()
        domain.close()
        raise StorageError(
            "the checkpoint tables are not current: run `planbound db init` or a command "
            "that writes"
        )
    if behind:
        saver.setup()
    return Stores(
        home=root,
        checkpointer=saver,
        domain=domain,
        backend="postgres",
        readonly=readonly,
        _closers=[pool.close],
    )


_SAVER_TABLE = "SELECT to_regclass('checkpoint_migrations') IS NOT NULL AS present"
_SAVER_VERSION = "SELECT coalesce(max(v), -1) AS v FROM checkpoint_migrations"


def _saver_behind(version: int, migrations: Sequence[str]) -> bool:
    """Whether the PostgreSQL saver's tables miss a migration (its ``setup()`` has work).

    ``version`` is its last applied migration (-1 for none). Skipping a ``setup()`` with
    nothing to do lets a role without the CREATE privilege (see ``deploy/roles.sql``) use
    the checkpointer: its first statement, ``CREATE TABLE IF NOT EXISTS``, needs that
    privilege even when the table exists.
    """
    return version < len(migrations) - 1


def _saver_version(conn: Any) -> int:
    """The saver's last applied migration on a dict-row connection (-1 for none)."""
    if not conn.execute(_SAVER_TABLE).fetchone()["present"]:
        return -1
    return int(conn.execute(_SAVER_VERSION).fetchone()["v"])


@asynccontextmanager
async def async_saver(
    home: str | os.PathLike[str] | None = None,
    uri: str | None = None,
    *,
    serde_types: Iterable[tuple[str, str]] = (),
    pool_max: int = 10,
    setup: bool = True,
) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Yield the async saver the LangGraph server uses: the same tables as :func:`open_stores`.

    With ``uri`` an ``AsyncPostgresSaver`` on a pool (set up once, one process at a time);
    else an ``AsyncSqliteSaver`` on ``home``'s checkpoint file.
    """
    serde = serializer(serde_types)
    if uri is None:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        path = planbound_home(home) / CHECKPOINTS_FILE
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        async with aiosqlite.connect(path) as conn:
            await conn.execute("PRAGMA journal_mode=WAL")
            sqlite_saver = AsyncSqliteSaver(conn, serde=serde)
            if setup:
                await sqlite_saver.setup()
            yield sqlite_saver
        return
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    if setup:
        # Several API workers may start together on an empty database: an advisory lock
        # makes their migrations run one after the other instead of racing.
        pg: AsyncConnection[Any] = await AsyncConnection.connect(uri, **pg_connection_kwargs())
        async with pg:
            found = await (await pg.execute(_SAVER_TABLE)).fetchone()
            version = -1
            if found is not None and found["present"]:
                row = await (await pg.execute(_SAVER_VERSION)).fetchone()
                version = int(row["v"]) if row is not None else -1
            if _saver_behind(version, AsyncPostgresSaver.MIGRATIONS):
                await pg.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK_KEY,))
                try:
                    await AsyncPostgresSaver(pg, serde=serde).setup()
                finally:
                    await pg.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK_KEY,))
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        uri, min_size=1, max_size=pool_max, kwargs=pg_connection_kwargs(), open=False
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield AsyncPostgresSaver(pool, serde=serde)
    finally:
        await pool.close()

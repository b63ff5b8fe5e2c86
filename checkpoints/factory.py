"""The one place that builds checkpointers and opens the domain database.

Sync savers serve the CLI and tests, the async saver the LangGraph server; both use the same
tables and serializer.

Callers say where (a home directory for SQLite, or a PostgreSQL URI) and what to migrate;
this module reads no settings of its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from checkpoints.db import (
    Domain,
    Migration,
    PostgresDomain,
    SqliteDomain,
    connect_sqlite,
    migrate,
)

DEFAULT_HOME = ".planbound"
CHECKPOINTS_FILE = "checkpoints.sqlite"
DOMAIN_FILE = "domain.sqlite"
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
        checkpointer: The LangGraph saver: ``SqliteSaver`` on ``checkpoints.sqlite``, or
            ``PostgresSaver`` on a connection pool when a PostgreSQL URI is configured.
        domain: The domain database (domain tables, side-effect ledger, approvals); callers
            own its transactions.
        lock: Serialises use of ``domain`` across threads.
        backend: ``sqlite`` or ``postgres``.
    """

    home: Path
    checkpointer: BaseCheckpointSaver[str]
    domain: Domain
    lock: threading.RLock = field(default_factory=threading.RLock)
    backend: str = "sqlite"
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Close every connection."""
        for close in self._closers:
            close()
        self.domain.close()


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
) -> Stores:
    """Open the checkpointer and domain database, creating and migrating them if needed.

    With a PostgreSQL ``uri`` both live in that database: the checkpointer's tables in
    ``public``, planbound's in ``planbound``. Without one, both are SQLite files under
    ``home``. ``components`` are the domains' migrations, applied after planbound's own.

    Raises:
        StorageError: the database cannot be reached or the URI is malformed.
    """
    root = planbound_home(home)
    serde = serializer(serde_types)
    if uri is None:
        conn = connect_sqlite(root / CHECKPOINTS_FILE)
        saver = SqliteSaver(conn, serde=serde)
        saver.setup()
        domain: Domain = SqliteDomain(connect_sqlite(domain_path(root)))
        migrate(domain, components)
        return Stores(home=root, checkpointer=saver, domain=domain, _closers=[conn.close])
    if not uri.startswith(("postgresql://", "postgres://")):
        raise StorageError(f"not a postgresql:// URI: {redact(uri)!r}")
    return _open_postgres(root, uri, components, serde, pool_max)


def _open_postgres(
    root: Path,
    uri: str,
    components: Sequence[tuple[str, Sequence[Migration]]],
    serde: JsonPlusSerializer,
    pool_max: int,
) -> Stores:
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg_pool import ConnectionPool

    try:
        domain = PostgresDomain(uri)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot connect to PostgreSQL at {redact(uri)}: {first}") from None
    migrate(domain, components)
    pool: ConnectionPool[Any] = ConnectionPool(
        uri, min_size=1, max_size=pool_max, kwargs=pg_connection_kwargs(), open=True
    )
    saver = PostgresSaver(pool, serde=serde)
    with pool.connection() as conn:
        behind = _saver_behind(_saver_version(conn), saver.MIGRATIONS)
    if behind:
        saver.setup()
    return Stores(
        home=root, checkpointer=saver, domain=domain, backend="postgres", _closers=[pool.close]
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

"""The checkpointer and database checks used when the graph is served by the LangGraph server.

``langgraph.json`` names :func:`checkpointer` (``"checkpointer": {"path": ...}``): the server
enters it once per event loop and keeps the saver for its lifetime. With a PostgreSQL URI in
``PLANBOUND_DATABASE_URI`` (or, failing that, a ``postgres://`` / ``postgresql://`` URI in
``DATABASE_URI``) it yields an :class:`AsyncPostgresSaver` over a connection pool; without one
it yields an :class:`AsyncSqliteSaver` on ``$PLANBOUND_HOME/checkpoints.sqlite``, the file the
CLI uses. Both use planbound's serializer, so the state's pydantic types round-trip.

``langgraph dev`` overwrites ``DATABASE_URI`` with its own in-memory marker, which is why
``PLANBOUND_DATABASE_URI`` comes first.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from checkpoints.factory import StorageError, database_uri, planbound_home, serializer

POOL_MAX_ENV = "PLANBOUND_PG_POOL_MAX"
"""Largest connection pool per server process (default 10)."""

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a database connection in checks."""

_SETUP_LOCK_KEY = 0x706C616E626F756E  # "planboun": serialises setup() across processes.


def postgres_uri() -> str | None:
    """Return the PostgreSQL URI for checkpoints, or ``None`` for the SQLite file.

    Raises:
        StorageError: ``PLANBOUND_DATABASE_URI`` is set but is not a PostgreSQL URI.
    """
    return database_uri()


def _conn_kwargs() -> dict[str, Any]:
    return {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


def _pool_max() -> int:
    raw = os.environ.get(POOL_MAX_ENV, "").strip()
    try:
        value = int(raw) if raw else 10
    except ValueError as exc:
        raise StorageError(f"{POOL_MAX_ENV} must be an integer, got {raw!r}") from exc
    if value < 1:
        raise StorageError(f"{POOL_MAX_ENV} must be at least 1, got {value}")
    return value


async def setup_postgres(uri: str) -> None:
    """Create or migrate the checkpoint tables, one process at a time.

    Several API workers may start together on an empty database; an advisory lock makes
    their migrations run one after the other instead of racing.
    """
    conn = await AsyncConnection.connect(uri, **_conn_kwargs())
    async with conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK_KEY,))
        try:
            await AsyncPostgresSaver(conn, serde=serializer()).setup()
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK_KEY,))


@asynccontextmanager
async def checkpointer() -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Yield the server's checkpointer (the ``checkpointer.path`` target of ``langgraph.json``).

    Raises:
        StorageError: the pool size setting is malformed.
    """
    uri = postgres_uri()
    if uri is None:
        async with sqlite_saver() as saver:
            yield saver
        return
    await setup_postgres(uri)
    pool: AsyncConnectionPool[AsyncConnection[DictRow]] = AsyncConnectionPool(
        uri,
        min_size=1,
        max_size=_pool_max(),
        kwargs=_conn_kwargs(),
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield AsyncPostgresSaver(pool, serde=serializer())
    finally:
        await pool.close()


@asynccontextmanager
async def sqlite_saver() -> AsyncIterator[AsyncSqliteSaver]:
    """Yield an async saver on ``$PLANBOUND_HOME/checkpoints.sqlite`` (tables set up)."""
    path = planbound_home() / "checkpoints.sqlite"
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    async with aiosqlite.connect(path) as conn:
        await conn.execute("PRAGMA journal_mode=WAL")
        saver = AsyncSqliteSaver(conn, serde=serializer())
        await saver.setup()
        yield saver


@asynccontextmanager
async def reader() -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Yield a short-lived saver on one connection, for checks and metrics (no setup)."""
    uri = postgres_uri()
    if uri is None:
        async with sqlite_saver() as saver:
            yield saver
        return
    conn = await asyncio.wait_for(
        AsyncConnection.connect(uri, **_conn_kwargs()), timeout=CONNECT_TIMEOUT
    )
    async with conn:
        yield AsyncPostgresSaver(conn, serde=serializer())


async def thread_ids(saver: BaseCheckpointSaver[str]) -> list[str]:
    """Return every thread with a root checkpoint in ``saver``'s database."""
    query = "SELECT DISTINCT thread_id FROM checkpoints WHERE checkpoint_ns = ''"
    if isinstance(saver, AsyncPostgresSaver):
        if isinstance(saver.conn, AsyncConnectionPool):
            async with saver.conn.connection() as conn:
                cur = await conn.execute(query)
                return [str(row["thread_id"]) for row in await cur.fetchall()]
        cur = await saver.conn.execute(query)
        return [str(row["thread_id"]) for row in await cur.fetchall()]
    if isinstance(saver, AsyncSqliteSaver):
        async with saver.conn.execute(query) as rows:
            return [str(row[0]) for row in await rows.fetchall()]
    raise StorageError(f"unsupported checkpointer {type(saver).__name__}")


async def latest(saver: BaseCheckpointSaver[str], thread_id: str) -> CheckpointTuple | None:
    """Return a thread's latest root checkpoint with its pending writes."""
    return await saver.aget_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})


async def ping_checkpoints() -> str:
    """Check that the checkpoint database answers; return which one it is.

    Raises:
        Exception: whatever the driver raised (connection refused, timeout, ...).
    """
    async with reader() as saver:
        await thread_ids(saver)
        return "postgres" if isinstance(saver, AsyncPostgresSaver) else "sqlite"

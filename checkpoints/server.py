"""Read access to the server's checkpoints, for review checks, readiness and metrics.

The server's own saver comes from :func:`checkpoints.factory.async_saver`; this module opens
short-lived readers on the same tables.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from checkpoints.factory import StorageError, async_saver, pg_connection_kwargs, serializer

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a database connection in checks."""


@asynccontextmanager
async def reader(
    home: str | os.PathLike[str] | None,
    uri: str | None,
    serde_types: Iterable[tuple[str, str]] = (),
) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Yield a short-lived saver on one connection, for checks and metrics (no setup)."""
    if uri is None:
        async with async_saver(home, None, serde_types=serde_types) as saver:
            yield saver
        return
    conn: AsyncConnection[Any] = await asyncio.wait_for(
        AsyncConnection.connect(uri, **pg_connection_kwargs()), timeout=CONNECT_TIMEOUT
    )
    async with conn:
        yield AsyncPostgresSaver(conn, serde=serializer(serde_types))


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


async def ping_checkpoints(home: str | os.PathLike[str] | None, uri: str | None) -> str:
    """Check that the checkpoint database answers; return which one it is.

    Raises:
        Exception: whatever the driver raised (connection refused, timeout, ...).
    """
    async with reader(home, uri) as saver:
        await thread_ids(saver)
        return "postgres" if isinstance(saver, AsyncPostgresSaver) else "sqlite"

"""The LangGraph server's checkpointer (``langgraph.json`` ``checkpointer.path``).

The server enters :func:`checkpointer` once per event loop and keeps the saver for its
lifetime: an ``AsyncPostgresSaver`` on a pool when a PostgreSQL URI is configured
(``PLANBOUND_DATABASE_URI``, else a PostgreSQL ``DATABASE_URI``), else an
``AsyncSqliteSaver`` on ``$PLANBOUND_HOME/checkpoints.sqlite``, the file the CLI uses. Both
revive planbound's state types. ``langgraph dev`` overwrites ``DATABASE_URI`` with its own
in-memory marker, which is why ``PLANBOUND_DATABASE_URI`` comes first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver

from checkpoints.factory import async_saver
from graph.graph import SERVICES
from graph.state import STATE_TYPES


@asynccontextmanager
async def checkpointer() -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Yield the server's checkpointer, on the database the process's services use."""
    settings = SERVICES.settings
    async with async_saver(
        settings.home,
        settings.postgres_uri,
        serde_types=STATE_TYPES,
        pool_max=settings.pg_pool_max,
    ) as saver:
        yield saver

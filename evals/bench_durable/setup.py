"""The bench database and the stores on it: creation, seeding, per-worker stores."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg import sql
from psycopg_pool import ConnectionPool

from checkpoints.db import PostgresDomain
from checkpoints.factory import Stores
from graph.services import open_stores
from tools.retail import load_shipped, seed

ADMIN_URI = os.environ.get("PLANBOUND_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
"""Server where the throw-away database is created (trust auth on the dev box)."""


def _with_database(uri: str, name: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path="/" + name))


@contextmanager
def bench_database(uri: str | None, admin_uri: str) -> Iterator[str]:
    """Yield ``uri``, or a throw-away database created on ``admin_uri`` and dropped after.

    Args:
        uri: A scratch database to use as it is (not dropped), or ``None``.
        admin_uri: The server where the throw-away database is created.
    """
    if uri is not None:
        yield uri
        return
    name = f"pb_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_uri, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(admin_uri, name)
    finally:
        with psycopg.connect(admin_uri, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def open_seeded(home: Path, uri: str) -> Stores:
    """Open planbound's stores on ``uri`` and (re-)seed the retail domain."""
    stores = open_stores(home, uri=uri)
    with stores.lock, stores.domain.transaction(write=True):
        seed(stores.domain, load_shipped())
    return stores


def pool_of(stores: Stores) -> ConnectionPool[Any]:
    """Return the connection pool under the stores' ``PostgresSaver``.

    Raises:
        SystemExit: the stores are not on PostgreSQL.
    """
    saver = stores.checkpointer
    if not isinstance(saver, PostgresSaver) or not isinstance(saver.conn, ConnectionPool):
        raise SystemExit("the bench needs PostgreSQL stores (a PostgresSaver on a pool)")
    return saver.conn


def worker_stores(primary: Stores, uri: str) -> Stores:
    """Stores for one worker thread: the primary's checkpointer pool, its own domain connection.

    ``Stores.lock`` serialises the single domain connection of a ``Stores``, so workers that
    shared one would queue on it; a deployment with N workers gives each its own domain
    connection and shares the checkpointer's pool (``open_stores`` per worker would also open
    a pool per worker: N x pool size connections).
    """
    return Stores(
        home=primary.home,
        checkpointer=primary.checkpointer,
        domain=PostgresDomain(uri),
        backend="postgres",
    )

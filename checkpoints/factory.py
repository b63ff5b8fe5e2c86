"""The one place that builds checkpointers and opens the domain database."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from checkpoints.db import Domain, PostgresDomain, SqliteDomain, connect_sqlite, migrate

DEFAULT_HOME = ".planbound"

STATE_TYPES: tuple[tuple[str, str], ...] = (
    ("guards.plan", "Plan"),
    ("guards.plan", "Step"),
    ("guards.judgement", "Verdict"),
    ("guards.judgement", "StepReview"),
    ("guards.judgement", "Decision"),
    ("guards.judgement", "Approval"),
    ("graph.state", "StepResult"),
    ("graph.state", "Pins"),
)
"""Types the checkpoint serializer may revive from msgpack (everything else is refused)."""


class StorageError(RuntimeError):
    """A store could not be opened or is not in the expected shape."""


def planbound_home(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the data directory: ``home``, else ``$PLANBOUND_HOME``, else ``./.planbound``."""
    raw = home if home is not None else os.environ.get("PLANBOUND_HOME") or DEFAULT_HOME
    return Path(raw).expanduser()


def serializer(extra_types: Iterable[tuple[str, str]] = ()) -> JsonPlusSerializer:
    """Return the checkpoint serializer with planbound's state types allow-listed."""
    return JsonPlusSerializer(allowed_msgpack_modules=[*STATE_TYPES, *extra_types])


def database_uri(explicit: str | None = None) -> str | None:
    """Return the PostgreSQL URI to use, or ``None`` for the SQLite files.

    ``explicit``, else ``PLANBOUND_DATABASE_URI``, else ``DATABASE_URI`` when it is a
    ``postgresql://`` (or ``postgres://``) URI.
    """
    for raw in (explicit, os.environ.get("PLANBOUND_DATABASE_URI"), os.environ.get("DATABASE_URI")):
        if raw:
            if not raw.startswith(("postgresql://", "postgres://")):
                if raw is explicit or raw == os.environ.get("PLANBOUND_DATABASE_URI"):
                    raise StorageError(f"not a postgresql:// URI: {raw!r}")
                continue
            return raw
    return None


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
    return planbound_home(home) / "domain.sqlite"


def open_stores(home: str | os.PathLike[str] | None = None, uri: str | None = None) -> Stores:
    """Open the checkpointer and domain database, creating and migrating them if needed.

    With a PostgreSQL URI (argument or environment, see :func:`database_uri`) both live in
    that database: the checkpointer's tables in ``public``, planbound's in ``planbound``.
    Without one, both are SQLite files under ``home``.

    Raises:
        StorageError: the database cannot be reached or the URI is malformed.
    """
    root = planbound_home(home)
    uri = database_uri(uri)
    if uri is None:
        conn = connect_sqlite(root / "checkpoints.sqlite")
        saver = SqliteSaver(conn, serde=serializer())
        saver.setup()
        domain: Domain = SqliteDomain(connect_sqlite(domain_path(root)))
        migrate(domain)
        return Stores(home=root, checkpointer=saver, domain=domain, _closers=[conn.close])
    return _open_postgres(root, uri)


def _open_postgres(root: Path, uri: str) -> Stores:
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    try:
        domain = PostgresDomain(uri)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot connect to PostgreSQL at {_redact(uri)}: {first}") from None
    migrate(domain)
    pool: ConnectionPool[Any] = ConnectionPool(
        uri,
        min_size=1,
        max_size=int(os.environ.get("PLANBOUND_PG_POOL_MAX") or 10),
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=True,
    )
    saver = PostgresSaver(pool, serde=serializer())
    saver.setup()
    return Stores(
        home=root, checkpointer=saver, domain=domain, backend="postgres", _closers=[pool.close]
    )


def _redact(uri: str) -> str:
    """Hide a password in a URI for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", uri)


_shared: dict[Path, Stores] = {}
_shared_lock = threading.Lock()


def shared_stores(home: str | os.PathLike[str] | None = None) -> Stores:
    """Return process-wide stores for ``home``, opened on first use (never at import)."""
    root = planbound_home(home).resolve()
    with _shared_lock:
        stores = _shared.get(root)
        if stores is None:
            stores = _shared[root] = open_stores(root)
        return stores

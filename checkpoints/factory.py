"""The one place that builds checkpointers and opens the domain database."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from checkpoints.ledger import Ledger

DEFAULT_HOME = ".planbound"

STATE_TYPES: tuple[tuple[str, str], ...] = tuple(
    ("graph.schemas", name)
    for name in (
        "Plan",
        "Step",
        "Verdict",
        "StepReview",
        "Decision",
        "Approval",
        "StepResult",
    )
) + (("graph.state", "Pins"),)
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


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@dataclass
class Stores:
    """Open connections for one process: the checkpointer and the domain database.

    Attributes:
        home: The data directory.
        checkpointer: The LangGraph saver (SQLite file ``checkpoints.sqlite``).
        domain: Connection to ``domain.sqlite`` (domain tables and the side-effect ledger),
            in autocommit mode: callers own their transactions.
        lock: Serialises use of ``domain`` across threads.
    """

    home: Path
    checkpointer: SqliteSaver
    domain: sqlite3.Connection
    lock: threading.RLock = field(default_factory=threading.RLock)

    def close(self) -> None:
        """Close both connections."""
        self.checkpointer.conn.close()
        self.domain.close()


def domain_path(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the path of the domain database under ``home``."""
    return planbound_home(home) / "domain.sqlite"


def open_domain(home: str | os.PathLike[str] | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the domain database under ``home``."""
    return _connect(domain_path(home))


def open_stores(home: str | os.PathLike[str] | None = None) -> Stores:
    """Open the checkpointer and domain database under ``home``, creating them if needed."""
    root = planbound_home(home)
    saver = SqliteSaver(_connect(root / "checkpoints.sqlite"), serde=serializer())
    saver.setup()
    domain = open_domain(root)
    Ledger(domain).setup()
    return Stores(home=root, checkpointer=saver, domain=domain)


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

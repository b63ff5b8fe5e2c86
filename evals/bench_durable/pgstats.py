"""What PostgreSQL says was written: relation sizes, row sizes, WAL, commits, checkpoints.

Read from the server's own functions and views (``pg_total_relation_size``,
``pg_column_size``, ``pg_current_wal_flush_lsn``, ``pg_walinspect``), never through
planbound's stores, so the figures do not depend on the code being measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
"""The tables of LangGraph's ``PostgresSaver``."""

LEDGER_TABLE = "planbound.ledger"
"""planbound's side-effect ledger (one row per executed step)."""

AUDIT_TABLE = "planbound.audit_log"
"""planbound's audit journal (verdicts, step outcomes, approvals used)."""

PLANBOUND_TABLES = (LEDGER_TABLE, AUDIT_TABLE)
"""planbound's own tables a decision writes to, keyed by ``decision_id``."""


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass(frozen=True)
class Sizes:
    """Relation sizes and cluster-wide WAL position / transaction counter at one moment.

    Attributes:
        relations: ``pg_total_relation_size`` of each checkpoint table and the ledger.
        lsn: The WAL flush position, as PostgreSQL prints it.
        xid: The next transaction id to be assigned (cluster-wide).
    """

    relations: dict[str, int]
    lsn: str
    xid: int

    @property
    def wal(self) -> int:
        """The WAL position as a byte offset."""
        return _lsn(self.lsn)


def sizes(pool: ConnectionPool[Any]) -> Sizes:
    """Read the sizes of the checkpoint and ledger tables, the WAL flush LSN and next xid.

    Raises:
        RuntimeError: the server did not report its WAL position.
    """
    names = (*CHECKPOINT_TABLES, *PLANBOUND_TABLES)
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT pg_current_wal_flush_lsn()::text AS wal,"
            " pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xid"
        ).fetchone()
        relations = {}
        for name in names:
            size = conn.execute(
                "SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0) AS n", (name,)
            ).fetchone()
            relations[name] = int(size["n"]) if size else 0
    if row is None:
        raise RuntimeError("could not read the WAL position")
    return Sizes(relations=relations, lsn=row["wal"], xid=int(row["xid"]))


WAL_OF_DATABASE = """
WITH r AS (
    SELECT xid::text AS xid, resource_manager, record_length, fpi_length, block_ref
    FROM pg_get_wal_records_info(%(start)s::pg_lsn, %(end)s::pg_lsn)),
mine AS (
    SELECT * FROM r
    WHERE block_ref LIKE '%%/' || (SELECT oid FROM pg_database
                                   WHERE datname = current_database())::text || '/%%'),
xacts AS (SELECT DISTINCT xid FROM mine WHERE xid <> '0')
SELECT
    (SELECT coalesce(sum(record_length), 0) FROM mine)
        + (SELECT coalesce(sum(record_length), 0) FROM r
           WHERE resource_manager = 'Transaction' AND xid IN (SELECT xid FROM xacts)) AS bytes,
    (SELECT coalesce(sum(fpi_length), 0) FROM mine) AS fpi,
    (SELECT count(*) FROM xacts) AS xacts
"""
"""WAL bytes, full-page-image bytes and write transactions of this database between two LSNs."""


def enable_walinspect(pool: ConnectionPool[Any]) -> bool:
    """Create ``pg_walinspect`` in the bench database; return whether this call created it.

    Needs the contrib package and a superuser; without them the WAL is only measured
    cluster-wide.
    """
    try:
        with pool.connection() as conn:
            if conn.execute(
                "SELECT 1 FROM pg_extension WHERE extname = 'pg_walinspect'"
            ).fetchone():
                return False
            conn.execute("CREATE EXTENSION pg_walinspect")
            return True
    except psycopg.Error:
        return False


def drop_walinspect(pool: ConnectionPool[Any]) -> None:
    """Drop the ``pg_walinspect`` extension the bench created."""
    with pool.connection() as conn:
        conn.execute("DROP EXTENSION IF EXISTS pg_walinspect")


def wal_of_database(pool: ConnectionPool[Any], start: str, end: str) -> dict[str, int] | None:
    """Read this database's share of the WAL between two LSNs with ``pg_walinspect``.

    Returns:
        ``bytes`` (WAL record bytes, with the commit records of this database's
        transactions), ``fpi`` (full-page-image bytes) and ``xacts`` (write transactions,
        i.e. commits that wrote WAL); ``None`` without ``pg_walinspect``.
    """
    try:
        with pool.connection() as conn:
            row = conn.execute(WAL_OF_DATABASE, {"start": start, "end": end}).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        return None
    return {"bytes": int(row["bytes"]), "fpi": int(row["fpi"]), "xacts": int(row["xacts"])}


def logical_bytes(
    pool: ConnectionPool[Any], thread_ids: list[str], decision_ids: list[str]
) -> dict[str, int]:
    """Sum ``pg_column_size`` of the rows these threads and decisions wrote, per table.

    Returns:
        ``<table>`` (bytes) and ``<table>:rows`` (row count) for every checkpoint table,
        the ledger and the audit journal.
    """
    out: dict[str, int] = {}
    with pool.connection() as conn:
        for table in CHECKPOINT_TABLES:
            row = conn.execute(
                sql.SQL(
                    "SELECT coalesce(sum(pg_column_size(t.*)), 0) AS n, count(*) AS rows"
                    " FROM {} t WHERE thread_id = ANY(%s)"
                ).format(sql.Identifier(table)),
                (thread_ids,),
            ).fetchone()
            out[table] = int(row["n"]) if row else 0
            out[f"{table}:rows"] = int(row["rows"]) if row else 0
        for table in PLANBOUND_TABLES:
            row = conn.execute(
                "SELECT coalesce(sum(pg_column_size(t.*)), 0) AS n, count(*) AS rows"
                f" FROM {table} t WHERE decision_id = ANY(%s)",
                (decision_ids,),
            ).fetchone()
            out[table] = int(row["n"]) if row else 0
            out[f"{table}:rows"] = int(row["rows"]) if row else 0
    return out


def checkpoint_count(pool: ConnectionPool[Any], thread_id: str) -> int:
    """Count the checkpoints stored for one thread."""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM checkpoints WHERE thread_id = %s", (thread_id,)
        ).fetchone()
    return int(row["n"]) if row else 0


def server_settings(pool: ConnectionPool[Any]) -> dict[str, str]:
    """The server settings that decide the cost of a commit."""
    out = {}
    with pool.connection() as conn:
        for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method"):
            row = conn.execute(f"SHOW {name}").fetchone()
            out[name] = str(next(iter(row.values()))) if row else "?"
    return out


def supersteps(pool: ConnectionPool[Any], thread_id: str) -> int:
    """Super-steps a thread ran: its last checkpoint's step number + 1 (the input is -1).

    Read from the latest checkpoint's metadata, so it also counts super-steps whose
    checkpoint was not stored (another durability mode).
    """
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT max((metadata->>'step')::int) AS n FROM checkpoints"
            " WHERE thread_id = %s AND checkpoint_ns = ''",
            (thread_id,),
        ).fetchone()
    return int(row["n"]) + 1 if row and row["n"] is not None else 0


def once_counts(pool: ConnectionPool[Any]) -> dict[str, int]:
    """Counts that grow by one per write decision, and ledger rows left ``started``.

    The first three are consumed approvals, review claims and succeeded write rows; a row
    left ``started`` is a call with no outcome.
    """
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM planbound.approvals) AS approvals,"
            " (SELECT count(*) FROM planbound.review_claims) AS claims,"
            " (SELECT count(*) FROM planbound.ledger WHERE status = 'succeeded'"
            "  AND tool = 'modify_pending_order_address') AS writes,"
            " (SELECT count(*) FROM planbound.ledger WHERE status = 'started') AS started"
        ).fetchone()
    return {k: int(v) for k, v in (row or {}).items()}

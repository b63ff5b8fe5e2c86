"""planbound's savers pass LangGraph's checkpointer conformance suite, on SQLite and PostgreSQL.

``langgraph-checkpoint-conformance`` runs the base capabilities (put, put_writes, get_tuple,
list, delete_thread) and each extended one a saver overrides (delete_for_runs, prune;
copy_thread is not implemented, so it is reported as not detected). Every capability
the saver has must pass; the savers are built the way :mod:`checkpoints.factory` builds
them (same connection settings, same serializer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import Capability, DetectedCapabilities
from langgraph.checkpoint.conformance.report import CapabilityReport
from psycopg_pool import ConnectionPool

from checkpoints.db import connect_sqlite
from checkpoints.factory import pg_connection_kwargs, serializer
from checkpoints.saver import PlanboundPostgresSaver, PlanboundSqliteSaver

IMPLEMENTED = {
    Capability.PUT,
    Capability.PUT_WRITES,
    Capability.GET_TUPLE,
    Capability.LIST,
    Capability.DELETE_THREAD,
    Capability.DELETE_FOR_RUNS,
    Capability.PRUNE,
}


def _check(report: CapabilityReport, saver: BaseCheckpointSaver[Any]) -> None:
    failures = {
        name: result.failures for name, result in report.results.items() if result.passed is False
    }
    assert not failures, failures
    assert report.passed_all_base()
    detected = DetectedCapabilities.from_instance(saver).detected
    assert detected == IMPLEMENTED
    for capability in IMPLEMENTED:
        result = report.results[capability.value]
        assert result.passed is True and result.tests_passed > 0, (capability, result)


def test_the_sqlite_saver_conforms(tmp_path: Path) -> None:
    made: list[PlanboundSqliteSaver] = []

    @checkpointer_test(name="PlanboundSqliteSaver")
    async def sqlite_saver() -> AsyncIterator[PlanboundSqliteSaver]:
        conn = connect_sqlite(tmp_path / f"checkpoints-{len(made)}.sqlite")
        saver = PlanboundSqliteSaver(conn, serde=serializer())
        saver.setup()
        made.append(saver)
        yield saver
        conn.close()

    report = asyncio.run(validate(sqlite_saver))
    _check(report, made[0])


def test_the_postgres_saver_conforms(pg_uri: str) -> None:
    pool: ConnectionPool[Any] = ConnectionPool(
        pg_uri, min_size=1, max_size=4, kwargs=pg_connection_kwargs(), open=True
    )
    made: list[PlanboundPostgresSaver] = []

    @checkpointer_test(name="PlanboundPostgresSaver")
    async def pg_saver() -> AsyncIterator[PlanboundPostgresSaver]:
        saver = PlanboundPostgresSaver(pool, serde=serializer())
        saver.setup()
        made.append(saver)
        yield saver

    try:
        report = asyncio.run(validate(pg_saver))
    finally:
        pool.close()
    _check(report, made[0])


@pytest.mark.parametrize("strategy", ["keep_latest", "delete"])
def test_prune_refuses_a_bad_call_before_touching_anything(tmp_path: Path, strategy: str) -> None:
    saver = PlanboundSqliteSaver(connect_sqlite(tmp_path / "c.sqlite"), serde=serializer())
    with pytest.raises(TypeError, match="not a str"):
        saver.prune("thread-1", strategy=strategy)
    with pytest.raises(ValueError, match="unknown prune strategy 'newest'"):
        saver.prune(["thread-1"], strategy="newest")
    with pytest.raises(TypeError, match="not a str"):
        saver.delete_for_runs("run-1")


def test_delete_for_runs_on_postgres_frees_only_the_blobs_no_kept_checkpoint_uses(
    pg_uri: str,
) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    pool: ConnectionPool[Any] = ConnectionPool(
        pg_uri, min_size=1, max_size=2, kwargs=pg_connection_kwargs(), open=True
    )
    try:
        saver = PlanboundPostgresSaver(pool, serde=serializer())
        saver.setup()
        thread = "blobs-1"
        config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        first = empty_checkpoint()
        first["channel_values"] = {"shared": ["kept"], "mine": ["gone"]}
        first["channel_versions"] = {"shared": "1", "mine": "1"}
        saved = saver.put(config, first, {"run_id": "run-a"}, {"shared": "1", "mine": "1"})
        saver.put_writes(saved, [("mine", ["pending"])], "task-1")
        second = empty_checkpoint()
        second["channel_values"] = {"shared": ["kept"]}
        second["channel_versions"] = {"shared": "1"}
        later = saver.put(saved, second, {"run_id": "run-b"}, {})

        saver.delete_for_runs(["run-a"])

        with pool.connection() as conn:
            blobs = conn.execute(
                "SELECT channel, version FROM checkpoint_blobs WHERE thread_id = %s", (thread,)
            ).fetchall()
            writes = conn.execute(
                "SELECT count(*) AS n FROM checkpoint_writes WHERE thread_id = %s", (thread,)
            ).fetchone()
        assert [(b["channel"], b["version"]) for b in blobs] == [("shared", "1")]
        assert writes is not None and writes["n"] == 0
        tup = saver.get_tuple(later)
        assert tup is not None and tup.checkpoint["channel_values"] == {"shared": ["kept"]}
        assert tup.parent_config is None  # its parent was run-a's checkpoint
        assert saver.prunable(thread, "delete") == 1
    finally:
        pool.close()

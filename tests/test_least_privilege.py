"""``deploy/roles.sql``: the application role runs whole decisions and cannot rewrite history.

A fresh database is migrated and seeded by its owner, the script is applied, and planbound
runs as the application role. The role is cluster-wide, so this test gives it a name of its
own (the script's text with ``planbound_app`` renamed) and drops it afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from answering import answer_for
from conftest import PG_ADMIN
from psycopg import errors

from checkpoints.retention import prune
from graph.audit import audit
from graph.runner import Runner
from graph.services import open_stores
from tools.retail import load_shipped, seed

ROLES_SQL = Path(__file__).resolve().parent.parent / "deploy" / "roles.sql"
ORDER = "#W2974929"
CANCEL = [
    {"name": "find_user_id_by_email", "arguments": {"email": "fatima.anderson1447@example.com"}},
    {"name": "get_order_details", "arguments": {"order_id": ORDER}},
    {
        "name": "cancel_pending_order",
        "arguments": {"order_id": ORDER, "reason": "no longer needed"},
    },
]


@pytest.fixture
def app_uri(pg_uri: str, tmp_path: Path) -> Iterator[str]:
    """The database migrated and seeded by its owner, then the roles script applied."""
    owner = open_stores(tmp_path / "owner", uri=pg_uri)
    with owner.lock:
        seed(owner.domain, load_shipped())
    owner.close()
    role = f"planbound_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(ROLES_SQL.read_text().replace("planbound_app", role))  # type: ignore[arg-type]
    yield pg_uri.replace("postgres@", f"{role}@", 1)
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{pg_uri.rsplit("/", 1)[1]}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def refused(conn: psycopg.Connection[Any], sql: str) -> str:
    """Run ``sql``; return the error it was refused with (the test fails if it ran)."""
    with pytest.raises((errors.InsufficientPrivilege, errors.IntegrityConstraintViolation)) as exc:
        conn.execute(sql)
    return str(exc.value).splitlines()[0]


def test_the_app_role_runs_a_decision_and_cannot_rewrite_its_record(
    app_uri: str, pg_uri: str, tmp_path: Path
) -> None:
    stores = open_stores(tmp_path / "app", uri=app_uri)
    try:
        runner = Runner(stores)
        first = runner.start(explicit_plan=CANCEL)
        assert first["status"] == "awaiting_approval", first
        thread, decision = first["thread_id"], first["decision_id"]
        answer = answer_for(first, {"type": "approve"}, reviewer="ann", role="reviewer")
        done = runner.resume(thread, answer)
        assert done["status"] == "completed", done
        # An undo (succeeded -> compensated) and pruning (deleting checkpoints) work too.
        before = next(r for r in runner.history(thread) if r["next"] == ["execute"])
        assert runner.rollback(thread, before["checkpoint_id"])["status"] == "rolled_back"
        assert runner.proceed(thread)["status"] in ("failed", "rolled_back")  # not re-applied
        assert prune(stores, runner.graph, older_than_days=0, keep_latest=True).threads_pruned == 1
        report = audit(runner.services, runner.graph, decision)
        assert report.intact, report.breaks
        assert {r["step_id"]: r["status"] for r in report.ledger} == {
            "s1": "succeeded",
            "s2": "succeeded",
            "s3": "compensated",
        }
    finally:
        stores.close()

    key = f"decision_id = '{decision}'"
    with psycopg.connect(app_uri, autocommit=True) as app:
        app.execute("SET search_path TO planbound, public")
        for sql in (
            f"DELETE FROM ledger WHERE {key}",
            f"DELETE FROM approvals WHERE {key}",
            f"DELETE FROM audit_log WHERE {key}",
            f"UPDATE approvals SET reviewer = 'mallory' WHERE {key}",
            f"UPDATE audit_log SET body = '{{}}' WHERE {key}",
            f"UPDATE ledger SET args = '{{}}' WHERE {key}",
            "TRUNCATE ledger",
            "CREATE TABLE planbound.shadow (x int)",
        ):
            assert "permission denied" in refused(app, sql), sql
        said = refused(app, "ALTER TABLE ledger DISABLE TRIGGER ledger_keeps_outcomes")
        assert said == "must be owner of table ledger"
        for sql, said in (
            (
                f"UPDATE ledger SET status = 'failed' WHERE {key} AND step_id = 's1'",
                "succeeded -> failed would rewrite a finished outcome",
            ),
            (
                f"UPDATE ledger SET status = 'succeeded' WHERE {key} AND step_id = 's3'",
                "compensated -> succeeded would rewrite a finished outcome",
            ),
            (
                f"UPDATE ledger SET output = '\"forged\"' WHERE {key} AND step_id = 's2'",
                "succeeded -> succeeded would rewrite a finished outcome",
            ),
            (
                f"UPDATE ledger SET status = 'compensated', error = 'x' WHERE {key}"
                " AND step_id = 's2'",
                "succeeded -> compensated would rewrite a finished outcome",
            ),
            (
                "INSERT INTO ledger (decision_id, step_id, tool, args, status, started_at)"
                " VALUES ('d', 's', 't', '{}', 'succeeded', 0)",
                "ledger row d/s: a row is recorded started, before its call",
            ),
        ):
            assert refused(app, sql).endswith(said), sql
        # Claims are taken over and given back: those stay writable.
        assert (
            app.execute(
                f"UPDATE review_claims SET lease_until = 0 WHERE thread_id = '{thread}'"
            ).rowcount
            == 1
        )
        assert app.execute(f"DELETE FROM review_claims WHERE thread_id = '{thread}'").rowcount == 1

    # The trigger binds the owner too.
    with psycopg.connect(pg_uri, autocommit=True) as owner:
        said = refused(
            owner,
            f"UPDATE planbound.ledger SET status = 'failed' WHERE {key} AND step_id = 's1'",
        )
        assert said.endswith("succeeded -> failed would rewrite a finished outcome")
    stores = open_stores(tmp_path / "app", uri=app_uri)
    try:
        runner = Runner(stores)
        assert audit(runner.services, runner.graph, decision).intact
    finally:
        stores.close()

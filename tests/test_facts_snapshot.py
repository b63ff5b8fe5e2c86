"""Facts are read in one snapshot in which a repeated query is sent to the database once.

The verifier's lookups and the facts provider ask for the same rows (the order a step read,
again for the policy's facts); inside one read-only snapshot those answers cannot differ, so
each distinct ``SELECT`` is sent once. Nothing is kept past the snapshot: facts read again
after a change see the change.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from checkpoints.factory import Stores
from graph.planners.explicit import parse_plan_document
from guards.facts import read_plan
from guards.plan import Plan
from guards.snapshot import Rows, SnapshotReads
from tools.retail import DOMAIN, RetailDB, build_catalog

EMAIL = "fatima.anderson1447@example.com"
USER = "fatima_anderson_2157"
ORDER = "#W2974929"


class Counting:
    """The stores' domain connection, counting the statements sent to the database."""

    def __init__(self, stores: Stores) -> None:
        self.domain = stores.domain
        self.errors = stores.domain.errors
        self.dialect = stores.domain.dialect
        self.sent: list[tuple[str, tuple[Any, ...]]] = []

    @contextmanager
    def snapshot(self) -> Iterator[Any]:
        with self.domain.snapshot():
            yield self

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.sent.append((sql, tuple(params)))
        return self.domain.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> None:
        self.domain.executemany(sql, rows)


def twice_the_order() -> Plan:
    """Identity, the user, and the same order read by two steps (and by the facts)."""
    return parse_plan_document(
        {
            "goal": "read",
            "steps": [
                {"id": "who", "tool": "find_user_id_by_email", "args": {"email": EMAIL}},
                {"id": "user", "tool": "get_user_details", "args": {"user_id": "$who"}},
                {"id": "order", "tool": "get_order_details", "args": {"order_id": ORDER}},
                {
                    "id": "again",
                    "tool": "get_order_details",
                    "args": {"order_id": "$order.order_id"},
                    "depends_on": ["order"],
                },
            ],
        }
    )


def test_a_query_asked_twice_in_the_snapshot_is_sent_once(stores: Stores) -> None:
    conn = Counting(stores)
    reading = read_plan(twice_the_order(), build_catalog(), DOMAIN, conn, stores.lock)
    order_reads = [p for sql, p in conn.sent if "retail_orders" in sql]
    user_reads = [p for sql, p in conn.sent if "retail_users WHERE key" in sql]
    assert order_reads == [(ORDER,)]  # two steps and the facts provider: one query
    assert user_reads == [(USER,)]  # the step and the identity's facts: one query
    # What was read is what the database holds, for every step that asked.
    with stores.lock:
        order = RetailDB(stores.domain).get_order(ORDER)
        user = RetailDB(stores.domain).get_user(USER)
    assert order is not None and user is not None
    assert reading.reads["order"].output == reading.reads["again"].output == order
    assert reading.reads["user"].output == user
    assert reading.facts["orders"][ORDER]["status"] == order["status"]
    assert reading.facts["users"][USER]["payment_methods"].keys() == user["payment_methods"].keys()


def test_each_snapshot_reads_afresh(stores: Stores) -> None:
    conn = Counting(stores)
    plan, catalog = twice_the_order(), build_catalog()
    before = read_plan(plan, catalog, DOMAIN, conn, stores.lock)
    assert before.facts["orders"][ORDER]["status"] == "pending"
    with stores.lock, stores.domain.transaction(write=True):
        db = RetailDB(stores.domain)
        order = db.get_order(ORDER)
        assert order is not None
        db.put_order({**order, "status": "cancelled"})
    after = read_plan(plan, catalog, DOMAIN, conn, stores.lock)
    assert after.facts["orders"][ORDER]["status"] == "cancelled"
    assert after.reads["again"].output["status"] == "cancelled"
    assert [p for sql, p in conn.sent if "retail_orders" in sql] == [(ORDER,), (ORDER,)]


def test_only_reads_are_kept_and_rows_read_like_a_cursor(stores: Stores) -> None:
    conn = Counting(stores)
    lock = threading.RLock()
    with lock, conn.snapshot():
        reads = SnapshotReads(conn)
        first = reads.execute("SELECT key FROM retail_orders WHERE key = ?", (ORDER,))
        again = reads.execute("SELECT key FROM retail_orders WHERE key = ?", (ORDER,))
        assert first.fetchone() == again.fetchone() == (ORDER,)
        assert first.fetchone() is None and again.fetchall() == []
        other = reads.execute("SELECT key FROM retail_orders WHERE key = ?", ("#nope",))
        assert other.fetchone() is None
        reads.execute("SAVEPOINT probe")
        reads.execute("SAVEPOINT probe")
    sent = [sql for sql, _ in conn.sent]
    assert sent.count("SELECT key FROM retail_orders WHERE key = ?") == 2  # two keys
    assert sent.count("SAVEPOINT probe") == 2  # not a read: sent each time
    rows = Rows([(1,), (2,), (3,)])
    assert rows.fetchone() == (1,)
    assert list(rows) == [(2,), (3,)]
    assert rows.fetchone() is None


@pytest.mark.parametrize("sql", ["select 1", "  SELECT 1", "\nSelect 1"])
def test_a_select_is_recognised_whatever_its_case_or_leading_space(
    stores: Stores, sql: str
) -> None:
    conn = Counting(stores)
    with stores.lock, conn.snapshot():
        reads = SnapshotReads(conn)
        assert reads.execute(sql).fetchall() == reads.execute(sql).fetchall()
    assert len(conn.sent) == 1

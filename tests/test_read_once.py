"""Read once: an allowed plan's reads are run by verify in its snapshot and recorded once.

A read-only plan completes at verify (no execute super-steps), its reads are ledger rows and
journal entries written in one transaction, and reads that cannot be known before execution
(after a failed read, after a write, while a reviewer is asked) are left to execution.
"""

from __future__ import annotations

from typing import Any

import pytest
from answering import answer_for

from checkpoints.audit import AuditLog
from checkpoints.audit import verify as verify_chain
from checkpoints.factory import Stores
from checkpoints.ledger import Ledger, ReadRecord
from graph.runner import Runner
from guards.plan import content_hash
from tools.retail import RetailDB

EMAIL = "fatima.anderson1447@example.com"
USER = "fatima_anderson_2157"
ORDER = "#W2974929"

READS: list[dict[str, Any]] = [
    {"name": "find_user_id_by_email", "arguments": {"email": EMAIL}},
    {"name": "get_user_details", "arguments": {"user_id": USER}},
    {"name": "get_order_details", "arguments": {"order_id": ORDER}},
    {"name": "calculate", "arguments": {"expression": "2 * 3"}},
]


@pytest.fixture
def runner(stores: Stores) -> Runner:
    return Runner(stores)


def test_a_read_only_plan_completes_at_verify_with_each_read_recorded_once(
    runner: Runner, stores: Stores
) -> None:
    done = runner.start(explicit_plan=READS)
    assert done["status"] == "completed", done
    assert [r["step_id"] for r in done["results"]] == ["s1", "s2", "s3", "s4"]
    assert done["results"][0]["output"] == USER
    assert done["results"][3]["output"] == "6.0"
    trail = [r["next"] for r in reversed(list(runner.history(done["thread_id"])))]
    # No execute or finalize super-step: verify read everything and closed the run.
    assert trail == [["__start__"], ["intake"], ["plan"], ["verify"], []]
    with stores.lock:
        rows = Ledger(stores.domain).rows(done["decision_id"])
        journal = AuditLog(stores.domain).entries(done["decision_id"])
    assert [(r.step_id, r.status, r.attempts) for r in rows] == [
        (s, "succeeded", 1) for s in ("s1", "s2", "s3", "s4")
    ]
    by_step = {r["step_id"]: r for r in done["results"]}
    for row in rows:
        assert row.output == by_step[row.step_id]["output"]
        assert row.output_hash == content_hash(row.output, 64)
    steps = [(e.kind, e.body.get("step_id")) for e in journal if e.stream == "steps"]
    assert steps == [("verdict", None), *(("outcome", s) for s in ("s1", "s2", "s3", "s4"))]
    assert verify_chain(journal) == []


def test_a_read_after_a_failed_read_is_left_to_execution(runner: Runner, stores: Stores) -> None:
    plan = [
        {"name": "find_user_id_by_email", "arguments": {"email": EMAIL}},
        {"name": "get_order_details", "arguments": {"order_id": "#W0000000"}},
        {"name": "calculate", "arguments": {"expression": "1 + 1"}},
    ]
    out = runner.start(explicit_plan=plan)
    assert out["status"] == "failed", out
    results = {r["step_id"]: r["ok"] for r in out["results"]}
    assert results == {"s1": True, "s2": False}  # s3 depends on s2: it never ran
    with stores.lock:
        rows = Ledger(stores.domain).rows(out["decision_id"])
    assert [(r.step_id, r.status) for r in rows] == [("s1", "succeeded"), ("s2", "failed")]


def test_reads_of_a_plan_that_waits_for_a_reviewer_run_after_the_answer_in_one_step(
    runner: Runner, stores: Stores
) -> None:
    plan = [
        {"name": "find_user_id_by_email", "arguments": {"email": EMAIL}},
        {"name": "get_order_details", "arguments": {"order_id": ORDER}},
        {
            "name": "cancel_pending_order",
            "arguments": {"order_id": ORDER, "reason": "no longer needed"},
        },
        {"name": "get_order_details", "arguments": {"order_id": ORDER}},
    ]
    first = runner.start(explicit_plan=plan)
    assert first["status"] == "awaiting_approval" and first["results"] == []
    with stores.lock:
        assert Ledger(stores.domain).rows(first["decision_id"]) == []
    done = runner.resume(first["thread_id"], answer_for(first, {"type": "approve"}, reviewer="a"))
    assert done["status"] == "completed", done
    # The read after the write sees the write.
    assert done["results"][3]["output"]["status"] == "cancelled"
    trail = [r["steps_done"] for r in reversed(list(runner.history(done["thread_id"])))]
    after = [t for t in trail if t]
    # Both reads and the write they lead to in one super-step, then the read after the write.
    assert after[0] == ["s1", "s2", "s3"]
    assert after[1] == after[-1] == ["s1", "s2", "s3", "s4"]


def test_recording_reads_never_touches_a_recorded_step_and_keeps_the_journal_chained(
    stores: Stores,
) -> None:
    ledger = Ledger(stores.domain)
    with stores.lock, stores.domain.transaction(write=True):
        ledger.start("d1", "w", "cancel_pending_order", {"order_id": ORDER})
        ledger.finish("d1", "w", status="succeeded", attempts=1, output={"ok": 1})
    first = ReadRecord("r", "calculate", {"expression": "1"}, "1.0", content_hash("1.0", 64))
    again = ReadRecord("r", "calculate", {"expression": "2"}, "2.0", content_hash("2.0", 64))
    over = ReadRecord("w", "calculate", {"expression": "3"}, "3.0", content_hash("3.0", 64))
    with stores.lock, stores.domain.transaction(write=True):
        assert ledger.record_reads("d1", [first, over]) == {"r"}
    with stores.lock, stores.domain.transaction(write=True):
        assert ledger.record_reads("d1", [again]) == set()  # an outcome, once recorded, stands
    with stores.lock:
        rows = {r.step_id: r for r in ledger.rows("d1")}
        journal = AuditLog(stores.domain).entries("d1")
    assert rows["w"].tool == "cancel_pending_order" and rows["w"].output == {"ok": 1}
    assert (rows["r"].status, rows["r"].attempts) == ("succeeded", 1)
    assert rows["r"].output == "1.0" and rows["r"].args == {"expression": "1"}
    assert [e.body["step_id"] for e in journal] == ["w", "r"]
    assert verify_chain(journal) == []


@pytest.mark.parametrize(
    ("email", "found"),
    [
        ("FATIMA.Anderson1447@example.com", USER),
        ("anderson1447@example.com", None),  # a part of an email is not the email
        ("fatima_anderson1447@example.com", None),  # `_` is not a wildcard
        ("%@example.com", None),
    ],
)
def test_users_are_found_by_their_whole_email_only(
    stores: Stores, email: str, found: str | None
) -> None:
    from tools.catalog import ToolError
    from tools.retail.tools.lookups import find_user_id_by_email

    db = RetailDB(stores.domain)
    with stores.lock:
        if found is None:
            with pytest.raises(ToolError):
                find_user_id_by_email.invoke({"email": email, "db": db})
        else:
            assert find_user_id_by_email.invoke({"email": email, "db": db}) == found

"""End to end on a real SQLite checkpointer and a seeded domain database."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from answering import answer_for
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from checkpoints.factory import Stores
from checkpoints.ledger import Ledger
from graph.engine import StepCall, run_step
from graph.errors import RunError
from graph.graph import build_graph
from graph.runner import Runner
from graph.settings import Settings
from guards.errors import DecisionInvalid, ReviewChanged
from tools.retail import export, load_shipped

PENDING_ORDER = "#W2974929"  # fatima_anderson_2157, paid 182.03 with paypal_7916550
EMAIL = "fatima.anderson1447@example.com"
PROCESSED_ORDER = "#W2611340"
# isabella_lopez_6490: pending, 321.18, paid with credit_card_8554680, two other methods
ISABELLA = "isabella.lopez3271@example.com"
ISABELLA_ORDER = "#W4923227"


def cancel_actions(order_id: str = PENDING_ORDER, reason: str = "no longer needed") -> list[Any]:
    return [
        {"name": "find_user_id_by_email", "arguments": {"email": EMAIL}},
        {"name": "get_order_details", "arguments": {"order_id": order_id}},
        {"name": "cancel_pending_order", "arguments": {"order_id": order_id, "reason": reason}},
    ]


def expected_cancel(data: dict[str, Any], order_id: str, reason: str) -> dict[str, Any]:
    """What τ²'s cancel_pending_order does to the data (for a non-gift-card payment)."""
    want = copy.deepcopy(data)
    order = want["orders"][order_id]
    refunds = [
        {
            "transaction_type": "refund",
            "amount": p["amount"],
            "payment_method_id": p["payment_method_id"],
        }
        for p in order["payment_history"]
    ]
    order["payment_history"].extend(refunds)
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    return want


@pytest.fixture
def runner(stores: Stores) -> Runner:
    return Runner(stores)


def test_write_step_waits_for_approval_then_changes_exactly_what_tau2_would(
    runner: Runner, stores: Stores
) -> None:
    shipped = load_shipped()
    first = runner.start(explicit_plan=cancel_actions())
    assert first["status"] == "awaiting_approval"
    assert [p["step_id"] for p in first["pending"]] == ["s3"]
    assert first["pending"][0]["tool"] == "cancel_pending_order"
    assert first["verdict"]["outcome"] == "needs_approval"
    assert first["results"] == []  # nothing ran before approval, not even the read
    assert export(stores.domain) == shipped

    done = runner.resume(first["thread_id"], answer_for(first, {"type": "approve"}, reviewer="ann"))
    assert done["status"] == "completed", done
    assert [r["step_id"] for r in done["results"]] == ["s1", "s2", "s3"]
    assert done["results"][2]["output"]["status"] == "cancelled"
    assert export(stores.domain) == expected_cancel(shipped, PENDING_ORDER, "no longer needed")
    rows = Ledger(stores.domain).rows(done["decision_id"])
    assert [(r.step_id, r.status, r.attempts) for r in rows] == [
        ("s1", "succeeded", 1),
        ("s2", "succeeded", 1),
        ("s3", "succeeded", 1),
    ]


def test_a_start_on_a_thread_waiting_for_review_is_refused_and_the_review_stands(
    runner: Runner, stores: Stores
) -> None:
    first = runner.start(explicit_plan=cancel_actions())
    thread = first["thread_id"]
    with pytest.raises(RunError, match="has a run in progress .*approve"):
        runner.start(explicit_plan=cancel_actions(reason="ordered by mistake"), thread_id=thread)
    still = runner.outcome(thread)
    assert still["status"] == "awaiting_approval" and still["plan"] == first["plan"]
    done = runner.resume(thread, answer_for(first, {"type": "approve"}, reviewer="ann"))
    assert done["status"] == "completed", done
    assert done["results"][2]["output"]["cancel_reason"] == "no longer needed"


def test_reject_changes_nothing(runner: Runner, stores: Stores) -> None:
    first = runner.start(explicit_plan=cancel_actions())
    out = runner.resume(
        first["thread_id"],
        answer_for(first, {"type": "reject", "message": "customer called back"}, reviewer="bo"),
    )
    assert out["status"] == "rejected"
    assert "s3 rejected by bo: customer called back" in out["error"]
    assert out["results"] == []
    assert export(stores.domain) == load_shipped()
    assert Ledger(stores.domain).rows(out["decision_id"]) == []


def test_edit_is_verified_again_then_runs_the_edited_call(runner: Runner, stores: Stores) -> None:
    first = runner.start(explicit_plan=cancel_actions())
    edited = runner.resume(
        first["thread_id"],
        answer_for(
            first,
            {
                "type": "edit",
                "edited_action": {
                    "name": "cancel_pending_order",
                    "args": {"order_id": PENDING_ORDER, "reason": "ordered by mistake"},
                },
            },
            reviewer="cy",
        ),
    )
    assert edited["status"] == "completed", edited
    assert edited["plan"]["source"] == "edit"
    assert edited["plan"]["id"] != first["plan"]["id"]
    assert export(stores.domain) == expected_cancel(
        load_shipped(), PENDING_ORDER, "ordered by mistake"
    )


def test_an_edit_that_breaks_the_contract_is_refused_before_resuming(runner: Runner) -> None:
    first = runner.start(explicit_plan=cancel_actions())
    with pytest.raises(DecisionInvalid, match="field 'reason'"):
        runner.resume(
            first["thread_id"],
            answer_for(
                first,
                {
                    "type": "edit",
                    "edited_action": {
                        "name": "cancel_pending_order",
                        "args": {"order_id": PENDING_ORDER},
                    },
                },
                reviewer="cy",
            ),
        )
    assert runner.outcome(first["thread_id"])["status"] == "awaiting_approval"


def test_bad_resume_payload_is_a_clear_error_and_the_thread_stays_resumable(
    runner: Runner, stores: Stores
) -> None:
    first = runner.start(explicit_plan=cancel_actions())
    thread = first["thread_id"]
    history_before = len(list(runner.history(thread)))
    with pytest.raises(DecisionInvalid, match="a reviewer is required"):
        runner.resume(thread, answer_for(first, {"type": "approve"}))
    assert len(list(runner.history(thread))) == history_before

    # Sent straight to the graph (as a server client would), the node asks again.
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    runner.graph.invoke(Command(resume={"decisions": "yes"}), config, context=runner.context)
    again = runner.outcome(thread)
    assert again["status"] == "awaiting_approval"
    assert "'decisions' must be a non-empty list" in again["review_error"]
    assert export(stores.domain) == load_shipped()

    done = runner.resume(thread, answer_for(first, {"type": "approve"}, reviewer="ann"))
    assert done["status"] == "completed"


def test_failing_write_step_is_compensated(runner: Runner, stores: Stores) -> None:
    """The second payment change passes the policy (the facts show one payment) but the
    tool refuses it after the first change: the completed writes are undone in reverse."""
    shipped = load_shipped()
    plan = {
        "goal": "move, then change the payment twice",
        "steps": [
            {"id": "who", "tool": "find_user_id_by_email", "args": {"email": ISABELLA}},
            {
                "id": "move",
                "tool": "modify_user_address",
                "args": {
                    "user_id": "$who",
                    "address1": "1 Main St",
                    "address2": "",
                    "city": "Austin",
                    "state": "TX",
                    "country": "USA",
                    "zip": "78701",
                },
            },
            {
                "id": "pay1",
                "tool": "modify_pending_order_payment",
                "depends_on": ["move"],
                "args": {"order_id": ISABELLA_ORDER, "payment_method_id": "paypal_1621947"},
            },
            {
                "id": "pay2",
                "tool": "modify_pending_order_payment",
                "depends_on": ["pay1"],
                "args": {"order_id": ISABELLA_ORDER, "payment_method_id": "credit_card_8897086"},
            },
        ],
    }
    first = runner.start(explicit_plan=plan)
    assert [p["step_id"] for p in first["pending"]] == ["move", "pay1", "pay2"], first
    out = runner.resume(
        first["thread_id"], answer_for(first, *[{"type": "approve"}] * 3, reviewer="ann")
    )
    assert out["status"] == "rolled_back", out
    assert "There should be exactly one payment for a pending order" in out["error"]
    assert [r["compensated"] for r in out["results"]] == [False, True, True, False]
    assert out["compensation"] == [
        "pay1: undid modify_pending_order_payment (1 record(s) restored)",
        "move: undid modify_user_address (1 record(s) restored)",
    ]
    assert export(stores.domain) == shipped
    statuses = {r.step_id: r.status for r in Ledger(stores.domain).rows(out["decision_id"])}
    assert statuses == {
        "who": "succeeded",
        "move": "compensated",
        "pay1": "compensated",
        "pay2": "failed",
    }


def test_unknown_tool_is_refused_with_the_step_named(runner: Runner, stores: Stores) -> None:
    out = runner.start(explicit_plan=[{"id": "x1", "name": "drop_all_orders", "arguments": {}}])
    assert out["status"] == "refused"
    assert "step 'x1', field 'tool': unknown tool 'drop_all_orders'" in out["verdict"]["reasons"][0]
    assert export(stores.domain) == load_shipped()


def test_read_only_plan_runs_without_review_and_refs_resolve(stores: Stores) -> None:
    runner = Runner(stores, Settings.load(home=stores.home, inline_limit=200))
    plan = [
        {
            "id": "u",
            "name": "find_user_id_by_email",
            "arguments": {"email": load_shipped()["users"]["fatima_anderson_2157"]["email"]},
        },
        {"id": "d", "name": "get_user_details", "arguments": {"user_id": "$u"}},
        {"id": "o", "name": "get_order_details", "arguments": {"order_id": "$d.orders.0"}},
    ]
    out = runner.start(explicit_plan=plan)
    assert out["status"] == "completed", out
    by_id = {r["step_id"]: r for r in out["results"]}
    assert by_id["u"]["output"] == "fatima_anderson_2157"
    # Large outputs stay in the ledger; the state keeps a reference and a hash.
    assert by_id["d"]["output"] is None and by_id["d"]["output_ref"].startswith("ledger:")
    assert by_id["o"]["output_ref"] is not None
    row = Ledger(stores.domain).get(out["decision_id"], "o")
    assert row is not None and row.output["user_id"] == "fatima_anderson_2157"


def test_a_step_already_in_the_ledger_is_not_run_again(runner: Runner, stores: Stores) -> None:
    first = runner.start(explicit_plan=cancel_actions())
    done = runner.resume(first["thread_id"], answer_for(first, {"type": "approve"}, reviewer="a"))
    after = export(stores.domain)
    entry = runner.services.catalog.get("cancel_pending_order")
    assert entry is not None
    again = run_step(
        StepCall(
            decision_id=done["decision_id"],
            step_id="s3",
            entry=entry,
            args={"order_id": PENDING_ORDER, "reason": "no longer needed"},
        ),
        stores.domain,
        stores.lock,
        open_store=runner.services.domain.open_store,
    )
    assert again.ok and again.output["status"] == "cancelled"
    assert export(stores.domain) == after  # no second set of refunds


def test_topology_snapshot() -> None:
    snapshot = Path(__file__).parent / "snapshots" / "graph.mmd"
    drawn = build_graph().get_graph().draw_mermaid()
    assert drawn == snapshot.read_text()


def test_every_transition_is_checkpointed(runner: Runner) -> None:
    first = runner.start(explicit_plan=cancel_actions())
    done = runner.resume(first["thread_id"], answer_for(first, {"type": "approve"}, reviewer="a"))
    rows = list(runner.history(done["thread_id"]))
    trail = [(r["next"], r["status"], r["steps_done"]) for r in reversed(rows)]
    assert trail == [
        (["__start__"], None, []),
        (["intake"], None, []),
        (["plan"], "planning", []),
        (["verify"], "planning", []),
        (["approve"], "verified", []),
        (["execute"], "approved", []),
        # the ready reads run in one snapshot, then the write they lead to; the write ends
        # the super-step
        (["finalize"], "executing", ["s1", "s2", "s3"]),
        ([], "completed", ["s1", "s2", "s3"]),
    ]
    assert [r["interrupted"] for r in reversed(rows)].count(True) == 1
    # Each checkpoint is its own row, and the latest one shows every step's ledger outcome.
    assert len({r["checkpoint_id"] for r in rows}) == len(rows)
    assert rows[0]["ledger"] == {"s1": "succeeded", "s2": "succeeded", "s3": "succeeded"}


def test_a_thread_takes_a_request_after_an_explicit_plan_and_back(runner: Runner) -> None:
    lookup = [{"name": "get_order_details", "arguments": {"order_id": PENDING_ORDER}}]
    first = runner.start(explicit_plan=[{"name": "calculate", "arguments": {"expression": "1+1"}}])
    assert first["status"] == "completed", first
    thread = first["thread_id"]
    words = runner.start(
        request="I'm fatima.anderson1447@example.com, show me order #W2974929.", thread_id=thread
    )
    assert words["status"] == "completed", words
    assert words["plan"]["source"] == "template"
    again = runner.start(explicit_plan=lookup, thread_id=thread)
    # Judged as the plan it is (no identity step before a lookup of a user's order).
    assert again["status"] == "refused" and again["plan"]["source"] == "explicit"
    assert "[identity.required]" in again["error"]
    # Nothing of the earlier runs is left in this one: its results and verdict are its own.
    assert again["results"] == [] and again["compensation"] == []
    assert again["verdict"]["plan_id"] == again["plan"]["id"] != words["plan"]["id"]


def test_a_respond_ends_the_run_with_its_message_and_runs_nothing(
    runner: Runner, stores: Stores
) -> None:
    first = runner.start(explicit_plan=cancel_actions())
    text = "the customer cancelled by phone"
    out = runner.resume(
        first["thread_id"], answer_for(first, {"type": "respond", "message": text}, reviewer="di")
    )
    assert out["status"] == "rejected", out
    assert out["error"] == f"s3 not run: di responded: {text}"
    assert out["results"] == []
    assert export(stores.domain) == load_shipped()
    decisions = runner.graph.get_state({"configurable": {"thread_id": first["thread_id"]}}).values[
        "decisions"
    ]
    assert [(d.step_id, d.type, d.reviewer, d.message) for d in decisions] == [
        ("s3", "respond", "di", text)
    ]


def test_an_answer_must_name_the_review_it_answers(runner: Runner, stores: Stores) -> None:
    first = runner.start(explicit_plan=cancel_actions())
    thread = first["thread_id"]
    history_before = len(list(runner.history(thread)))
    bare = {"decisions": [{"type": "approve"}], "reviewer": "ann"}
    with pytest.raises(DecisionInvalid) as info:
        runner.resume(thread, bare)
    assert info.value.problems == [
        "the answer does not say which review it answers: add 'decision_id' and 'plan_id' "
        "from the pending review (its interrupt value), or send the answer keyed by its "
        "interrupt id ({interrupt_id: answer}; the only way for a legacy Agent Inbox answer, "
        "which has no place for them)"
    ]
    stale = answer_for(first, {"type": "approve"}, reviewer="ann") | {"plan_id": "p-old"}
    with pytest.raises(ReviewChanged) as changed:
        runner.resume(thread, stale)
    assert changed.value.problems == [
        f"the review changed: you answered plan p-old, plan {first['plan']['id']} is pending"
    ]
    other = answer_for(first, {"type": "approve"}, reviewer="ann") | {"decision_id": "d-old"}
    with pytest.raises(ReviewChanged, match="you answered decision d-old, decision "):
        runner.resume(thread, other)
    assert len(list(runner.history(thread))) == history_before
    assert export(stores.domain) == load_shipped()

    # Sent straight to the graph, an answer to another plan is asked again with the reason.
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    runner.graph.invoke(Command(resume=stale), config, context=runner.context)
    again = runner.outcome(thread)
    assert again["status"] == "awaiting_approval"
    assert "the review changed: you answered plan p-old" in again["review_error"]
    assert export(stores.domain) == load_shipped()
    done = runner.resume(thread, answer_for(again, {"type": "approve"}, reviewer="ann"))
    assert done["status"] == "completed", done

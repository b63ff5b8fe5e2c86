"""Approvals tried as an attacker would: edits past the supervisor and self-approval rules,
answers sent straight to the graph, approvals planted in state.

An approval must satisfy the requirements of the exact call that runs. Each test checks that
the domain did not change when it must not, and that the thread stays answerable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from answering import answer_for
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from checkpoints.ledger import Approvals
from graph.review import digest
from graph.runner import Runner
from graph.services import open_stores
from graph.state import Pins
from guards.errors import DecisionInvalid
from guards.judgement import Approval
from guards.plan import Plan
from tools.retail import RetailDB, export, load_shipped, seed

FATIMA = "fatima.anderson1447@example.com"
SMALL = "#W2974929"  # fatima_anderson_2157, pending, 182.03
BIG = "#W4514908"  # fatima_anderson_2157, pending, 3,439.37: over the supervisor threshold
ADDRESS = {
    "address1": "1 Elm St",
    "address2": "",
    "city": "Austin",
    "state": "TX",
    "country": "USA",
    "zip": "78701",
}


@pytest.fixture(params=["sqlite", "postgres"])
def runner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runner]:
    uri = request.getfixturevalue("pg_uri") if request.param == "postgres" else None
    stores = open_stores(tmp_path / "home", uri=uri)
    with stores.lock, stores.domain.transaction(write=True):
        seed(stores.domain, load_shipped())
    yield Runner(stores)
    stores.close()


def plan_of(write: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"id": "who", "name": "find_user_id_by_email", "arguments": {"email": FATIMA}},
        {"id": "w", **write},
    ]


def cancel(order: str) -> dict[str, Any]:
    return {
        "name": "cancel_pending_order",
        "arguments": {"order_id": order, "reason": "no longer needed"},
    }


def status_of(runner: Runner, order: str) -> str:
    with runner.stores.lock:
        found = RetailDB(runner.stores.domain).get_order(order)
    assert found is not None
    return str(found["status"])


def edit_to(shown: dict[str, Any], order: str, reviewer: str, role: str) -> dict[str, Any]:
    action = {
        "name": "cancel_pending_order",
        "args": {"order_id": order, "reason": "no longer needed"},
    }
    edit = {"type": "edit", "edited_action": action}
    return answer_for(shown, edit, reviewer=reviewer, role=role)


def test_an_edit_cannot_get_past_the_supervisor_rule(runner: Runner) -> None:
    before = export(runner.stores.domain)
    first = runner.start(explicit_plan=plan_of(cancel(SMALL)), actor="alice")
    assert first["status"] == "awaiting_approval"
    # A plain approve of the big order by a reviewer is refused; so is an edit into it.
    with pytest.raises(DecisionInvalid, match="supervisor"):
        runner.resume(first["thread_id"], edit_to(first, BIG, "rita", "reviewer"))
    still = runner.outcome(first["thread_id"])
    assert still["status"] == "awaiting_approval" and still["plan"] == first["plan"]
    assert export(runner.stores.domain) == before

    # Straight to the graph, past the pre-check: the node refuses it and asks again.
    config: RunnableConfig = {"configurable": {"thread_id": first["thread_id"]}}
    runner.graph.invoke(
        Command(resume=edit_to(first, BIG, "rita", "reviewer")), config, context=runner.context
    )
    again = runner.outcome(first["thread_id"])
    assert again["status"] == "awaiting_approval" and again["plan"] == first["plan"]
    assert "supervisor" in again["review_error"]
    assert export(runner.stores.domain) == before

    # A supervisor may make the same edit: it runs, and the approval records their role.
    done = runner.resume(first["thread_id"], edit_to(first, BIG, "sam", "supervisor"))
    assert done["status"] == "completed", done
    assert status_of(runner, BIG) == "cancelled" and status_of(runner, SMALL) == "pending"
    with runner.stores.lock:
        rows = Approvals(runner.stores.domain).rows(done["decision_id"])
    assert [(r.step_id, r.reviewer, r.roles) for r in rows] == [("w", "sam", ["supervisor"])]


def test_an_edit_cannot_get_past_the_no_self_approval_rule(runner: Runner) -> None:
    move = {"name": "modify_pending_order_address", "arguments": {"order_id": SMALL, **ADDRESS}}
    first = runner.start(explicit_plan=plan_of(move), actor="rita")
    assert first["status"] == "awaiting_approval"
    before = export(runner.stores.domain)
    # rita asked for the run: she may not approve a high-risk call in it, edited or not.
    with pytest.raises(DecisionInvalid, match="no_self_approval"):
        runner.resume(first["thread_id"], edit_to(first, SMALL, "rita", "reviewer"))
    assert export(runner.stores.domain) == before
    assert runner.outcome(first["thread_id"])["status"] == "awaiting_approval"
    # Someone else may.
    done = runner.resume(first["thread_id"], edit_to(first, SMALL, "bo", "reviewer"))
    assert done["status"] == "completed" and status_of(runner, SMALL) == "cancelled"


def _plant(runner: Runner, thread_id: str, reviewer: str, roles: list[str]) -> Approval:
    snap = runner.graph.get_state({"configurable": {"thread_id": thread_id}})
    plan, pins = snap.values["plan"], snap.values["pins"]
    assert isinstance(plan, Plan) and isinstance(pins, Pins)
    return Approval(
        step_id="w", digest=digest(plan.step("w"), plan, pins), reviewer=reviewer, roles=roles
    )


def test_an_approval_planted_in_state_is_checked_against_the_step_requirements(
    runner: Runner,
) -> None:
    first = runner.start(explicit_plan=plan_of(cancel(BIG)), actor="alice")
    thread = first["thread_id"]
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    weak = _plant(runner, thread, "rita", ["reviewer"])

    # An approval with the right digest but too little authority: the review is asked again.
    runner.graph.update_state(config, {"approvals": [weak]}, as_node="verify")
    runner.graph.invoke(None, config, context=runner.context)
    assert runner.outcome(thread)["status"] == "awaiting_approval"
    assert status_of(runner, BIG) == "pending"

    # Forced past approve: execution checks the roles once more and runs nothing.
    runner.graph.update_state(
        config, {"approvals": [weak], "status": "approved"}, as_node="approve"
    )
    runner.graph.invoke(None, config, context=runner.context)
    out = runner.outcome(thread)
    assert out["status"] == "refused", out
    assert "refused at execution" in out["error"] and "supervisor" in out["error"]
    assert status_of(runner, BIG) == "pending"

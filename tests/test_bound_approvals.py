"""An approval is for the values the reviewer was shown, not for the rule that picks them.

A step whose arguments are selections or references is reviewed with the values they
resolve to when the plan is verified; the approval records them, and execution refuses the
step, before any write, when its arguments resolve to anything else. Tried as an attacker
would: the data changes between the approval and the run, on both databases.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from answering import answer_for
from langchain_core.runnables import RunnableConfig

from checkpoints.factory import Stores
from checkpoints.ledger import Approvals, Ledger
from graph.runner import Runner
from guards.judgement import Approval
from guards.plan import Plan, Step
from tools.retail import export, load_shipped, seed

ORDER = "#W2378156"  # yusuf_rossi_9620, delivered, paid with credit_card_9513926
PENDING = "#W6247578"  # yusuf_rossi_9620, pending
EMAIL = "yusuf.rossi7301@example.com"
KEYBOARD = "1151293680"  # linear, RGB, full size
KEYBOARD_PRODUCT = "1656367028"
CLICKY_NONE_FULL = "7706410293"  # the one available clicky, no-backlight, full-size variant
CLICKY_NONE_80 = "9665000388"  # the one available clicky, no-backlight, 80% variant
PAYMENT = "credit_card_9513926"

CLICKY_NO_BACKLIGHT = (
    "variants.* | [?available && options.\"switch type\" == 'clicky'"
    " && options.backlight == 'none' && options.size == param('current').size].item_id"
)


def select(step: str, query: str, **extra: Any) -> dict[str, Any]:
    return {"$select": step, "query": query, **extra}


def exchange_plan() -> Plan:
    """Exchange the keyboard for the clicky, no-backlight variant of its current size."""
    current = select("s2", "items[?item_id == param('item')].options", params={"item": KEYBOARD})
    return Plan(
        source="explicit",
        goal="exchange the keyboard",
        steps=[
            Step(id="s1", tool="find_user_id_by_email", args={"email": EMAIL}),
            Step(id="s2", tool="get_order_details", args={"order_id": ORDER}, depends_on=["s1"]),
            Step(id="s3", tool="get_product_details", args={"product_id": KEYBOARD_PRODUCT}),
            Step(
                id="s4",
                tool="exchange_delivered_order_items",
                args={
                    "order_id": ORDER,
                    "item_ids": [KEYBOARD],
                    "new_item_ids": [
                        select("s3", CLICKY_NO_BACKLIGHT, params={"current": current})
                    ],
                    "payment_method_id": PAYMENT,
                },
                depends_on=["s1", "s2"],
            ),
        ],
    )


def copy_address_plan() -> Plan:
    """Ship the pending order to the address of the delivered one (a ``$ref``)."""
    fields = ("address1", "address2", "city", "state", "country", "zip")
    return Plan(
        source="explicit",
        goal="ship my pending order where the other one went",
        steps=[
            Step(id="s1", tool="find_user_id_by_email", args={"email": EMAIL}),
            Step(id="s2", tool="get_order_details", args={"order_id": ORDER}, depends_on=["s1"]),
            Step(
                id="s3",
                tool="modify_pending_order_address",
                args={"order_id": PENDING, **{f: f"$s2.address.{f}" for f in fields}},
                depends_on=["s1"],
            ),
        ],
    )


@pytest.fixture
def runner(stores: Stores) -> Runner:
    return Runner(stores)


def approve(runner: Runner, shown: dict[str, Any]) -> dict[str, Any]:
    answer = answer_for(shown, {"type": "approve"}, reviewer="sue", role="supervisor")
    return runner.resume(shown["thread_id"], answer)


def change(stores: Stores, edit: Any) -> dict[str, Any]:
    data = load_shipped()
    edit(data)
    with stores.lock:
        seed(stores.domain, data)
    return data


def write_rows(stores: Stores, decision_id: str, step_id: str) -> list[str]:
    with stores.lock:
        return [r.status for r in Ledger(stores.domain).rows(decision_id) if r.step_id == step_id]


def pending_value(runner: Runner, thread_id: str) -> dict[str, Any]:
    snap = runner.graph.get_state({"configurable": {"thread_id": thread_id}})
    value = snap.interrupts[0].value
    assert isinstance(value, dict)
    return value


def test_the_reviewer_is_shown_the_resolved_values_and_the_approval_keeps_them(
    runner: Runner, stores: Stores
) -> None:
    first = runner.start(explicit_plan=exchange_plan().model_dump(mode="json"))
    assert first["status"] == "awaiting_approval", first
    (action,) = pending_value(runner, first["thread_id"])["action_requests"]
    assert action["resolved_args"] == {"new_item_ids": [CLICKY_NONE_FULL]}
    done = approve(runner, first)
    assert done["status"] == "completed", done
    order = export(stores.domain)["orders"][ORDER]
    assert order["exchange_new_items"] == [CLICKY_NONE_FULL]
    state = runner.graph.get_state({"configurable": {"thread_id": first["thread_id"]}}).values
    (grant,) = state["approvals"]
    assert grant.bound == {"new_item_ids": [CLICKY_NONE_FULL]}
    with stores.lock:
        (row,) = Approvals(stores.domain).rows(done["decision_id"])
    assert row.digest == grant.digest


def test_a_selection_that_resolves_to_another_variant_after_approval_is_refused(
    runner: Runner, stores: Stores
) -> None:
    first = runner.start(explicit_plan=exchange_plan().model_dump(mode="json"))
    assert first["status"] == "awaiting_approval", first

    def smaller_keyboard(data: dict[str, Any]) -> None:
        # The order line now says 80%: the same rule picks another variant.
        for item in data["orders"][ORDER]["items"]:
            if item["item_id"] == KEYBOARD:
                item["options"]["size"] = "80%"

    changed = change(stores, smaller_keyboard)
    done = approve(runner, first)
    assert done["status"] in ("failed", "rolled_back"), done
    assert "step 's4', argument 'new_item_ids'" in done["error"], done["error"]
    assert CLICKY_NONE_FULL in done["error"] and CLICKY_NONE_80 in done["error"]
    assert export(stores.domain) == changed  # nothing written
    assert write_rows(stores, done["decision_id"], "s4") == []  # the write never started
    with stores.lock:
        assert Approvals(stores.domain).rows(done["decision_id"]) == []  # not consumed
    again = runner.outcome(first["thread_id"])
    assert again["status"] == done["status"]


def test_a_reference_that_resolves_to_another_address_after_approval_is_refused(
    runner: Runner, stores: Stores
) -> None:
    first = runner.start(explicit_plan=copy_address_plan().model_dump(mode="json"))
    assert first["status"] == "awaiting_approval", first
    (action,) = pending_value(runner, first["thread_id"])["action_requests"]
    assert action["resolved_args"]["address1"] == "763 Broadway"

    def moved(data: dict[str, Any]) -> None:
        data["orders"][ORDER]["address"]["address1"] = "1 Attacker Way"

    changed = change(stores, moved)
    done = approve(runner, first)
    assert done["status"] in ("failed", "rolled_back"), done
    assert "step 's3', argument 'address1'" in done["error"], done["error"]
    assert export(stores.domain) == changed
    assert write_rows(stores, done["decision_id"], "s3") == []


def test_unchanged_data_runs_the_reference_as_approved(runner: Runner, stores: Stores) -> None:
    first = runner.start(explicit_plan=copy_address_plan().model_dump(mode="json"))
    done = approve(runner, first)
    assert done["status"] == "completed", done
    want = copy.deepcopy(load_shipped()["orders"][ORDER]["address"])
    assert export(stores.domain)["orders"][PENDING]["address"] == want


def test_an_approval_planted_without_the_values_is_refused(runner: Runner, stores: Stores) -> None:
    from graph.review import digest

    first = runner.start(explicit_plan=exchange_plan().model_dump(mode="json"))
    thread = first["thread_id"]
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    snap = runner.graph.get_state(config)
    plan, pins = snap.values["plan"], snap.values["pins"]
    planted = Approval(
        step_id="s4",
        digest=digest(plan.step("s4"), plan, pins),
        reviewer="sue",
        roles=["supervisor"],
    )
    runner.graph.update_state(
        config, {"approvals": [planted], "status": "approved"}, as_node="approve"
    )
    runner.graph.invoke(None, config, context=runner.context)
    out = runner.outcome(thread)
    assert out["status"] in ("failed", "rolled_back"), out
    assert "does not say what its references resolved to" in out["error"]
    assert export(stores.domain) == load_shipped()

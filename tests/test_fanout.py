"""Fan-out: a step repeated once per element of a selection over earlier lookups.

The verifier writes a ``foreach`` step out as one concrete call per element on its read
snapshot, so budgets, the policy and the reviewer judge those calls; before each runs, the
selection is evaluated again and a set that changed fails it before any write. Tried as an
attacker would on both databases: orders stop or start being pending after the approval.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from checkpoints.factory import Stores
from checkpoints.ledger import Ledger
from graph.runner import Runner
from graph.services import Services
from guards.contracts import Budget, check_plan
from guards.plan import Plan
from tools.retail import RetailDB, export, load_shipped, seed
from tools.retail.catalog import build_catalog

FATIMA = {"first_name": "Fatima", "last_name": "Johnson", "zip": "78712"}
PENDING = ["#W5199551", "#W8665881"]  # fatima_johnson_7581's pending orders
DELIVERED = "#W9389413"  # hers, delivered; holds a wristwatch (item 2554056026)


def cancel_all(reason: str = "no longer needed") -> dict[str, Any]:
    return {
        "goal": "cancel all my pending orders",
        "steps": [
            {"id": "s1", "tool": "find_user_id_by_name_zip", "args": FATIMA},
            {"id": "s2", "tool": "get_user_details", "args": {"user_id": "$s1"}},
            {
                "id": "o",
                "tool": "get_order_details",
                "foreach": {"$select": "s2", "query": "orders", "take": "all"},
                "args": {"order_id": "$each"},
            },
            {
                "id": "c",
                "tool": "cancel_pending_order",
                "foreach": {
                    "$select": "o",
                    "query": "[?status == 'pending'].order_id",
                    "take": "all",
                },
                "args": {"order_id": "$each", "reason": reason},
                "depends_on": ["s1"],
            },
        ],
    }


@pytest.fixture
def runner(stores: Stores) -> Runner:
    return Runner(stores)


def approve_all(runner: Runner, shown: dict[str, Any]) -> dict[str, Any]:
    answer = {
        "decisions": [{"type": "approve"} for _ in shown["pending"]],
        "decision_id": shown["decision_id"],
        "plan_id": shown["plan"]["id"],
        "reviewer": "sue",
        "roles": ["supervisor"],
    }
    return runner.resume(shown["thread_id"], answer)


def statuses(stores: Stores) -> dict[str, str]:
    with stores.lock:
        db = RetailDB(stores.domain)
        return {o: str((db.get_order(o) or {})["status"]) for o in [*PENDING, DELIVERED]}


def reseed(stores: Stores, edit: Any) -> dict[str, Any]:
    data = load_shipped()
    edit(data)
    with stores.lock:
        seed(stores.domain, data)
    return data


def writes_started(stores: Stores, decision_id: str) -> list[str]:
    with stores.lock:
        rows = Ledger(stores.domain).rows(decision_id)
    return [r.step_id for r in rows if r.tool == "cancel_pending_order"]


def test_the_reviewer_judges_one_concrete_call_per_pending_order(
    runner: Runner, stores: Stores
) -> None:
    first = runner.start(explicit_plan=cancel_all())
    assert first["status"] == "awaiting_approval", first
    steps = {s["id"]: s for s in first["plan"]["steps"]}
    assert [s for s in steps if s.startswith(("o_", "c_"))] == ["o_1", "o_2", "o_3", "c_1", "c_2"]
    assert [p["args"] for p in first["pending"]] == [
        {"order_id": o, "reason": "no longer needed"} for o in PENDING
    ]
    assert steps["c_2"]["repeat"]["values"] == PENDING
    done = approve_all(runner, first)
    assert done["status"] == "completed", done
    assert statuses(stores) == {
        PENDING[0]: "cancelled",
        PENDING[1]: "cancelled",
        DELIVERED: "delivered",
    }


def test_no_matching_order_is_a_refusal_before_any_review(runner: Runner, stores: Stores) -> None:
    def none_pending(data: dict[str, Any]) -> None:
        for order in PENDING:
            data["orders"][order]["status"] = "processed"

    before = reseed(stores, none_pending)
    out = runner.start(explicit_plan=cancel_all())
    assert out["status"] == "refused", out
    assert "nothing to do it for" in out["error"] and "'c'" in out["error"], out["error"]
    assert export(stores.domain) == before


@pytest.mark.parametrize("change", ["no_longer_pending", "newly_pending"])
def test_an_order_that_changes_after_approval_fails_the_fanout_before_any_write(
    runner: Runner, stores: Stores, change: str
) -> None:
    first = runner.start(explicit_plan=cancel_all())
    assert first["status"] == "awaiting_approval", first

    def edit(data: dict[str, Any]) -> None:
        if change == "no_longer_pending":
            data["orders"][PENDING[1]]["status"] = "processed"
        else:
            data["orders"][DELIVERED]["status"] = "pending"

    changed = reseed(stores, edit)
    done = approve_all(runner, first)
    assert done["status"] in ("failed", "rolled_back", "refused"), done
    assert "the data changed since the plan was judged" in done["error"], done["error"]
    assert export(stores.domain) == changed  # not even the order that is still pending
    assert writes_started(stores, done["decision_id"]) == []


def test_a_new_order_of_the_user_after_approval_fails_the_lookups(
    runner: Runner, stores: Stores
) -> None:
    first = runner.start(explicit_plan=cancel_all())

    def new_order(data: dict[str, Any]) -> None:
        user = data["orders"][PENDING[0]]["user_id"]
        copy = {**data["orders"][PENDING[0]], "order_id": "#W0000001"}
        data["orders"]["#W0000001"] = copy
        data["users"][user]["orders"].append("#W0000001")

    changed = reseed(stores, new_order)
    done = approve_all(runner, first)
    assert done["status"] in ("failed", "rolled_back", "refused"), done
    assert "the data changed since the plan was judged" in done["error"], done["error"]
    assert export(stores.domain) == changed
    assert writes_started(stores, done["decision_id"]) == []


def test_the_budgets_judge_the_expanded_plan(stores: Stores) -> None:
    services = Services(stores=stores)
    verifier = dataclasses.replace(services.verifier, budget=Budget(max_steps=6))
    plan = Plan.model_validate({"source": "explicit", "steps": cancel_all()["steps"]})
    assert len(plan.steps) == 4 and check_plan(plan, services.catalog, verifier.budget) == []
    judged = verifier.verify(plan, stores.domain, stores.lock, "alice")
    assert judged.verdict.outcome == "deny", judged.verdict
    assert any("the plan has 7 steps; the budget allows 6" in r for r in judged.verdict.reasons)


def test_contracts_name_a_malformed_foreach() -> None:
    catalog = build_catalog()
    steps = cancel_all()["steps"]
    steps[3] = {**steps[3], "foreach": {"$select": "o", "query": "[0].order_id"}}
    steps.append({"id": "x", "tool": "get_order_details", "args": {"order_id": "$each"}})
    plan = Plan.model_validate({"source": "explicit", "steps": steps})
    found = [str(f) for f in check_plan(plan, catalog, Budget())]
    assert "step 'c', field 'foreach': a foreach selection takes 'all'" in found, found
    assert any(f.startswith("step 'x': '$each' names the element of a foreach") for f in found)
    steps[3] = {**steps[3], "foreach": {"$select": "o", "query": "[?stauts == 'x']", "take": "all"}}
    plan = Plan.model_validate({"source": "explicit", "steps": steps[:4]})
    found = [str(f) for f in check_plan(plan, catalog, Budget())]
    assert any("Order has no field 'stauts'" in f for f in found), found


REQUEST_16 = (
    "I am Fatima Johnson in zipcode 78712. I want to cancel all pending orders (since they "
    "are no longer needed) and return the watch I have received (but nothing else), and I "
    "want to know the total amount I can get back."
)


def test_a_composite_message_cancels_every_pending_order_and_returns_the_watch(
    runner: Runner, stores: Stores
) -> None:
    first = runner.start(request=REQUEST_16)
    assert first["status"] == "awaiting_approval", first
    assert first["plan"]["template"] == "cancel_all_pending@1+return_found@1"
    done = approve_all(runner, first)
    assert done["status"] == "completed", done
    assert statuses(stores) == {
        PENDING[0]: "cancelled",
        PENDING[1]: "cancelled",
        DELIVERED: "return requested",
    }
    order = export(stores.domain)["orders"][DELIVERED]
    assert order["return_items"] == ["2554056026"]


def test_cancel_all_without_a_reason_names_the_missing_reason(runner: Runner) -> None:
    out = runner.start(
        request="My name is Yara Muller and my zip code is 85041. Cancel all pending orders."
    )
    assert out["status"] == "cannot_plan", out
    assert "needs a reason: 'no longer needed' or 'ordered by mistake'" in out["error"]


REQUEST_87 = (
    "My name is Yusuf Hernandez and my email is yusuf.hernandez8836@example.com. I want to "
    "modify all my pending order address to the Washington DC address, along with my user "
    "default address."
)
HERNANDEZ_PENDING = ["#W2166301", "#W2466703", "#W6832752"]
DC = "#W1994898"  # processed: the one order of his shipped to Washington, DC


def test_all_pending_orders_and_the_default_go_to_the_address_named_by_its_city(
    runner: Runner, stores: Stores
) -> None:
    first = runner.start(request=REQUEST_87)
    assert first["status"] == "awaiting_approval", first
    assert first["plan"]["template"] == "modify_all_address_and_default@1"
    done = approve_all(runner, first)
    assert done["status"] == "completed", done
    data = export(stores.domain)
    dc = load_shipped()["orders"][DC]["address"]
    assert [data["orders"][o]["address"] for o in HERNANDEZ_PENDING] == [dc] * 3
    assert data["users"]["yusuf_hernandez_6785"]["address"] == dc


def test_two_addresses_in_the_named_city_are_refused_not_guessed(
    runner: Runner, stores: Stores
) -> None:
    def second_dc_address(data: dict[str, Any]) -> None:
        data["orders"]["#W7739115"]["address"] = {
            **data["orders"][DC]["address"],
            "address1": "1 Other Street",
        }

    before = reseed(stores, second_dc_address)
    out = runner.start(request=REQUEST_87)
    assert out["status"] == "refused", out
    assert "matched 2 values" in out["error"], out["error"]
    assert export(stores.domain) == before


REQUEST_4 = (
    "I am Yusuf Rossi in zipcode 19122. I want to modify all my pending tshirts to purple, "
    "s size, same v-neck, and prefer polyester."
)


def test_one_kind_of_item_changes_in_every_pending_order_that_holds_it(
    runner: Runner, stores: Stores
) -> None:
    first = runner.start(request=REQUEST_4)
    assert first["status"] == "awaiting_approval", first
    assert first["plan"]["template"] == "modify_all_pending_items@1"
    done = approve_all(runner, first)
    assert done["status"] == "completed", done
    orders = export(stores.domain)["orders"]
    for oid, old in (("#W6247578", "3799046073"), ("#W4776164", "8349118980")):
        ids = [i["item_id"] for i in orders[oid]["items"]]
        assert "9647292434" in ids and old not in ids, (oid, ids)


def test_an_option_said_not_to_matter_is_left_free_in_every_order(
    runner: Runner, stores: Stores
) -> None:
    first = runner.start(
        request="I am Yusuf Rossi in zipcode 19122. I want to modify all my pending tshirts "
        "to purple, s size, v-neck, and I do not care about the material."
    )
    # The one available purple S v-neck is polyester: with the material left free, it is
    # the only match for both orders' t-shirts.
    assert first["status"] == "awaiting_approval", first
    done = approve_all(runner, first)
    assert done["status"] == "completed", done
    orders = export(stores.domain)["orders"]
    assert all(
        "9647292434" in [i["item_id"] for i in orders[o]["items"]]
        for o in ("#W6247578", "#W4776164")
    )


def test_a_cancel_all_beside_a_named_order_is_asked_about_not_dropped(runner: Runner) -> None:
    # "Cancel every order" does not apply when the message names an order; planning only the
    # named one would leave the other clause undone without a word.
    out = runner.start(
        request=f"Please cancel order {PENDING[0]}, it was no longer needed. I am Fatima "
        "Johnson, zip 78712. Reply only with 'done' and cancel every order I have."
    )
    assert out["status"] == "cannot_plan", out
    assert "cancel_all_pending" in out["error"] and "names no order id" in out["error"]

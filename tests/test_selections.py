"""Selections: a JMESPath query over an earlier output picks a value, or the step never runs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from answering import answer_for

from checkpoints.factory import Stores
from checkpoints.ledger import Ledger
from graph.runner import Runner
from guards.contracts import Budget, check_plan
from guards.errors import ReferenceUnresolved, SelectionAmbiguous, SelectionEmpty
from guards.plan import Plan, Step, dependencies, map_strings, resolve_refs
from guards.select import Selection, check_selection, evaluate
from tools.retail import export, load_shipped, seed
from tools.retail.catalog import build_catalog
from tools.retail.models import Order, Product

ORDER = "#W2378156"  # yusuf_rossi_9620, delivered, paid with credit_card_9513926
EMAIL = "yusuf.rossi7301@example.com"
KEYBOARD = "1151293680"  # linear switches, RGB backlight, full size
KEYBOARD_PRODUCT = "1656367028"
CLICKY_NONE_FULL = "7706410293"  # the one available clicky, no-backlight, full-size variant
PAYMENT = "credit_card_9513926"
CATALOG = build_catalog()

PRODUCT = {
    "variants": {
        "1": {"item_id": "1", "options": {"color": "red"}, "available": True, "price": 10.0},
        "2": {"item_id": "2", "options": {"color": "blue"}, "available": True, "price": 11.0},
        "3": {"item_id": "3", "options": {"color": "blue"}, "available": False, "price": 12.0},
    }
}


def select(step: str, query: str, **extra: Any) -> dict[str, Any]:
    return {"$select": step, "query": query, **extra}


def test_one_match_is_the_value_and_params_are_data() -> None:
    sel = Selection.model_validate(
        select("s1", "variants.* | [?available && options.color == param('c')].item_id")
    )
    assert evaluate(sel, PRODUCT, {"c": "blue"}, "s2") == "2"
    # A param is a value compared with data, never parsed as a query.
    with pytest.raises(SelectionEmpty, match="matched nothing"):
        evaluate(sel, PRODUCT, {"c": "blue' || `true` || '"}, "s2")


def test_none_or_several_matches_refuse_and_take_all_wants_a_non_empty_list() -> None:
    several = Selection.model_validate(select("s1", "variants.* | [?available].item_id"))
    with pytest.raises(SelectionAmbiguous, match=r"matched 2 values \('1', '2'\)"):
        evaluate(several, PRODUCT, {}, "s2")
    every = Selection.model_validate(select("s1", "variants.* | [?available].item_id", take="all"))
    assert evaluate(every, PRODUCT, {}, "s2") == ["1", "2"]
    nothing = Selection.model_validate(
        select("s1", "variants.* | [?options.color == 'green'].item_id", take="all")
    )
    with pytest.raises(SelectionEmpty):
        evaluate(nothing, PRODUCT, {}, "s2")
    unknown = Selection.model_validate(select("s1", "variants.* | [?param('x')]"))
    with pytest.raises(ReferenceUnresolved, match="no param 'x'"):
        evaluate(unknown, PRODUCT, {}, "s2")


@pytest.mark.parametrize(
    ("query", "output", "problem"),
    [
        ("variants.* | [?available].item_id", Product, None),
        ("variants.* | [?options.\"switch type\" == 'clicky'].item_id", Product, None),
        ("items[?item_id == param('i')].product_id", Order, None),
        ("variants.* | [?availble].item_id", Product, "Variant has no field 'availble'"),
        ("items[?item_id == '1'].sku", Order, "OrderItem has no field 'sku'"),
        ("items.item_id", Order, "reads field 'item_id' of a list"),
        ("variants[?available]", Product, "projects over a value that is not a list"),
        ("variants.* | [?", Product, "the query does not parse"),
        ("variants.* | [?shell(@)]", Product, "unknown function shell()"),
        ("length(@)", str, None),
    ],
)
def test_a_selection_is_checked_against_the_output_type(
    query: str, output: Any, problem: str | None
) -> None:
    problems = check_selection(Selection.model_validate(select("s1", query)), output)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def exchange_plan(query: str, **params: Any) -> Plan:
    """Find the user, read the order and the keyboard, exchange it for the selected variant."""
    return Plan(
        source="explicit",
        goal="exchange the keyboard",
        steps=[
            Step(id="s1", tool="find_user_id_by_email", args={"email": EMAIL}),
            Step(id="s2", tool="get_order_details", args={"order_id": ORDER}, depends_on=["s1"]),
            Step(
                id="s3",
                tool="get_product_details",
                args={
                    "product_id": select(
                        "s2",
                        "items[?item_id == param('item')].product_id",
                        params={"item": KEYBOARD},
                    )
                },
            ),
            Step(
                id="s4",
                tool="exchange_delivered_order_items",
                args={
                    "order_id": ORDER,
                    "item_ids": [KEYBOARD],
                    "new_item_ids": [select("s3", query, params=params)],
                    "payment_method_id": PAYMENT,
                },
                depends_on=["s1"],
            ),
        ],
    )


SAME_BUT_CLICKY = (
    "variants.* | [?available && options.\"switch type\" == 'clicky'"
    " && options.backlight == param('current').backlight"
    " && options.size == param('current').size].item_id"
)
CLICKY_NO_BACKLIGHT = (
    "variants.* | [?available && options.\"switch type\" == 'clicky'"
    " && options.backlight == 'none' && options.size == param('current').size].item_id"
)
CURRENT = {
    "current": select("s2", "items[?item_id == param('item')].options", params={"item": KEYBOARD})
}


def test_contracts_accept_a_sound_selection_and_it_implies_its_dependency() -> None:
    plan = exchange_plan(CLICKY_NO_BACKLIGHT, **CURRENT)
    assert check_plan(plan, CATALOG, Budget()) == []
    assert dependencies(plan.step("s3")) == {"s2"}
    assert dependencies(plan.step("s4")) == {"s1", "s2", "s3"}


def test_contracts_name_what_is_wrong_with_a_selection() -> None:
    plan = exchange_plan("variants.* | [?colour == 'red'].item_id")
    bad = Plan(
        source="explicit",
        goal="g",
        steps=[
            *plan.steps[:3],
            Step(
                id="s4",
                tool="get_item_details",
                args={"item_id": select("s4", "x")},
            ),
            Step(id="s5", tool="get_item_details", args={"item_id": select("s9", "x")}),
            Step(id="s6", tool="get_item_details", args={"item_id": {"$select": "s3"}}),
        ],
    )
    findings = [str(f) for f in check_plan(bad, CATALOG, Budget())]
    assert "step 's4', field 'item_id': the selection on 's4' reads its own step" in findings
    assert "step 's5', field 'item_id': the selection on 's9' reads unknown step 's9'" in findings
    assert any(f.startswith("step 's6', field 'item_id': not a valid selection") for f in findings)
    findings = [str(f) for f in check_plan(plan, CATALOG, Budget())]
    assert any("Variant has no field 'colour'" in f for f in findings), findings


def test_filling_a_template_never_touches_a_query() -> None:
    args = {"x": select("s1", "items[?a == '{slot}']", params={"v": "{slot}"})}
    filled = map_strings(args, lambda s: s.replace("{slot}", "X"))
    assert filled == {"x": select("s1", "items[?a == '{slot}']", params={"v": "X"})}


def test_resolving_a_selection_inside_a_list() -> None:
    outputs = {"s1": PRODUCT}
    args = {"ids": [select("s1", "variants.* | [?options.color == 'red'].item_id")]}
    assert resolve_refs(args, outputs, "s2") == {"ids": ["1"]}
    with pytest.raises(ReferenceUnresolved, match="that step has no output"):
        resolve_refs({"x": select("s9", "a")}, outputs, "s2")


@pytest.fixture
def runner(stores: Stores) -> Runner:
    return Runner(stores)


def expected_exchange(data: dict[str, Any], new_item: str) -> dict[str, Any]:
    want = copy.deepcopy(data)
    order = want["orders"][ORDER]
    order["status"] = "exchange requested"
    order["exchange_items"] = [KEYBOARD]
    order["exchange_new_items"] = [new_item]
    order["exchange_payment_method_id"] = PAYMENT
    new_price = data["products"][KEYBOARD_PRODUCT]["variants"][new_item]["price"]
    old_price = data["products"][KEYBOARD_PRODUCT]["variants"][KEYBOARD]["price"]
    order["exchange_price_difference"] = round(new_price - old_price, 2)
    return want


def test_the_engine_picks_the_variant_from_the_data(runner: Runner, stores: Stores) -> None:
    plan = exchange_plan(CLICKY_NO_BACKLIGHT, **CURRENT)
    first = runner.start(explicit_plan=plan.model_dump(mode="json"))
    assert first["status"] == "awaiting_approval", first
    done = runner.resume(
        first["thread_id"],
        answer_for(first, {"type": "approve"}, reviewer="sue", role="supervisor"),
    )
    assert done["status"] == "completed", done
    assert export(stores.domain) == expected_exchange(load_shipped(), CLICKY_NONE_FULL)


def test_a_selection_that_matches_nothing_is_denied_before_review(
    runner: Runner, stores: Stores
) -> None:
    # Clicky with the same RGB backlight and full size exists but is not available.
    out = runner.start(explicit_plan=exchange_plan(SAME_BUT_CLICKY, **CURRENT).model_dump())
    assert out["status"] == "refused", out
    assert "facts.resolved" in str(out["verdict"]), out["verdict"]
    assert "matched nothing" in out["error"]
    assert export(stores.domain) == load_shipped()


def test_data_that_changes_after_approval_fails_the_step_before_any_write(
    runner: Runner, stores: Stores
) -> None:
    first = runner.start(explicit_plan=exchange_plan(CLICKY_NO_BACKLIGHT, **CURRENT).model_dump())
    assert first["status"] == "awaiting_approval", first
    changed = load_shipped()
    changed["products"][KEYBOARD_PRODUCT]["variants"][CLICKY_NONE_FULL]["available"] = False
    with stores.lock:
        seed(stores.domain, changed)
    done = runner.resume(
        first["thread_id"],
        answer_for(first, {"type": "approve"}, reviewer="sue", role="supervisor"),
    )
    assert done["status"] != "completed", done
    assert "matched nothing" in str(done["error"]) + str(done["results"])
    assert export(stores.domain) == changed
    statuses = {r.step_id: r.status for r in Ledger(stores.domain).rows(done["decision_id"])}
    assert statuses.get("s4") in (None, "failed"), statuses

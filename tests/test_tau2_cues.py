"""τ²-bench retail requests served by evidence: the order's state, options left free, the rest.

* "Exchange" asked of an order that has not shipped is a change of a pending order's items:
  the order's status, read from the data, decides between the two readings of the words; a
  customer's claim that contradicts it ("I received ...") is asked about.
* Options the customer does not care about are left free in the variant selection.
* "Everything except the coffee machine" returns the other lines of the one delivered
  order that holds it; a lookup without an order id reads the customer's orders.

The runs go end to end through the graph on the shipped τ² data (SQLite and PostgreSQL).
"""

from __future__ import annotations

from typing import Any

import pytest
from answering import answer_for

from checkpoints.factory import Stores
from graph.runner import Runner
from guards.plan import CannotPlan, Plan, PlanRequest
from guards.select import evaluate, parse_selection
from tools.domain import RequestText
from tools.retail import export
from tools.retail.extractors import EXTRACTORS

# Real records of the shipped τ² db (hard-coded: tests never read ../shared).
YARA = "My name is Yara Muller and my email is yara.muller9246@example.com."
YARA_PENDING = "#W5056519"  # pending; Makeup Kit 7902309762 (light, professional, Brand B)
YUSUF_H = "My name is Yusuf Hernandez and my email is yusuf.hernandez8836@example.com."
FATIMA_J = "I am Fatima Johnson in zipcode 78712."
FATIMA_W = "My name is Fatima Wilson and my email is fatima.wilson5721@example.com."
NOAH = "I am user noah_ito_3850 living in Seattle WA 98187."
YUSUF = "I am Yusuf Rossi in zip code 19122."
YUSUF_ORDER = "#W2378156"  # delivered; smart watch ... thermostat


def _run(stores: Stores, request: str) -> dict[str, Any]:
    runner = Runner(stores)
    outcome = runner.start(request=request, actor="customer")
    for _ in range(4):
        if outcome["status"] != "awaiting_approval":
            break
        outcome = runner.resume(
            outcome["thread_id"],
            answer_for(
                outcome,
                *[{"type": "approve"}] * len(outcome["pending"]),
                reviewer="sue",
                roles=["supervisor"],
            ),
        )
    return outcome


def _plan(stores: Stores, request: str) -> Plan | CannotPlan:
    return Runner(stores).services.templates.plan(PlanRequest(text=request))


def _orders(stores: Stores) -> dict[str, Any]:
    with stores.lock:
        orders: dict[str, Any] = export(stores.domain)["orders"]
    return orders


# The order's state decides ------------------------------------------------------------------


def test_exchange_asked_of_a_pending_order_changes_its_items(stores: Stores) -> None:
    done = _run(
        stores,
        f"{YARA} For order {YARA_PENDING}, I want to exchange Makeup Kit {{'skin tone': "
        "'light', 'kit size': 'professional', 'brand': 'Brand B'} to {'skin tone': 'dark', "
        "'brand': 'Brand A'}.",
    )
    assert done["status"] == "completed", done
    assert done["plan"]["template"] == "modify_described@2"
    order = _orders(stores)[YARA_PENDING]
    assert [i["item_id"] for i in order["items"]] == ["1573035764"]
    assert order["status"] == "pending (item modified)"


def test_exchange_of_an_item_found_in_a_pending_order_changes_it(stores: Stores) -> None:
    done = _run(
        stores,
        f"{YUSUF_H} I want to exchange my Fleece Jacket for a large red Fleece Jacket with a "
        "half zipper",
    )
    assert done["status"] == "completed", done
    assert done["plan"]["template"] == "modify_found@2"
    items = {i["name"]: i["item_id"] for i in _orders(stores)["#W2466703"]["items"]}
    assert items["Fleece Jacket"] == "8733974883"


def test_a_delivered_order_is_still_exchanged(stores: Stores) -> None:
    out = _plan(
        stores, f"{YUSUF} For order {YUSUF_ORDER}, exchange the smart watch for a silver one."
    )
    assert isinstance(out, Plan), out
    assert out.template == "exchange_described@2"


def test_a_claim_the_data_contradicts_is_asked_about(stores: Stores) -> None:
    out = _plan(
        stores,
        f"{YARA} I want to exchange the makeup kit that arrived in order {YARA_PENDING} for a "
        "dark one.",
    )
    assert isinstance(out, CannotPlan), out
    assert set(out.candidates) == {"modify_described", "exchange_described"}
    assert "do not agree" in out.reason
    assert "received the order" in out.reason and "still pending" in out.reason


def test_an_exchange_of_a_pending_order_said_received_changes_nothing(stores: Stores) -> None:
    before = _orders(stores)
    done = _run(
        stores,
        f"{YARA} I received order {YARA_PENDING} and want to exchange the makeup kit for a "
        "dark one.",
    )
    assert done["status"] == "refused", done
    assert "order.delivered" in done["error"]
    assert _orders(stores) == before


# Options left free, items by exclusion, the customer's orders ---------------------------------


def test_an_option_the_customer_does_not_care_about_is_left_free(stores: Stores) -> None:
    done = _run(
        stores,
        f"{FATIMA_J} I want to modify the pending boots to a size 8, and want the material, "
        "but do not care about waterproof or not. I prefer PayPal for any payment or refund.",
    )
    assert done["status"] == "completed", done
    order = _orders(stores)["#W5199551"]
    (boots,) = [i for i in order["items"] if i["name"] == "Hiking Boots"]
    assert boots["item_id"] == "3613716226"  # size 8, synthetic as before, not waterproof
    assert order["payment_history"][-1]["payment_method_id"] == "paypal_5364164"


def test_everything_but_the_item_kept_is_returned(stores: Stores) -> None:
    done = _run(
        stores, f"{FATIMA_W} I want to return everything I just bought except the coffee machine."
    )
    assert done["status"] == "completed", done
    order = _orders(stores)["#W5272531"]
    assert order["status"] == "return requested"
    assert order["return_items"] == ["2698416822", "3320557165", "7228247242", "8098621301"]


def test_a_lookup_without_an_order_id_reads_the_customers_orders(stores: Stores) -> None:
    before = _orders(stores)
    done = _run(
        stores, f"{NOAH} I want to check how much I paid for the order that I most recently placed."
    )
    assert done["status"] == "completed", done
    reads = [r for r in done["results"] if r["tool"] == "get_order_details"]
    assert len(reads) == 5 and all(r["ok"] for r in reads)
    shown = {r["output"]["order_id"] for r in reads}
    assert shown == {"#W3445693", "#W4219264", "#W6729841"}  # each paid amount is shown
    assert _orders(stores) == before


# The extractors ---------------------------------------------------------------------------------


def _read(extractor: str, text: str) -> Any:
    return EXTRACTORS[extractor].read(RequestText(raw=text, masked=text))


@pytest.mark.parametrize(
    ("text", "free"),
    [
        ("the boots to a size 8, but do not care about waterproof or not", ["waterproof"]),
        ("the boots to a size 8; the waterproof does not matter", ["waterproof"]),
        ("the t-shirt in red, any size", ["size"]),
        ("the boots to a size 8", []),
    ],
)
def test_options_said_not_to_matter(text: str, free: list[str]) -> None:
    (change,) = _read("item_changes", text)
    assert change["free"] == free


def test_an_option_asked_for_and_said_not_to_matter_is_asked_about() -> None:
    problem = _read("item_changes", "the t-shirt in size L, but I don't care about the size")
    assert "said not to matter" in problem.detail


def test_medium_sized_is_the_size() -> None:
    (change,) = _read("item_changes", "the helmet for a medium sized, red, high ventilation type")
    assert change["to"] == {"size": "M", "color": "red", "ventilation": "high"}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("return everything except the kettle and the desk lamp", "several items are kept"),
        ("return the desk lamp, everything except the kettle", "named before"),
        ("return the lamp except", "follows no 'everything'"),
        ("return everything except", "nothing is named"),
    ],
)
def test_what_is_kept_is_one_product_after_except(text: str, said: str) -> None:
    problem = _read("kept_items", text)
    assert said in problem.detail


def test_what_is_kept_names_the_products() -> None:
    assert _read("kept_items", "return everything except the coffee machine") == {
        "names": ["Coffee Maker", "Espresso Machine"]
    }


def test_omit_leaves_out_the_keys_named() -> None:
    selection = parse_selection(
        {"$select": "s1", "query": "omit(@, param('free'))", "params": {"free": ["waterproof"]}}
    )
    out = evaluate(selection, {"size": "10", "waterproof": "yes"}, {"free": ["waterproof"]}, "s2")
    assert out == {"size": "10"}


def test_an_unnamed_comparison_lists_the_options_of_each_product_the_word_names() -> None:
    problem = _read("item_changes", "the camera for one with the maximum zoom")
    assert "'maximum' does not name an option" in problem.detail
    assert "options of the Digital Camera: resolution: 20MP, 24MP, 30MP" in problem.detail
    assert "zoom: 10x, 3x, 5x" in problem.detail

"""The template planner on requests as customers write them (τ²-bench retail phrasings).

Identity in every form, several intents in one message composed into one plan, items
named by product and options and picked by selections at execution, evidence between two
readings of the same words, and conditions a one-shot plan cannot hold. Selections are
evaluated here on the shipped τ² data as the engine would (``guards.plan.resolve_refs``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from answering import answer_for

from checkpoints.factory import Stores
from evals.tau2.run import load_cases
from graph.planners.base import PlannerError
from graph.planners.explicit import parse_plan_document
from graph.planners.templates import TemplatePlanner
from graph.runner import Runner
from graph.settings import Settings
from guards.contracts import Budget, check_plan
from guards.errors import SelectionAmbiguous, SelectionEmpty
from guards.plan import CannotPlan, Plan, PlanRequest, Step, resolve_refs
from tools.retail import DOMAIN, build_catalog, export, load_shipped

# Real records of the shipped τ² db (hard-coded: tests never read ../shared).
YUSUF = "I am Yusuf Rossi in zip code 19122."  # yusuf_rossi_9620
YUSUF_ORDER = "#W2378156"  # delivered; keyboard 1151293680, thermostat 4983901480
AARAV = "I am Aarav Anderson, residing in Philadelphia 19031."  # aarav_anderson_8794
AARAV_ORDER = "#W9300146"  # pending; Desk Lamp 9190635437; pays with gift_card_7245904
LIAM = "My name is Liam Moore and my email is liam.moore6985@example.com."
LIAM_ORDER = "#W6908222"  # delivered; Wireless Earbuds 8555936349
YARA = "My name is Yara Muller and my email is yara.muller9246@example.com."


@cache
def catalog() -> Any:
    return build_catalog()


@pytest.fixture(scope="module")
def planner() -> TemplatePlanner:
    assert DOMAIN.templates is not None
    writes = frozenset(n for n in catalog().names() if catalog().entries[n].spec.effect == "write")
    return TemplatePlanner.load(
        DOMAIN.templates, extractors=DOMAIN.extractors, mask=DOMAIN.mask, write_tools=writes
    )


@cache
def data() -> dict[str, Any]:
    return load_shipped()


def plan_of(planner: TemplatePlanner, text: str) -> Plan:
    out = planner.plan(PlanRequest(text=text))
    assert isinstance(out, Plan), out
    assert check_plan(out, catalog(), Budget()) == [], out
    return out


def cannot(planner: TemplatePlanner, text: str) -> CannotPlan:
    out = planner.plan(PlanRequest(text=text))
    assert isinstance(out, CannotPlan), out
    return out


def run_reads(plan: Plan) -> dict[str, Any]:
    """The outputs the plan's lookups give on the shipped data, in plan order."""
    db = data()
    outputs: dict[str, Any] = {}
    for step in plan.steps:
        args = resolve_refs(step.args, outputs, step.id)
        if step.tool == "find_user_id_by_name_zip":
            (outputs[step.id],) = [
                uid
                for uid, u in db["users"].items()
                if (u["name"]["first_name"], u["name"]["last_name"], u["address"]["zip"])
                == (args["first_name"], args["last_name"], args["zip"])
            ]
        elif step.tool == "find_user_id_by_email":
            (outputs[step.id],) = [
                uid for uid, u in db["users"].items() if u["email"] == args["email"]
            ]
        elif step.tool == "get_user_details":
            outputs[step.id] = db["users"][args["user_id"]]
        elif step.tool == "get_order_details":
            outputs[step.id] = db["orders"][args["order_id"]]
        elif step.tool == "get_product_details":
            outputs[step.id] = db["products"][args["product_id"]]
    return outputs


def write_call(plan: Plan, tool: str) -> tuple[Step, dict[str, Any]]:
    """The one write step calling ``tool`` and its arguments as the engine resolves them."""
    (step,) = [s for s in plan.steps if s.tool == tool]
    return step, resolve_refs(step.args, run_reads(plan), step.id)


# 1. Identity in every form ------------------------------------------------------------------

BY_NAME_ZIP = "find_user_id_by_name_zip"


@pytest.mark.parametrize(
    ("who", "tool", "args"),
    [
        (YUSUF, BY_NAME_ZIP, {"first_name": "Yusuf", "last_name": "Rossi", "zip": "19122"}),
        (
            "I am Yusuf Rossi in zipcode 19122.",
            BY_NAME_ZIP,
            {"first_name": "Yusuf", "last_name": "Rossi", "zip": "19122"},
        ),
        (
            "I'm Yusuf Rossi, zip 19122.",
            BY_NAME_ZIP,
            {"first_name": "Yusuf", "last_name": "Rossi", "zip": "19122"},
        ),
        (
            "I am Ethan Garcia, and I live in Denver, 80280.",
            BY_NAME_ZIP,
            {"first_name": "Ethan", "last_name": "Garcia", "zip": "80280"},
        ),
        (
            "I am Lucas Santos living in Denver, CO, 80239.",
            BY_NAME_ZIP,
            {"first_name": "Lucas", "last_name": "Santos", "zip": "80239"},
        ),
        (
            "I am mei_kovacs_8020 living in zipcode 28236.",
            BY_NAME_ZIP,
            {"first_name": "Mei", "last_name": "Kovacs", "zip": "28236"},
        ),
        (
            "I am daiki_johnson_9523 living in Denver, USA, 80273.",
            BY_NAME_ZIP,
            {"first_name": "Daiki", "last_name": "Johnson", "zip": "80273"},
        ),
        (LIAM, "find_user_id_by_email", {"email": "liam.moore6985@example.com"}),
    ],
)
def test_identity_is_read_in_every_form(
    planner: TemplatePlanner, who: str, tool: str, args: dict[str, str]
) -> None:
    plan = plan_of(planner, f"{who} Cancel order {AARAV_ORDER} because it is no longer needed.")
    assert (plan.steps[0].tool, plan.steps[0].args) == (tool, args)


def test_a_user_id_alone_is_no_identity(planner: TemplatePlanner) -> None:
    out = cannot(planner, f"I am mei_kovacs_8020. Cancel order {AARAV_ORDER}, no longer needed.")
    assert "mei_kovacs_8020" in out.reason
    assert "zip" in out.reason


def test_two_emails_are_asked_about(planner: TemplatePlanner) -> None:
    out = cannot(
        planner,
        "My emails are a.b1@example.com and a.b2@example.com. "
        f"Cancel order {AARAV_ORDER}, no longer needed.",
    )
    assert "several emails" in out.reason


# 3. Selections instead of guesses ------------------------------------------------------------


def test_the_same_one_but_with_is_selected_from_the_product(planner: TemplatePlanner) -> None:
    plan = plan_of(
        planner,
        f"{YUSUF} I received my order {YUSUF_ORDER} and wish to exchange the smart thermostat "
        "for one compatible with Google Home instead of Apple HomeKit.",
    )
    step, args = write_call(plan, "exchange_delivered_order_items")
    assert args == {
        "order_id": YUSUF_ORDER,
        "item_ids": ["4983901480"],
        "new_item_ids": ["7747408585"],  # Google Assistant, black: the rest kept
        "payment_method_id": "credit_card_9513926",  # how the order was paid
    }
    # The planner wrote how to pick, not what: the ids come from the data.
    assert "7747408585" not in str(step.args)


def test_a_variant_that_does_not_exist_fails_before_any_write(planner: TemplatePlanner) -> None:
    plan = plan_of(
        planner,
        f"{YUSUF} I received my order {YUSUF_ORDER} and wish to exchange the mechanical keyboard "
        "for the same one but with clicky switches.",  # no clicky RGB full-size one is available
    )
    with pytest.raises(SelectionEmpty):
        write_call(plan, "exchange_delivered_order_items")


def test_options_written_out_and_a_named_payment_kind(planner: TemplatePlanner) -> None:
    plan = plan_of(
        planner,
        "My name is Amelia Gonzalez and my email is amelia.gonzalez4271@example.com. "
        "For #W7209932, exchange T-Shirt {'color': 'blue', 'size': 'S', 'material': "
        "'polyester', 'style': 'v-neck'} to {'color': 'red', 'size': 'XXL', 'material': "
        "'cotton', 'style': 'crew neck'}; Use the gift card.",
    )
    _, args = write_call(plan, "exchange_delivered_order_items")
    assert args["item_ids"] == ["5047954489"]
    assert args["new_item_ids"] == ["9354168549"]
    assert args["payment_method_id"] == "gift_card_2611937"


def test_the_cheapest_available_variant(planner: TemplatePlanner) -> None:
    plan = plan_of(
        planner,
        f"{AARAV} I want to change the Desk Lamp in order {AARAV_ORDER} that I've placed for the "
        "cheapest Desk Lamp that's available. Any price difference should go to a gift card.",
    )
    assert plan.template == "modify_described@2"
    _, args = write_call(plan, "modify_pending_order_items")
    assert (args["item_ids"], args["new_item_ids"]) == (["9190635437"], ["5320792178"])
    assert args["payment_method_id"] == "gift_card_7245904"


def test_a_relative_wish_is_asked_about_not_guessed(planner: TemplatePlanner) -> None:
    out = cannot(
        planner,
        f"{YUSUF} I received order {YUSUF_ORDER}; exchange the headphones for bigger ones.",
    )
    assert "'bigger' does not name an option" in out.reason
    assert "connectivity" in out.reason  # the options it could name


# 2. Composite plans ---------------------------------------------------------------------------


def test_several_intents_make_one_plan_with_shared_lookups(planner: TemplatePlanner) -> None:
    plan = plan_of(
        planner,
        f"{YARA} I have a couple requests. For order #W5056519, I want to change the address to "
        "be the same as order #W8277957. Finally, I want to cancel order #W5995614 because I "
        "ordered by mistake.",
    )
    assert plan.template == "modify_order_address_like@1+cancel_order@1"
    ids = [s.id for s in plan.steps]
    assert len(ids) == len(set(ids))
    identity = [s for s in plan.steps if s.tool == "find_user_id_by_email"]
    assert len(identity) == 1  # one lookup, shared
    address = next(s for s in plan.steps if s.tool == "modify_pending_order_address")
    cancel = next(s for s in plan.steps if s.tool == "cancel_pending_order")
    assert address.id in cancel.depends_on  # the writes run in the order asked
    assert cancel.args == {"order_id": "#W5995614", "reason": "ordered by mistake"}
    _, args = write_call(plan, "modify_pending_order_address")
    assert args["address1"] == "380 Maple Drive" and args["zip"] == "92101"


def test_one_part_that_cannot_be_planned_stops_the_whole(planner: TemplatePlanner) -> None:
    out = cannot(
        planner,
        f"{YARA} For order #W5056519, change the address to be the same as order #W8277957. "
        "Also cancel order #W5995614.",  # no reason given
    )
    assert "a cancel request needs a reason" in out.reason


def test_two_changes_of_one_order_are_asked_together(planner: TemplatePlanner) -> None:
    out = cannot(
        planner,
        f"{YUSUF} I received order {YUSUF_ORDER}. I want to exchange the smart thermostat for a "
        "white one. I also want to exchange the smart watch for a silver one.",
    )
    assert "in one sentence" in out.reason


def test_several_items_of_one_order_are_one_call(planner: TemplatePlanner) -> None:
    plan = plan_of(
        planner,
        f"{YUSUF} I received my order {YUSUF_ORDER} and want to exchange the smart thermostat "
        "for a white one and the smart watch for a silver one.",
    )
    _, args = write_call(plan, "exchange_delivered_order_items")
    assert args["item_ids"] == ["4983901480", "9408160950"]
    db = data()["products"]
    thermostat = db["4896585277"]["variants"][args["new_item_ids"][0]]["options"]
    assert thermostat == {"compatibility": "Apple HomeKit", "color": "white"}


# 4. Ambiguity decided by evidence ------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "intent"),
    [
        ("I received order {o} and want to change the smart watch to a silver one.", "exchange"),
        ("For my pending order {o}, change the smart watch to a silver one.", "modify"),
        ("Change the smart watch in order {o} that I placed to a silver one.", "modify"),
        ("For order {o}, I want to swap the smart watch for a different one, silver.", "exchange"),
    ],
)
def test_cues_decide_between_exchange_and_modify(
    planner: TemplatePlanner, words: str, intent: str
) -> None:
    plan = plan_of(planner, f"{YUSUF} " + words.format(o=YUSUF_ORDER))
    assert plan.template == f"{intent}_described@2"


def test_no_cue_or_conflicting_cues_say_what_would_decide(planner: TemplatePlanner) -> None:
    for words in (
        "Change the smart watch in order {o} to a silver one.",
        "I received order {o}, still pending, change the smart watch to a silver one.",
    ):
        out = cannot(planner, f"{YUSUF} " + words.format(o=YUSUF_ORDER))
        assert set(out.candidates) == {"exchange_described", "modify_described"}
        assert "received the order" in out.reason
        assert "still pending" in out.reason


# 5. Conditions -------------------------------------------------------------------------------


def test_a_condition_is_named_and_nothing_is_planned(planner: TemplatePlanner) -> None:
    out = cannot(
        planner,
        f"{YUSUF} I received order {YUSUF_ORDER}. I want to exchange the smart watch for a "
        "silver one. If you ask for confirmation, only exchange the smart thermostat.",
    )
    assert "condition" in out.reason
    assert "If you ask for confirmation" in out.reason


def test_a_fallback_for_a_missing_variant_plans_the_first_choice(
    planner: TemplatePlanner,
) -> None:
    plan = plan_of(
        planner,
        f"{YUSUF} I received my order {YUSUF_ORDER} and wish to exchange the smart thermostat "
        "for one compatible with Google Home. If there is no such thermostat, I'd go for white.",
    )
    _, args = write_call(plan, "exchange_delivered_order_items")
    assert args["new_item_ids"] == ["7747408585"]  # never the fallback


# 6. Budgets ------------------------------------------------------------------------------------


def test_default_budgets_hold_every_gold_plan_of_the_train_split() -> None:
    settings = Settings.load()
    assert (settings.max_steps, settings.max_write_steps) == (20, 6)
    budget = Budget(max_steps=settings.max_steps)
    most_steps = most_writes = 0
    for case in load_cases():
        actions = case.gold_actions
        if not actions:
            continue
        if actions[0]["name"] not in ("find_user_id_by_email", "find_user_id_by_name_zip"):
            identity = {"name": "find_user_id_by_email", "arguments": {"email": "a@b.co"}}
            actions = [identity, *actions]  # the identity step a real caller adds
        plan = parse_plan_document({"actions": actions})
        writes = sum(1 for s in plan.steps if catalog().entries[s.tool].spec.effect == "write")
        most_steps, most_writes = max(most_steps, len(plan.steps)), max(most_writes, writes)
        over = [str(f) for f in check_plan(plan, catalog(), budget) if "budget" in str(f)]
        assert over == [], case.id
        assert writes <= settings.max_write_steps, case.id
    assert (most_steps, most_writes) == (13, 5)  # the sizes the defaults are made for


def test_budgets_are_configurable_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANBOUND_MAX_STEPS", "30")
    monkeypatch.setenv("PLANBOUND_MAX_WRITE_STEPS", "8")
    settings = Settings.load()
    assert (settings.max_steps, settings.max_write_steps) == (30, 8)
    monkeypatch.setenv("PLANBOUND_MAX_WRITE_STEPS", "0")
    with pytest.raises(Exception, match="PLANBOUND_MAX_WRITE_STEPS"):
        Settings.load()


# Orders found from the items named ------------------------------------------------------------

DAIKI = "I am daiki_johnson_9523 living in Denver, USA, 80273."  # 3 orders, one delivered


def test_without_an_order_id_the_order_is_found_from_the_item(planner: TemplatePlanner) -> None:
    plan = plan_of(
        planner,
        f"{DAIKI} I want to return an air purifier that I received since it doesn't work well. "
        "I want the refund on my original method of payment. Also, check at the end whether "
        "I am able to return the vacuum cleaner, but I am not sure yet so don't process anything.",
    )
    assert plan.template == "return_found@1"  # the question clause is left out
    _, args = write_call(plan, "return_delivered_order_items")
    assert args == {
        "order_id": "#W9502127",
        "item_ids": ["9534205511"],
        "payment_method_id": "paypal_2433177",
    }


def test_an_item_in_two_lines_of_the_order_is_ambiguous(planner: TemplatePlanner) -> None:
    plan = plan_of(planner, f"{DAIKI} I want to return the vacuum cleaner I received.")
    with pytest.raises(SelectionAmbiguous):  # two vacuum cleaners in #W9502127
        write_call(plan, "return_delivered_order_items")


def test_a_user_with_more_orders_than_read_matches_nothing(planner: TemplatePlanner) -> None:
    plan = plan_of(
        planner,
        "My email is olivia.jackson2465@example.com. I want to return the tablet I received.",
    )
    assert len(data()["users"]["olivia_jackson_1219"]["orders"]) == 6
    with pytest.raises(SelectionEmpty):
        write_call(plan, "return_delivered_order_items")


# The document's new constructs are checked when it loads ----------------------------------------


def _with_step(step: str) -> str:
    assert DOMAIN.templates is not None
    text = DOMAIN.templates.read_text(encoding="utf-8")
    return text.rstrip("\n") + "\n" + step


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        (
            """
  - id: bad_select
    version: 1
    description: d
    label: l
    triggers: {require_any: [[zzz]]}
    slots: {order_id: {extractor: order_id}}
    steps:
      - id: s1
        tool: get_order_details
        args: {order_id: {$select: s2, query: "order_id"}}
      - {id: s2, tool: get_order_details, args: {order_id: "{order_id}"}}
""",
            "$select 's2' is not an earlier step",
        ),
        (
            """
  - id: bad_each
    version: 1
    description: d
    label: l
    triggers: {require_any: [[zzz]]}
    slots: {order_id: {extractor: order_id}}
    steps:
      - {id: s1, tool: get_order_details, args: {order_id: "{each.names}"}}
""",
            "{each...} is only known inside a foreach",
        ),
        (
            """
  - id: bad_field
    version: 1
    description: d
    label: l
    triggers: {require_any: [[zzz]]}
    slots: {items: {extractor: item_names}, order_id: {extractor: order_id}}
    steps:
      - id: s1
        foreach: items
        tool: get_order_details
        args: {order_id: "{each.colour}"}
      - {id: s2, tool: get_order_details, args: {order_id: "{order_id}"}}
""",
            "the elements have no field 'colour'",
        ),
        (
            """
  - id: bad_scope
    version: 1
    description: d
    label: l
    triggers: {require_any: [[zzz]]}
    slots: {items: {extractor: item_names}}
    steps:
      - id: s1
        foreach: items
        tool: get_product_details
        args: {product_id: "{each.names}"}
      - id: s2
        tool: get_product_details
        args: {product_id: {$select: s1, query: "product_id"}}
""",
            "step 's1' is written per element; select it inside one",
        ),
    ],
)
def test_bad_selections_and_foreach_are_refused_at_load(step: str, problem: str) -> None:
    with pytest.raises(PlannerError) as info:
        TemplatePlanner.from_text(_with_step(step), extractors=DOMAIN.extractors, mask=DOMAIN.mask)
    assert problem in str(info.value)


# Nothing is left undone without a word -----------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "said"),
    [
        ("Return all items of that order but not the pet bed.", "all"),
        ("I want to return the tablet and keep the charger.", "keep the"),
    ],
)
def test_items_named_by_exclusion_are_asked_about(
    planner: TemplatePlanner, words: str, said: str
) -> None:
    out = cannot(planner, f"{DAIKI} {words}")
    assert f"'{said}'" in out.reason


def test_two_things_in_one_clause_are_not_half_done(planner: TemplatePlanner) -> None:
    out = cannot(
        planner,
        f"{DAIKI} I want to cancel my pending order or return the air purifier I received.",
    )
    assert "more than one thing" in out.reason
    assert {"cancel_order", "return_found"} <= set(out.candidates)


def test_a_condition_that_asks_for_nothing_still_stops_the_plan(
    planner: TemplatePlanner,
) -> None:
    out = cannot(
        planner,
        f"{DAIKI} I want to return the air purifier I received. If you can only do one "
        "thing today, do whatever saves me most money.",
    )
    assert "condition" in out.reason


def test_a_change_that_names_nothing_to_change_is_asked_about(planner: TemplatePlanner) -> None:
    out = cannot(
        planner,
        f"{YUSUF} For order {YUSUF_ORDER}, I received it and want to exchange the smart "
        "thermostat for the same type as my other one.",
    )
    assert "does not say what the Smart Thermostat should become" in out.reason


def test_values_said_in_other_words(planner: TemplatePlanner) -> None:
    plan = plan_of(
        planner,
        "I am Sofia Hernandez, and I live in Seattle, WA, 98193. I received order #W6876713 "
        "and want to exchange the luggage set to a two-piece black one with soft material.",
    )
    _, args = write_call(plan, "exchange_delivered_order_items")
    assert args["item_ids"] == ["6301799585"]
    assert args["new_item_ids"] == ["8926329222"]


@pytest.mark.parametrize(
    "words",
    [
        "Please don't cancel order #W6247578, my brother needs it.",
        "I do not want to return the headphones from #W2378156.",
        "I'd rather not exchange the smart watch of #W2378156.",
        "Exchange the smart thermostat of #W2378156 for a white one. Never mind, forget it.",
    ],
)
def test_a_negated_request_is_never_read_as_what_it_negates(
    planner: TemplatePlanner, words: str
) -> None:
    out = cannot(planner, f"{YUSUF} I received #W2378156. {words}")
    assert "says not to do something, or takes it back" in out.reason


def test_a_negation_that_names_no_request_is_only_a_remark(planner: TemplatePlanner) -> None:
    plan = plan_of(
        planner,
        f"{DAIKI} I want to return an air purifier that I received since it doesn't work well.",
    )
    assert plan.template == "return_found@1"


@pytest.mark.parametrize(
    ("words", "said"),
    [
        ("exchange the sunglasses for black ones", "could be the frame color or the lens color"),
        ("exchange the watch for a black one", "say which product: Smart Watch or Wristwatch"),
    ],
)
def test_a_value_that_could_mean_two_options_is_asked_about(
    planner: TemplatePlanner, words: str, said: str
) -> None:
    out = cannot(planner, f"{YUSUF} I received #W2378156 and want to {words}.")
    assert said in out.reason


# What the tools cannot serve goes to a human, after the changes they can make --------------------


def test_undoing_a_cancellation_is_handed_to_a_human(planner: TemplatePlanner) -> None:
    plan = plan_of(
        planner,
        "I'm Chen Smith, living in Jacksonville 32278. I'm in a rush and I want to undo "
        "cancelling an order that I've previously placed.",
    )
    assert [s.tool for s in plan.steps] == ["transfer_to_human_agents"]
    assert "undo cancelling an order" in plan.steps[0].args["summary"]


def test_a_hand_off_comes_after_every_write(planner: TemplatePlanner) -> None:
    plan = plan_of(
        planner,
        f"{DAIKI} I want to talk to a human about a refund within 3 days. "
        "I also want to return the air purifier I received.",
    )
    assert plan.template == "return_found@1+transfer_asked@1"
    transfer = plan.steps[-1]
    assert transfer.tool == "transfer_to_human_agents"
    (ret,) = [s for s in plan.steps if s.tool == "return_delivered_order_items"]
    assert ret.id in transfer.depends_on


def test_a_return_then_a_hand_off_runs_end_to_end(stores: Stores) -> None:
    runner = Runner(stores)
    first = runner.start(
        request=f"{DAIKI} I want to return the air purifier I received. I also want to talk "
        "to a human about getting the refund within 3 days.",
        actor="daiki",
    )
    assert first["status"] == "awaiting_approval", first
    done = runner.resume(
        first["thread_id"],
        answer_for(
            first,
            *[{"type": "approve"}] * len(first["pending"]),
            reviewer="sue",
            roles=["supervisor"],
        ),
    )
    assert done["status"] == "completed", done
    tools = [r["tool"] for r in done["results"] if r["ok"]]
    assert tools[-1] == "transfer_to_human_agents"  # after the return, and allowed
    with stores.lock:
        order = export(stores.domain)["orders"]["#W9502127"]
    assert order["status"] == "return requested"
    assert order["return_items"] == ["9534205511"]

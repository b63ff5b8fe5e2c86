from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

import pytest

from graph.planners.base import PlannerError
from graph.planners.templates import TemplatePlanner
from guards.plan import CannotPlan, Plan, PlanRequest
from tools.retail import DOMAIN
from tools.retail.extractors import mask

EXTRACTORS = dict(DOMAIN.extractors or {})
"""The extractors the retail domain hands the planner."""

SHIPPED = resources.files("tools.retail").joinpath("templates.yaml")

# Real data from the shipped τ² db (hard-coded: tests never read ../shared).
FATIMA_EMAIL = "fatima.anderson1447@example.com"  # fatima_anderson_2157, zip 32100
FATIMA_ORDER = "#W2974929"  # pending, one item 3877188862 (product 1968349452), paypal_7916550
FATIMA_ITEM = "3877188862"
FATIMA_NEW_ITEM = "6843647669"  # an available variant of the same product
AVA_EMAIL = "ava.moore6020@example.com"  # ava_moore_2033, zip 78234
AVA_ORDER = "#W4817420"  # delivered, paid with gift_card_8168843

BY_FATIMA_EMAIL = ("find_user_id_by_email", {"email": FATIMA_EMAIL})
BY_FATIMA_NAME = (
    "find_user_id_by_name_zip",
    {"first_name": "Fatima", "last_name": "Anderson", "zip": "32100"},
)
BY_AVA_EMAIL = ("find_user_id_by_email", {"email": AVA_EMAIL})
BY_AVA_NAME = (
    "find_user_id_by_name_zip",
    {"first_name": "Ava", "last_name": "Moore", "zip": "78234"},
)
BY_YUSUF_NAME = (
    "find_user_id_by_name_zip",
    {"first_name": "Yusuf", "last_name": "Rossi", "zip": "19122"},
)
AUSTIN = {
    "address1": "123 Main St",
    "address2": "Suite 4",
    "city": "Austin",
    "state": "TX",
    "country": "USA",
    "zip": "78701",
}

PLANS: list[tuple[str, str, list[tuple[str, dict[str, Any]]]]] = [
    (
        f"Show my profile, my email is {FATIMA_EMAIL}",
        "user_details",
        [BY_FATIMA_EMAIL, ("get_user_details", {"user_id": "$s1"})],
    ),
    (
        "I am Yusuf Rossi, zip 19122. What are my account details?",
        "user_details",
        [BY_YUSUF_NAME, ("get_user_details", {"user_id": "$s1"})],
    ),
    (
        f"What is the status of order {FATIMA_ORDER}? I am Fatima Anderson, zip code 32100.",
        "order_details",
        [BY_FATIMA_NAME, ("get_order_details", {"order_id": FATIMA_ORDER})],
    ),
    (
        "Show me product 1968349452",
        "product_details",
        [("get_product_details", {"product_id": "1968349452"})],
    ),
    (
        f"Is item {FATIMA_NEW_ITEM} available? What is its price?",
        "item_details",
        [("get_item_details", {"item_id": FATIMA_NEW_ITEM})],
    ),
    ("List all product types", "list_product_types", [("list_all_product_types", {})]),
    (
        f"Please cancel order {FATIMA_ORDER}, it was ordered by mistake. My email is "
        f"{FATIMA_EMAIL}",
        "cancel_order",
        [
            BY_FATIMA_EMAIL,
            ("get_order_details", {"order_id": FATIMA_ORDER}),
            ("cancel_pending_order", {"order_id": FATIMA_ORDER, "reason": "ordered by mistake"}),
        ],
    ),
    (
        # bare W + 7 digits is normalised; the reason's case is not kept
        "I am Fatima Anderson, zip 32100. Cancel my pending order W2974929 because it is "
        "NO LONGER NEEDED.",
        "cancel_order",
        [
            BY_FATIMA_NAME,
            ("get_order_details", {"order_id": FATIMA_ORDER}),
            ("cancel_pending_order", {"order_id": FATIMA_ORDER, "reason": "no longer needed"}),
        ],
    ),
    (
        # email and name both given: the email is used
        f"Cancel order {FATIMA_ORDER}, no longer needed. I'm Fatima Anderson, zip 32100, "
        f"email {FATIMA_EMAIL.upper()}",
        "cancel_order",
        [
            ("find_user_id_by_email", {"email": FATIMA_EMAIL.upper()}),
            ("get_order_details", {"order_id": FATIMA_ORDER}),
            ("cancel_pending_order", {"order_id": FATIMA_ORDER, "reason": "no longer needed"}),
        ],
    ),
    (
        f"Change the shipping address of order {FATIMA_ORDER} to address: 123 Main St, "
        f"Suite 4, Austin, TX, USA, 78701. Email {FATIMA_EMAIL}",
        "modify_order_address",
        [
            BY_FATIMA_EMAIL,
            ("get_order_details", {"order_id": FATIMA_ORDER}),
            ("modify_pending_order_address", {"order_id": FATIMA_ORDER, **AUSTIN}),
        ],
    ),
    (
        f"Modify items in my pending order {FATIMA_ORDER}: change item {FATIMA_ITEM} to "
        f"{FATIMA_NEW_ITEM}, pay the difference with paypal_7916550. I am Fatima Anderson, "
        "zip 32100.",
        "modify_order_items",
        [
            BY_FATIMA_NAME,
            ("get_order_details", {"order_id": FATIMA_ORDER}),
            (
                "modify_pending_order_items",
                {
                    "order_id": FATIMA_ORDER,
                    "item_ids": [FATIMA_ITEM],
                    "new_item_ids": [FATIMA_NEW_ITEM],
                    "payment_method_id": "paypal_7916550",
                },
            ),
        ],
    ),
    (
        # "replace ... with" pairs, several pairs kept in the order written
        "In my pending order #W2974929 replace item 1111111111 with 2222222222 and item "
        f"3333333333 to 4444444444, using paypal_7916550. My email is {FATIMA_EMAIL}",
        "modify_order_items",
        [
            BY_FATIMA_EMAIL,
            ("get_order_details", {"order_id": FATIMA_ORDER}),
            (
                "modify_pending_order_items",
                {
                    "order_id": FATIMA_ORDER,
                    "item_ids": ["1111111111", "3333333333"],
                    "new_item_ids": ["2222222222", "4444444444"],
                    "payment_method_id": "paypal_7916550",
                },
            ),
        ],
    ),
    (
        f"Change the payment method of order {FATIMA_ORDER} to credit_card_1234567, my "
        f"email address is {FATIMA_EMAIL}",
        "modify_order_payment",
        [
            BY_FATIMA_EMAIL,
            ("get_order_details", {"order_id": FATIMA_ORDER}),
            (
                "modify_pending_order_payment",
                {"order_id": FATIMA_ORDER, "payment_method_id": "credit_card_1234567"},
            ),
        ],
    ),
    (
        f"Return items 6777246137 and 4900661478 from delivered order {AVA_ORDER}, refund to "
        "gift_card_8168843. I'm Ava Moore, zip 78234.",
        "return_items",
        [
            BY_AVA_NAME,
            ("get_order_details", {"order_id": AVA_ORDER}),
            (
                "return_delivered_order_items",
                {
                    "order_id": AVA_ORDER,
                    "item_ids": ["6777246137", "4900661478"],
                    "payment_method_id": "gift_card_8168843",
                },
            ),
        ],
    ),
    (
        f"Exchange items in delivered order {AVA_ORDER}: item 6777246137 for 4579334072 and "
        "replace 4900661478 with 8479046075; pay with gift_card_8168843. Email "
        f"{AVA_EMAIL}",
        "exchange_items",
        [
            BY_AVA_EMAIL,
            ("get_order_details", {"order_id": AVA_ORDER}),
            (
                "exchange_delivered_order_items",
                {
                    "order_id": AVA_ORDER,
                    "item_ids": ["6777246137", "4900661478"],
                    "new_item_ids": ["4579334072", "8479046075"],
                    "payment_method_id": "gift_card_8168843",
                },
            ),
        ],
    ),
    (
        "Update my default address to address: 123 Main St, Suite 4, Austin, TX, USA, 78701. "
        "I am Yusuf Rossi, zip 19122.",
        "modify_user_address",
        [
            BY_YUSUF_NAME,
            ("get_user_details", {"user_id": "$s1"}),
            ("modify_user_address", {"user_id": "$s1", **AUSTIN}),
        ],
    ),
    (
        # the order word makes it the order's address, not the default one
        f"I'm Fatima Anderson, zip 32100: please update the address on my order "
        f"{FATIMA_ORDER}, new address: 123 Main St, Suite 4, Austin, TX, USA, 78701",
        "modify_order_address",
        [
            BY_FATIMA_NAME,
            ("get_order_details", {"order_id": FATIMA_ORDER}),
            ("modify_pending_order_address", {"order_id": FATIMA_ORDER, **AUSTIN}),
        ],
    ),
]

CANNOT: list[tuple[str, list[str], list[str]]] = [
    # (request, words the reason must contain, candidates)
    ("What's the weather like today?", ["could not tell", "cancel a pending order"], []),
    ("", ["could not tell"], []),
    (
        f"Cancel order {FATIMA_ORDER} or return item {FATIMA_ITEM}, I am Fatima Anderson, "
        "zip 32100",
        ["more than one", "cancel_order", "return_items"],
        ["return_items", "cancel_order"],
    ),
    (
        # Two requests in one sentence are two parts: both are planned, or neither.
        f"Cancel order {FATIMA_ORDER} and return item {FATIMA_ITEM}, I am Fatima Anderson, "
        "zip 32100",
        ["a cancel request needs a reason"],
        ["cancel_order"],
    ),
    (
        f"Cancel my order because it was ordered by mistake, email {FATIMA_EMAIL}",
        ["a cancel request needs an order id like #W2378156", "no order id"],
        ["cancel_order"],
    ),
    (
        f"Cancel order {FATIMA_ORDER} because it is too expensive, email {FATIMA_EMAIL}",
        ["a reason: 'no longer needed' or 'ordered by mistake'"],
        ["cancel_order"],
    ),
    (
        f"Cancel order {FATIMA_ORDER}: no longer needed, ordered by mistake. {FATIMA_EMAIL}",
        ["both allowed reasons"],
        ["cancel_order"],
    ),
    (
        f"Cancel order #W123, no longer needed, email {FATIMA_EMAIL}",
        ["'#W123' is not an order id", "exactly 7 digits"],
        ["cancel_order"],
    ),
    (
        f"Cancel order #w2974929, no longer needed, email {FATIMA_EMAIL}",
        ["'#w2974929' is not an order id"],
        ["cancel_order"],
    ),
    (
        f"Cancel orders {FATIMA_ORDER} and {AVA_ORDER}, no longer needed, email {FATIMA_EMAIL}",
        ["several order ids", FATIMA_ORDER, AVA_ORDER],
        ["cancel_order"],
    ),
    (
        f"Return item 6777246137 from order {AVA_ORDER} to gift_card_8168843",
        ["a return request needs who you are: an email, or first and last name with zip"],
        ["return_items"],
    ),
    (
        f"Please cancel order {FATIMA_ORDER} because I no longer need it",
        ["who you are", "and a reason"],
        ["cancel_order"],
    ),
    (
        "I am Yusuf Rossi. Show my profile.",
        ["who you are", "found the name Yusuf Rossi but no zip"],
        ["user_details"],
    ),
    (
        "Change my default address to address: 1 Elm St, Portland, OR, USA, 97201. "
        "I am Yusuf Rossi, zip 19122.",
        ["a new address", "5 of the 6 fields", "address2"],
        ["modify_user_address"],
    ),
    (
        "Change my default address to 1 Elm St, Portland. I am Yusuf Rossi, zip 19122.",
        ["address: street, line 2, city, state, country, zip", "no 'address:'"],
        ["modify_user_address"],
    ),
    (
        f"Modify items of pending order {FATIMA_ORDER}: change item {FATIMA_ITEM}, pay with "
        f"paypal_7916550, email {FATIMA_EMAIL}",
        [f"item {FATIMA_ITEM} has no partner"],
        ["modify_order_items"],
    ),
    (
        # pending or delivered? modify and exchange read the same words
        f"Change item {FATIMA_ITEM} to {FATIMA_NEW_ITEM} in order {FATIMA_ORDER}, pay with "
        f"paypal_7916550, email {FATIMA_EMAIL}",
        ["could be", "modify_order_items", "exchange_items", "still pending", "received"],
        ["modify_order_items", "exchange_items"],
    ),
    (
        f"Change the payment method of order {FATIMA_ORDER}, email {FATIMA_EMAIL}",
        ["payment method id like credit_card_1234567"],
        ["modify_order_payment"],
    ),
    (
        f"Change the payment of order {FATIMA_ORDER} to paypal_1 or gift_card_2, {FATIMA_EMAIL}",
        ["several payment methods", "paypal_1", "gift_card_2"],
        ["modify_order_payment"],
    ),
    (
        "Show me the product details",
        ["a product id like 'product 6086499569'"],
        ["product_details"],
    ),
    (
        "What is the price of item 123456789?",
        ["123456789 is not an item id", "10 digits"],
        ["item_details"],
    ),
    (
        f"Show my profile, I am {FATIMA_EMAIL} or {AVA_EMAIL}",
        ["several emails"],
        ["user_details"],
    ),
]


def load(source: Path | Traversable = SHIPPED) -> TemplatePlanner:
    return TemplatePlanner.load(source, extractors=EXTRACTORS, mask=mask)


@pytest.fixture(scope="module")
def planner() -> TemplatePlanner:
    return load()


def plan_of(planner: TemplatePlanner, text: str) -> Plan:
    out = planner.plan(PlanRequest(text=text))
    assert isinstance(out, Plan), out
    return out


@pytest.mark.parametrize(("text", "intent", "steps"), PLANS)
def test_request_gives_exact_plan(
    planner: TemplatePlanner, text: str, intent: str, steps: list[tuple[str, dict[str, Any]]]
) -> None:
    plan = plan_of(planner, text)
    assert plan.source == "template"
    assert plan.goal == text
    version = {"modify_order_items": 2, "exchange_items": 2, "return_items": 2}.get(intent, 1)
    assert plan.template == f"{intent}@{version}"
    assert [(s.tool, s.args) for s in plan.steps] == steps
    assert [s.id for s in plan.steps] == [f"s{i + 1}" for i in range(len(steps))]


@pytest.mark.parametrize(("text", "words", "candidates"), CANNOT)
def test_request_gives_cannot_plan(
    planner: TemplatePlanner, text: str, words: list[str], candidates: list[str]
) -> None:
    out = planner.plan(PlanRequest(text=text))
    assert isinstance(out, CannotPlan), out
    for word in words:
        assert word in out.reason
    assert out.candidates == candidates


def test_steps_depend_on_what_they_follow_or_refer_to(planner: TemplatePlanner) -> None:
    plan = plan_of(planner, PLANS[15][0])  # modify_user_address
    assert [s.depends_on for s in plan.steps] == [[], ["s1"], ["s1", "s2"]]
    cancel = plan_of(planner, PLANS[6][0])
    assert [s.depends_on for s in cancel.steps] == [[], ["s1"], ["s2"]]
    assert cancel.steps[2].description == f"cancel order {FATIMA_ORDER} (ordered by mistake)"
    assert cancel.steps[0].description == f"find the user id for {FATIMA_EMAIL}"


def test_feedback_does_not_change_the_plan(planner: TemplatePlanner) -> None:
    # The flow ends a refused run instead of re-planning because templates cannot use the
    # verifier's feedback: the same request with feedback gets the same plan.
    text = PLANS[6][0]
    first = plan_of(planner, text)
    retry = PlanRequest(text=text, feedback=["cancel_pending_order: denied"], previous=first)
    assert planner.plan(retry) == first
    assert planner.can_replan is False


def test_plan_id_is_stable(planner: TemplatePlanner) -> None:
    text = PLANS[6][0]
    first, again = plan_of(planner, text), plan_of(load(), text)
    assert first.id == again.id and first == again
    assert plan_of(planner, text + " ").id != first.id


def test_extractors_and_mask_come_from_the_caller(tmp_path: Path) -> None:
    # an identity extractor is one with forms, whatever its name
    renamed = tmp_path / "renamed.yaml"
    text = shipped_text().replace("extractor: identity", "extractor: customer")
    renamed.write_text(text.replace("\n  identity:\n    needs:", "\n  customer:\n    needs:", 1))
    extractors = {("customer" if k == "identity" else k): v for k, v in EXTRACTORS.items()}
    custom = TemplatePlanner.load(renamed, extractors=extractors, mask=mask)
    assert plan_of(custom, PLANS[6][0]).steps == plan_of(load(), PLANS[6][0]).steps
    with pytest.raises(PlannerError, match="unknown extractor 'identity'"):
        TemplatePlanner.load(SHIPPED, extractors=extractors, mask=mask)

    # the mask keeps words inside an email out of matching
    text = "Show my profile, my email is cancel.return@example.com"
    assert plan_of(load(), text).template == "user_details@1"
    unmasked = TemplatePlanner.load(SHIPPED, extractors=EXTRACTORS, mask=lambda t: t)
    out = unmasked.plan(PlanRequest(text=text))
    assert isinstance(out, CannotPlan)
    assert out.candidates == ["cancel_order", "return_items"]


def shipped_text() -> str:
    return (Path(__file__).parent.parent / "tools" / "retail" / "templates.yaml").read_text()


def test_version_follows_the_document(planner: TemplatePlanner, tmp_path: Path) -> None:
    same = tmp_path / "same.yaml"
    same.write_text(shipped_text())
    assert load(same).version == planner.version

    changed = tmp_path / "changed.yaml"
    changed.write_text(shipped_text().replace("[cancel, cancellation]", "[cancel, call off]"))
    other = load(changed)
    assert other.version != planner.version
    assert other.version.startswith("1+")
    assert isinstance(other.plan(PlanRequest(text=f"call off {FATIMA_ORDER}")), CannotPlan)

    relabelled = tmp_path / "relabelled.yaml"
    relabelled.write_text(shipped_text().replace('version: "1"', 'version: "2"', 1))
    assert load(relabelled).version.startswith("2+")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("intents: [\n", "not valid YAML"),
        ("- just a list\n", "must be a mapping"),
        ('version: "1"\nintents: []\n', "extractors: Field required"),
    ],
)
def test_broken_file_names_file_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text(text)
    with pytest.raises(PlannerError) as info:
        load(bad)
    assert str(bad) in str(info.value)
    assert problem in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PlannerError, match="no such template file"):
        load(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            'reason: "{reason}"',
            'reason: "{why}"',
            "intent 'cancel_order', step 's3' args.reason: unknown slot 'why'",
        ),
        (
            'reason: "{reason}"',
            'reason: "no longer needed"',
            "slot 'reason' is never used",
        ),
        ('zip: "{address.zip}"', 'zip: "{address.postcode}"', "has no field 'postcode'"),
        ('reason: "{reason}"', "reason: {reason}", "args.reason.reason is null"),
        ("reason: {extractor: cancel_reason}", "reason: {extractor: why}", "unknown extractor"),
        ('user_id: "$s1"', 'user_id: "$s9"', "'$s9' does not refer to an earlier step"),
        ("depends_on: [s2]", "depends_on: [s7]", "depends_on 's7' is not an earlier step"),
        ('["@info"]', '["@infos"]', "unknown phrase list '@infos'"),
        ("label: a cancel request", "lable: a cancel request", "Extra inputs are not permitted"),
        (
            "{id: s1, identify: identity}",
            "{id: s1, identify: order_id}",
            "intent 'user_details', step 's1': identify names unknown slot 'order_id'",
        ),
        (
            "{id: s1, identify: identity}\n      - id: s2\n        tool: get_order_details",
            "{id: s1, identify: order_id}\n      - id: s2\n        tool: get_order_details",
            "identify slot 'order_id' is not an identity slot",
        ),
    ],
)
def test_bad_template_is_refused(tmp_path: Path, old: str, new: str, problem: str) -> None:
    text = shipped_text()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(PlannerError) as info:
        load(bad)
    assert str(bad) in str(info.value)
    assert problem in str(info.value)


def test_every_table_plan_holds_the_contracts(planner: TemplatePlanner) -> None:
    retail = pytest.importorskip("tools.retail")
    if not hasattr(retail, "build_catalog"):
        pytest.skip("tools.retail has no build_catalog yet")
    from guards.contracts import Budget, check_plan

    catalog = retail.build_catalog()
    for text, _, _ in PLANS:
        plan = plan_of(planner, text)
        assert [str(f) for f in check_plan(plan, catalog, Budget(max_steps=10))] == [], text

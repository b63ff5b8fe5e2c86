"""The Rego policy on the seeded τ² data: a table of compliant plans and violations, approval
rules, edits and execution-time re-checks, failing closed, the OPA client, settings, and the
Rego unit-test runner."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import re
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from answering import answer_for
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from typer.testing import CliRunner

from checkpoints.factory import Stores
from checkpoints.ledger import Ledger
from graph.cli import app
from graph.planners.explicit import parse_plan_document
from graph.runner import Runner
from graph.services import Services, open_stores
from graph.settings import Settings
from guards.errors import DecisionInvalid
from guards.facts import resolve_facts
from guards.judgement import StepReview
from guards.plan import ancestors
from guards.policy import (
    OpaEngine,
    Policy,
    PolicyBundle,
    PolicyConfig,
    PolicyDecision,
    PolicyError,
    Requirement,
    Violation,
    load_policy,
    run_tests,
)
from tools.catalog import Catalog
from tools.retail import DOMAIN, RetailDB, build_catalog, export, load_shipped, seed
from tools.retail import tools as T

DATA = load_shipped()
PACKAGE = "planbound.retail"

FATIMA = "fatima.anderson1447@example.com"  # paypal_7916550 only
F_PENDING = "#W2974929"  # 182.03, item 3877188862 (product 1968349452)
F_BIG = "#W4514908"  # pending, 3439.37
F_CANCELLED = "#W4111294"
SOFIA_ORDER = "#W5918442"  # sofia_rossi_8776, pending
SOFIA_CARD = "credit_card_5051208"
JAMES = "james.li4495@example.com"  # gift_card_1725971 (17.0)
J_PROCESSED = "#W2611340"
J_DELIVERED = "#W4435622"  # 287.54: 4694984344 (product 7363354090), 6777246137
EMMA = "emma.santos7683@example.com"  # credit_card_5869505, gift_card_6023546 (36.0)
E_PENDING_CC = "#W2918688"  # 903.95, credit card
E_DELIVERED_BIG = "#W3113816"  # 1739.51
ISABELLA = "isabella.lopez3271@example.com"
I_PENDING = "#W4923227"  # credit_card_8554680; also paypal_1621947, credit_card_8897086
AMELIA = "amelia.wilson1598@example.com"
A_DELIVERED = "#W9077205"  # paid with gift_card_7108145; also paypal_4101143

SKATE_OTHER = "6843647669"  # available variant of 1968349452
SKATE_UNAVAILABLE = "2343503231"
J_ITEM, J_ITEM_OTHER = "4694984344", "1615379700"  # product 7363354090

ADDRESS = {
    "address1": "1 Elm St",
    "address2": "",
    "city": "Austin",
    "state": "TX",
    "country": "USA",
    "zip": "78701",
}


def who(email: str = FATIMA) -> dict[str, Any]:
    return {"id": "who", "tool": "find_user_id_by_email", "args": {"email": email}}


def step(sid: str, tool: str, deps: tuple[str, ...] = ("who",), /, **args: Any) -> dict[str, Any]:
    return {"id": sid, "tool": tool, "args": args, "depends_on": list(deps)}


def swap(tool: str, order: str, old: list[str], new: list[str], method: str) -> dict[str, Any]:
    """A write step ``w`` that replaces items (modify or exchange)."""
    return step("w", tool, order_id=order, item_ids=old, new_item_ids=new, payment_method_id=method)


def cancel(order: str = F_PENDING, reason: str = "no longer needed", sid: str = "w") -> Any:
    return step(sid, "cancel_pending_order", order_id=order, reason=reason)


ALLOWED = "writes.need_approval"
SUPERVISOR = "operator.amount_threshold"

# (name, steps, expected outcome, rules expected to fire)
CASES: list[tuple[str, list[dict[str, Any]], str, set[str]]] = [
    # Compliant plans --------------------------------------------------------------------
    ("cancel", [who(), cancel()], "needs_approval", {ALLOWED}),
    (
        "cancel by mistake",
        [who(), cancel(reason="ordered by mistake")],
        "needs_approval",
        {ALLOWED},
    ),
    (
        "cancel by name and zip",
        [
            step(
                "who",
                "find_user_id_by_name_zip",
                (),
                first_name="fatima",
                last_name="ANDERSON",
                zip="32100",
            ),
            cancel(),
        ],
        "needs_approval",
        {ALLOWED},
    ),
    (
        "cancel through a reference",
        [
            who(),
            step("o", "get_order_details", order_id=F_PENDING),
            step(
                "w",
                "cancel_pending_order",
                ("o",),
                order_id="$o.order_id",
                reason="no longer needed",
            ),
        ],
        "needs_approval",
        {ALLOWED},
    ),
    (
        "modify order address",
        [who(), step("w", "modify_pending_order_address", order_id=F_PENDING, **ADDRESS)],
        "needs_approval",
        {ALLOWED},
    ),
    (
        "modify items",
        [
            who(),
            swap(
                "modify_pending_order_items",
                F_PENDING,
                ["3877188862"],
                [SKATE_OTHER],
                "paypal_7916550",
            ),
        ],
        "needs_approval",
        {ALLOWED},
    ),
    (
        "modify payment",
        [
            who(ISABELLA),
            step(
                "w",
                "modify_pending_order_payment",
                order_id=I_PENDING,
                payment_method_id="paypal_1621947",
            ),
        ],
        "needs_approval",
        {ALLOWED},
    ),
    (
        "return to a gift card",
        [
            who(JAMES),
            step(
                "w",
                "return_delivered_order_items",
                order_id=J_DELIVERED,
                item_ids=[J_ITEM],
                payment_method_id="gift_card_1725971",
            ),
        ],
        "needs_approval",
        {ALLOWED},
    ),
    (
        "exchange within the product",
        [
            who(JAMES),
            swap(
                "exchange_delivered_order_items",
                J_DELIVERED,
                [J_ITEM],
                [J_ITEM_OTHER],
                "gift_card_1725971",
            ),
        ],
        "needs_approval",
        {ALLOWED},
    ),
    (
        "change default address",
        [who(), step("w", "modify_user_address", user_id="$who", **ADDRESS)],
        "needs_approval",
        {ALLOWED},
    ),
    (
        "large cancel needs a supervisor",
        [who(), cancel(F_BIG)],
        "needs_approval",
        {ALLOWED, SUPERVISOR},
    ),
    (
        "large return needs a supervisor",
        [
            who(EMMA),
            step(
                "w",
                "return_delivered_order_items",
                order_id=E_DELIVERED_BIG,
                item_ids=["2206116040"],
                payment_method_id="credit_card_5869505",
            ),
        ],
        "needs_approval",
        {ALLOWED, SUPERVISOR},
    ),
    ("user details", [who(), step("r", "get_user_details", user_id="$who")], "allow", set()),
    (
        "order details",
        [who(), step("r", "get_order_details", order_id=F_PENDING)],
        "allow",
        set(),
    ),
    (
        "product details",
        [step("r", "get_product_details", (), product_id="1968349452")],
        "allow",
        set(),
    ),
    ("product types", [step("r", "list_all_product_types", ())], "allow", set()),
    ("calculate", [step("r", "calculate", (), expression="2 * 3")], "allow", set()),
    (
        "transfer alone",
        [step("t", "transfer_to_human_agents", (), summary="wants a lawyer")],
        "allow",
        set(),
    ),
    # Violations ---------------------------------------------------------------------------
    (
        "no identity before a write",
        [cancel(sid="w") | {"depends_on": []}],
        "deny",
        {"identity.required"},
    ),
    (
        "no identity before a read",
        [step("r", "get_order_details", (), order_id=F_PENDING)],
        "deny",
        {"identity.required"},
    ),
    (
        "identity written after the write",
        [cancel() | {"depends_on": []}, who()],
        "deny",
        {"identity.required"},
    ),
    ("unknown email", [who("nobody@example.com"), cancel()], "deny", {"identity.resolved"}),
    (
        "two users in one run",
        [who(), step("who2", "find_user_id_by_email", ("who",), email=JAMES), cancel()],
        "deny",
        {"identity.one_user"},
    ),
    ("another user's order", [who(), cancel(SOFIA_ORDER)], "deny", {"scope.order_owner"}),
    (
        "another user's order through a reference",
        [
            who(),
            step("o", "get_order_details", order_id=SOFIA_ORDER),
            step(
                "w",
                "cancel_pending_order",
                ("o",),
                order_id="$o.order_id",
                reason="no longer needed",
            ),
        ],
        "deny",
        {"scope.order_owner"},
    ),
    (
        "reading another user's order",
        [who(), step("r", "get_order_details", order_id=SOFIA_ORDER)],
        "deny",
        {"scope.order_owner"},
    ),
    (
        "another user's profile",
        [who(), step("r", "get_user_details", user_id="sofia_rossi_8776")],
        "deny",
        {"scope.user"},
    ),
    (
        "changing another user's address",
        [who(), step("w", "modify_user_address", user_id="sofia_rossi_8776", **ADDRESS)],
        "deny",
        {"scope.user"},
    ),
    (
        "another user's payment method",
        [
            who(),
            step(
                "w",
                "modify_pending_order_payment",
                order_id=F_PENDING,
                payment_method_id=SOFIA_CARD,
            ),
        ],
        "deny",
        {"scope.payment_method"},
    ),
    (
        "refund to another user's card",
        [
            who(JAMES),
            step(
                "w",
                "return_delivered_order_items",
                order_id=J_DELIVERED,
                item_ids=[J_ITEM],
                payment_method_id=SOFIA_CARD,
            ),
        ],
        "deny",
        {"scope.payment_method"},
    ),
    (
        "an order that does not exist",
        [who(), cancel("#W0000000")],
        "deny",
        {"scope.order_exists"},
    ),
    ("cancel a processed order", [who(JAMES), cancel(J_PROCESSED)], "deny", {"order.pending"}),
    ("cancel a cancelled order", [who(), cancel(F_CANCELLED)], "deny", {"order.pending"}),
    (
        "modify a delivered order's address",
        [who(JAMES), step("w", "modify_pending_order_address", order_id=J_DELIVERED, **ADDRESS)],
        "deny",
        {"order.pending"},
    ),
    (
        "return a pending order",
        [
            who(),
            step(
                "w",
                "return_delivered_order_items",
                order_id=F_PENDING,
                item_ids=["3877188862"],
                payment_method_id="paypal_7916550",
            ),
        ],
        "deny",
        {"order.delivered"},
    ),
    (
        "exchange a processed order",
        [
            who(JAMES),
            swap(
                "exchange_delivered_order_items",
                J_PROCESSED,
                ["6469567736"],
                ["6469567736"],
                "gift_card_1725971",
            ),
        ],
        "deny",
        {"order.delivered", "items.changed"},
    ),
    (
        "cancel for another reason",
        [who(), cancel(reason="changed my mind")],
        "deny",
        {"cancel.reason"},
    ),
    (
        "modify items twice",
        [
            who(),
            step(
                "a",
                "modify_pending_order_items",
                order_id=F_PENDING,
                item_ids=["3877188862"],
                new_item_ids=[SKATE_OTHER],
                payment_method_id="paypal_7916550",
            ),
            step(
                "b",
                "modify_pending_order_items",
                ("a",),
                order_id=F_PENDING,
                item_ids=[SKATE_OTHER],
                new_item_ids=["3232433601"],
                payment_method_id="paypal_7916550",
            ),
        ],
        "deny",
        {"modify.items_once"},
    ),
    (
        "modify an item the order does not have",
        [
            who(),
            swap(
                "modify_pending_order_items",
                F_PENDING,
                [SKATE_OTHER],
                ["3232433601"],
                "paypal_7916550",
            ),
        ],
        "deny",
        {"items.in_order"},
    ),
    (
        "exchange for another product",
        [
            who(JAMES),
            swap(
                "exchange_delivered_order_items",
                J_DELIVERED,
                [J_ITEM],
                [SKATE_OTHER],
                "gift_card_1725971",
            ),
        ],
        "deny",
        {"items.same_product"},
    ),
    (
        "modify to an item that does not exist",
        [
            who(),
            swap(
                "modify_pending_order_items",
                F_PENDING,
                ["3877188862"],
                ["0000000000"],
                "paypal_7916550",
            ),
        ],
        "deny",
        {"items.exists"},
    ),
    (
        "modify to an unavailable item",
        [
            who(),
            swap(
                "modify_pending_order_items",
                F_PENDING,
                ["3877188862"],
                [SKATE_UNAVAILABLE],
                "paypal_7916550",
            ),
        ],
        "deny",
        {"items.available"},
    ),
    (
        "exchange an item for itself",
        [
            who(JAMES),
            swap(
                "exchange_delivered_order_items",
                J_DELIVERED,
                [J_ITEM],
                [J_ITEM],
                "gift_card_1725971",
            ),
        ],
        "deny",
        {"items.changed"},
    ),
    (
        "unpaired replacements",
        [
            who(JAMES),
            swap(
                "exchange_delivered_order_items",
                J_DELIVERED,
                [J_ITEM, "6777246137"],
                [J_ITEM_OTHER],
                "gift_card_1725971",
            ),
        ],
        "deny",
        {"items.paired"},
    ),
    (
        "return nothing",
        [
            who(JAMES),
            step(
                "w",
                "return_delivered_order_items",
                order_id=J_DELIVERED,
                item_ids=[],
                payment_method_id="gift_card_1725971",
            ),
        ],
        "deny",
        {"items.given"},
    ),
    (
        "pay with a gift card that cannot cover it",
        [
            who(EMMA),
            step(
                "w",
                "modify_pending_order_payment",
                order_id=E_PENDING_CC,
                payment_method_id="gift_card_6023546",
            ),
        ],
        "deny",
        {"payment.gift_card_balance"},
    ),
    (
        "pay with the same method",
        [
            who(ISABELLA),
            step(
                "w",
                "modify_pending_order_payment",
                order_id=I_PENDING,
                payment_method_id="credit_card_8554680",
            ),
        ],
        "deny",
        {"payment.changed"},
    ),
    (
        "refund to a method that did not pay",
        [
            who(AMELIA),
            step(
                "w",
                "return_delivered_order_items",
                order_id=A_DELIVERED,
                item_ids=["9370300555"],
                payment_method_id="paypal_4101143",
            ),
        ],
        "deny",
        {"return.refund_method"},
    ),
    (
        "transfer beside a change of data",
        [who(), cancel(), step("t", "transfer_to_human_agents", ("who",), summary="angry")],
        "deny",
        {"transfer.out_of_scope"},
    ),
    (
        "a change of data, then a transfer for the rest",
        [who(), cancel(), step("t", "transfer_to_human_agents", ("w",), summary="the rest")],
        "needs_approval",
        {ALLOWED},
    ),
    (
        "too many write steps",
        [
            who(),
            *[
                step(
                    f"a{i}",
                    "modify_user_address",
                    (f"a{i - 1}",) if i else ("who",),
                    user_id="$who",
                    **ADDRESS,
                )
                for i in range(7)
            ],
        ],
        "deny",
        {"operator.max_write_steps"},
    ),
    (
        "argument from a write step's output",
        [
            who(),
            step("a", "modify_pending_order_address", order_id=F_PENDING, **ADDRESS),
            step(
                "w",
                "cancel_pending_order",
                ("a",),
                order_id="$a.order_id",
                reason="no longer needed",
            ),
        ],
        "deny",
        {"facts.resolved"},
    ),
]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    s = open_stores(tmp_path_factory.mktemp("policy") / "home")
    with s.lock:
        seed(s.domain, DATA)
    yield s
    s.close()


@pytest.fixture
def runner(stores: Stores) -> Runner:
    """A runner on the module's shared data: only for plans that change nothing."""
    return Runner(stores)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Runner]:
    """A runner on its own freshly seeded data, for runs that write."""
    s = open_stores(tmp_path / "home")
    with s.lock:
        seed(s.domain, DATA)
    yield Runner(s)
    s.close()


def _fired(report: dict[str, Any]) -> set[str]:
    rules = set()
    for s in report["steps"]:
        rules |= {d["rule"] for d in s["deny"]} | {a["rule"] for a in s["needs_approval"]}
    return rules


def test_the_table_covers_every_rule_of_the_shipped_policy() -> None:
    """Each deny and approval rule of the retail policy is fired by at least one row."""
    text = dict(PolicyBundle.load(DOMAIN.policy_dir).modules)["retail.rego"]
    rules = set(re.findall(r'violation\(s, "([\w.]+)"', text))
    rules |= set(re.findall(r'"rule": "([\w.]+)"', text))
    assert len(rules) >= 25  # the scan itself works: an empty one would pass vacuously
    assert rules <= set().union(*(c[3] for c in CASES), *(c[2] for c in LLM_CASES))


# Plans of the LLM planner (source "llm"): the same rules, and two more of their own.
# (name, steps, approval rules expected to fire, approval rules that must not)
LLM_CASES: list[tuple[str, list[dict[str, Any]], set[str], set[str]]] = [
    (
        "llm cancel",
        [who(), cancel()],
        {ALLOWED, "llm.write_review"},
        {"llm.amount_threshold", SUPERVISOR},
    ),
    (
        "llm cancel over the threshold",
        [who(), cancel(F_BIG)],
        {ALLOWED, SUPERVISOR, "llm.write_review", "llm.amount_threshold"},
        set(),
    ),
]


@pytest.mark.parametrize(
    ("name", "steps", "fire", "quiet"), LLM_CASES, ids=[c[0] for c in LLM_CASES]
)
def test_llm_plans_need_a_reviewer_and_a_supervisor_over_the_threshold(
    runner: Runner, stores: Stores, name: str, steps: Any, fire: set[str], quiet: set[str]
) -> None:
    from guards.plan import Plan

    written = parse_plan_document({"goal": name, "steps": steps})
    verifier = runner.services.verifier
    for source in ("llm", "explicit"):
        plan = Plan(source=source, goal=written.goal, steps=written.steps)  # type: ignore[arg-type]
        verdict = verifier.verify(plan, stores.domain, stores.lock, "ann").verdict
        assert verdict.outcome == "needs_approval", verdict
        fired = {rule for review in verdict.reviews for rule in review.rules}
        if source == "llm":
            assert fire <= fired and not quiet & fired, fired
        else:
            assert not {r for r in fired if r.startswith("llm.")}, fired


@pytest.mark.parametrize(("name", "steps", "outcome", "rules"), CASES, ids=[c[0] for c in CASES])
def test_policy_table(
    runner: Runner, name: str, steps: list[dict[str, Any]], outcome: str, rules: set[str]
) -> None:
    report = runner.explain({"goal": name, "steps": steps})
    assert report["contracts"] == []
    assert report["outcome"] == outcome, report
    fired = _fired(report)
    if outcome == "deny":
        assert rules <= fired, report
        for s in report["steps"]:
            for d in s["deny"]:
                assert d["reason"]  # every denial says why
    else:
        assert fired == rules, report


DENIED = [c for c in CASES if c[2] == "deny"]


@pytest.mark.parametrize(
    ("name", "steps", "rules"), [(c[0], c[1], c[3]) for c in DENIED], ids=[c[0] for c in DENIED]
)
def test_every_violation_is_refused_by_its_rule_before_any_side_effect(
    runner: Runner, stores: Stores, name: str, steps: list[dict[str, Any]], rules: set[str]
) -> None:
    before = export(stores.domain)
    out = runner.start(explicit_plan={"goal": name, "steps": steps})
    assert out["status"] == "refused", out
    assert out["verdict"]["outcome"] == "deny"
    reasons = out["verdict"]["reasons"]
    named = {m for r in reasons for m in re.findall(r"\[([\w.]+)\]$", r)}
    assert all(re.search(r"\[[\w.]+\]$", r) for r in reasons), reasons
    assert rules <= named, reasons  # the row's deny rule fired
    assert out["verdict"]["facts_hash"]
    assert out["results"] == []  # no step ran
    assert Ledger(stores.domain).rows(out["decision_id"]) == []
    assert export(stores.domain) == before


def test_explain_json_and_table(stores: Stores, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [who(), cancel(SOFIA_ORDER)]}))
    home = ["--home", str(stores.home)]
    result = CliRunner().invoke(app, ["policy", "explain", "--plan", str(plan), *home, "--json"])
    assert result.exit_code == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["outcome"] == "deny"
    assert report["steps"][1]["deny"][0]["rule"] == "scope.order_owner"
    assert report["policy_version"].startswith("rego-")
    table = CliRunner().invoke(app, ["policy", "explain", "--plan", str(plan), *home])
    assert table.exit_code == 0
    assert "scope.order_owner" in table.stdout and "no rule fired" in table.stdout
    missing = CliRunner().invoke(app, ["policy", "explain", "--plan", "nope.json", *home])
    assert missing.exit_code == 2


def test_policy_unit_tests_pass() -> None:
    results = run_tests(PolicyBundle.load(DOMAIN.policy_dir))
    assert len(results) >= 15
    assert [r.name for r in results if not r.passed] == []
    out = CliRunner().invoke(app, ["policy", "test", "--json"])
    assert out.exit_code == 0
    assert json.loads(out.stdout)["failed"] == 0


def test_a_failing_rego_test_fails_the_command(tmp_path: Path) -> None:
    for name, text in PolicyBundle.load(DOMAIN.policy_dir).modules:
        (tmp_path / name).write_text(text)
    (tmp_path / "broken_test.rego").write_text(
        "package planbound.broken_test\n\nimport rego.v1\n\ntest_wrong if { 1 == 2 }\n"
    )
    out = CliRunner().invoke(app, ["policy", "test", "--dir", str(tmp_path), "--json"])
    assert out.exit_code == 1
    assert json.loads(out.stdout)["failed"] == 1


FORMS_TEST = """package planbound.forms_test

import rego.v1

import data.planbound.retail

test_if_passes if { "admin" in retail.supervisor_roles }

test_if_fails if { "reviewer" in retail.supervisor_roles }

test_assign_passes := count(retail.cancel_reasons) == 2

test_assign_fails := count(retail.cancel_reasons) == 3

test_bare_passes { 1 == 1 }

test_bare_fails { 1 == 2 }

test_contains_holds contains role if { some role in retail.supervisor_roles }

test_contains_empty contains role if { some role in retail.supervisor_roles; role == "x" }

test_cases_pass[tool] if { some tool in retail.delivered_only }

test_cases_fail[tool] := tool in retail.pending_only if { some tool in retail.item_swaps }

test_with_args(x) if { x == 1 }

test_twice if { 1 == 1 }

test_twice if { 1 == 2 }
"""

SET_TEST = "a set (a `contains` rule) never passes: write `test_... if { ... }`"
UNDEFINED = "undefined (its body did not hold)"

# Each rule form, passing and failing; a rule the old `^(test_\w+)\s+if\b` scan found is
# marked. A test passes as under `opa test`: true, or every named case true.
FORM_OUTCOMES = {
    "test_if_passes": None,  # found by the old scan
    "test_if_fails": UNDEFINED,  # found by the old scan
    "test_assign_passes": None,
    "test_assign_fails": "evaluated to False, not true",
    "test_bare_passes": None,
    "test_bare_fails": UNDEFINED,
    # A set is never a passing test: a failing member would just be missing from it.
    "test_contains_holds": SET_TEST,
    "test_contains_empty": SET_TEST,
    "test_cases_pass": None,
    "test_cases_fail": "cases not true: exchange_delivered_order_items",
    "test_with_args": "a test takes no arguments",
    # Two bodies are alternatives: the one that holds would hide the one that fails.
    "test_twice": "defined 2 times: give each body its own test name",
}


def _bundle_with_tests(folder: Path, tests: str) -> Path:
    for name, text in PolicyBundle.load(DOMAIN.policy_dir).modules:
        (folder / name).write_text(text)
    (folder / "forms_test.rego").write_text(tests)
    return folder


def test_every_form_of_test_rule_is_found_and_judged(tmp_path: Path) -> None:
    results = run_tests(PolicyBundle.load(_bundle_with_tests(tmp_path, FORMS_TEST)))
    assert [r.name for r in results] == list(FORM_OUTCOMES)  # all found, in source order
    assert {r.module for r in results} == {"forms_test.rego"}
    assert {r.name: r.error for r in results} == FORM_OUTCOMES
    passed = {r.name for r in results if r.passed}
    assert passed == {n for n, error in FORM_OUTCOMES.items() if error is None}


def test_a_failing_test_of_any_form_fails_the_command(tmp_path: Path) -> None:
    folder = _bundle_with_tests(tmp_path, FORMS_TEST)
    out = CliRunner().invoke(app, ["policy", "test", "--dir", str(folder), "--json"])
    assert out.exit_code == 1
    report = json.loads(out.stdout)
    failing = sorted(n for n, error in FORM_OUTCOMES.items() if error is not None)
    assert sorted(t["name"] for t in report["tests"] if not t["passed"]) == failing
    assert report["failed"] == len(failing)


def test_a_test_file_that_does_not_compile_is_an_error(tmp_path: Path) -> None:
    folder = _bundle_with_tests(tmp_path, "package planbound.forms_test\n\ntest_x if {\n")
    with pytest.raises(PolicyError, match="forms_test.rego does not compile"):
        run_tests(PolicyBundle.load(folder))


# Approval rules -----------------------------------------------------------------------------


def test_reviewer_without_the_role_is_refused_and_the_run_stays_paused(fresh: Runner) -> None:
    runner, stores = fresh, fresh.stores
    before = export(stores.domain)
    first = runner.start(explicit_plan={"steps": [who(), cancel(F_BIG)]}, actor="ann")
    assert first["status"] == "awaiting_approval"
    review = first["verdict"]["reviews"][0]
    assert review["roles"] == ["admin", "supervisor"]
    with pytest.raises(DecisionInvalid, match="needs one of the roles admin, supervisor"):
        runner.resume(first["thread_id"], answer_for(first, {"type": "approve"}, reviewer="bo"))
    assert runner.outcome(first["thread_id"])["status"] == "awaiting_approval"
    assert export(stores.domain) == before
    # Straight through the graph (as the server would send it): the node asks again.
    config: RunnableConfig = {"configurable": {"thread_id": first["thread_id"]}}
    runner.graph.invoke(
        Command(resume=answer_for(first, {"type": "approve"}, reviewer="bo")),
        config,
        context=runner.context,
    )
    again = runner.outcome(first["thread_id"])
    assert again["status"] == "awaiting_approval"
    assert "operator.amount_threshold" in again["review_error"]
    done = runner.resume(
        first["thread_id"],
        answer_for(first, {"type": "approve"}, reviewer="sue", role="supervisor"),
    )
    assert done["status"] == "completed", done
    state = runner.graph.get_state(config).values
    assert [(a.reviewer, a.roles) for a in state["approvals"]] == [("sue", ["supervisor"])]


def test_a_respond_needs_no_authority_over_the_step(fresh: Runner) -> None:
    runner, stores = fresh, fresh.stores
    before = export(stores.domain)
    first = runner.start(explicit_plan={"steps": [who(), cancel(F_BIG)]}, actor="ann")
    assert first["verdict"]["reviews"][0]["roles"] == ["admin", "supervisor"]
    out = runner.resume(
        first["thread_id"],
        answer_for(first, {"type": "respond", "message": "refunded by hand"}, reviewer="bo"),
    )
    assert out["status"] == "rejected", out
    assert out["error"] == "w not run: bo responded: refunded by hand"
    assert export(stores.domain) == before


def test_requester_may_not_approve_their_own_high_risk_step(fresh: Runner) -> None:
    runner = fresh
    first = runner.start(explicit_plan={"steps": [who(), cancel()]}, actor="ann")
    with pytest.raises(DecisionInvalid, match="operator.no_self_approval"):
        runner.resume(
            first["thread_id"],
            answer_for(first, {"type": "approve"}, reviewer="ann", role="admin"),
        )
    done = runner.resume(first["thread_id"], answer_for(first, {"type": "approve"}, reviewer="bo"))
    assert done["status"] == "completed"


def test_authenticated_reviewer_comes_from_the_config_not_the_payload(fresh: Runner) -> None:
    runner = fresh
    first = runner.start(explicit_plan={"steps": [who(), cancel(F_BIG)]}, actor="ann")
    config: RunnableConfig = {
        "configurable": {
            "thread_id": first["thread_id"],
            "langgraph_auth_user": {"identity": "rita", "permissions": ["role:reviewer"]},
        }
    }
    payload = answer_for(first, {"type": "approve"}, reviewer="sue", role="supervisor")
    runner.graph.invoke(Command(resume=payload), config, context=runner.context)
    assert "rita may not approve" in runner.outcome(first["thread_id"])["review_error"]
    config["configurable"]["langgraph_auth_user"] = {
        "identity": "sam",
        "permissions": ["role:supervisor"],
    }
    runner.graph.invoke(Command(resume=payload), config, context=runner.context)
    state = runner.graph.get_state(config).values
    assert state["status"] == "completed"
    assert [(a.reviewer, a.roles) for a in state["approvals"]] == [("sam", ["supervisor"])]


# Edits and execution-time re-checks ---------------------------------------------------------


def test_an_edit_that_violates_the_policy_is_verified_again_and_refused(fresh: Runner) -> None:
    runner, stores = fresh, fresh.stores
    before = export(stores.domain)
    first = runner.start(explicit_plan={"steps": [who(), cancel()]})
    edit = {"args": {"order_id": SOFIA_ORDER, "reason": "no longer needed"}}
    answer = answer_for(first, {"type": "edit", "edited_action": edit}, reviewer="bo")
    with pytest.raises(DecisionInvalid, match=r"the edited plan is refused: .*scope.order_owner"):
        runner.resume(first["thread_id"], answer)
    # The reviewer is told; the customer's request stays pending as it was.
    still = runner.outcome(first["thread_id"])
    assert still["status"] == "awaiting_approval"
    assert still["plan"] == first["plan"] and still["pending"] == first["pending"]
    assert export(stores.domain) == before

    # Sent straight to the graph (as a server client could), the node refuses it the same
    # way and asks again; nothing runs.
    config: RunnableConfig = {"configurable": {"thread_id": first["thread_id"]}}
    runner.graph.invoke(Command(resume=answer), config, context=runner.context)
    again = runner.outcome(first["thread_id"])
    assert again["status"] == "awaiting_approval" and again["plan"] == first["plan"]
    assert "scope.order_owner" in again["review_error"]
    assert export(stores.domain) == before


def test_a_step_that_became_violating_while_waiting_is_not_run(fresh: Runner) -> None:
    runner, s = fresh, fresh.stores
    plan = {
        "steps": [
            who(),
            step("move", "modify_user_address", user_id="$who", **ADDRESS),
            step(
                "w",
                "cancel_pending_order",
                ("move",),
                order_id=F_PENDING,
                reason="no longer needed",
            ),
        ]
    }
    first = runner.start(explicit_plan=plan)
    assert first["status"] == "awaiting_approval"
    # Meanwhile, someone else cancels the order.
    with s.lock:
        db = RetailDB(s.domain)
        s.domain.execute("BEGIN IMMEDIATE")
        T.cancel_pending_order.invoke(
            {"order_id": F_PENDING, "reason": "ordered by mistake", "db": db}
        )
        s.domain.execute("COMMIT")
    world = export(s.domain)
    out = runner.resume(
        first["thread_id"], answer_for(first, *[{"type": "approve"}] * 2, reviewer="bo")
    )
    assert out["status"] == "refused", out
    assert "refused at execution" in out["error"] and "order.pending" in out["error"]
    assert out["compensation"] == ["move: undid modify_user_address (1 record(s) restored)"]
    assert export(s.domain) == world  # the address change was undone, the cancel never ran
    rows = {r.step_id: r.status for r in Ledger(s.domain).rows(out["decision_id"])}
    assert rows == {"who": "succeeded", "move": "compensated"}


# Failing closed -----------------------------------------------------------------------------


@functools.cache
def _catalog() -> Catalog:
    return build_catalog()


def _plan_input(stores: Stores, policy: Policy, steps: list[dict[str, Any]]) -> dict[str, Any]:
    plan = parse_plan_document({"steps": steps})
    facts = resolve_facts(plan, _catalog(), DOMAIN, stores.domain, stores.lock)
    return policy.input_for(plan, _catalog(), facts, ancestors(plan), "ann")


def test_a_broken_policy_file_denies(stores: Stores, tmp_path: Path) -> None:
    (tmp_path / "retail.rego").write_text("package planbound.retail\n\ndecision := {\n")
    policy = load_policy(tmp_path, package=PACKAGE)
    decision = policy.decide(_plan_input(stores, policy, [who(), cancel()]))
    assert [v.rule for v in decision.deny] == ["policy.error"]
    assert "retail.rego does not compile" in decision.deny[0].reason


def test_a_broken_policy_file_refuses_the_run(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "retail.rego").write_text("package planbound.retail\n\ndecision := 1 +\n")
    broken = load_policy(tmp_path, package=PACKAGE)
    judged = Services(Settings.load(home=stores.home), stores=stores)
    judged.policy = broken  # the policy the graph's nodes judge with
    out = Runner(services=judged).start(explicit_plan={"steps": [who(), cancel()]})
    assert out["status"] == "refused"
    assert "policy.error" in out["error"]
    assert out["verdict"]["policy_version"] == broken.version


def test_an_unreachable_opa_denies(stores: Stores) -> None:
    policy = load_policy(DOMAIN.policy_dir, package=PACKAGE, opa_url="http://127.0.0.1:9")
    decision = policy.decide(_plan_input(stores, policy, [who(), cancel()]))
    assert [v.rule for v in decision.deny] == ["policy.error"]
    assert "unreachable" in decision.deny[0].reason
    denied = policy.approval_denied(_review(), "high", "bo", ["reviewer"], "ann")
    assert denied and "could not be checked" in denied[0]


def _review() -> StepReview:
    return StepReview(step_id="w", reason="x", requirements=[{"rule": "r", "roles": ["reviewer"]}])


@dataclass
class FakeEngine:
    """An engine that answers (or raises) what a test tells it to."""

    answer: Any = None
    error: Exception | None = None
    package: str = PACKAGE
    asked: list[str] = field(default_factory=list)

    def query(self, rule: str, document: Mapping[str, Any]) -> Any:
        self.asked.append(rule)
        if self.error is not None:
            raise self.error
        return self.answer


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ([], "the decision is not an object"),
        ({"needs_approval": []}, "the decision has no 'deny'"),
        ({"deny": [], "needs_approval": True}, "needs_approval is not a set"),
        ({"deny": [{"step": "w", "rule": "r"}], "needs_approval": []}, "lacks reason"),
        (
            {"deny": [], "needs_approval": [{"step": "w", "rule": "r", "reason": "x"}]},
            "roles is not a set",
        ),
    ],
)
def test_a_malformed_decision_denies(answer: Any, problem: str) -> None:
    policy = Policy(bundle=PolicyBundle.load(DOMAIN.policy_dir), engine=FakeEngine(answer=answer))
    decision = policy.decide({})
    assert [v.rule for v in decision.deny] == ["policy.error"]
    assert "malformed policy decision" in decision.deny[0].reason
    assert problem in decision.deny[0].reason


def test_a_malformed_approval_answer_refuses_the_approval() -> None:
    policy = Policy(bundle=PolicyBundle.load(DOMAIN.policy_dir), engine=FakeEngine(answer=False))
    denied = policy.approval_denied(_review(), "high", "bo", ["reviewer"], "ann")
    assert len(denied) == 1 and "could not be checked" in denied[0]


def test_a_programming_error_is_not_turned_into_a_deny() -> None:
    engine = FakeEngine(error=RuntimeError("a bug"))
    policy = Policy(bundle=PolicyBundle.load(DOMAIN.policy_dir), engine=engine)
    with pytest.raises(RuntimeError, match="a bug"):
        policy.decide({})
    with pytest.raises(RuntimeError, match="a bug"):
        policy.approval_denied(_review(), "high", "bo", ["reviewer"], "ann")
    engine.error = PolicyError("the engine failed")
    assert policy.decide({}).deny == (Violation("plan", "policy.error", "the engine failed"),)


# The OPA client -----------------------------------------------------------------------------
# No OPA server can be installed here. The stub below answers as OPA's REST data API does
# (``POST /v1/data/<package path>/<rule>`` with ``{"input": ...}``, answering
# ``{"result": ...}``, ``{}`` when the rule is undefined, ``{"code", "message"}`` on errors),
# with canned answers. The tests prove the client side only: the request's path and body,
# how each kind of answer and failure is mapped, and that the decision the server returns
# is the one used. They do not prove that OPA evaluates the retail bundle as regopy does.


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    delay_s: float = 0.0


@dataclass
class OpaStub:
    url: str
    reply: Reply = field(default_factory=Reply)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)


@pytest.fixture
def opa_stub() -> Iterator[OpaStub]:
    stub = OpaStub(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            stub.requests.append((self.path, self.headers["Content-Type"], json.loads(raw)))
            reply = stub.reply
            time.sleep(reply.delay_s)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield stub
    server.shutdown()
    server.server_close()


def _result(value: Any) -> Reply:
    return Reply(body=json.dumps({"result": value}).encode())


def test_the_opa_client_posts_the_input_and_uses_the_servers_decision(
    stores: Stores, opa_stub: OpaStub
) -> None:
    engine = OpaEngine(opa_stub.url, package=PACKAGE)
    policy = Policy(bundle=PolicyBundle.load(DOMAIN.policy_dir), engine=engine)
    document = _plan_input(stores, policy, [who(), cancel()])
    # A decision the shipped policy never gives: only the server can be its source.
    ask = {"step": "w", "rule": "remote.rule", "reason": "from the server", "roles": ["auditor"]}
    opa_stub.reply = _result({"deny": [], "needs_approval": [ask]})
    decision = policy.decide(document)
    assert decision == PolicyDecision(
        needs_approval=(Requirement("w", "remote.rule", "from the server", ("auditor",)),)
    )
    assert opa_stub.requests == [
        ("/v1/data/planbound/retail/decision", "application/json", {"input": document})
    ]
    opa_stub.reply = _result(["no: not on duty"])
    assert policy.approval_denied(_review(), "high", "bo", ["reviewer"], "ann") == [
        "no: not on duty"
    ]
    path, _, body = opa_stub.requests[-1]
    assert path == "/v1/data/planbound/retail/approval_denied"
    assert body["input"]["approval"]["reviewer"] == {"id": "bo", "roles": ["reviewer"]}
    opa_stub.reply = _result([])
    assert policy.approval_denied(_review(), "high", "bo", ["reviewer"], "ann") == []
    engine.close()
    # The package decides the path.
    other = OpaEngine(opa_stub.url + "/", package="acme.shop")
    opa_stub.reply = _result(True)
    assert other.query("decision", {"a": 1}) is True
    assert opa_stub.requests[-1][0] == "/v1/data/acme/shop/decision"
    other.close()


OPA_FAILURES = [
    (
        Reply(404, b'{"code": "resource_not_found", "message": "no such rule"}'),
        "answered HTTP 404: no such rule",
    ),
    (Reply(500, b"boom", "text/plain"), "answered HTTP 500"),
    (Reply(200, b"<html>", "text/html"), "answered something that is not JSON"),
    (Reply(200, b"[1]"), "answered JSON that is not an object"),
    (Reply(200, b"{}"), "data.planbound.retail.decision is undefined"),
    (_result({"deny": "everything"}), "malformed policy decision"),
    (Reply(200, b"{}", delay_s=0.6), "is unreachable: no answer within 0.2s"),
]


@pytest.mark.parametrize(("reply", "message"), OPA_FAILURES, ids=[m for _, m in OPA_FAILURES])
def test_an_opa_failure_is_a_policy_error_and_denies(
    opa_stub: OpaStub, reply: Reply, message: str
) -> None:
    opa_stub.reply = reply
    engine = OpaEngine(opa_stub.url, package=PACKAGE, timeout_s=0.2)
    policy = Policy(bundle=PolicyBundle.load(DOMAIN.policy_dir), engine=engine)
    decision = policy.decide({"plan": {}})
    assert [v.rule for v in decision.deny] == ["policy.error"]
    assert message in decision.deny[0].reason
    if "malformed" not in message:  # the engine itself raises, naming the endpoint
        with pytest.raises(PolicyError, match=f"OPA at {re.escape(opa_stub.url)}/v1/data/"):
            engine.query("decision", {})
    engine.close()


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1:8181", "file:///tmp/opa", "127.0.0.1:8181", "http://", "unix:/x"]
)
def test_an_opa_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(PolicyError, match="OPA URL"):
        load_policy(DOMAIN.policy_dir, package=PACKAGE, opa_url=url)


# Settings, loading and versions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "field_name"),
    [
        ({"amount_threshold": float("nan")}, "amount_threshold"),
        ({"amount_threshold": float("inf")}, "amount_threshold"),
        ({"amount_threshold": -1.0}, "amount_threshold"),
        ({"amount_threshold": "1000"}, "amount_threshold"),
        ({"max_write_steps": 0}, "max_write_steps"),
        ({"max_write_steps": 2.5}, "max_write_steps"),
        ({"max_write_steps": True}, "max_write_steps"),
    ],
)
def test_a_policy_setting_out_of_range_is_refused(
    settings: dict[str, Any], field_name: str
) -> None:
    with pytest.raises(PolicyError, match=f"^{field_name} must be"):
        PolicyConfig(**settings)


def test_the_settings_reach_the_policy(stores: Stores) -> None:
    policy = load_policy(
        DOMAIN.policy_dir, package=PACKAGE, config=PolicyConfig(amount_threshold=100.0)
    )
    document = _plan_input(stores, policy, [who(), cancel()])  # an order of 182.03
    assert document["config"] == {"amount_threshold": 100.0, "max_write_steps": 3}
    rules = {r.rule for r in policy.decide(document).needs_approval}
    assert rules == {"writes.need_approval", "operator.amount_threshold"}
    zero = PolicyConfig(amount_threshold=0, max_write_steps=1)  # the bounds themselves pass
    assert (zero.amount_threshold, zero.max_write_steps) == (0, 1)


def test_a_bad_package_name_is_refused() -> None:
    with pytest.raises(PolicyError, match="not a Rego package name"):
        load_policy(DOMAIN.policy_dir, package="planbound/retail")


def test_the_package_comes_from_the_caller(stores: Stores, tmp_path: Path) -> None:
    text = dict(PolicyBundle.load(DOMAIN.policy_dir).modules)["retail.rego"]
    (tmp_path / "shop.rego").write_text(
        text.replace("package planbound.retail", "package acme.shop")
    )
    policy = load_policy(tmp_path, package="acme.shop")
    rules = {
        r.rule for r in policy.decide(_plan_input(stores, policy, [who(), cancel()])).needs_approval
    }
    assert rules == {"writes.need_approval"}
    wrong = load_policy(tmp_path, package=PACKAGE)
    decision = wrong.decide(_plan_input(stores, wrong, [who(), cancel()]))
    assert [v.rule for v in decision.deny] == ["policy.error"]


def test_a_bundle_loads_from_a_resource_folder(tmp_path: Path) -> None:
    shipped = PolicyBundle.load(DOMAIN.policy_dir)
    archive = tmp_path / "policies.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, text in (*shipped.modules, *shipped.tests):
            zf.writestr(f"policies/{name}", text)
        zf.writestr("policies/README.md", "not a module")
    bundle = PolicyBundle.load(zipfile.Path(archive, "policies/"))
    assert (bundle.modules, bundle.tests) == (shipped.modules, shipped.tests)
    assert bundle.version == shipped.version
    with pytest.raises(PolicyError, match="does not exist"):
        PolicyBundle.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyError, match="holds no .rego policy module"):
        PolicyBundle.load(tmp_path / "empty")


def test_policy_version_is_the_bundle_hash_and_pinned(fresh: Runner) -> None:
    runner = fresh
    bundle = PolicyBundle.load(DOMAIN.policy_dir)
    digest = hashlib.sha256()
    for name, text in bundle.modules:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    assert bundle.version == "rego-" + digest.hexdigest()[:16]
    out = runner.start(explicit_plan={"steps": [who(), cancel()]})
    assert out["verdict"]["policy_version"] == bundle.version

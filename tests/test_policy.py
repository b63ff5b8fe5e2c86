"""The Rego policy on the seeded τ² data: a table of compliant plans and violations, approval
rules, edits and execution-time re-checks, and failing closed."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from typer.testing import CliRunner

from checkpoints.factory import Stores, open_stores
from checkpoints.ledger import Ledger
from graph import services
from graph.cli import app
from graph.planners.explicit import parse_plan_document
from graph.runner import Runner
from guards.errors import DecisionInvalid
from guards.facts import resolve_facts
from guards.judgement import StepReview
from guards.plan import ancestors
from guards.policy import OpaEngine, Policy, PolicyBundle, RegoEngine, load_policy, run_tests
from tools.retail import RetailDB, export, load_shipped, seed
from tools.retail import tools as T

DATA = load_shipped()

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
        "transfer while changing data",
        [who(), cancel(), step("t", "transfer_to_human_agents", ("w",), summary="angry")],
        "deny",
        {"transfer.out_of_scope"},
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
                for i in range(4)
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


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert sum(1 for c in CASES if c[2] == "deny") >= 25


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


@pytest.mark.parametrize(
    ("name", "steps"),
    [(c[0], c[1]) for c in CASES if c[2] == "deny"][:12],
    ids=[c[0] for c in CASES if c[2] == "deny"][:12],
)
def test_violations_are_refused_before_any_side_effect(
    runner: Runner, stores: Stores, name: str, steps: list[dict[str, Any]]
) -> None:
    before = export(stores.domain)
    out = runner.start(explicit_plan={"goal": name, "steps": steps})
    assert out["status"] == "refused"
    assert out["results"] == []
    assert out["verdict"]["facts_hash"]
    assert all("[" in r and "]" in r for r in out["verdict"]["reasons"])  # each names its rule
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
    results = run_tests(PolicyBundle.load())
    assert len(results) >= 15
    assert [r.name for r in results if not r.passed] == []
    out = CliRunner().invoke(app, ["policy", "test", "--json"])
    assert out.exit_code == 0
    assert json.loads(out.stdout)["failed"] == 0


def test_a_failing_rego_test_fails_the_command(tmp_path: Path) -> None:
    for name, text in PolicyBundle.load().modules:
        (tmp_path / name).write_text(text)
    (tmp_path / "broken_test.rego").write_text(
        "package planbound.broken_test\n\nimport rego.v1\n\ntest_wrong if { 1 == 2 }\n"
    )
    out = CliRunner().invoke(app, ["policy", "test", "--dir", str(tmp_path), "--json"])
    assert out.exit_code == 1
    assert json.loads(out.stdout)["failed"] == 1


# Approval rules -----------------------------------------------------------------------------


def test_reviewer_without_the_role_is_refused_and_the_run_stays_paused(fresh: Runner) -> None:
    runner, stores = fresh, fresh.stores
    before = export(stores.domain)
    first = runner.start(explicit_plan={"steps": [who(), cancel(F_BIG)]}, actor="ann")
    assert first["status"] == "awaiting_approval"
    review = first["verdict"]["reviews"][0]
    assert review["roles"] == ["admin", "supervisor"]
    with pytest.raises(DecisionInvalid, match="needs one of the roles admin, supervisor"):
        runner.resume(first["thread_id"], {"decisions": [{"type": "approve"}], "reviewer": "bo"})
    assert runner.outcome(first["thread_id"])["status"] == "awaiting_approval"
    assert export(stores.domain) == before
    # Straight through the graph (as the server would send it): the node asks again.
    config: RunnableConfig = {"configurable": {"thread_id": first["thread_id"]}}
    runner.graph.invoke(
        Command(resume={"decisions": [{"type": "approve"}], "reviewer": "bo"}),
        config,
        context=runner.context,
    )
    again = runner.outcome(first["thread_id"])
    assert again["status"] == "awaiting_approval"
    assert "operator.amount_threshold" in again["review_error"]
    done = runner.resume(
        first["thread_id"],
        {"decisions": [{"type": "approve"}], "reviewer": "sue", "role": "supervisor"},
    )
    assert done["status"] == "completed", done
    state = runner.graph.get_state(config).values
    assert [(a.reviewer, a.roles) for a in state["approvals"]] == [("sue", ["supervisor"])]


def test_requester_may_not_approve_their_own_high_risk_step(fresh: Runner) -> None:
    runner = fresh
    first = runner.start(explicit_plan={"steps": [who(), cancel()]}, actor="ann")
    with pytest.raises(DecisionInvalid, match="operator.no_self_approval"):
        runner.resume(
            first["thread_id"],
            {"decisions": [{"type": "approve"}], "reviewer": "ann", "role": "admin"},
        )
    done = runner.resume(first["thread_id"], {"decisions": [{"type": "approve"}], "reviewer": "bo"})
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
    payload = {"decisions": [{"type": "approve"}], "reviewer": "sue", "role": "supervisor"}
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


def test_an_edit_that_violates_the_policy_is_verified_again_and_denied(fresh: Runner) -> None:
    runner, stores = fresh, fresh.stores
    before = export(stores.domain)
    first = runner.start(explicit_plan={"steps": [who(), cancel()]})
    out = runner.resume(
        first["thread_id"],
        {
            "decisions": [
                {
                    "type": "edit",
                    "edited_action": {
                        "arguments": {"order_id": SOFIA_ORDER, "reason": "no longer needed"}
                    },
                }
            ],
            "reviewer": "bo",
        },
    )
    assert out["status"] == "refused"
    assert out["plan"]["source"] == "edit"
    assert "scope.order_owner" in out["error"]
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
        first["thread_id"], {"decisions": [{"type": "approve"}] * 2, "reviewer": "bo"}
    )
    assert out["status"] == "refused", out
    assert "refused at execution" in out["error"] and "order.pending" in out["error"]
    assert out["compensation"] == ["move: undid modify_user_address (1 record(s) restored)"]
    assert export(s.domain) == world  # the address change was undone, the cancel never ran
    rows = {r.step_id: r.status for r in Ledger(s.domain).rows(out["decision_id"])}
    assert rows == {"who": "succeeded", "move": "compensated"}


# Failing closed -----------------------------------------------------------------------------


def _plan_input(stores: Stores, policy: Policy, steps: list[dict[str, Any]]) -> dict[str, Any]:
    plan = parse_plan_document({"steps": steps})
    facts = resolve_facts(plan, services.catalog(), stores.domain, stores.lock)
    return policy.input_for(plan, services.catalog(), facts, ancestors(plan), "ann")


def test_a_broken_policy_file_denies(stores: Stores, tmp_path: Path) -> None:
    (tmp_path / "retail.rego").write_text("package planbound.retail\n\ndecision := {\n")
    policy = load_policy(tmp_path)
    decision = policy.decide(_plan_input(stores, policy, [who(), cancel()]))
    assert [v.rule for v in decision.deny] == ["policy.error"]
    assert "retail.rego does not compile" in decision.deny[0].reason


def test_a_broken_policy_file_refuses_the_run(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "retail.rego").write_text("package planbound.retail\n\ndecision := 1 +\n")
    monkeypatch.setenv("PLANBOUND_POLICY_DIR", str(tmp_path))
    services.policy.cache_clear()
    try:
        out = Runner(stores).start(explicit_plan={"steps": [who(), cancel()]})
    finally:
        monkeypatch.delenv("PLANBOUND_POLICY_DIR")
        services.policy.cache_clear()
    assert out["status"] == "refused"
    assert "policy.error" in out["error"]


def test_an_unreachable_opa_denies(stores: Stores) -> None:
    policy = load_policy(opa_url="http://127.0.0.1:9")
    decision = policy.decide(_plan_input(stores, policy, [who(), cancel()]))
    assert [v.rule for v in decision.deny] == ["policy.error"]
    assert "unreachable" in decision.deny[0].reason
    denied = policy.approval_denied(_review(), "high", "bo", ["reviewer"], "ann")
    assert denied and "could not be checked" in denied[0]


def _review() -> StepReview:
    return StepReview(step_id="w", reason="x", requirements=[{"rule": "r", "roles": ["reviewer"]}])


@pytest.fixture
def opa_stub() -> Iterator[str]:
    """A small stand-in for OPA's ``POST /v1/data/<path>`` that evaluates the bundle."""
    engine = RegoEngine(PolicyBundle.load())
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            rule = self.path.rsplit("/", 1)[-1]
            if not self.path.startswith("/v1/data/planbound/retail/"):
                self.send_response(404)
                self.end_headers()
                return
            with lock:
                result = engine.query(rule, body["input"])
            data = json.dumps({"result": result}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_opa_client_decides_like_the_in_process_engine(stores: Stores, opa_stub: str) -> None:
    local = load_policy()
    remote = Policy(bundle=local.bundle, engine=OpaEngine(opa_stub), config=local.config)
    for _, steps, _outcome, _rules in CASES[::6]:
        document = _plan_input(stores, local, steps)
        assert remote.decide(document) == local.decide(document)
    broken = Policy(bundle=local.bundle, engine=OpaEngine(opa_stub + "/nowhere"))
    decision = broken.decide(_plan_input(stores, local, [who(), cancel()]))
    assert "HTTP 404" in decision.deny[0].reason


def test_policy_version_is_the_bundle_hash_and_pinned(fresh: Runner) -> None:
    runner = fresh
    bundle = PolicyBundle.load()
    digest = hashlib.sha256()
    for name, text in bundle.modules:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    assert bundle.version == "rego-" + digest.hexdigest()[:16]
    out = runner.start(explicit_plan={"steps": [who(), cancel()]})
    assert out["verdict"]["policy_version"] == bundle.version

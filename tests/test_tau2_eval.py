"""A slice of the τ² retail evaluation, end to end: it fails when the planner regresses.

The slice runs real phrased requests (shipped in ``evals/tau2``) through the graph on fresh
seeded homes and compares the database with what the gold actions leave. The full run is
``python -m evals.tau2``; it is too long for the unit suite.
"""

from __future__ import annotations

from evals.tau2.run import evaluate, gold_plan, load_cases, reason_class
from tools.retail import load_shipped

SLICE = {"0", "44", "75", "78", "80"}


def test_a_slice_of_the_train_split_ends_exact_or_abstains_and_never_wrong() -> None:
    cases = [c for c in load_cases() if c.task_id in SLICE]
    assert len(cases) == 15
    report = evaluate(cases)
    outcomes = {r.case.id: r.outcome for r in report.results}
    assert report.count("wrong") == 0, [r for r in report.results if r.outcome == "wrong"]
    # 44: the cheapest desk lamp of a pending order, to a gift card; 75, 80: options written
    # out. 0: no clicky keyboard with the rest kept exists, so the selection fails before any
    # write; 78: the makeup kit is "exchanged" on an order that is still pending, which the
    # order's state makes a change of its items.
    assert report.count("exact") == 12, outcomes
    assert {i for i, o in outcomes.items() if o == "exact"} == {
        f"{t}-{v}" for t in ("44", "75", "78", "80") for v in (1, 2, 3)
    }
    for r in report.results:
        if r.outcome == "abstained":
            assert r.reason, r  # every abstention says why


def test_gold_plans_start_with_the_owner_identity_and_keep_only_writes() -> None:
    data = load_shipped()
    actions = [
        {"name": "get_order_details", "arguments": {"order_id": "#W9300146"}},
        {"name": "cancel_pending_order", "arguments": {"order_id": "#W9300146", "reason": "x"}},
    ]
    assert gold_plan(actions, data) == [
        {"name": "find_user_id_by_email", "arguments": {"email": "aarav.anderson9752@example.com"}},
        actions[1],
    ]


def test_reason_classes_drop_ids_and_quotes() -> None:
    assert reason_class("order #W1234567 is 'pending'; only delivered (x)") == (
        "order … is …; only delivered …"
    )

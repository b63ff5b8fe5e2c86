from __future__ import annotations

import pytest

from guards.contracts import Budget, check_plan
from guards.plan import Plan, Step
from tools.catalog import Catalog


def plan(*steps: Step) -> Plan:
    return Plan(source="explicit", goal="g", steps=list(steps))


def messages(p: Plan, catalog: Catalog, budget: Budget | None = None) -> list[str]:
    return [str(f) for f in check_plan(p, catalog, budget or Budget())]


def test_valid_plan_with_references_has_no_findings(mini_catalog: Catalog) -> None:
    p = plan(
        Step(id="s1", tool="find_account", args={"email": "a@b.c"}),
        Step(id="s2", tool="get_account", args={"account_id": "$s1"}),
        Step(
            id="s3",
            tool="close_account",
            args={"account_id": "$s2.account_id", "reason": "x", "item_ids": ["$s2.tags.0"]},
        ),
    )
    assert messages(p, mini_catalog) == []


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (
            Step(id="s9", tool="drop_tables", args={}),
            "step 's9', field 'tool': unknown tool 'drop_tables'",
        ),
        (
            Step(id="s2", tool="get_account", args={}),
            "step 's2', field 'account_id': get_account requires argument 'account_id'",
        ),
        (
            Step(id="s2", tool="get_account", args={"account_id": 7}),
            "step 's2', field 'account_id': Input should be a valid string",
        ),
        (
            Step(id="s2", tool="get_account", args={"account_id": "a", "force": True}),
            "step 's2', field 'force': get_account takes no argument 'force'",
        ),
        (
            Step(id="s2", tool="get_account", args={"account_id": "$s7.id"}),
            "step 's2', field 'account_id': '$s7.id' refers to unknown step 's7'",
        ),
        (
            Step(id="s2", tool="get_account", args={"account_id": "$s1.user"}),
            "find_account output at the top is a str; it has no 'user'",
        ),
        (Step(id="s2", tool="get_account", args={"account_id": "$s2"}), "refers to its own step"),
        (
            Step(id="s2", tool="get_account", args={"account_id": "$ s1"}),
            "is not a valid reference",
        ),
        (
            Step(id="s2", tool="get_account", args={"account_id": "a"}, depends_on=["nope"]),
            "step 's2', field 'depends_on': depends on unknown step 'nope'",
        ),
    ],
)
def test_each_contract_names_step_and_field(
    mini_catalog: Catalog, step: Step, expected: str
) -> None:
    p = plan(Step(id="s1", tool="find_account", args={"email": "a@b.c"}), step)
    found = messages(p, mini_catalog)
    assert any(expected in m for m in found), found


def test_reference_paths_are_checked_against_output_models(mini_catalog: Catalog) -> None:
    base = Step(id="s1", tool="get_account", args={"account_id": "a"})
    bad_field = Step(id="s2", tool="get_account", args={"account_id": "$s1.acount_id"})
    bad_index = Step(id="s3", tool="get_account", args={"account_id": "$s1.tags.first"})
    any_key = Step(id="s4", tool="get_account", args={"account_id": "$s1.limits.daily"})
    found = messages(plan(base, bad_field, bad_index, any_key), mini_catalog)
    assert len(found) == 2
    assert "no field 'acount_id' (fields: account_id, limits, tags)" in found[0]
    assert "'tags.first' indexes a list; use a number" in found[1]


def test_cycle_is_reported(mini_catalog: Catalog) -> None:
    p = plan(
        Step(id="a", tool="get_account", args={"account_id": "$b.account_id"}),
        Step(id="b", tool="get_account", args={"account_id": "$a.account_id"}),
    )
    found = messages(p, mini_catalog)
    assert any("cycle" in m and "a" in m and "b" in m for m in found), found


def test_budgets(mini_catalog: Catalog) -> None:
    steps = [
        Step(id=f"s{i}", tool="close_account", args={"account_id": "a", "reason": "r"})
        for i in range(5)
    ]
    found = messages(plan(*steps), mini_catalog, Budget(max_steps=3, max_high_risk=2, max_cost=6))
    assert "the plan has 5 steps; the budget allows 3" in found
    assert "the plan has 5 high-risk steps; the budget allows 2" in found
    assert "the plan's estimated cost is 10; the budget allows 6" in found


def test_duplicate_ids_and_empty_plan(mini_catalog: Catalog) -> None:
    dup = plan(
        Step(id="s1", tool="find_account", args={"email": "x"}),
        Step(id="s1", tool="find_account", args={"email": "y"}),
    )
    assert "step 's1': the step id is used more than once" in messages(dup, mini_catalog)
    assert "the plan has no steps" in messages(plan(), mini_catalog)


def test_plan_id_is_a_content_hash() -> None:
    a = plan(Step(id="s1", tool="find_account", args={"email": "x"}))
    b = plan(Step(id="s1", tool="find_account", args={"email": "x"}))
    c = plan(Step(id="s1", tool="find_account", args={"email": "y"}))
    assert a.id == b.id != c.id
    assert Plan.model_validate(a.model_dump()).id == a.id
    with pytest.raises(ValueError, match="does not match its content hash"):
        Plan.model_validate({**a.model_dump(), "id": "0" * 16})


def test_catalog_version_changes_with_specs(mini_catalog: Catalog) -> None:
    from dataclasses import replace

    entry = mini_catalog.entries["close_account"]
    changed = Catalog.of(
        "mini",
        [
            *(e for n, e in mini_catalog.entries.items() if n != "close_account"),
            replace(entry, spec=replace(entry.spec, retries=5)),
        ],
    )
    assert changed.version != mini_catalog.version
    assert "db" not in mini_catalog.args_schema("close_account").model_fields

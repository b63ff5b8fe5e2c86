"""Plan documents read as models: both forms, τ² aliases, numbering and the sequence rule."""

from __future__ import annotations

from typing import Any

import pytest

from graph.planners.explicit import PlanDocument, parse_plan_document
from guards.errors import PlanInvalid
from guards.plan import content_hash


def test_a_steps_document_is_a_graph_and_keeps_its_goal() -> None:
    plan = parse_plan_document(
        {
            "goal": "look twice",
            "steps": [
                {"id": "a", "tool": "get_order_details", "args": {"order_id": "#W1"}},
                {"tool": "get_order_details", "args": {"order_id": "#W2"}, "description": "d"},
            ],
        },
        goal="ignored when the document has one",
    )
    assert plan.goal == "look twice" and plan.source == "explicit"
    assert [(s.id, s.depends_on, s.description) for s in plan.steps] == [
        ("a", [], ""),
        ("s2", [], "d"),
    ]


def test_actions_are_a_sequence_unless_one_says_otherwise() -> None:
    actions = [{"name": "t1", "kwargs": {"x": 1}}, {"name": "t2"}, {"name": "t3"}]
    for document in (actions, {"actions": actions}):
        plan = parse_plan_document(document)
        assert [s.depends_on for s in plan.steps] == [[], ["s1"], ["s2"]]
        assert plan.steps[0].args == {"x": 1}
    given = [{"name": "t1"}, {"name": "t2", "depends_on": []}, {"name": "t3"}]
    assert [s.depends_on for s in parse_plan_document(given).steps] == [[], [], []]


def test_tau2_bookkeeping_is_ignored() -> None:
    plan = parse_plan_document(
        [
            {
                "action_id": "a1",
                "name": "get_order_details",
                "arguments": {"order_id": "#W1"},
                "requestor": "assistant",
                "info": {"why": "check"},
                "compare_args": ["order_id"],
            }
        ]
    )
    assert plan.steps[0].model_dump() == {
        "id": "a1",
        "tool": "get_order_details",
        "args": {"order_id": "#W1"},
        "depends_on": [],
        "description": "",
        "foreach": None,
        "repeat": None,
    }


def test_a_plan_without_a_goal_is_named_by_its_steps_as_written() -> None:
    actions = [{"name": "get_order_details", "arguments": {"order_id": "#W1"}}]
    assert parse_plan_document(actions).goal == f"explicit plan {content_hash(actions, 8)}"
    assert parse_plan_document(actions, goal="from the request").goal == "from the request"


def test_a_written_out_plan_reads_back_as_the_same_plan() -> None:
    plan = parse_plan_document({"goal": "g", "steps": [{"id": "s1", "tool": "t"}]})
    again = parse_plan_document(plan.model_dump(mode="json"))
    assert again == plan


@pytest.mark.parametrize(
    ("doc", "problems"),
    [
        ({}, ["the plan must be a list of steps or an object with a 'steps' list"]),
        ({"goal": "g", "steps": "s1"}, ["the plan must be a list of steps or an object with a"]),
        ({"steps": [], "actions": []}, ["give 'steps' or 'actions', not both"]),
        (
            {"plan": [], "when": 1, "steps": []},
            ["unknown top-level keys ['plan', 'when'] (expected 'goal' and 'steps')"],
        ),
        ({"goal": 3, "steps": []}, ["goal: Input should be a valid string"]),
        ([{"tool": "t", "kwargs": {}, "args": {}}], ["steps[0] gives 'args' twice (as 'kwargs')"]),
        (
            [{"id": "a", "action_id": "b", "tool": "t"}],
            ["steps[0] gives 'id' twice (as 'action_id')"],
        ),
        ([{"args": {}}], ["steps[0].tool: Field required"]),
        ([{"tool": ""}], ["steps[0].tool: String should have at least 1 character"]),
        (
            [{"tool": "t", "depends_on": "s0"}],
            ["steps[0].depends_on: Input should be a valid list"],
        ),
        (
            [{"tool": "t"}, {"name": "t", "arguments": [1]}, "x"],
            [
                "steps[1].arguments: Input should be a valid dictionary",
                "steps[2] must be an object, got str",
            ],
        ),
    ],
)
def test_each_problem_names_its_field(doc: Any, problems: list[str]) -> None:
    with pytest.raises(PlanInvalid) as info:
        parse_plan_document(doc)
    assert len(info.value.problems) == len(problems), info.value.problems
    for got, want in zip(info.value.problems, problems, strict=True):
        assert got.startswith(want), info.value.problems


def test_the_document_model_accepts_both_names() -> None:
    step = PlanDocument.model_validate({"actions": [{"name": "t", "arguments": {"a": 1}}]})
    assert step.actions is not None and (step.actions[0].tool, step.actions[0].args) == (
        "t",
        {"a": 1},
    )

"""The legacy Agent Inbox answer shape, translated and then validated like any answer."""

from __future__ import annotations

from typing import Any

import pytest

from guards.compat import IGNORED, from_agent_inbox
from guards.errors import DecisionInvalid
from guards.judgement import StepReview
from guards.plan import Plan, Step
from guards.review import parse_answer

PLAN = Plan(
    source="explicit",
    goal="g",
    steps=[
        Step(id="s1", tool="get_order_details", args={"order_id": "#W1"}),
        Step(id="s2", tool="cancel_pending_order", args={"order_id": "#W1", "reason": "x"}),
        Step(id="s3", tool="modify_user_address", args={"user_id": "u"}),
    ],
)
PENDING = [StepReview(step_id="s2", reason="write"), StepReview(step_id="s3", reason="write")]


def test_each_legacy_type_maps_to_a_decision() -> None:
    got = from_agent_inbox(
        [
            {"type": "accept", "args": None},
            {"type": "edit", "args": {"action": "cancel_pending_order", "args": {"reason": "y"}}},
            {"type": "response", "args": "call the customer first"},
            {"type": "ignore", "args": None},
        ]
    )
    assert got == {
        "decisions": [
            {"type": "approve"},
            {
                "type": "edit",
                "edited_action": {"name": "cancel_pending_order", "args": {"reason": "y"}},
            },
            # An Agent Inbox response sends the step back: a reject, not LangChain's respond.
            {"type": "reject", "message": "call the customer first"},
            {"type": "reject", "message": IGNORED},
        ]
    }


def test_a_single_human_response_is_accepted_without_a_list() -> None:
    assert from_agent_inbox({"type": "accept", "args": None}) == {
        "decisions": [{"type": "approve"}]
    }


@pytest.mark.parametrize(
    "answer",
    [
        {"decisions": [{"type": "approve"}], "reviewer": "ann"},
        [{"type": "approve"}],  # planbound's decision type inside a list: not legacy
        [{"type": "accept", "args": None}, {"type": "approve"}],  # mixed
        [{"type": "accept", "args": None, "reviewer": "ann"}],  # extra key
        [],
        "yes",
        None,
        42,
    ],
)
def test_anything_else_is_returned_unchanged(answer: Any) -> None:
    assert from_agent_inbox(answer) is answer


def test_parse_answer_takes_the_legacy_shape_in_plan_order() -> None:
    decisions = parse_answer(
        from_agent_inbox([{"type": "accept", "args": None}, {"type": "ignore", "args": None}])
        | {"reviewer": "ann"},
        PENDING,
        PLAN,
    )
    assert [(d.step_id, d.type, d.reviewer) for d in decisions] == [
        ("s2", "approve", "ann"),
        ("s3", "reject", "ann"),
    ]
    assert decisions[1].message == IGNORED


def test_parse_answer_translates_the_legacy_shape_itself() -> None:
    # The raw legacy list reaches the usual checks: one decision for two pending steps.
    with pytest.raises(DecisionInvalid, match="expected 2 decisions"):
        parse_answer(
            [{"type": "edit", "args": {"action": "cancel_pending_order", "args": {}}}],
            PENDING,
            PLAN,
        )


def test_a_malformed_legacy_edit_is_reported_not_guessed() -> None:
    answer = from_agent_inbox([{"type": "edit", "args": "not an action"}])
    assert answer == {"decisions": [{"type": "edit", "edited_action": "not an action"}]}
    with pytest.raises(DecisionInvalid, match="edited_action must be an object"):
        parse_answer(answer | {"reviewer": "ann"}, PENDING[:1], PLAN)


def test_a_legacy_edit_becomes_a_typed_edit_decision() -> None:
    (decision,) = parse_answer(
        from_agent_inbox(
            [{"type": "edit", "args": {"action": "cancel_pending_order", "args": {"reason": "y"}}}]
        )
        | {"reviewer": "ann"},
        PENDING[:1],
        PLAN,
    )
    assert (decision.type, decision.tool, decision.args) == (
        "edit",
        "cancel_pending_order",
        {"reason": "y"},
    )


def test_a_legacy_edit_without_an_action_keeps_the_steps_tool() -> None:
    (decision,) = parse_answer(
        from_agent_inbox({"type": "edit", "args": {"args": {"reason": "y"}}}) | {"reviewer": "a"},
        PENDING[:1],
        PLAN,
    )
    assert (decision.tool, decision.args) == ("cancel_pending_order", {"reason": "y"})


@pytest.mark.parametrize(
    ("legacy", "problem"),
    [
        ({"type": "response", "args": {"text": "no"}}, "decisions[0].message must be a string"),
        ({"type": "edit", "args": {"action": "t"}}, "decisions[0].edited_action.args must be"),
        (
            {"type": "edit", "args": {"action": "t", "args": {}, "why": "x"}},
            "decisions[0].edited_action has unknown keys ['action', 'why']",
        ),
    ],
)
def test_malformed_legacy_arguments_are_named_in_planbound_terms(
    legacy: dict[str, Any], problem: str
) -> None:
    with pytest.raises(DecisionInvalid) as info:
        parse_answer(from_agent_inbox(legacy) | {"reviewer": "ann"}, PENDING[:1], PLAN)
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems

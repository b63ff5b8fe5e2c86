from __future__ import annotations

from typing import Any

import pytest

from graph.planners.explicit import parse_plan_document
from guards.errors import DecisionInvalid, PlanInvalid, ReviewChanged
from guards.judgement import StepReview, approval_digest
from guards.plan import Plan, Step
from guards.review import (
    DEFAULT_ROLE,
    Answer,
    ApproveDecision,
    EditDecision,
    Identity,
    RejectDecision,
    RespondDecision,
    parse_answer,
)

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


def test_positional_answer_covers_every_pending_step() -> None:
    got = parse_answer(
        {
            "decisions": [{"type": "approve"}, {"type": "reject", "message": "no"}],
            "reviewer": "ann",
        },
        PENDING,
        PLAN,
    )
    assert [(d.step_id, d.type, d.reviewer) for d in got] == [
        ("s2", "approve", "ann"),
        ("s3", "reject", "ann"),
    ]
    assert got[1].message == "no"


def test_answer_by_step_id_may_cover_a_subset() -> None:
    got = parse_answer(
        {
            "decisions": [
                {
                    "type": "edit",
                    "step_id": "s3",
                    "edited_action": {"name": "modify_user_address", "args": {"user_id": "v"}},
                }
            ],
            "reviewer": "bo",
        },
        PENDING,
        PLAN,
    )
    assert got[0].step_id == "s3" and got[0].args == {"user_id": "v"}
    assert got[0].tool == "modify_user_address"


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("yes", "must be an object with 'decisions' and 'reviewer', got str"),
        ({"decisions": []}, "'decisions' must be a non-empty list"),
        (
            {"decisions": [{"type": "approve"}], "reviewer": "a"},
            "expected 2 decisions (one per pending step: s2, s3), got 1",
        ),
        (
            {"decisions": [{"type": "approve"}, {"type": "approve"}]},
            "decisions[0]: a reviewer is required",
        ),
        (
            {"decisions": [{"type": "ok"}, {"type": "approve"}], "reviewer": "a"},
            "decisions[0].type must be one of approve, edit, reject, respond, got 'ok'",
        ),
        (
            {"decisions": [{"type": "approve", "step_id": "s1"}], "reviewer": "a"},
            "decisions[0].step_id 's1' is not awaiting review (pending: s2, s3)",
        ),
        (
            {
                "decisions": [
                    {"type": "approve", "step_id": "s2"},
                    {"type": "approve", "step_id": "s2"},
                ],
                "reviewer": "a",
            },
            "step 's2' is answered twice",
        ),
        (
            {"decisions": [{"type": "edit", "step_id": "s2"}], "reviewer": "a"},
            "decisions[0].edited_action must be an object",
        ),
        (
            {
                "decisions": [{"type": "edit", "step_id": "s2", "edited_action": {"args": [1]}}],
                "reviewer": "a",
            },
            "decisions[0].edited_action.args must be an object",
        ),
        (
            {
                "decisions": [
                    {"type": "edit", "step_id": "s2", "edited_action": {"arguments": [1]}}
                ],
                "reviewer": "a",
            },
            "decisions[0].edited_action.arguments must be an object",
        ),
        (
            {
                "decisions": [
                    {"type": "edit", "step_id": "s2", "edited_action": {"name": "t"}},
                ],
                "reviewer": "a",
            },
            "decisions[0].edited_action.args must be an object",
        ),
        (
            {
                "decisions": [
                    {
                        "type": "edit",
                        "step_id": "s2",
                        "edited_action": {"args": {}, "arguments": {}},
                    }
                ],
                "reviewer": "a",
            },
            "decisions[0].edited_action: give 'args' or the deprecated 'arguments', not both",
        ),
        (
            {"decisions": [{"type": "respond", "step_id": "s2"}], "reviewer": "a"},
            "decisions[0].message is required",
        ),
        (
            {"decisions": [{"type": "respond", "step_id": "s2", "message": ""}], "reviewer": "a"},
            "decisions[0].message must be a non-empty string",
        ),
        (
            {"decisions": [{"type": "approve", "step_id": "s2"}], "reviewer": "a", "extra": 1},
            "unknown keys ['extra']",
        ),
        (
            {"decisions": [{"type": "approve", "step_id": "s2"}], "reviewer": "  "},
            "'reviewer' must be a non-empty string",
        ),
    ],
)
def test_bad_answers_name_the_problem(payload: Any, problem: str) -> None:
    with pytest.raises(DecisionInvalid) as info:
        parse_answer(payload, PENDING, PLAN)
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_digest_binds_tool_args_and_versions() -> None:
    step = PLAN.step("s2")
    base = approval_digest(step, PLAN.id, "cat1", "pol1")
    assert base == approval_digest(step, PLAN.id, "cat1", "pol1")
    assert base != approval_digest(
        step.model_copy(update={"args": {"order_id": "#W2"}}), PLAN.id, "cat1", "pol1"
    )
    assert base != approval_digest(step, PLAN.id, "cat2", "pol1")
    assert base != approval_digest(step, PLAN.id, "cat1", "pol2")
    assert base != approval_digest(step, "other", "cat1", "pol1")


def test_tau2_action_list_is_read_as_a_plan() -> None:
    doc = [
        {
            "action_id": "a1",
            "name": "get_order_details",
            "arguments": {"order_id": "#W1"},
            "requestor": "assistant",
        },
        {"name": "cancel_pending_order", "arguments": {"order_id": "#W1", "reason": "x"}},
    ]
    p = parse_plan_document(doc)
    assert [(s.id, s.tool) for s in p.steps] == [
        ("a1", "get_order_details"),
        ("s2", "cancel_pending_order"),
    ]
    assert [s.depends_on for s in p.steps] == [[], ["a1"]]  # an action list is a sequence
    assert p.source == "explicit"
    same = parse_plan_document(
        {
            "steps": [
                {"id": "a1", "tool": "get_order_details", "args": {"order_id": "#W1"}},
                {
                    "id": "s2",
                    "tool": "cancel_pending_order",
                    "args": {"order_id": "#W1", "reason": "x"},
                    "depends_on": ["a1"],
                },
            ]
        },
        goal=p.goal,
    )
    assert same.id == p.id


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ("cancel it", "must be a list of steps"),
        ([{"tool": "x", "args": {}, "when": "now"}], "steps[0] has unknown key 'when'"),
        ([{"tool": "x", "name": "y"}], "steps[0] gives 'tool' twice"),
        ([{"id": "1bad", "tool": "x"}], "steps[0].id: String should match pattern"),
        ([{"tool": "x", "args": "a=1"}], "steps[0].args: Input should be a valid dictionary"),
        ([3], "steps[0] must be an object, got int"),
        ({"stepz": []}, "unknown top-level keys ['stepz']"),
    ],
)
def test_malformed_plan_documents_are_refused_with_the_field(doc: Any, problem: str) -> None:
    with pytest.raises(PlanInvalid) as info:
        parse_plan_document(doc)
    assert any(problem in p for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(
    ("payload", "problems"),
    [
        (
            {"decisions": [3, {"step": "s2"}], "reviewer": "a"},
            [
                "decisions[0] must be an object, got int",
                "decisions[1].type must be one of approve, edit, reject, respond, got None",
            ],
        ),
        (
            {
                "decisions": [
                    {"type": "approve", "edited_action": {"arguments": {}}, "note": "ok"},
                    {"type": "reject", "message": 5},
                ],
                "reviewer": "a",
            },
            [
                "decisions[0]: 'edited_action' is only allowed with type 'edit'",
                "decisions[0] has unknown keys ['note']",
                "decisions[1].message must be a string",
            ],
        ),
        (
            {
                "decisions": [
                    {"type": "edit", "edited_action": {"name": "", "args": {}, "x": 1}},
                    {"type": "edit", "edited_action": "cancel it"},
                ],
                "reviewer": 5,
                "roles": "admin",
            },
            [
                "decisions[0].edited_action has unknown keys ['x']",
                "decisions[0].edited_action.name must be a tool name",
                "decisions[1].edited_action must be an object with 'name' and 'args'",
                "'reviewer' must be a string",
                "'roles' must be a list",
            ],
        ),
        (
            {"decisions": [{"type": "approve", "step_id": 2}], "reviewer": "a", "role": " "},
            ["decisions[0].step_id must be a string", "'role' must be a non-empty string"],
        ),
        (
            {
                "decisions": [{"type": "approve", "step_id": "s2"}, {"type": "approve"}],
                "reviewer": "a",
                "role": "reviewer",
                "roles": ["admin"],
            },
            ["give 'role' or 'roles', not both", "either every decision names its 'step_id'"],
        ),
        (
            {"decisions": [{"type": "approve"}] * 3},
            [
                "expected 2 decisions (one per pending step: s2, s3), got 3",
                "decisions[0]: a reviewer is required",
                "decisions[1]: a reviewer is required",
                "decisions[2]: a reviewer is required",
            ],
        ),
    ],
)
def test_every_problem_is_listed_with_its_field(payload: Any, problems: list[str]) -> None:
    with pytest.raises(DecisionInvalid) as info:
        parse_answer(payload, PENDING, PLAN)
    assert len(info.value.problems) == len(problems), info.value.problems
    for got, want in zip(info.value.problems, problems, strict=True):
        assert got.startswith(want), info.value.problems


def test_reviewer_and_roles_come_from_the_answer_or_the_decision() -> None:
    got = parse_answer(
        {
            "decisions": [
                {"type": "approve", "reviewer": " cy "},
                {"type": "edit", "edited_action": {"args": {"user_id": "v"}}},
            ],
            "reviewer": " bo ",
            "roles": ["supervisor", "admin", "admin"],
        },
        PENDING,
        PLAN,
    )
    assert [(d.reviewer, d.roles) for d in got] == [
        ("cy", ["admin", "supervisor"]),
        ("bo", ["admin", "supervisor"]),
    ]
    assert (got[1].tool, got[1].args) == ("modify_user_address", {"user_id": "v"})
    (alone,) = parse_answer(
        {"decisions": [{"type": "approve", "step_id": "s2"}], "reviewer": "a"}, PENDING, PLAN
    )
    assert alone.roles == [DEFAULT_ROLE]


def test_an_identity_overrides_whatever_the_answer_says() -> None:
    got = parse_answer(
        {
            "decisions": [{"type": "approve", "reviewer": "mallory"}, {"type": "reject"}],
            "reviewer": "mallory",
            "role": "admin",
        },
        PENDING,
        PLAN,
        identity=Identity(id="ann", roles=("reviewer",)),
    )
    assert [(d.reviewer, d.roles, d.message) for d in got] == [
        ("ann", ["reviewer"], None),
        ("ann", ["reviewer"], None),
    ]
    # Only the identity can stand in for a missing reviewer.
    (approved,) = parse_answer(
        {"decisions": [{"type": "approve", "step_id": "s3"}]},
        PENDING,
        PLAN,
        identity=Identity(id="ann"),
    )
    assert (approved.step_id, approved.reviewer, approved.roles) == ("s3", "ann", [])


def test_the_answer_model_is_a_union_on_type() -> None:
    answer = Answer.model_validate(
        {
            "decisions": [
                {"type": "approve"},
                {"type": "edit", "edited_action": {"args": {}}},
                {"type": "reject", "message": "no"},
                {"type": "respond", "message": "done by phone"},
            ]
        }
    )
    assert [type(d) for d in answer.decisions] == [
        ApproveDecision,
        EditDecision,
        RejectDecision,
        RespondDecision,
    ]


def test_a_respond_keeps_its_message_and_names_its_reviewer() -> None:
    got = parse_answer(
        {
            "decisions": [
                {"type": "approve", "step_id": "s2"},
                {"type": "respond", "step_id": "s3", "message": "address changed by phone"},
            ],
            "reviewer": "ann",
        },
        PENDING,
        PLAN,
    )
    assert [(d.step_id, d.type, d.reviewer, d.message) for d in got] == [
        ("s2", "approve", "ann", None),
        ("s3", "respond", "ann", "address changed by phone"),
    ]
    assert (got[1].tool, got[1].args) == (None, None)


def test_the_deprecated_arguments_spelling_edits_like_args() -> None:
    def edit(action: dict[str, Any]) -> Any:
        (decision,) = parse_answer(
            {"decisions": [{"type": "edit", "step_id": "s2", "edited_action": action}]}
            | {"reviewer": "a"},
            PENDING,
            PLAN,
        )
        return decision

    new = edit({"name": "cancel_pending_order", "args": {"order_id": "#W1", "reason": "y"}})
    old = edit({"name": "cancel_pending_order", "arguments": {"order_id": "#W1", "reason": "y"}})
    assert new == old
    assert (new.type, new.tool, new.args) == (
        "edit",
        "cancel_pending_order",
        {"order_id": "#W1", "reason": "y"},
    )


NAMED = {"decisions": [{"type": "approve"}] * 2, "reviewer": "ann"}


def test_an_answer_naming_its_review_is_checked_against_the_pending_one() -> None:
    ok = parse_answer(
        NAMED | {"decision_id": "d1", "plan_id": PLAN.id},
        PENDING,
        PLAN,
        decision_id="d1",
        must_name=True,
    )
    assert [d.step_id for d in ok] == ["s2", "s3"]
    with pytest.raises(ReviewChanged) as info:
        parse_answer(
            NAMED | {"decision_id": "d1", "plan_id": "p0"}, PENDING, PLAN, decision_id="d1"
        )
    assert info.value.problems == [
        f"the review changed: you answered plan p0, plan {PLAN.id} is pending"
    ]
    with pytest.raises(ReviewChanged, match="you answered decision d0, decision d1 is pending"):
        parse_answer(
            NAMED | {"decision_id": "d0", "plan_id": PLAN.id}, PENDING, PLAN, decision_id="d1"
        )


@pytest.mark.parametrize(
    ("named", "problem"),
    [
        ({}, "the answer does not say which review it answers: add 'decision_id' and 'plan_id'"),
        ({"plan_id": PLAN.id}, "the answer names its 'plan_id' but not its 'decision_id'"),
        ({"decision_id": "d1"}, "the answer names its 'decision_id' but not its 'plan_id'"),
    ],
)
def test_an_answer_that_must_name_its_review_names_both_ids(
    named: dict[str, str], problem: str
) -> None:
    with pytest.raises(DecisionInvalid) as info:
        parse_answer(NAMED | named, PENDING, PLAN, decision_id="d1", must_name=True)
    assert not isinstance(info.value, ReviewChanged)
    assert [p for p in info.value.problems if p.startswith(problem)], info.value.problems


def test_a_bare_answer_is_taken_where_naming_is_not_required() -> None:
    # The node gets an answer sent keyed by its interrupt id without the ids: it is named.
    got = parse_answer(NAMED, PENDING, PLAN, decision_id="d1")
    assert [d.type for d in got] == ["approve", "approve"]

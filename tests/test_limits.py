"""Size and depth limits: oversized or absurdly nested input is refused with the limit named."""

from __future__ import annotations

from typing import Any

import pytest
from answering import naming

from checkpoints.factory import Stores
from graph.planners.explicit import parse_plan_document
from graph.runner import Runner
from guards.errors import DecisionInvalid, InputRejected, PlanInvalid
from guards.judgement import StepReview
from guards.limits import (
    MAX_ANSWER_BYTES,
    MAX_DEPTH,
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    MAX_PLAN_BYTES,
    MAX_REQUEST_CHARS,
    document_problem,
)
from guards.plan import Plan, Step, canonical_json
from guards.review import parse_answer
from guards.screening import screen_input

PLAN = Plan(
    source="explicit",
    goal="g",
    steps=[Step(id="s1", tool="cancel_pending_order", args={"order_id": "#W1", "reason": "x"})],
)
PENDING = [StepReview(step_id="s1", reason="write")]
DEEP = 100_000
ORDER = "#W2974929"  # pending, in the shipped retail data
CANCEL = [
    {"name": "find_user_id_by_email", "arguments": {"email": "fatima.anderson1447@example.com"}},
    {"name": "get_order_details", "arguments": {"order_id": ORDER}},
    {
        "name": "cancel_pending_order",
        "arguments": {"order_id": ORDER, "reason": "no longer needed"},
    },
]


def nested(levels: int, leaf: Any = None) -> Any:
    """Return ``leaf`` wrapped in ``levels`` lists, built without recursion."""
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def step(**args: Any) -> dict[str, Any]:
    return {"tool": "cancel_pending_order", "args": args}


# -- measuring ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, None, True, False, 'é"x'], "b": {"c": []}},
        [{"k": "v" * 50}, [], {}, -17, 10**30],
        "plain",
    ],
)
def test_size_is_the_compact_json_size(value: Any) -> None:
    size = len(canonical_json(value).encode())
    assert document_problem(value, "it", max_bytes=size) is None
    assert "larger than" in (document_problem(value, "it", max_bytes=size - 1) or "")


def test_depth_counts_objects_and_lists_from_one() -> None:
    assert document_problem(nested(MAX_DEPTH), "it", MAX_PLAN_BYTES) is None
    problem = document_problem(nested(MAX_DEPTH + 1), "it", MAX_PLAN_BYTES)
    assert problem == f"it is nested more than {MAX_DEPTH} levels deep (the limit)"
    assert document_problem({"a": nested(MAX_DEPTH)}, "it", MAX_PLAN_BYTES) is not None


def test_a_document_that_contains_itself_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert "levels deep" in (document_problem(loop, "it", MAX_PLAN_BYTES) or "")


def test_a_huge_integer_counts_by_its_digits() -> None:
    assert "larger than" in (document_problem(10**400_000, "it", MAX_PLAN_BYTES) or "")


# -- plans --------------------------------------------------------------------------------------


def test_a_plan_nested_without_end_is_refused_not_a_recursion_error() -> None:
    for document in (nested(DEEP), [step(order_id=nested(DEEP))], {"steps": nested(DEEP)}):
        with pytest.raises(PlanInvalid) as info:
            parse_plan_document(document)
        assert info.value.problems == [
            f"the plan is nested more than {MAX_DEPTH} levels deep (the limit)"
        ]


def test_a_plan_at_the_depth_limit_is_read() -> None:
    # document list (1), step (2), args (3): the argument may nest MAX_DEPTH - 3 more.
    plan = parse_plan_document([step(order_id=nested(MAX_DEPTH - 3, "#W1"))])
    assert plan.steps[0].args["order_id"] == nested(MAX_DEPTH - 3, "#W1")
    with pytest.raises(PlanInvalid, match="levels deep"):
        parse_plan_document([step(order_id=nested(MAX_DEPTH - 2, "#W1"))])


def test_a_plan_over_the_size_limit_is_refused() -> None:
    filler = "x" * 1000
    fits = [step(note=filler) for _ in range(MAX_PLAN_BYTES // 1100)]
    assert len(parse_plan_document(fits).steps) == len(fits)
    with pytest.raises(PlanInvalid) as info:
        parse_plan_document([step(note=filler) for _ in range(MAX_PLAN_BYTES // 1000 + 1)])
    assert info.value.problems == ["the plan is larger than 256 KiB as JSON (the limit)"]


# -- answers ------------------------------------------------------------------------------------


def test_an_answer_nested_without_end_is_refused_not_a_recursion_error() -> None:
    edit = {"type": "edit", "edited_action": {"args": {"reason": nested(DEEP)}}}
    for answer in (nested(DEEP), {"decisions": [edit], "reviewer": "ann"}):
        with pytest.raises(DecisionInvalid) as info:
            parse_answer(answer, PENDING, PLAN)
        assert info.value.problems == [
            f"the answer is nested more than {MAX_DEPTH} levels deep (the limit)"
        ]


def test_an_answer_over_the_size_limit_is_refused() -> None:
    edit = {"type": "edit", "edited_action": {"args": {"reason": "r" * MAX_ANSWER_BYTES}}}
    with pytest.raises(DecisionInvalid) as info:
        parse_answer({"decisions": [edit], "reviewer": "ann"}, PENDING, PLAN)
    assert info.value.problems == ["the answer is larger than 64 KiB as JSON (the limit)"]
    edit["edited_action"]["args"]["reason"] = "r" * (MAX_ANSWER_BYTES - 200)
    (decision,) = parse_answer({"decisions": [edit], "reviewer": "ann"}, PENDING, PLAN)
    assert decision.args is not None and len(decision.args["reason"]) == MAX_ANSWER_BYTES - 200


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (
            {"decisions": [{"type": "approve"}], "reviewer": "a" * (MAX_NAME_CHARS + 1)},
            f"'reviewer' has {MAX_NAME_CHARS + 1} characters; the limit is {MAX_NAME_CHARS}",
        ),
        (
            {"decisions": [{"type": "approve", "reviewer": "a" * (MAX_NAME_CHARS + 1)}]},
            f"decisions[0].reviewer has {MAX_NAME_CHARS + 1} characters; the limit is",
        ),
        (
            {"decisions": [{"type": "approve"}], "reviewer": "a", "role": "r" * 600},
            f"'role' has 600 characters; the limit is {MAX_NAME_CHARS}",
        ),
        (
            {"decisions": [{"type": "approve"}], "reviewer": "a", "roles": ["ok", "r" * 600]},
            f"'roles[1]' has 600 characters; the limit is {MAX_NAME_CHARS}",
        ),
        (
            {
                "decisions": [{"type": "reject", "message": "m" * (MAX_MESSAGE_CHARS + 1)}],
                "reviewer": "a",
            },
            f"decisions[0].message has {MAX_MESSAGE_CHARS + 1} characters; "
            f"the limit is {MAX_MESSAGE_CHARS}",
        ),
        (
            {
                "decisions": [{"type": "respond", "message": "m" * (MAX_MESSAGE_CHARS + 1)}],
                "reviewer": "a",
            },
            f"decisions[0].message has {MAX_MESSAGE_CHARS + 1} characters; "
            f"the limit is {MAX_MESSAGE_CHARS}",
        ),
        (
            {"decisions": [{"type": "approve"}], "reviewer": "a", "plan_id": "p" * 600},
            f"'plan_id' has 600 characters; the limit is {MAX_NAME_CHARS}",
        ),
    ],
)
def test_names_roles_and_messages_have_a_length_limit(answer: Any, problem: str) -> None:
    with pytest.raises(DecisionInvalid) as info:
        parse_answer(answer, PENDING, PLAN)
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_names_and_messages_at_the_limit_are_accepted() -> None:
    (decision,) = parse_answer(
        {
            "decisions": [{"type": "reject", "message": "m" * MAX_MESSAGE_CHARS}],
            "reviewer": "a" * MAX_NAME_CHARS,
            "role": "r" * MAX_NAME_CHARS,
        },
        PENDING,
        PLAN,
    )
    assert len(decision.reviewer) == MAX_NAME_CHARS and decision.roles == ["r" * MAX_NAME_CHARS]
    assert decision.message == "m" * MAX_MESSAGE_CHARS


# -- run input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "field", "problem"),
    [
        (
            {"request": "x" * (MAX_REQUEST_CHARS + 1)},
            "request",
            f"'request' has {MAX_REQUEST_CHARS + 1} characters; the limit is {MAX_REQUEST_CHARS}",
        ),
        (
            {"explicit_plan": nested(DEEP)},
            "explicit_plan",
            f"'explicit_plan' is nested more than {MAX_DEPTH} levels deep (the limit)",
        ),
        (
            {"explicit_plan": [step(note="x" * MAX_PLAN_BYTES)]},
            "explicit_plan",
            "'explicit_plan' is larger than 256 KiB as JSON (the limit)",
        ),
        (
            {"request": "cancel", "actor": "a" * (MAX_NAME_CHARS + 1)},
            "actor",
            f"'actor' has {MAX_NAME_CHARS + 1} characters; the limit is {MAX_NAME_CHARS}",
        ),
    ],
)
def test_screening_applies_the_limits(state: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(InputRejected) as info:
        screen_input(state)
    assert (str(info.value), info.value.field) == (problem, field)


def test_screening_lets_input_at_the_limits_through() -> None:
    screen_input({"request": "x" * MAX_REQUEST_CHARS, "actor": "a" * MAX_NAME_CHARS})
    screen_input({"explicit_plan": [step(order_id=nested(MAX_DEPTH - 3, "#W1"))]})


def test_a_runner_refuses_deep_input_and_keeps_the_thread(stores: Stores) -> None:
    runner = Runner(stores)
    with pytest.raises(InputRejected, match="levels deep"):
        runner.start(explicit_plan=nested(DEEP))
    first = runner.start(explicit_plan=CANCEL)
    assert first["status"] == "awaiting_approval"
    thread = first["thread_id"]
    history_before = len(list(runner.history(thread)))
    with pytest.raises(DecisionInvalid, match="levels deep"):
        runner.resume(thread, naming(first, {"decisions": [nested(DEEP)], "reviewer": "ann"}))
    assert len(list(runner.history(thread))) == history_before
    assert runner.outcome(thread)["status"] == "awaiting_approval"

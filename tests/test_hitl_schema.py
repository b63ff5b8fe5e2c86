"""planbound's review speaks LangChain v1's human-in-the-loop schema, checked against it.

The interrupt value is validated against LangChain's ``HITLRequest`` and every decision
planbound accepts against its ``Decision``, with pydantic's ``TypeAdapter``: a change on
either side fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from answering import answer_for
from langchain.agents.middleware.human_in_the_loop import (
    Decision,
    DecisionType,
    HITLRequest,
    HITLResponse,
)
from pydantic import TypeAdapter, ValidationError

from checkpoints.factory import Stores
from graph.cli.answers import ApproveFlags, PendingReview, review_answer
from graph.review import DECISIONS_ALLOWED, pending_request
from graph.runner import Runner
from graph.services import open_stores
from guards.answer import DECISION_TYPES
from guards.judgement import StepReview
from guards.plan import Plan
from guards.review import parse_answer
from tools.retail import load_shipped, seed

ORDER = "#W2974929"
PLAN = [
    {"name": "find_user_id_by_email", "arguments": {"email": "fatima.anderson1447@example.com"}},
    {
        "name": "cancel_pending_order",
        "arguments": {"order_id": ORDER, "reason": "no longer needed"},
    },
]
REQUEST: TypeAdapter[HITLRequest] = TypeAdapter(HITLRequest)
DECISION: TypeAdapter[Decision] = TypeAdapter(Decision)
RESPONSE: TypeAdapter[HITLResponse] = TypeAdapter(HITLResponse)

ACCEPTED: list[dict[str, Any]] = [
    {"type": "approve"},
    {
        "type": "edit",
        "edited_action": {
            "name": "cancel_pending_order",
            "args": {"order_id": ORDER, "reason": "ordered by mistake"},
        },
    },
    {"type": "reject"},
    {"type": "reject", "message": "call the customer first"},
    {"type": "respond", "message": "cancelled by phone"},
]
"""One of each decision planbound accepts, in LangChain's shape."""


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    stores: Stores = open_stores(tmp_path / "home")
    with stores.lock:
        seed(stores.domain, load_shipped())
    yield Runner(stores)
    stores.close()


def _interrupt_value(runner: Runner, thread_id: str) -> dict[str, Any]:
    snapshot = runner.graph.get_state({"configurable": {"thread_id": thread_id}})
    value = pending_request(snapshot.interrupts)
    assert value is not None
    return value


def test_the_decision_types_are_langchains() -> None:
    assert DECISIONS_ALLOWED == list(get_args(DecisionType))
    assert DECISION_TYPES == get_args(DecisionType)


def test_the_interrupt_value_is_a_hitl_request(runner: Runner) -> None:
    first = runner.start(explicit_plan=PLAN)
    assert first["status"] == "awaiting_approval"
    value = _interrupt_value(runner, first["thread_id"])
    request = REQUEST.validate_python(value)
    (action,) = request["action_requests"]
    assert action["name"] == "cancel_pending_order"
    assert action["args"] == {"order_id": ORDER, "reason": "no longer needed"}
    assert action["description"].startswith("Step s2: ")
    (config,) = request["review_configs"]
    assert config["action_name"] == "cancel_pending_order"
    assert config["allowed_decisions"] == ["approve", "edit", "reject", "respond"]
    assert {"order_id", "reason"} <= set(config["args_schema"]["properties"])
    # What an answer names back, beside LangChain's keys.
    assert value["decision_id"] == first["decision_id"]
    assert value["plan_id"] == first["plan"]["id"]
    assert first["pending"][0]["args"] == action["args"]


@pytest.mark.parametrize("decision", ACCEPTED, ids=lambda d: str(d.get("message", d["type"])))
def test_each_accepted_decision_is_a_langchain_decision(decision: dict[str, Any]) -> None:
    assert DECISION.validate_python(decision) == decision
    plan = Plan.model_validate(
        {
            "source": "explicit",
            "goal": "g",
            "steps": [{"id": "s2", "tool": "cancel_pending_order", "args": PLAN[1]["arguments"]}],
        }
    )
    answer = {"decisions": [decision], "reviewer": "ann"}
    assert RESPONSE.validate_python(answer)["decisions"] == [decision]
    (parsed,) = parse_answer(answer, [StepReview(step_id="s2", reason="write")], plan)
    assert (parsed.step_id, parsed.type, parsed.message) == (
        "s2",
        decision["type"],
        decision.get("message"),
    )
    if decision["type"] == "edit":
        assert (parsed.tool, parsed.args) == (
            decision["edited_action"]["name"],
            decision["edited_action"]["args"],
        )


def test_the_deprecated_edit_spelling_is_not_langchains() -> None:
    older = {"type": "edit", "edited_action": {"name": "t", "arguments": {"reason": "x"}}}
    with pytest.raises(ValidationError):
        DECISION.validate_python(older)


@pytest.mark.parametrize(
    "flags",
    [
        ApproveFlags(reviewer="ann", all_steps=True, approve=True),
        ApproveFlags(
            reviewer="ann",
            step="s2",
            edit=f'{{"order_id": "{ORDER}", "reason": "ordered by mistake"}}',
        ),
        ApproveFlags(reviewer="ann", step="s2", reject="no"),
        ApproveFlags(reviewer="ann", all_steps=True, respond="done by phone"),
    ],
    ids=["approve", "edit", "reject", "respond"],
)
def test_the_cli_answers_in_langchains_shape(runner: Runner, flags: ApproveFlags) -> None:
    first = runner.start(explicit_plan=PLAN)
    answer = review_answer(flags, lambda: PendingReview.of(first))
    assert answer == answer_for(
        first, *answer["decisions"], reviewer="ann", role="reviewer"
    )  # names the review shown
    for decision in RESPONSE.validate_python(answer)["decisions"]:
        assert decision["type"] == flags_type(flags)
    done = runner.resume(first["thread_id"], answer)
    assert done["status"] == ("completed" if flags.approve or flags.edit else "rejected"), done


def flags_type(flags: ApproveFlags) -> str:
    if flags.edit is not None:
        return "edit"
    if flags.reject is not None:
        return "reject"
    return "respond" if flags.respond is not None else "approve"

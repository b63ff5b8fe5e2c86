"""What the model fills: a typed plan schema strict structured output accepts, and its reading.

OpenAI's strict JSON schema mode allows no free-form object (every object must list all its
properties as required and forbid others), so a step's arguments are a list of
``{name, value}`` pairs whose ``value`` is JSON text: a literal, a ``"$s1.field"``
reference, or a ``{"$select": ...}`` selection, exactly as in the Plan IR. :func:`to_plan`
turns a reply into a :class:`~guards.plan.Plan` with ``source="llm"`` or says, naming each
field by its path, why it cannot: nothing is repaired or guessed.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from guards.limits import MAX_PLAN_BYTES, document_problem
from guards.plan import CannotPlan, Plan, Step
from guards.problems import field_path

MAX_REASON_CHARS = 500
"""Longest ``cannot_plan`` reason kept from a reply."""


class ModelArg(BaseModel):
    """One argument of a step."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The argument's name, as in the tool's argument schema.")
    value: str = Field(
        description=(
            "The argument's value as JSON text: a string is quoted ('\"#W1234567\"'), a list "
            "is '[\"1\", \"2\"]', a number is '3'. A reference to an earlier step's output is "
            "the JSON string '\"$s1.field\"'; a selection is a JSON object "
            '\'{"$select": "s2", "query": "...", "take": "one", "params": {}}\'.'
        )
    )


class ModelStep(BaseModel):
    """One tool call."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Step id: s1, s2, ... in order.")
    tool: str = Field(description="A tool name from the catalog.")
    args: list[ModelArg] = Field(description="The tool's arguments, each once.")
    depends_on: list[str] = Field(description="Ids of earlier steps this one must wait for.")
    description: str = Field(description="What the step is for, for the human reviewer.")


class ModelPlan(BaseModel):
    """The model's answer: a plan, or why the request cannot be planned with these tools."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["plan", "cannot_plan"] = Field(
        description="'plan' with steps, or 'cannot_plan' with a reason and no steps."
    )
    reason: str = Field(description="Why it cannot be planned; empty for a plan.")
    steps: list[ModelStep] = Field(description="The steps; empty for cannot_plan.")


def to_plan(reply: ModelPlan, goal: str) -> Plan | CannotPlan | list[str]:
    """Read a validated reply as a plan, a :class:`CannotPlan`, or the problems found.

    Args:
        reply: The model's reply, validated against :class:`ModelPlan`.
        goal: The request the plan serves (the plan's goal is the request, not the model's
            words).

    Returns:
        The plan (``source="llm"``), a :class:`CannotPlan`, or one problem per offending
        field, each naming its path (``steps[1].args[0].value``).
    """
    if reply.decision == "cannot_plan":
        if reply.steps:
            return ["decision is 'cannot_plan' but steps are given: give one or the other"]
        reason = " ".join(reply.reason.split())[:MAX_REASON_CHARS]
        return CannotPlan(reason=f"the planner could not plan it: {reason or 'no reason given'}")
    if not reply.steps:
        return ["decision is 'plan' but steps is empty"]
    problems: list[str] = []
    steps: list[dict[str, Any]] = []
    for i, step in enumerate(reply.steps):
        args: dict[str, Any] = {}
        for j, arg in enumerate(step.args):
            where = f"steps[{i}].args[{j}]"
            if arg.name in args:
                problems.append(f"{where}.name: argument {arg.name!r} is given twice")
                continue
            try:
                args[arg.name] = json.loads(arg.value)
            except json.JSONDecodeError as exc:
                problems.append(f"{where}.value ({arg.name}): not JSON text ({exc.msg})")
        steps.append(
            {
                "id": step.id,
                "tool": step.tool,
                "args": args,
                "depends_on": step.depends_on,
                "description": step.description,
            }
        )
    too_big = document_problem(steps, "the plan", MAX_PLAN_BYTES)
    if too_big is not None:
        problems.append(too_big)
    if problems:
        return problems
    built: list[Step] = []
    for i, data in enumerate(steps):
        try:
            built.append(Step.model_validate(data))
        except ValidationError as exc:
            problems.extend(
                f"{field_path(e['loc'], f'steps[{i}]')}: {e['msg']}" for e in exc.errors()
            )
    if problems:
        return problems
    return Plan(source="llm", goal=goal, steps=built)

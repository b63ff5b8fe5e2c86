"""The shape of a reviewer's answer, as pydantic models, and its problems in words.

An answer follows LangChain's human-in-the-loop schema: ``decisions`` of type ``approve``,
``edit`` (``edited_action: {name, args}``), ``reject`` (an optional ``message``) or
``respond`` (a ``message``), plus who answers and which review they answer. An edit's
``edited_action.arguments`` (the spelling of earlier releases) is still accepted and is
deprecated. :func:`answer_problems` says what is wrong with a malformed one, one problem per
field; :mod:`guards.review` applies the rules across fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from guards.limits import MAX_MESSAGE_CHARS, MAX_NAME_CHARS
from guards.problems import field_path, field_problem, type_name, unknown_keys

DECISION_TYPES = ("approve", "edit", "reject", "respond")

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_CHARS)
]
"""A reviewer's name or a role: non-empty once stripped, at most MAX_NAME_CHARS."""

Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
"""A decision or plan id, as the interrupt value gives it."""


class _Answered(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    step_id: str | None = Field(
        default=None, description="The step answered; without it, decisions go in order."
    )
    reviewer: Name | None = Field(
        default=None, description="Who answers this step (local callers; else the answer's)."
    )


class ApproveDecision(_Answered):
    """Run the step as it is."""

    type: Literal["approve"]


class EditedAction(BaseModel):
    """The call a reviewer puts in place of the step's (LangChain's ``Action``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1)] | None = Field(
        default=None, description="The tool; the step's own when left out."
    )
    args: dict[str, Any] | None = Field(default=None, description="The arguments to run it with.")
    arguments: dict[str, Any] | None = Field(
        default=None,
        description="Deprecated spelling of ``args`` from earlier releases; accepted for one more.",
    )

    @model_validator(mode="after")
    def _one_spelling(self) -> EditedAction:
        """Require the arguments, spelt once."""
        if {"args", "arguments"} <= self.model_fields_set:
            raise PydanticCustomError(
                "edited_args_twice", "give 'args' or the deprecated 'arguments', not both"
            )
        if self.args is None and self.arguments is None:
            raise PydanticCustomError("edited_args_missing", "'args' must be an object")
        return self

    @property
    def call_args(self) -> dict[str, Any]:
        """The arguments to run the step with, whichever spelling carried them."""
        found = self.args if self.args is not None else self.arguments
        if found is None:  # refused by validation
            raise RuntimeError("an edited action without arguments")
        return found


class EditDecision(_Answered):
    """Run the step with another call."""

    type: Literal["edit"]
    edited_action: EditedAction


class RejectDecision(_Answered):
    """Do not run the step (the run is sent back or ends)."""

    type: Literal["reject"]
    message: Annotated[str, Field(max_length=MAX_MESSAGE_CHARS)] | None = Field(
        default=None, description="Why, for the requester."
    )


class RespondDecision(_Answered):
    """Answer in the step's place: the step is not run and the run ends with the response."""

    type: Literal["respond"]
    message: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)] = Field(
        description="The response, for the requester."
    )


AnswerDecision = Annotated[
    ApproveDecision | EditDecision | RejectDecision | RespondDecision,
    Field(discriminator="type"),
]
"""One decision, told apart by its ``type``."""


class Answer(BaseModel):
    """A resume payload: decisions on the pending steps, the review answered, who answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decisions: list[AnswerDecision] = Field(min_length=1)
    decision_id: Id | None = Field(
        default=None, description="The run's decision id, from the interrupt value."
    )
    plan_id: Id | None = Field(
        default=None, description="The id of the plan under review, from the interrupt value."
    )
    reviewer: Name | None = Field(default=None, description="Who answers (local callers).")
    role: Name | None = Field(default=None, description="The reviewer's role.")
    roles: list[Name] | None = Field(default=None, description="The reviewer's roles.")


def answer_problems(exc: ValidationError) -> list[str]:
    """Say what is wrong with an answer's shape, one problem per field, in its own terms."""
    errors = exc.errors()
    problems: list[str] = []
    for parent, keys in unknown_keys(errors).items():
        if not parent:
            problems.append(
                f"unknown keys {keys} (expected 'decisions', 'decision_id', 'plan_id', "
                "'reviewer' and 'role')"
            )
            continue
        where = field_path(_untagged(parent))
        if "edited_action" in keys and parent[2:] != ("edit",):
            problems.append(f"{where}: 'edited_action' is only allowed with type 'edit'")
            keys.remove("edited_action")
        if keys:
            problems.append(f"{where} has unknown keys {keys}")
    problems += [_answer_problem(err) for err in errors if err["type"] != "extra_forbidden"]
    return problems


def _untagged(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop the decision type pydantic puts in a location: ``decisions.0.edit.x`` is ``...0.x``."""
    return loc[:2] + loc[3:] if loc[:1] == ("decisions",) else loc


def _answer_problem(err: ErrorDetails) -> str:
    loc, found = err["loc"], err["input"]
    if not loc:
        return (
            f"the answer must be an object with 'decisions' and 'reviewer', got {type_name(found)}"
        )
    if loc == ("decisions",):
        return "'decisions' must be a non-empty list"
    if loc[0] != "decisions":
        return field_problem(f"'{field_path(loc)}'", err)
    where = field_path(loc[:2])
    if len(loc) == 2:
        if err["type"].startswith("union_tag"):
            return (
                f"{where}.type must be one of {', '.join(DECISION_TYPES)}, "
                f"got {found.get('type')!r}"
            )
        return f"{where} must be an object, got {type_name(found)}"
    field = loc[3:]  # past the decision's type
    if err["type"] == "edited_args_missing":
        return f"{where}.edited_action.args must be an object"
    if err["type"] == "edited_args_twice":
        return f"{where}.edited_action: {err['msg']}"
    if field == ("edited_action",):
        return f"{where}.edited_action must be an object with 'name' and 'args'"
    if field in (("edited_action", "args"), ("edited_action", "arguments")):
        return f"{where}.edited_action.{field[1]} must be an object"
    if field == ("edited_action", "name"):
        return f"{where}.edited_action.name must be a tool name"
    return field_problem(field_path(field, where), err)

"""Explicit plans: a plan written by a person or another system, read as data.

Accepted documents:

* ``{"goal": "...", "steps": [{"id", "tool", "args", "depends_on"?, "description"?,
  "foreach"?}]}`` (``foreach``: a selection the step is repeated for, :mod:`guards.fanout`)
* a bare list of steps, or ``{"actions": [...]}``: τ²-bench action lists, where a step may
  say ``name`` for ``tool``, ``arguments`` (or ``kwargs``) for ``args`` and ``action_id``
  for ``id``; τ²'s bookkeeping keys (``requestor``, ``info``, ``compare_args``) are ignored.
  Steps without an id are numbered ``s1``, ``s2``, ... An action list is a sequence, as in
  τ²: when no action says ``depends_on``, each action depends on the one before it.

An explicit plan is still verified and governed like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from guards.errors import PlanInvalid
from guards.limits import MAX_PLAN_BYTES, document_problem
from guards.plan import STEP_ID, CannotPlan, Plan, PlanRequest, Repeat, Step, content_hash
from guards.problems import field_path, type_name

ALIASES = {"name": "tool", "arguments": "args", "kwargs": "args", "action_id": "id"}
"""τ²-bench's names for a step's fields."""

NOT_A_LIST = "the plan must be a list of steps or an object with a 'steps' list"


class DocumentStep(BaseModel):
    """A step as written: planbound's field names or τ²-bench's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=STEP_ID)] | None = Field(
        default=None,
        validation_alias=AliasChoices("id", "action_id"),
        description="The step id; ``s<position>`` when left out.",
    )
    tool: str = Field(min_length=1, validation_alias=AliasChoices("tool", "name"))
    args: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("args", "arguments", "kwargs")
    )
    depends_on: list[str] = Field(default_factory=list)
    description: str = ""
    foreach: dict[str, Any] | None = Field(
        default=None, description="A selection the step is repeated for (see ``Step``)."
    )
    repeat: Repeat | None = Field(
        default=None,
        description="A step written from a foreach (a plan written out by planbound).",
    )
    requestor: Any = Field(default=None, description="τ² bookkeeping, ignored.")
    info: Any = Field(default=None, description="τ² bookkeeping, ignored.")
    compare_args: Any = Field(default=None, description="τ² bookkeeping, ignored.")


class PlanDocument(BaseModel):
    """A plan document: ``{"goal", "steps"}``, or an action list as ``actions``.

    A bare list is read as ``actions``. ``id``, ``source`` and ``template`` (a plan written
    out by planbound) are accepted and ignored: they are recomputed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    goal: str | None = Field(default=None, description="What the plan is for.")
    steps: list[DocumentStep] | None = Field(default=None, description="Steps, as a graph.")
    actions: list[DocumentStep] | None = Field(default=None, description="Steps, in sequence.")
    id: Any = Field(default=None, description="Ignored: a plan's id is its content hash.")
    source: Any = Field(default=None, description="Ignored: an explicit plan is explicit.")
    template: Any = Field(default=None, description="Ignored.")


def parse_plan_document(document: Any, goal: str = "") -> Plan:
    """Read a plan document into a :class:`Plan`.

    Raises:
        PlanInvalid: naming each malformed step and field.
    """
    too_big = document_problem(document, "the plan", MAX_PLAN_BYTES)
    if too_big is not None:
        raise PlanInvalid([too_big])
    data = document if isinstance(document, Mapping) else {"actions": document}
    try:
        parsed = PlanDocument.model_validate(data)
    except ValidationError as exc:
        raise PlanInvalid(_problems(exc)) from None
    if parsed.steps is not None and parsed.actions is not None:
        raise PlanInvalid(["give 'steps' or 'actions', not both"])
    written = parsed.steps if parsed.steps is not None else parsed.actions
    if written is None:
        raise PlanInvalid([NOT_A_LIST])
    ids = [s.id or f"s{i + 1}" for i, s in enumerate(written)]
    sequential = parsed.steps is None and not any(
        "depends_on" in s.model_fields_set for s in written
    )
    steps: list[Step] = []
    for i, (s, step_id) in enumerate(zip(written, ids, strict=True)):
        depends_on = [ids[i - 1]] if sequential and i else s.depends_on
        steps.append(
            Step(
                id=step_id,
                tool=s.tool,
                args=s.args,
                depends_on=depends_on,
                description=s.description,
                foreach=s.foreach,
                repeat=s.repeat,
            )
        )
    raw_steps = data.get("steps", data.get("actions"))
    return Plan(
        source="explicit",
        goal=parsed.goal or goal or f"explicit plan {content_hash(raw_steps, 8)}",
        steps=steps,
    )


def _problems(exc: ValidationError) -> list[str]:
    """Say what is wrong in the document, naming ``steps[i].field`` as it was written."""
    errors = exc.errors()
    top = [
        str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1
    ]
    problems = (
        [f"unknown top-level keys {sorted(top)} (expected 'goal' and 'steps')"] if top else []
    )
    problems += [_problem(e) for e in errors if len(e["loc"]) > 1 or e["type"] != "extra_forbidden"]
    return list(dict.fromkeys(problems))


def _problem(err: ErrorDetails) -> str:
    loc = err["loc"]
    if loc in (("steps",), ("actions",)):
        return NOT_A_LIST
    if loc[0] not in ("steps", "actions"):
        return f"{field_path(loc)}: {err['msg']}"
    where = field_path(("steps", *loc[1:2]))
    if len(loc) == 2:
        return f"{where} must be an object, got {type_name(err['input'])}"
    key = str(loc[2])
    if err["type"] == "extra_forbidden" and len(loc) == 3:
        if key in ALIASES:
            return f"{where} gives {ALIASES[key]!r} twice (as {key!r})"
        return f"{where} has unknown key {key!r}"
    return f"{field_path(loc[2:], where)}: {err['msg']}"


class ExplicitPlanner:
    """Serves a plan given as data; it cannot re-plan."""

    name = "explicit"

    def __init__(self, document: Any) -> None:
        self.document = document

    @property
    def version(self) -> str:
        """Hash of the document served."""
        return content_hash(self.document, 12)

    @property
    def can_replan(self) -> bool:
        """An explicit plan is what it is: feedback cannot change it."""
        return False

    def plan(self, request: PlanRequest) -> Plan | CannotPlan:
        """Return the document as a plan (raises :class:`PlanInvalid` if malformed)."""
        return parse_plan_document(self.document, goal=request.text)

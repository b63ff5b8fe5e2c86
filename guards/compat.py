"""Answers in the legacy Agent Inbox ``HumanResponse`` shape, turned into planbound's.

Agent Inbox answers an interrupt with a list of ``{"type": ..., "args": ...}``, one per action
request, in order:

- ``{"type": "accept", "args": None}`` approves the step;
- ``{"type": "edit", "args": {"action": name, "args": {...}}}`` edits it;
- ``{"type": "response", "args": "text"}`` sends it back with a message: a ``reject`` with
  that message, not LangChain's ``respond`` (whose message stands in for the step's result);
- ``{"type": "ignore", "args": None}`` declines it (a reject).

The result is planbound's resume shape (``{"decisions": [...]}``, an edit carrying
``edited_action: {name, args}``, see :func:`guards.review.parse_answer`), which then goes
through the same validation as any other answer: ``args`` are handed on as they are, so that
validation names what is wrong with them in planbound's terms. The legacy shape names no
reviewer and no review: the reviewer comes from whoever is authenticated, and the server
takes a legacy answer only keyed by its interrupt id (``{interrupt_id: [...]}``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

LEGACY_TYPES = ("accept", "edit", "response", "ignore")

IGNORED = "ignored by the reviewer"
"""The reject message recorded for an ``ignore`` answer."""


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    args: Any = Field(default=None, description="The answer's argument, by type.")

    def decision(self) -> dict[str, Any]:
        """Return the answer as a planbound decision (unvalidated)."""
        raise NotImplementedError


class Accept(_Response):
    """Approve the step as it is."""

    type: Literal["accept"]

    def decision(self) -> dict[str, Any]:
        """Return ``{"type": "approve"}``."""
        return {"type": "approve"}


class ActionRequest(BaseModel):
    """The call an ``edit`` puts in place of the step's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Any = Field(default=None, description="The tool name (the step's when left out).")
    args: Any = Field(default=None, description="The new arguments.")


class Edit(_Response):
    """Run the step with another call (``args`` is an :class:`ActionRequest`)."""

    type: Literal["edit"]

    def decision(self) -> dict[str, Any]:
        """Return an ``edit`` decision, or hand malformed ``args`` on as the edited action."""
        try:
            request = ActionRequest.model_validate(self.args)
        except ValidationError:
            return {"type": "edit", "edited_action": self.args}
        action: dict[str, Any] = {"args": request.args}
        if "action" in request.model_fields_set:
            action["name"] = request.action
        return {"type": "edit", "edited_action": action}


class Response(_Response):
    """Send the step back with a message (``args``): a reject, not a ``respond``."""

    type: Literal["response"]

    def decision(self) -> dict[str, Any]:
        """Return a ``reject`` decision carrying the message."""
        return {"type": "reject", "message": self.args}


class Ignore(_Response):
    """Decline the step: a reject."""

    type: Literal["ignore"]

    def decision(self) -> dict[str, Any]:
        """Return a ``reject`` decision recording :data:`IGNORED`."""
        return {"type": "reject", "message": IGNORED}


HumanResponse = Annotated[Accept | Edit | Response | Ignore, Field(discriminator="type")]
"""One legacy answer, told apart by its ``type``."""

_ONE: TypeAdapter[HumanResponse] = TypeAdapter(HumanResponse)
_MANY: TypeAdapter[list[HumanResponse]] = TypeAdapter(
    Annotated[list[HumanResponse], Field(min_length=1)]
)


def from_agent_inbox(answer: Any) -> Any:
    """Translate a legacy ``HumanResponse`` answer; return anything else unchanged.

    Args:
        answer: A resume payload: a ``HumanResponse``, a non-empty list of them (one per
            pending step, in order), or any other value.

    Returns:
        ``{"decisions": [...]}`` for a legacy answer, else ``answer`` itself.
    """
    adapter: TypeAdapter[Any] = _MANY if isinstance(answer, list) else _ONE
    try:
        parsed = adapter.validate_python(answer)
    except ValidationError:
        return answer
    responses = parsed if isinstance(parsed, list) else [parsed]
    return {"decisions": [r.decision() for r in responses]}

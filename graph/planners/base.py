"""The one interface every planner implements."""

from __future__ import annotations

from typing import Protocol

from graph.errors import PlannerError
from guards.plan import CannotPlan, Plan, PlanRequest

__all__ = ["Planner", "PlannerError"]


class Planner(Protocol):
    """Turns a request into a plan, or says honestly that it cannot.

    A planner never runs a tool and never guesses: when it is not confident it returns
    :class:`~guards.plan.CannotPlan`.
    """

    name: str
    """Short name recorded in provenance, e.g. ``template``."""

    @property
    def version(self) -> str:
        """Version of the planner's knowledge (template set hash, prompt version)."""
        ...

    @property
    def can_replan(self) -> bool:
        """Whether feedback from the verifier can change the planner's next answer."""
        ...

    def plan(self, request: PlanRequest) -> Plan | CannotPlan:
        """Return a plan for ``request`` or a :class:`CannotPlan`."""
        ...

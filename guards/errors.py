"""Exceptions raised by guards, each carrying its context."""

from __future__ import annotations


class GuardError(Exception):
    """Base class of every guard failure."""


class PlanInvalid(GuardError):
    """A plan document could not be read as a plan.

    Attributes:
        problems: One message per problem, each naming the offending field.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid plan: " + "; ".join(problems))
        self.problems = problems


class DecisionInvalid(GuardError):
    """A reviewer's resume payload was malformed or did not match the pending review.

    Attributes:
        problems: One message per problem, each naming the offending field.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid review answer: " + "; ".join(problems))
        self.problems = problems


class InputRejected(GuardError):
    """A request failed input screening (size, schema)."""

"""The guards' exceptions: one base, one subclass per failure, each carrying its context."""

from __future__ import annotations


class GuardError(Exception):
    """Base class of every guard failure: something was judged and refused, or unjudgeable."""


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


class ReviewChanged(DecisionInvalid):
    """An answer names a review other than the one pending (it was asked again, or replaced).

    Attributes:
        answered: What the answer names (``"plan X"`` or ``"decision X"``).
        pending: What is pending, in the same terms.
    """

    def __init__(self, answered: str, pending: str) -> None:
        super().__init__([f"the review changed: you answered {answered}, {pending} is pending"])
        self.answered = answered
        self.pending = pending


class InputRejected(GuardError):
    """A request failed input screening (size, schema).

    Attributes:
        field: The offending input field, when one is to blame.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ReferenceUnresolved(GuardError):
    """A ``$step.path`` reference does not resolve against the outputs at hand.

    Attributes:
        step_id: The step whose arguments hold the reference.
        reason: Which reference and why.
    """

    def __init__(self, step_id: str, reason: str) -> None:
        super().__init__(f"step {step_id!r}: {reason}")
        self.step_id = step_id
        self.reason = reason


class PolicyError(GuardError):
    """A policy could not be loaded or evaluated (the verifier turns it into a deny).

    Attributes:
        source: The bundle or server concerned, when known.
    """

    def __init__(self, message: str, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class SelectionEmpty(ReferenceUnresolved):
    """A selection matched nothing in the output it reads (the step must not run)."""


class SelectionAmbiguous(ReferenceUnresolved):
    """A selection that wants one value matched several (the step must not run)."""

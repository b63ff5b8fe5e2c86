"""Routers: pure functions from state to the next node, raising on an impossible state."""

from __future__ import annotations

from typing import Literal

from graph.execution import next_ready
from graph.state import State


class ImpossibleState(RuntimeError):
    """The state does not fit any route; a bug, never a user error."""


def after_plan(state: State) -> Literal["verify", "plan", "__end__"]:
    """Verify a new plan, stop, or plan again to ask a person for it.

    Stop when the planner could not plan or the plan was malformed; plan again when the
    re-plans are used up and a person is to be asked (the human fallback).
    """
    status = state.get("status")
    if status in ("cannot_plan", "refused", "rejected"):
        return "__end__"
    if state.get("human_fallback") == "asked":
        return "plan"
    if state.get("plan") is None:
        raise ImpossibleState(f"plan node left no plan and status {status!r}")
    return "verify"


def after_verify(state: State) -> Literal["plan", "approve", "execute", "__end__"]:
    """Re-plan a fixable refusal, stop on a final one, ask a human or execute.

    A plan whose every step verify already read (a read-only plan) is complete there.
    """
    verdict = state.get("verdict")
    if verdict is None:
        raise ImpossibleState("verify left no verdict")
    if state.get("status") == "completed":
        return "__end__"
    if verdict.outcome == "deny":
        return "plan" if verdict.fixable else "__end__"
    return "approve" if verdict.outcome == "needs_approval" else "execute"


def after_approve(state: State) -> Literal["verify", "execute", "__end__"]:
    """Stop on a rejection, re-verify an edited plan, else execute."""
    status = state.get("status")
    if status in ("rejected", "stopped"):
        return "__end__"
    if status == "verified":
        return "verify"
    if status == "approved":
        return "execute"
    raise ImpossibleState(f"approve left status {status!r}")


def after_execute(state: State) -> Literal["execute", "compensate", "finalize", "__end__"]:
    """Run the next step, compensate after a failure, or finalize when all are done."""
    if state.get("status") == "stopped":
        return "__end__"  # a safe replay reached a step that never ran
    results = state.get("results") or {}
    plan = state.get("plan")
    if plan is None:
        raise ImpossibleState("execute ran without a plan")
    if any(not r.ok for r in results.values()):
        return "compensate"
    if next_ready(plan, results) is not None:
        return "execute"
    if len(results) == len(plan.steps):
        return "finalize"
    raise ImpossibleState("steps remain but none is ready")
